"""Unit tests of the build-instructions component (never installed)."""
