"""The build-instructions component (``component.py``)."""
