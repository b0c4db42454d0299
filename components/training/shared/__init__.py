"""What the training components share."""
