"""The register component (``component.py``)."""
