"""The artifact contract between stages: the file and folder names each stage writes.

Every stage output folder holds ``manifest.json`` once complete (see :mod:`ecgflow.manifest`),
and the names below; the stages that read another stage's output, the registry, the MLflow
model and the serving bundle take the names from here, never from each other or as literals.
"""

# every stage output folder
MANIFEST = "manifest.json"  # what the stage read and wrote, with hashes (ecgflow.manifest)
INCOMPLETE = "_INCOMPLETE"  # present while a stage writes its folder, left there if it failed

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
SPLIT_REPORT = "split_report.json"  # per-split counts and label prevalences
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
WEIGHTS = "model.safetensors"  # a model folder's weights (ecgflow.models.io)
MODEL_CONFIG = "config.json"  # a model folder's architecture and labels (ecgflow.models.io)
METRICS = "metrics.json"  # a stage's metrics (training: per epoch and best)
THRESHOLDS = "thresholds.json"  # per-label decision thresholds tuned on validation
#: what a classifier's model folder carries beside its weights, for export and serving
CLASSIFIER_SIDE_FILES: tuple[str, ...] = (PREPROCESS_JSON, THRESHOLDS, LABEL_DEF)
# finetune-gem
GEM_JSON = "gem.json"  # a GEM model folder's configuration (marks a GEM model)
GEM_TOWERS = "towers.safetensors"  # the ECG and image towers' weights
GEM_ADAPTER = "adapter"  # the language model's LoRA adapter folder
GEM_TOKENIZER = "tokenizer"  # the tokenizer folder
LEAD_QUALITY = "lead_quality.json"  # per-lead quality model (build-instructions, GEM folder)
RECORD_EVIDENCE = "record_evidence.json"  # build-instructions: each record's evidence + text
GEM_EVIDENCE = "evidence.json"  # a GEM folder whose prompts carry evidence text (how it is made)
#: build-instructions' and the GEM folder's copy of the classifier export whose probabilities
#: the evidence states (model.onnx + its side files)
EVIDENCE_CLASSIFIER = "classifier"
#: what a GEM model folder holds: registered with it, checked before serving
GEM_FILES: tuple[str, ...] = (GEM_JSON, GEM_TOWERS, GEM_ADAPTER, GEM_TOKENIZER, PREPROCESS_JSON)
# export
MODEL_ONNX = "model.onnx"  # the classifier with a sigmoid, as ONNX
PARITY = "parity.json"  # ONNX vs PyTorch on held-out rows
EXPORT_JSON = "export.json"  # the export's summary: inputs, outputs, parity
PYTORCH = "pytorch"  # the PyTorch weights and config beside the ONNX file
#: what an export folder carries beside model.onnx: registered, logged and served with it
SIDE_FILES: tuple[str, ...] = (*CLASSIFIER_SIDE_FILES, PARITY)
# register: the MLflow model folder (ecgflow.mlflow_model)
MLFLOW_EXTRA = "extra_files"  # the side files' folder inside a logged MLflow model
# eval stages
PLOTS = "plots"
PREDICTIONS = "predictions.json"
SKIPPED = "skipped.json"  # inputs a stage skipped, with the reason
