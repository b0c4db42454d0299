"""Unit tests of the preprocess component (never installed)."""
