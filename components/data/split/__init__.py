"""The split component (``component.py``)."""
