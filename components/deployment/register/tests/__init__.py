"""Unit tests of the register component (never installed)."""
