"""Unit tests of the render-images component (never installed)."""
