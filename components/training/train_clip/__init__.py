"""The train-clip component (``component.py``)."""
