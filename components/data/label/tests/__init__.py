"""Unit tests of the label component (never installed)."""
