"""The register-gem component (``component.py``)."""
