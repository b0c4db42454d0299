"""Evaluation components: eval (the classifier) and eval-gem."""
