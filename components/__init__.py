"""KFP components: one lightweight component per ecgflow stage."""
