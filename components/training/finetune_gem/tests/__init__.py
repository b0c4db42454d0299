"""Unit tests of the finetune-gem component (never installed)."""
