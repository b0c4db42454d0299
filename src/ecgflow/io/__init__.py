"""Reading ECG records (WFDB, EDF, CSV, NPY, serial logs), dataset sources and storage."""
