"""Unit tests of the finetune-classifier component (never installed)."""
