"""The command line: user errors print without a traceback; --strict exits non-zero."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from ecgflow.cli import app
from ecgflow.errors import EcgflowError

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
        [
            "label",
            "--records",
            str(tmp_path / "in"),
            "--label-set",
            "nope",
            "--out",
            str(tmp_path / "l"),
        ],
    )
    assert result.exit_code == 2 and "unknown label set" in result.output


# --- one recipe: the stage commands, the config and the pipeline share every default -----------

#: command → (its stage module and function, the pipeline-config section its step gets)
S = "ecgflow.stages"
STAGE_COMMANDS = {
    "render-images": ("ecgflow.stages.render_images", "render_images", "render"),
    "build-instructions": (f"{S}.build_instructions", "build_instructions", "instructions"),
    "train-clip": ("ecgflow.stages.train_clip", "train_clip", "train_clip"),
    "finetune-classifier": (f"{S}.finetune_classifier", "finetune_classifier", "finetune"),
    "finetune-gem": ("ecgflow.stages.finetune_gem", "finetune_gem", "finetune_gem"),
    "eval": ("ecgflow.stages.evaluate", "evaluate", "eval"),
    "eval-gem": ("ecgflow.stages.eval_gem", "eval_gem", "eval_gem"),
    "export": ("ecgflow.stages.export", "export", "export"),
}  # fmt: skip
PATH_OPTIONS = {
    "render-images": ["--data", "d", "--out", "o"],
    "build-instructions": ["--records", "r", "--labels", "l", "--splits", "s", "--out", "o"],
    "train-clip": ["--data", "d", "--records", "r", "--out", "o"],
    "finetune-classifier": ["--data", "d", "--labels", "l", "--out", "o"],
    "finetune-gem": ["--encoder", "e", "--data", "d", "--instructions", "i", "--out", "o"],
    "eval": ["--model", "m", "--data", "d", "--labels", "l", "--out", "o"],
    "eval-gem": ["--model", "m", "--data", "d", "--qa", "q", "--out", "o"],
    "export": ["--model", "m", "--out", "o"],
    "preprocess": ["--records", "r", "--split", "s", "--out", "o"],
}


def _plain(help_text: str) -> str:
    """Rich help as plain words (no box drawing, one space between words)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", help_text).split())


def _as_the_pipeline_passes(section: str) -> dict[str, object]:
    """The section's params as a compiled pipeline step gets them (JSON text, validated)."""
    from ecgflow.config import PipelineConfig

    value = getattr(PipelineConfig(), section)
    return type(value).model_validate_json(value.model_dump_json()).model_dump(mode="json")


