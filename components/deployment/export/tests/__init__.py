"""Unit tests of the export component (never installed)."""
