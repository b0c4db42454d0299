"""Training components: train-clip, finetune-classifier, finetune-gem."""
