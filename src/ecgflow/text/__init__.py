"""Text for ECG–text models: an English text per record and prompts per label.

:func:`record_texts` turns an ingest folder into ``{record_id: text}`` (PTB-XL statement
descriptions, CinC SNOMED CT names, reports); :func:`label_prompts` turns a label stage's
``label_def.json`` (:func:`load_label_def`) into prompts from :data:`TEMPLATES`.
"""

from ecgflow.text.prompts import TEMPLATES, label_prompts, load_label_def
from ecgflow.text.reports import record_texts

__all__ = ["TEMPLATES", "label_prompts", "load_label_def", "record_texts"]
