"""The one registry pattern (ecgflow.plugins): register / register_lazy / get / names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ecgflow.errors import EcgflowError
from ecgflow.plugins import Registry


def test_register_get_and_names_in_order() -> None:
    shapes: Registry[type] = Registry("shape")

    @shapes.register("square")
    class Square:
        pass

    shapes.register("circle")(dict)
    assert shapes.get("square") is Square and shapes.get("circle") is dict
    assert shapes.names() == ("square", "circle")
    assert "square" in shapes and "triangle" not in shapes


def test_an_unknown_name_lists_the_known_ones() -> None:
    shapes: Registry[int] = Registry("shape")
    shapes.register("square")(4)
    with pytest.raises(EcgflowError, match=r"unknown shape 'hexagon'; expected one of: square"):
        shapes.get("hexagon")


def test_a_name_registers_once() -> None:
    shapes: Registry[int] = Registry("shape")
    shapes.register("square")(4)
    with pytest.raises(ValueError, match="registered twice"):
        shapes.register_lazy("square", "json:dumps")


def test_a_lazy_entry_is_imported_on_first_get_only() -> None:
    codecs: Registry[object] = Registry("codec")
    codecs.register_lazy("wave", "wave:open")
    codecs.register_lazy("module", "colorsys")
    already = "wave" in sys.modules
    assert codecs.names() == ("wave", "module")
    if not already:
        assert "wave" not in sys.modules  # registering imported nothing
    import colorsys
    import wave

    assert codecs.get("wave") is wave.open and codecs.get("module") is colorsys


def test_dataset_sources_are_one_registry() -> None:
    from ecgflow.io.sources import KINDS, SOURCES, SourceSpec, discover, header_meta

    assert SOURCES.names() == ("ptbxl", "cinc", "code15", "folder", "synthetic")
    assert KINDS == ("ptbxl", "cinc", "code15", "folder")
    assert callable(SOURCES.get("folder").discover)
    assert header_meta("cinc") is SOURCES.get("cinc").header_meta and header_meta("ptbxl") is None
    with pytest.raises(EcgflowError, match="unknown source kind 'edf'; expected one of: ptbxl"):
        discover(SourceSpec("edf", "."), staging=None)  # type: ignore[arg-type]


def test_storage_schemes_are_one_registry(tmp_path: Path) -> None:
    from ecgflow.io.storage import SCHEMES, LocalStorage, S3Storage, open_storage

    assert SCHEMES.names() == ("s3", "http", "https", "file")
    assert SCHEMES.get("s3") is S3Storage
    assert isinstance(open_storage(tmp_path.as_uri()), LocalStorage)
    with pytest.raises(EcgflowError, match="unsupported storage scheme 'ftp'"):
        open_storage("ftp://host/data")


def test_record_readers_are_one_registry(tmp_path: Path) -> None:
    import numpy as np

    from ecgflow.io.readers import READERS, RECORD_SUFFIXES, read_record

    assert READERS.names() == RECORD_SUFFIXES == (".hea", ".edf", ".csv", ".npy")
    path = tmp_path / "r1.npy"
    np.save(path, np.zeros((2, 500), dtype=np.float32))
    direct = READERS.get(".npy")(path, 500.0, ["I", "II"], None, {"units": "mV"})
    record = read_record(path, fs=500.0, leads=["I", "II"], units="mV")
    assert direct.leads == record.leads == ["I", "II"] and direct.fs == 500.0


def test_label_sets_are_one_registry() -> None:
    import pandas as pd

    from ecgflow.labels import LABEL_SETS, LABELERS, build_labels

    assert LABELERS.names()[:2] == ("ptbxl-superdiagnostic", "ptbxl-subdiagnostic")
    assert [n.split("[")[0].split(":")[0] for n in LABEL_SETS] == [*LABELERS.names(), "auto"]
    with pytest.raises(EcgflowError, match="unknown label set 'icd10'"):
        build_labels("icd10", pd.DataFrame(), Path("."))


def test_encoders_are_one_registry() -> None:
    import typing

    from ecgflow.models.encoders import ENCODERS, ResNet1d, ViT1d
    from ecgflow.params.networks import EncoderConfig

    assert ENCODERS.get("resnet1d") is ResNet1d and ENCODERS.get("vit1d") is ViT1d
    # every kind the parameters accept can be built, and no other
    kinds = typing.get_args(EncoderConfig.model_fields["kind"].annotation)
    assert ENCODERS.names() == kinds


def test_saved_model_kinds_are_one_registry(tmp_path: Path) -> None:
    from torch import nn

    from ecgflow.models.io import MODEL_KINDS, save_model

    assert MODEL_KINDS.names() == ("clip", "classifier")
    with pytest.raises(
        EcgflowError, match="unknown model kind 'gem'; expected one of clip, classifier"
    ):
        save_model(tmp_path, nn.Linear(1, 1), MODEL_KINDS.get("clip")(), "gem")
