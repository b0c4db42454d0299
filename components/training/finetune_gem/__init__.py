"""The finetune-gem component (``component.py``)."""
