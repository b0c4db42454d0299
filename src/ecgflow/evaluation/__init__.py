"""Metrics shared by training (model selection) and the eval stage."""
