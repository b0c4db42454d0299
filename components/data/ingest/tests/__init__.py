"""Unit tests of the ingest component (never installed)."""
