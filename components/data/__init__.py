"""Data components: ingest, label, split, preprocess, render-images, build-instructions."""
