"""The render-images component (``component.py``)."""
