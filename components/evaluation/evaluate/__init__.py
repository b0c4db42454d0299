"""The evaluate component (``component.py``)."""
