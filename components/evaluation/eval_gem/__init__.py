"""The eval-gem component (``component.py``)."""
