"""ECG paper images: the 12-lead layout, paper-like distortions, GAF / RP / MTF images."""
