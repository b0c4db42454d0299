"""The export component (``component.py``)."""
