"""Unit tests of the register-gem component (never installed)."""
