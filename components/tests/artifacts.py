"""Small real artifacts for the components' unit tests, made once per test session.

A synthetic dataset (30 records at 100 Hz, no ../shared data needed) is taken through the
ingest, label, split and preprocess components' ``.python_func`` (what KFP runs in the pod),
so the downstream components are tested on their real upstream outputs. MLflow writes to a
file store in the session's temp folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kfp.dsl import Dataset, Metrics, Model

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as tests/conftest.py does
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

SOURCE = "synthetic://?n=30&seed=1&fs=100"
LABEL_SET = "synthetic"

_made: dict[tuple[Path, str], Any] = {}


@dataclass(frozen=True)
class Upstream:
    """The data components' outputs: folders, and the artifacts as KFP hands them on."""

    records: Dataset
    labels: Dataset
    splits: Dataset
    data: Dataset


def artifact(kind: Callable[..., Any], path: Path) -> Any:
    """A KFP artifact of ``kind`` whose local path is ``path``."""
    return kind(name=path.name, uri=str(path))


@contextmanager
def mlflow_store(factory: pytest.TempPathFactory) -> Iterator[None]:
    """MLflow runs go to a file store in the session's temp folder while inside.

    A file store, not SQLite: creating an SQLite store's tables takes seconds, and these tests
    only log runs (MLflow keeps the file store, in maintenance mode, behind an opt-in).
    """
    store = factory.getbasetemp() / "mlruns"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        patch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        yield


def _once(factory: pytest.TempPathFactory, key: str, make: Callable[[Path], Any]) -> Any:
    slot = (factory.getbasetemp(), key)
    if slot not in _made:
        _made[slot] = make(factory.mktemp(key))
    return _made[slot]


def upstream(factory: pytest.TempPathFactory) -> Upstream:
    """Ingest → label → split → preprocess of :data:`SOURCE`, each through its component."""

    def make(root: Path) -> Upstream:
        from ecgflow.components.data.ingest.component import ingest
        from ecgflow.components.data.label.component import label
        from ecgflow.components.data.preprocess.component import preprocess
        from ecgflow.components.data.split.component import split
        from ecgflow.params import IngestParams, LabelParams, PreprocessParams, SplitParams

        records, labels = artifact(Dataset, root / "records"), artifact(Dataset, root / "labels")
        splits, data = artifact(Dataset, root / "splits"), artifact(Dataset, root / "data")
        ingest.python_func(
            params=IngestParams(source=SOURCE, workers=1).model_dump_json(),
            records=records,
            metrics=artifact(Metrics, root / "m-ingest"),
        )
        label.python_func(
            records=records,
            params=LabelParams(label_set=LABEL_SET).model_dump_json(),
            labels=labels,
            metrics=artifact(Metrics, root / "m-label"),
        )
        split.python_func(
            records=records,
            labels=labels,
            params=SplitParams(ratios=(0.6, 0.2, 0.2)).model_dump_json(),
            splits=splits,
            metrics=artifact(Metrics, root / "m-split"),
        )
        preprocess.python_func(
            records=records,
            splits=splits,
            params=PreprocessParams(workers=1).model_dump_json(),
            data=data,
            metrics=artifact(Metrics, root / "m-preprocess"),
        )
        return Upstream(records, labels, splits, data)

    return _once(factory, "upstream", make)


def classifier(factory: pytest.TempPathFactory) -> Model:
    """An untrained tiny classifier saved as finetune-classifier saves one (no training loop).

    Its scores mean nothing; the evaluation and export components only need its layout:
    ``model/`` with the weights, config, thresholds, ``preprocess.json`` and ``label_def.json``,
    and the folder's manifest.
    """

    def make(root: Path) -> Model:
        import torch

        from ecgflow.artifacts import LABEL_DEF, MODEL, PREPROCESS_JSON, THRESHOLDS
        from ecgflow.manifest import write_manifest
        from ecgflow.models import Classifier, ClassifierConfig, EncoderConfig, save_model

        torch.manual_seed(0)
        made = upstream(factory)
        label_def = json.loads((Path(made.labels.path) / LABEL_DEF).read_text(encoding="utf-8"))
        names = [entry["name"] for entry in label_def["labels"]]
        config = ClassifierConfig(
            encoder=EncoderConfig(width=8, depth=1, in_channels=12), labels=names
        )
        target = root / "classifier" / MODEL
        save_model(target, Classifier(config), config, "classifier")
        thresholds = {"labels": names, "thresholds": dict.fromkeys(names, 0.5)}
        (target / THRESHOLDS).write_text(json.dumps(thresholds), encoding="utf-8")
        shutil.copyfile(Path(made.data.path) / PREPROCESS_JSON, target / PREPROCESS_JSON)
        shutil.copyfile(Path(made.labels.path) / LABEL_DEF, target / LABEL_DEF)
        write_manifest(root / "classifier", stage="finetune-classifier", params={})
        return artifact(Model, root / "classifier")

    return _once(factory, "classifier", make)


class StageCall:
    """A stand-in for a stage function: records what the component passed, returns ``result``."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.args, self.kwargs = args, kwargs
        return self.result


#: what a training stage returns (its best epoch's metrics and MLflow run)
TRAINED = {"best": {"val_loss": 0.25, "note": "text"}, "best_epoch": 2, "mlflow_run_id": "run-1"}
