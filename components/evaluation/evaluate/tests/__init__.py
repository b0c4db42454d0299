"""Unit tests of the evaluate component (never installed)."""
