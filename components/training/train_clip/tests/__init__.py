"""Unit tests of the train-clip component (never installed)."""
