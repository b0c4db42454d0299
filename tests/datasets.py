"""Small dataset copies that tests build in their tmp dirs from ../shared/data."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ecgflow.params.preprocess import PreprocessParams

#: GEM's preprocessing: the signal as recorded (no filters), divided by a fixed scale
GEM_PREPROCESS = PreprocessParams(baseline=False, bandpass=None, normalise="scale", workers=1)


def ptbxl_copy(shared: Path, dest: Path, ecg_ids: list[int]) -> Path:
    """A PTB-XL folder in ``dest`` holding only ``ecg_ids`` (100 Hz files + metadata)."""
    table = pd.read_csv(shared / "ptbxl" / "ptbxl_database.csv", dtype=str, keep_default_na=False)
    table = table[table["ecg_id"].astype(int).isin(ecg_ids)]
    dest.mkdir(parents=True)
    table.to_csv(dest / "ptbxl_database.csv", index=False)
    shutil.copy(shared / "ptbxl" / "scp_statements.csv", dest)
    for filename in table["filename_lr"]:
        for suffix in (".hea", ".dat"):
            target = dest / f"{filename}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shared / "ptbxl" / f"{filename}{suffix}", target)
    return dest


def tiny_classifier(root: Path, shared: Path) -> tuple[Path, Path]:
    """(classifier output, preprocess output) in ``root``: one epoch of a tiny model.

    60 PTB-XL records (superclasses) when ``shared`` holds PTB-XL, else 60 synthetic records.
    """
    if (shared / "ptbxl").is_dir():
        source, label_set = f"ptbxl:{shared / 'ptbxl'}", "ptbxl-superdiagnostic"
    else:
        source, label_set = "synthetic://?n=60&seed=2&fs=100", "synthetic"
    train_tiny_classifier(root, source, label_set, limit=60)
    return root / "clf", root / "data"


def train_tiny_classifier(
    root: Path, source: str, label_set: str, limit: int | None = None
) -> None:
    """ingest → label → split → preprocess → one epoch of a tiny classifier, all in ``root``.

    Folders: ``records``, ``labels``, ``split``, ``data``, ``clf``; MLflow in ``root/mlflow.db``.
    """
    from ecgflow.params import FinetuneParams
    from ecgflow.stages.finetune_classifier import finetune_classifier
    from ecgflow.stages.ingest import IngestParams, ingest
    from ecgflow.stages.label import LabelParams, label
    from ecgflow.stages.preprocess import PreprocessParams, preprocess
    from ecgflow.stages.split import SplitParams, split

    ingest(IngestParams(source=source, limit=limit, workers=1), root / "records")
    label(LabelParams(label_set=label_set), root / "records", root / "labels")
    split(SplitParams(ratios=(0.6, 0.2, 0.2)), root / "records", root / "labels", root / "split")
    preprocess(PreprocessParams(workers=1), root / "records", root / "split", root / "data")
    params = FinetuneParams.model_validate(
        {"pretrained": False, "encoder": {"width": 8, "depth": 1},
         "train": {"epochs": 1, "batch_size": 8}}
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        finetune_classifier(params, None, root / "data", root / "labels", root / "clf")


def wfdb_header(shared: Path, tmp_path: Path) -> Path:
    """A WFDB header: PTB-XL record 1 when ``shared`` holds it, else a synthetic record written
    as WFDB in ``tmp_path``."""
    ptbxl = shared / "ptbxl" / "records100" / "00000" / "00001_lr.hea"
    if ptbxl.is_file():
        return ptbxl
    import wfdb

    from ecgflow.io.synthetic_ecg import synthesize_record

    record = synthesize_record(3, seed=1).record
    wfdb.wrsamp(
        "synth", fs=record.fs, units=["mV"] * record.n_leads, sig_name=record.leads,
        p_signal=record.signal.T.astype(np.float64), fmt=["16"] * record.n_leads,
        write_dir=str(tmp_path),
    )  # fmt: skip
    return tmp_path / "synth.hea"


def wfdb_instance(header: Path) -> dict[str, Any]:
    """``{"wfdb": {"header": B64, "signal": B64}}`` of a record with a ``.dat`` file."""
    return {
        "wfdb": {
            "header": base64.b64encode(header.read_bytes()).decode(),
            "signal": base64.b64encode(header.with_suffix(".dat").read_bytes()).decode(),
        }
    }


def tiny_onnx_export(
    out: Path,
    labels: list[str],
    thresholds: dict[str, float],
    preprocess: dict[str, Any],
    metadata: bool = False,
) -> Path:
    """An export folder in ``out`` as the export stage writes it, around a tiny real ONNX model.

    The model is one linear layer + sigmoid over 12 leads × 100 samples (``torch.manual_seed(0)``)
    with a dynamic batch axis; the side files are preprocess.json, thresholds.json,
    label_def.json, parity.json and pytorch/config.json. ``metadata`` also writes preprocess,
    labels and thresholds into the ONNX metadata_props, as the export stage does.
    """
    import onnx
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(12 * 100, len(labels))

        def forward(self, ecg: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.linear(ecg.flatten(1)))

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    program = torch.onnx.export(
        Tiny().eval(),
        (torch.zeros(2, 12, 100),),
        input_names=["ecg"],
        output_names=["probabilities"],
        opset_version=18,
        dynamo=True,
        dynamic_shapes={"ecg": {0: torch.export.Dim("batch", min=1, max=1024)}},
    )
    program.save(str(out / "model.onnx"))
    if metadata:
        network = onnx.load(str(out / "model.onnx"))
        for key, value in {
            "preprocess": preprocess,
            "labels": labels,
            "thresholds": thresholds,
        }.items():
            entry = network.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        onnx.save(network, str(out / "model.onnx"))
    for name, content in {
        "preprocess.json": {"params": preprocess},
        "thresholds.json": {"labels": labels, "thresholds": thresholds},
        "label_def.json": {"labels": [{"name": n} for n in labels]},
        "parity.json": {"passed": True},
    }.items():
        (out / name).write_text(json.dumps(content))
    (out / "pytorch").mkdir(exist_ok=True)
    (out / "pytorch" / "config.json").write_text("{}")
    return out


def tiny_gem(folder: Path, **config_fields: Any) -> Path:
    """A small GEM folder (real SmolLM2, random towers, non-zero LoRA B) in ``folder``.

    Its ``preprocess.json`` is GEM's preprocessing (as recorded, scaled); ``config_fields``
    override :class:`~ecgflow.models.configs.GemConfig` fields (``image=True``, ...).
    """
    import torch

    from ecgflow.models.configs import EncoderConfig, GemConfig
    from ecgflow.models.gem import GemModel
    from ecgflow.models.gem_io import save_gem
    from ecgflow.models.language_model import load_language_model

    lm, tokenizer, source = load_language_model(None)
    config = GemConfig(
        encoder=EncoderConfig(width=8, depth=1), lead_width=8, tower_width=32, lora_r=4,
        **config_fields,
    )  # fmt: skip
    torch.manual_seed(0)
    model = GemModel(config, lm, tokenizer).eval()
    with torch.no_grad():
        for name, param in model.lm.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    save_gem(folder, model, source.name)
    info = {"params": GEM_PREPROCESS.model_dump(mode="json")}
    (folder / "preprocess.json").write_text(json.dumps(info))
    return folder
