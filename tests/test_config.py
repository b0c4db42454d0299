"""The pipeline config: sections are params/ models, layers deep-merge, every bad field is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgflow.config import PipelineConfig, config_problems, load_config, merge_param
from ecgflow.errors import EcgflowError
from ecgflow.params import FinetuneParams, TrainClipParams
from ecgflow.submit import PipelineInput, parse_params

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ECGFLOW_CONFIG", "ECGFLOW_IMAGE", "ECGFLOW_SOURCE", "ECGFLOW_TRAIN_IMAGE",
                 "ECGFLOW_TRAINING_RUNTIME", "ECGFLOW_TRACKING_URI", "ECGFLOW_S3_SECRET",
                 "ECGFLOW_S3_ENDPOINT_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_tuned_recipe_is_the_default_of_the_models_and_the_config() -> None:
    finetune, clip = FinetuneParams(), TrainClipParams()
    assert not finetune.pretrained and finetune.augment and finetune.crop_s == 2.5
    assert (finetune.encoder.width, finetune.encoder.depth) == (32, 3)
    assert (finetune.train.epochs, finetune.train.lr, finetune.train.ema_decay) == (30, 3e-3, 0.98)
    assert (clip.model.encoder.width, clip.model.embed_dim, clip.train.epochs) == (32, 128, 15)
    config = PipelineConfig()
    assert config.finetune == finetune and config.train_clip == clip
    assert config.label.label_set == "auto"
    assert not config.gem_preprocess.baseline and config.preprocess.baseline
    assert config.gem_promote.name == "ecg-gem" and config.promote.name == "ecg-classifier"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_is_valid(path: Path) -> None:
    assert config_problems(path) == []
    load_config(path)


def test_local_yaml_is_the_embedded_default() -> None:
    assert load_config(ROOT / "configs" / "local.yaml") == PipelineConfig()


def test_a_partial_yaml_section_changes_only_the_fields_it_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "finetune: {train: {epochs: 5}, encoder: {kind: vit1d}}\n"
        "gem_preprocess: {fs: 250}\ngem_promote: {min_delta: 0.1}\n",
    )
    config, default = load_config(path), PipelineConfig()
    expected = default.finetune.model_dump()
    expected["train"]["epochs"] = 5
    expected["encoder"]["kind"] = "vit1d"
    assert config.finetune.model_dump() == expected  # crop_s, augment, lr, ema, width... kept
    assert config.gem_preprocess.fs == 250 and not config.gem_preprocess.baseline
    assert config.gem_promote.name == "ecg-gem" and config.gem_promote.min_delta == 0.1


def test_layers_defaults_yaml_env_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "trainjob: {runtime: from-yaml, cpu: '4'}\ningest: {limit: 9}\n")
    monkeypatch.setenv("ECGFLOW_TRAINING_RUNTIME", "from-env")
    config = load_config(path, overrides={"ingest": {"limit": 3}})
    assert config.trainjob.runtime == "from-env"  # env over YAML
    assert config.trainjob.cpu == "4"  # the rest of the YAML section kept
    assert config.ingest.limit == 3  # command line over YAML
    assert config.ingest.source == PipelineConfig().ingest.source


def test_param_json_is_merged_onto_the_compiled_default() -> None:
    compiled = PipelineConfig.model_validate({"finetune": {"train": {"lr": 0.01}}})
    default = compiled.finetune.model_dump_json()
    inputs = {"finetune_params": PipelineInput("finetune_params", "STRING", default)}
    values = parse_params(['finetune_params={"train":{"epochs":5}}'], inputs)
    merged = FinetuneParams.model_validate_json(values["finetune_params"])
    assert merged.train.epochs == 5 and merged.train.lr == 0.01  # the compiled value kept
    assert merged.crop_s == 2.5 and merged.augment
    with pytest.raises(EcgflowError, match=r"finetune_params.*train\.epochs / --train-epochs"):
        merge_param("finetune_params", default, '{"train": {"epochs": 0}}')
    assert merge_param("label_set", "auto", "synthetic") == "synthetic"  # not a section


def test_every_json_input_of_the_compiled_pipelines_deep_merges() -> None:
    """Each pipeline input that carries a section as JSON is one ``--param`` deep-merges."""
    from ecgflow.config import PARAM_SECTIONS
    from ecgflow.pipelines.catalog import build_pipeline

    compiled = PipelineConfig.model_validate({"ingest": {"source": "synthetic://?n=7"}})
    for name in ("training", "training-gem"):
        spec = build_pipeline(name, compiled).pipeline_spec
        defaults = {
            key: value.default_value.string_value
            for key, value in spec.root.input_definitions.parameters.items()
        }
        json_inputs = {key for key, value in defaults.items() if value.startswith("{")}
        assert json_inputs and json_inputs <= PARAM_SECTIONS.keys(), name
    merged = merge_param("ingest_params", defaults["ingest_params"], '{"limit": 5}')
    assert json.loads(merged)["limit"] == 5
    assert json.loads(merged)["source"] == "synthetic://?n=7"  # the compiled value kept


def test_every_bad_field_is_listed_with_path_flag_value_and_rule(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "finetune:\n  train: {epochs: 0}\n  pretrained: maybe\n"
        "preprocess: {fs: -1}\nimage: 3\nnot_a_section: 1\n",
    )
    problems = config_problems(path)
    text = "\n".join(problems)
    assert len(problems) == 5, text
    assert "finetune.train.epochs / --train-epochs: " in text and "(got 0)" in text
    assert "finetune.pretrained / --pretrained: " in text and "(got 'maybe')" in text
    assert "preprocess.fs / --fs: must be a finite number > 0" in text
    assert "image: Input should be a valid string (got 3)" in text
    assert "not_a_section: Extra inputs are not permitted" in text
    with pytest.raises(EcgflowError) as raised:
        load_config(path)
    assert str(path) in str(raised.value)
    assert all(problem in str(raised.value) for problem in problems)


def test_a_stage_model_names_the_nested_path_not_just_the_leaf() -> None:
    with pytest.raises(EcgflowError) as raised:
        FinetuneParams.model_validate({"train": {"epochs": 0}, "encoder": {"width": -1}})
    message = str(raised.value)
    assert "finetune.train.epochs / --train-epochs" in message
    assert "finetune.encoder.width / --encoder-width" in message
    assert "invalid train parameters" not in message


def test_the_schema_has_every_section_and_nested_field() -> None:
    schema = json.dumps(PipelineConfig.model_json_schema())
    for name in ("finetune", "train_clip", "gem_preprocess", "ema_decay", "crop_s", "trainjob"):
        assert f'"{name}"' in schema
