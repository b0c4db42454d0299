"""Signal processing for ECG records: filters, resampling, normalisation, segments, quality.

Every function works on float arrays whose last axis is time, so that a batch ``[n, C, T]`` of
records with the same rate and length is processed in one call. :func:`transform_record`
(in :mod:`ecgflow.signal.transform`) is the one record → model-input function that the
preprocess stage and serving share.
"""

from ecgflow.signal.transform import PreprocessParams, transform_batch, transform_record

__all__ = ["PreprocessParams", "transform_batch", "transform_record"]
