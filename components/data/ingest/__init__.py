"""The ingest component (``component.py``)."""
