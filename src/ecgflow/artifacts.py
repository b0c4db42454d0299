"""The artifact contract between stages: the file and folder names each stage writes.

A stage's output folder holds these names (beside ``manifest.json``, see
:mod:`ecgflow.manifest`); the stages that read another stage's output, the serving bundle and
the text builders take the names from here, never from each other.
"""

# ingest
RECORDS = "records.parquet"  # one row per accepted record (see DESIGN.md's data contracts)
REJECTED = (
    "rejected.parquet"  # path, reason: every input not processed (ingest, preprocess, render)
)
RAW = "raw"  # the source files as ingested (WFDB, CSV tables, Challenge tables)
# label
LABELS = "labels.parquet"  # record_id → multi-hot label columns
LABEL_DEF = "label_def.json"  # the label set: names, descriptions, source codes
UNCERTAIN = "uncertain.parquet"  # records whose labels are uncertain, with the reason
# split
SPLIT = "split.parquet"  # record_id, patient_id, split (train/val/test), fold
SPLITS: tuple[str, str, str] = ("train", "val", "test")  # the split names, in this order
# preprocess
INDEX = "index.parquet"  # one row per segment: record_id, shard, row, ...
PREPROCESS_JSON = "preprocess.json"  # the preprocessing parameters, for serving the same way
# render-images
IMAGES = "images.parquet"  # record_id → PNG path
LLAVA = "llava.json"  # LLaVA-style conversations over the images
RENDER_JSON = "render.json"  # the render parameters
# training stages
MODEL = "model"  # the trained model folder
METRICS = "metrics.json"  # a stage's metrics (training: per epoch and best)
THRESHOLDS = "thresholds.json"  # per-label decision thresholds tuned on validation
# eval stages
PLOTS = "plots"
PREDICTIONS = "predictions.json"
SKIPPED = "skipped.json"  # inputs a stage skipped, with the reason
