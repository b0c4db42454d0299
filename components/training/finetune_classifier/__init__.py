"""The finetune-classifier component (``component.py``)."""