@pytest.mark.parametrize("command", sorted(STAGE_COMMANDS))
def test_a_stage_command_without_options_runs_the_pipelines_params(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module_name, function, section = STAGE_COMMANDS[command]
    module = importlib.import_module(module_name)
    seen = []

    def capture(params: BaseModel, *args: object, **kwargs: object) -> None:
        seen.append(params)
        raise EcgflowError("captured")

    monkeypatch.setattr(module, function, capture)
    result = runner.invoke(app, [command, *PATH_OPTIONS[command]])
    assert result.exit_code == 2 and "captured" in result.output, result.output
    (params,) = seen
    assert params.model_dump(mode="json") == _as_the_pipeline_passes(section)


def test_the_data_stages_without_options_save_the_pipelines_params(tmp_path: Path) -> None:
    """ingest → label → split → preprocess with no parameter options (200 synthetic records)."""
    rec, lab, spl, pre = (tmp_path / name for name in ("rec", "lab", "spl", "pre"))
    steps = {
        "ingest": (["ingest", "--out", str(rec)], rec),
        "label": (["label", "--records", str(rec), "--out", str(lab)], lab),
        "split": (["split", "--records", str(rec), "--labels", str(lab), "--out", str(spl)], spl),
        "preprocess": (
            ["preprocess", "--records", str(rec), "--split", str(spl), "--out", str(pre)],
            pre,
        ),
    }
    for section, (args, out) in steps.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        saved = json.loads((out / "manifest.json").read_text())["params"]
        expected = _as_the_pipeline_passes(section)
        assert saved, section
        assert {k: expected[k] for k in saved} == saved, section


def test_every_field_is_an_option_with_its_default_and_help() -> None:
    from ecgflow.cli.options import leaves
    from ecgflow.params import FinetuneParams

    result = runner.invoke(app, ["finetune-classifier", "--help"])
    assert result.exit_code == 0
    text = _plain(result.output)
    for leaf in leaves(FinetuneParams):
        flag = "--" + "-".join(leaf.path).replace("_", "-")
        assert flag in text, flag
    assert "--train-ema-decay" in text and "--epochs" in text  # the trainers' short names too
    assert "start from the CLIP ECG encoder" in text and "(2.5)" in text
    assert "--params" in text


def test_options_and_params_json_layer_onto_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ecgflow.stages.finetune_classifier as stage

    seen = []

    def capture(params: BaseModel, *args: object, **kwargs: object) -> None:
        seen.append(params)
        raise EcgflowError("captured")

    monkeypatch.setattr(stage, "finetune_classifier", capture)
    spec = tmp_path / "p.yaml"
    spec.write_text("train: {lr: 0.01, epochs: 7}\ncrop_s: 3\n")
    args = ["finetune-classifier", *PATH_OPTIONS["finetune-classifier"], "--params", str(spec)]
    runner.invoke(app, [*args, "--epochs", "5", "--encoder-kind", "vit1d", "--no-augment"])
    (params,) = seen
    assert (params.train.epochs, params.train.lr, params.crop_s) == (5, 0.01, 3.0)
    assert params.encoder.kind == "vit1d" and params.encoder.width == 32 and not params.augment
    assert params.train.ema_decay == 0.98  # untouched defaults stay
    result = runner.invoke(app, [*args, "--train-epochs", "0", "--crop-s", "none"])
    assert result.exit_code == 2
    assert (
        "finetune.train.epochs / --train-epochs" in result.output and "(got '0')" in result.output
    )


def test_a_new_model_field_reaches_the_cli_help_and_the_config_schema() -> None:
    """A field added to a params model needs no other edit: option, help and schema follow."""
    import typer
    from pydantic import Field, create_model

    from ecgflow.cli.options import stage_options
    from ecgflow.config import PipelineConfig
    from ecgflow.params import FinetuneParams, json_schema
    from ecgflow.params.train import TrainConfig

    train = create_model(
        "TrainPlus",
        __base__=TrainConfig,
        label_smoothing=(float, Field(0.05, description="smooth")),
    )
    model = create_model(
        "FinetunePlus",
        __base__=FinetuneParams,
        mixup=(bool, Field(False, description="mix pairs of rows")),
        train=(train, Field(default_factory=train)),
    )
    demo = typer.Typer()

    @demo.command()
    @stage_options(model)
    def stage(params: object) -> None:
        """Demo."""

    result = CliRunner().invoke(demo, ["--help"])
    text = _plain(result.output)
    assert "--mixup" in text and "mix pairs of rows" in text
    assert "--train-label-smoothing" in text and "smooth" in text
    config = create_model(
        "ConfigPlus", __base__=PipelineConfig, finetune=(model, Field(default_factory=model))
    )
    schema = json_schema(config)
    assert schema["properties"]["finetune"]["default"]["mixup"] is False
    assert schema["properties"]["finetune"]["default"]["train"]["label_smoothing"] == 0.05


def test_validate_config_names_every_bad_field(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("finetune:\n  train: {epochs: 0}\n  crop_s: -1\nsplit: {ratios: [1, 1, 1]}\n")
    result = runner.invoke(app, ["validate-config", "--config", str(config)], terminal_width=200)
    assert result.exit_code == 2
    assert "finetune.train.epochs / --train-epochs" in result.output
    assert "finetune.crop_s / --crop-s" in result.output and "(got -1)" in result.output
    assert "split.ratios / --ratios" in result.output and "sum to 1" in result.output
    assert "3 problem(s)" in result.output
    result = runner.invoke(app, ["compile", "--config", str(config), "--out-dir", str(tmp_path)])
    assert result.exit_code == 2 and "finetune.train.epochs / --train-epochs" in result.output
    config.write_text("finetune: {train: {epochs: 5}}\n")
    result = runner.invoke(app, ["validate-config", "--config", str(config)])
    assert result.exit_code == 0 and "valid" in result.output


def test_config_schema_prints_the_real_defaults() -> None:
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["properties"]["finetune"]["default"]["train"]["epochs"] == 30
    assert schema["properties"]["label"]["default"]["label_set"] == "auto"


#: (command, a bad option (None: no option can hold the value), the same value as a params
#: mapping, how the error must name it: config path / stage option); the last of each command
#: is a cross-field check (a model validator), which blames one field
BAD_VALUES = [
    ("preprocess", ["--fs", "-5"], {"fs": -5}, "preprocess.fs / --fs"),
    (
        "preprocess",
        ["--bandpass", "40,0.5"],
        {"bandpass": [40, 0.5]},
        "preprocess.bandpass / --bandpass",
    ),
    ("finetune-classifier", None, {"pretrained": "maybe"}, "finetune.pretrained / --pretrained"),
    (
        "finetune-classifier",
        ["--lr", "-1"],
        {"train": {"lr": -1}},
        "finetune.train.lr / --train-lr",
    ),
    (
        "finetune-classifier",
        ["--encoder-kernel-size", "4"],
        {"encoder": {"kernel_size": 4}},
        "finetune.encoder.kernel_size / --encoder-kernel-size",
    ),
]
SECTION = {"preprocess": "preprocess", "finetune-classifier": "finetune"}


@pytest.mark.parametrize(("command", "option", "value", "named"), BAD_VALUES)
def test_a_bad_value_is_named_by_config_path_and_option_from_every_source(
    tmp_path: Path, command: str, option: list[str] | None, value: dict, named: str
) -> None:
    """The same bad value from an option, from --params and from a config file."""
    import yaml

    base = [command, *PATH_OPTIONS[command]]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({SECTION[command]: value}))
    runs = {
        "--params": [*base, "--params", json.dumps(value)],
        "config": ["validate-config", "--config", str(config)],
        "run --config": ["run", "--config", str(config)],
    }
    if option is not None:
        runs["option"] = [*base, *option]
    for source, args in runs.items():
        result = runner.invoke(app, args, terminal_width=200)
        assert result.exit_code == 2, (source, result.output)
        assert named in result.output, (source, result.output)
        assert "Traceback" not in result.output, source


def test_every_command_module_is_assembled_in_the_workflows_order() -> None:
    """A command added to any ecgflow.cli module reaches ``ecgflow``, listed in today's order."""
    import pkgutil

    import typer.main

    import ecgflow.cli

    assembled = {id(info) for info in app.registered_commands}
    for module_info in pkgutil.iter_modules(ecgflow.cli.__path__):
        if module_info.name == "__main__":
            continue
        module = importlib.import_module(f"ecgflow.cli.{module_info.name}")
        commands = getattr(module, "commands", None)
        if commands is not None:
            missing = [c for c in commands.registered_commands if id(c) not in assembled]
            assert missing == [], module_info.name
    listed = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert listed == [
        "version", "ingest", "label", "split", "preprocess", "build-instructions",
        "render-images", "train-clip", "finetune-classifier", "finetune-gem", "eval-gem", "eval",
        "export", "register", "promote", "serve", "deploy", "run", "validate-config", "compile",
        "submit", "services", "config",
    ]  # fmt: skip


def test_a_cross_field_check_blames_a_field_only_when_it_names_one_first() -> None:
    from pydantic import BaseModel, ValidationError, model_validator

    from ecgflow.errors import validation_problems

    class Band(BaseModel):
        low: float = 0.5
        high: float = 40.0
        message: str = ""

        @model_validator(mode="after")
        def _ordered(self) -> Band:
            if self.low >= self.high:
                raise ValueError(self.message)
            return self

    def problems(message: str) -> list[str]:
        with pytest.raises(ValidationError) as caught:
            Band(low=50, message=message)
        return validation_problems(caught.value, root="band", flags=True, model=Band)

    assert problems("high: must exceed low") == ["band.high / --high: must exceed low"]
    assert problems("low must be below high") == ["band.low / --low: low must be below high"]
    assert problems("need low < high") == ["band: need low < high"]  # no field named: the model
    assert problems("bandwidth: too small") == ["band: bandwidth: too small"]  # not a field
