"""The command line: user errors print without a traceback; --strict exits non-zero."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from ecgflow.cli import app

runner = CliRunner()


def test_ingest_synthetic_via_cli(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "--source", "synthetic://?n=6", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "6 accepted" in result.output
    assert len(pd.read_parquet(tmp_path / "records.parquet")) == 6


def test_user_error_has_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = runner.invoke(app, ["ingest", "--source", str(missing), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "error:" in result.output and str(missing) in result.output
    assert "Traceback" not in result.output


def test_strict_exit_lists_rejections(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad.hea").write_text("this is not a header\n")
    (folder / "labels.json").write_text(json.dumps([]))
    args = ["ingest", "--source", f"folder:{folder}", "--out", str(tmp_path / "o"), "--strict"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "bad.hea" in result.output and "rejected" in result.output


def test_bad_config_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("ingest:\n  limit: -4\n")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "ingest.limit" in result.output


def test_label_and_split_via_cli(tmp_path: Path) -> None:
    rec, lab, spl = tmp_path / "rec", tmp_path / "lab", tmp_path / "spl"
    assert (
        runner.invoke(app, ["ingest", "--source", "synthetic://?n=30", "--out", str(rec)]).exit_code
        == 0
    )
    result = runner.invoke(
        app, ["label", "--records", str(rec), "--label-set", "synthetic", "--out", str(lab)]
    )
    assert result.exit_code == 0, result.output
    assert "30 records with 9 labels" in result.output
    args = ["split", "--records", str(rec), "--labels", str(lab), "--out", str(spl)]
    result = runner.invoke(app, [*args, "--ratios", "0.6,0.2,0.2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(spl / "split.parquet")) == 30
    pre = tmp_path / "pre"
    args = ["preprocess", "--records", str(rec), "--split", str(spl), "--out", str(pre)]
    result = runner.invoke(app, [*args, "--fs", "250", "--window-s", "5", "--stride-s", "5"])
    assert result.exit_code == 0, result.output
    train = np.load(pre / "train" / "shard-00000.npy", mmap_mode="r")
    assert train.shape[1:] == (12, 1250)


def test_bad_option_values_are_user_errors(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", "--source", "synthetic://?n=3", "--out", str(tmp_path), "--limit", "-2"]
    )
    assert result.exit_code == 2 and "limit" in result.output and "Traceback" not in result.output
    args = [
        "split",
        "--records",
        str(tmp_path),
        "--labels",
        str(tmp_path),
        "--out",
        str(tmp_path / "s"),
    ]
    result = runner.invoke(app, [*args, "--ratios", "0.5,0.5,0.5"])
    assert result.exit_code == 2 and "sum to 1" in result.output
    result = runner.invoke(
        app,
        ["label", "--records", str(tmp_path), "--label-set", "nope", "--out", str(tmp_path / "l")],
    )
    assert result.exit_code == 2 and "unknown label set" in result.output
