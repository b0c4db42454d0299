#!/usr/bin/env bash
# The single commands vs `ecgflow run` on the same data (issue 27): both must train and score
# the same classifier. Runs `ecgflow run --source SOURCE` under a scratch $ECGFLOW_HOME, then
# ingest → label → split → preprocess → finetune-classifier → eval with no stage options, and
# compares the two eval/metrics.json files and the classifiers' saved params.
# Usage: benchmarks/single_vs_pipeline.sh [SOURCE] [LABEL_SET] [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
E=.venv/bin/ecgflow
SOURCE=${1:-ptbxl:../shared/data/ptbxl}
LABEL_SET=${2:-ptbxl-superdiagnostic}
W=${3:-$(mktemp -d)}
rm -rf "$W/home" "$W/s" && mkdir -p "$W/s"
SECONDS=0
ECGFLOW_HOME="$W/home" $E run --source "$SOURCE" --label-set "$LABEL_SET" > "$W/run.log" 2>&1
echo "ecgflow run: ${SECONDS} s"
SECONDS=0
{
  $E ingest --source "$SOURCE" --out "$W/s/raw"
  $E label --records "$W/s/raw" --label-set "$LABEL_SET" --out "$W/s/labels"
  $E split --records "$W/s/raw" --labels "$W/s/labels" --out "$W/s/split"
  $E preprocess --records "$W/s/raw" --split "$W/s/split" --out "$W/s/pre"
  $E finetune-classifier --data "$W/s/pre" --labels "$W/s/labels" --out "$W/s/clf"
  $E eval --model "$W/s/clf" --data "$W/s/pre" --labels "$W/s/labels" --out "$W/s/eval"
} > "$W/single.log" 2>&1
echo "single commands: ${SECONDS} s"
.venv/bin/python - "$W" <<'PY'
import json, sys
from pathlib import Path

work = Path(sys.argv[1])
(run,) = [p for p in (work / "home" / "pipeline-runs").iterdir() if p.is_dir()]
pipeline, single = run / "evaluate" / "evaluation", work / "s" / "eval"
a, b = (json.loads((d / "metrics.json").read_text()) for d in (pipeline, single))
numbers = [k for k, v in a.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
differ = {k: (a[k], b.get(k)) for k in numbers if a[k] != b.get(k)}
params = [
    json.loads((d / "manifest.json").read_text())["params"]
    for d in (run / "finetune-classifier" / "classifier", work / "s" / "clf")
]
print(f"pipeline: macro AUROC {a['macro_auroc']:.4f}, F1 {a['macro_f1']:.4f} ({a.get('n_records')} records)")
print(f"single:   macro AUROC {b['macro_auroc']:.4f}, F1 {b['macro_f1']:.4f}")
print(f"classifier params equal: {params[0] == params[1]}; differing metrics: {differ or 'none'}")
sys.exit(1 if differ or params[0] != params[1] else 0)
PY
