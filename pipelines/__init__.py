"""KFP pipeline definitions composed from the components; compiled by ``ecgflow compile``."""
