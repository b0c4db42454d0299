"""The label component (``component.py``)."""
