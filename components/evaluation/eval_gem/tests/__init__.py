"""Unit tests of the eval-gem component (never installed)."""
