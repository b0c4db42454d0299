"""The preprocess component (``component.py``)."""
