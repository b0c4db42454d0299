"""Unit tests of the promote component (never installed)."""
