"""What the components' unit tests share (never installed: the wheel leaves ``tests`` out)."""
