"""Unit tests of the split component (never installed)."""
