"""`ecgflow serve` of a GEM folder: a real KServe server on 127.0.0.1 answering over HTTP.

The model is a small GEM (real SmolLM2 weights, random towers and adapter): these tests check
that the server answers exactly what the model answers in-process, for a real WFDB record,
through V1 predict and the OpenAI-style chat route (plain and streamed), that a model trained
with paper images reads the ECG printed by the project's renderer when a request sends none,
and that every bad request gets a 4xx naming its field while the server keeps serving.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from datasets import GEM_PREPROCESS, tiny_gem, wfdb_header, wfdb_instance
from servers import start_ecgflow_serve, stop

from ecgflow.io.wfdb_reader import read_wfdb
from ecgflow.models.gem_io import load_gem
from ecgflow.signal.transform import transform_record

pytestmark = pytest.mark.slow
NAME = "ecg-gem"
QUESTION = "Does lead V1 show any static noise on this ECG?"
DESCRIBE = "Describe the findings of this ECG."
PREPROCESS = GEM_PREPROCESS


@pytest.fixture(scope="module")
def gem_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved GEM folder with a non-trivial adapter."""
    return tiny_gem(tmp_path_factory.mktemp("gem-serving") / "gem")


@pytest.fixture(scope="module")
def server(gem_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    folder = tmp_path_factory.mktemp("gem-server")
    url, process, log_path = start_ecgflow_serve(
        str(gem_dir), folder, "--max-body-mb", "2", "--max-new-tokens", "16", timeout=180
    )
    yield url, log_path
    stop(process)


@pytest.fixture(scope="module")
def in_process(gem_dir: Path) -> Any:
    return load_gem(gem_dir)


def _signal(header: Path) -> torch.Tensor:
    x, _ = transform_record(read_wfdb(header), PREPROCESS)
    return torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32))


def test_v1_answers_a_real_record_like_the_model_in_process(server, in_process, tmp_path):
    url, log_path = server
    header = wfdb_header(SHARED_DATA, tmp_path)
    instances = [
        {"ecg": wfdb_instance(header), "question": QUESTION, "candidates": ["yes", "no"]},
        {"ecg": wfdb_instance(header), "question": "Describe the findings of this ECG.",
         "max_new_tokens": 8},
    ]  # fmt: skip
    response = httpx.post(
        f"{url}/v1/models/{NAME}:predict", json={"instances": instances}, timeout=120
    )
    assert response.status_code == 200, log_path.read_text()[-2000:]
    closed, generated = response.json()["predictions"]
    x = _signal(header)
    assert closed["answer"] == in_process.choose(x, [QUESTION], [["yes", "no"]])[0]
    want = in_process.generate(x, ["Describe the findings of this ECG."], max_new_tokens=8)[0]
    assert generated["answer"] == want
    assert generated["finish_reason"] in ("stop", "length")
    assert closed["model"] == NAME and closed["version"].startswith("sha-")


def test_an_open_question_never_gets_a_bare_yes_or_no(server, in_process, tmp_path):
    """Asked to describe, the model in-process says a bare "No"; served, it never starts so."""
    from ecgflow.serving.gem import is_open_question

    url, log_path = server
    header = wfdb_header(SHARED_DATA, tmp_path)
    tempted = "Describe the findings of this ECG in one word: yes or no?"
    assert is_open_question(tempted) and is_open_question(DESCRIBE)
    assert not is_open_question(QUESTION) and not is_open_question("is it normal?")
    assert in_process.generate(_signal(header), [tempted], None, 6)[0] == "No"
    instance = {"ecg": wfdb_instance(header), "question": tempted, "max_new_tokens": 6}
    response = httpx.post(
        f"{url}/v1/models/{NAME}:predict", json={"instances": [instance]}, timeout=120
    )
    assert response.status_code == 200, log_path.read_text()[-2000:]
    answer = response.json()["predictions"][0]["answer"]
    first = answer.split()[0].strip(".,!").lower() if answer.split() else ""
    assert answer and first not in ("yes", "no"), answer


def test_chat_completions_plain_and_streamed_agree(server, in_process, tmp_path):
    url, _ = server
    header = wfdb_header(SHARED_DATA, tmp_path)
    record = read_wfdb(header)
    ecg = {"signal": record.signal.tolist(), "fs": record.fs, "leads": record.leads}
    body = {
        "model": NAME,
        "messages": [
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": [{"type": "ecg", "ecg": ecg},
                                         {"type": "text", "text": "Describe the findings."}]},
        ],
        "max_tokens": 6,
        "temperature": 0,
    }  # fmt: skip
    plain = httpx.post(f"{url}/openai/v1/chat/completions", json=body, timeout=120)
    assert plain.status_code == 200, plain.text
    reply = plain.json()
    assert reply["object"] == "chat.completion" and reply["model"] == NAME
    text = reply["choices"][0]["message"]["content"]
    assert text == in_process.generate(_signal(header), ["Describe the findings."], None, 6)[0]
    assert reply["usage"]["completion_tokens"] <= 6
    chunks = []
    with httpx.stream(
        "POST", f"{url}/openai/v1/chat/completions", json={**body, "stream": True}, timeout=120
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                chunks.append(line.removeprefix("data: "))
    assert chunks[-1] == "[DONE]"
    events = [json.loads(c) for c in chunks[:-1]]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert streamed.strip() == text
    models = httpx.get(f"{url}/openai/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [NAME]


def test_bad_requests_get_a_4xx_naming_the_field_and_the_server_keeps_serving(server, tmp_path):
    url, _ = server
    ecg = wfdb_instance(wfdb_header(SHARED_DATA, tmp_path))
    v1 = f"{url}/v1/models/{NAME}:predict"
    chat = f"{url}/openai/v1/chat/completions"

    def message(*parts: dict[str, Any]) -> dict[str, Any]:
        return {"model": NAME, "messages": [{"role": "user", "content": list(parts)}]}

    text = {"type": "text", "text": "Is it normal?"}
    cases = [
        (v1, {"instances": [{"ecg": ecg}]}, 400, "question"),
        (v1, {"instances": [{"ecg": ecg, "question": "  "}]}, 400, "question"),
        (v1, {"instances": [{"ecg": ecg, "question": "x" * 3000}]}, 400, "at most 2000"),
        (v1, {"instances": [{"question": QUESTION}]}, 400, "instances[0].ecg"),
        (v1, {"instances": [{"ecg": {"signal": [[1.0]], "fs": 100, "leads": ["I"]},
                             "question": QUESTION}]}, 400, "too short"),
        (v1, {"instances": [{"ecg": ecg, "question": QUESTION, "max_new_tokens": 10_000}]},
         400, "max_new_tokens"),
        (v1, {"instances": [{"ecg": ecg, "question": QUESTION, "candidates": []}]},
         400, "candidates"),
        (v1, {"instances": [{"ecg": ecg, "question": QUESTION, "image": "AAAA"}]}, 400, "image"),
        (v1, {"instances": [{"ecg": ecg, "question": QUESTION, "extra": 1}]}, 400, "extra"),
        (v1, {"instances": [{"ecg": ecg, "question": QUESTION}] * 9}, 400, "at most 8"),
        (chat, message(text), 400, "ecg"),
        (chat, {**message({"type": "ecg", "ecg": ecg}, text), "model": "other"}, 404, "other"),
        (chat, {**message({"type": "ecg", "ecg": ecg}, text), "n": 2}, 400, "n"),
        (chat, message({"type": "ecg", "ecg": ecg}), 400, "text"),
        (chat, message({"type": "audio"}), 400, "type"),
        (chat, {**message({"type": "ecg", "ecg": ecg}, text), "max_tokens": 0}, 400,
         "max_tokens"),
    ]  # fmt: skip
    for target, body, status, needle in cases:
        response = httpx.post(target, json=body, timeout=60)
        assert response.status_code == status, (body, response.text)
        assert needle in response.text, (needle, response.text)
    garbage = httpx.post(chat, content=b"{not json", timeout=10)
    assert garbage.status_code == 400
    big = httpx.post(v1, content=b"[" + b"0," * (2 << 20) + b"0]", timeout=30)
    assert big.status_code == 413
    ok = httpx.post(
        v1,
        json={"instances": [{"ecg": ecg, "question": QUESTION, "candidates": ["yes", "no"]}]},
        timeout=60,
    )
    assert ok.status_code == 200 and ok.json()["predictions"][0]["answer"] in ("yes", "no")


def test_a_model_folder_without_preprocess_json_is_refused(gem_dir, tmp_path):
    from ecgflow.errors import EcgflowError
    from ecgflow.serving.gem import ECGGem

    broken = tmp_path / "broken"
    broken.mkdir()
    for item in gem_dir.iterdir():
        if item.name != "preprocess.json":
            (broken / item.name).symlink_to(item)
    with pytest.raises(EcgflowError, match=r"preprocess\.json"):
        ECGGem(NAME, str(broken)).load()


def _png(width: int, height: int) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _paper(header: Path, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A record's model input and its page as render-images prints it, read at ``width``."""
    from ecgflow.params.render import RenderParams
    from ecgflow.render.paper import render_paper
    from ecgflow.training.gem_data import load_paper_image

    x, info = transform_record(read_wfdb(header), PREPROCESS)
    scale, offset = (np.asarray(info[k])[:, None] for k in ("lead_scale_mv", "lead_offset_mv"))
    page = render_paper(
        x * scale + offset, PREPROCESS.fs, list(PREPROCESS.channels), RenderParams().dpi,
        np.asarray(info["lead_mask"], dtype=bool),
    )  # fmt: skip
    assert (np.asarray(page.convert("L")) < 128).mean() > 0.005, "the printed ECG has ink"
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    buffer.seek(0)
    signal = torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32))
    return signal, load_paper_image(buffer, width)[None]


def test_an_image_model_bounds_images_and_prints_the_ecg_when_none_is_sent(
    tmp_path: Path,
) -> None:
    """Images are bounded in pixels and shape before decoding; a request without one is
    answered from the ECG printed by the project's renderer, and an open question gets a
    generated interpretation (V1 and chat), as the model answers in-process."""
    folder = tiny_gem(tmp_path / "gem", image=True, image_size=64)
    url, process, log_path = start_ecgflow_serve(
        str(folder), tmp_path, "--max-new-tokens", "4", timeout=180
    )
    try:
        header = wfdb_header(SHARED_DATA, tmp_path)
        ecg = wfdb_instance(header)
        ask = {"ecg": ecg, "question": QUESTION, "candidates": ["yes", "no"]}
        v1 = f"{url}/v1/models/{NAME}:predict"
        before = _peak_kib(process.pid)
        strip = _png(1, 4000)  # under 200 bytes; decoded and resized to 64 px wide: 2.5 GB
        assert len(strip) < 300
        cases = [
            (strip, "instances[0].image: 1 × 4000 px, sides at most 8:1"),
            (_png(5000, 4000), "instances[0].image: 5000 × 4000 px, at most 16,000,000 pixels"),
        ]
        for image, message in cases:
            response = httpx.post(v1, json={"instances": [{**ask, "image": image}]}, timeout=60)
            assert response.status_code == 400 and message in response.text, response.text
        paper = httpx.post(v1, json={"instances": [{**ask, "image": _png(220, 170)}]}, timeout=120)
        assert paper.status_code == 200, log_path.read_text()[-2000:]
        grown = _peak_kib(process.pid) - before
        assert grown < 256 * 1024, f"peak RSS grew {grown / 1024:.0f} MiB"

        model = load_gem(folder)
        signal, image = _paper(header, 64)
        instances = [
            {"ecg": ecg, "question": DESCRIBE, "max_new_tokens": 4},
            {"ecg": ecg, "question": QUESTION, "candidates": ["yes", "no"]},
        ]
        response = httpx.post(v1, json={"instances": instances}, timeout=120)
        assert response.status_code == 200, log_path.read_text()[-2000:]
        described, closed = response.json()["predictions"]
        want = model.generate(signal, [DESCRIBE], image, 4)[0]
        assert described["answer"] == want
        assert described["answer"].strip().lower().rstrip(".") not in ("yes", "no", "")
        assert closed["answer"] == model.choose(signal, [QUESTION], [["yes", "no"]], image)[0]
        record = read_wfdb(header)
        body = {
            "model": NAME,
            "messages": [{"role": "user", "content": [
                {"type": "ecg", "ecg": {"signal": record.signal.tolist(), "fs": record.fs,
                                        "leads": record.leads}},
                {"type": "text", "text": DESCRIBE}]}],
            "max_tokens": 4,
        }  # fmt: skip
        reply = httpx.post(f"{url}/openai/v1/chat/completions", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == want
    finally:
        stop(process)


def _lead_quality() -> Any:
    """A lead-quality model fitted on synthetic records with static noise in some leads."""
    from ecgflow.io.synthetic_ecg import synthesize_record
    from ecgflow.models.lead_quality import aligned_features, fit_lead_quality

    features, targets = [], []
    for i in range(12):
        record = synthesize_record(i, seed=7, fs=100.0).record
        x = record.signal.astype(np.float64).copy()
        target = np.zeros((12, 4))
        for lead in (i % 12, (i + 5) % 12):
            x[lead] += 0.15 * np.random.default_rng([i, lead]).standard_normal(x.shape[1])
            target[lead, 0] = 1.0
        features.append(aligned_features(x, 100.0, record.leads, 100.0))
        targets.append(target)
    return fit_lead_quality(np.stack(features), np.stack(targets), 100.0)


def test_answers_carry_the_evidence_the_prompt_stated(tmp_path: Path) -> None:
    """A model trained with evidence: V1 and chat state the same evidence as in-process."""
    from ecgflow.models.gem_evidence import EvidenceReader

    folder = tiny_gem(tmp_path / "gem")
    EvidenceReader(_lead_quality()).save(folder)
    model = load_gem(folder)
    header = wfdb_header(SHARED_DATA, tmp_path)
    x = _signal(header)
    evidence = model.evidence_reader.measure(x[0].numpy(), 100.0, PREPROCESS.channels)
    lines = evidence.text()
    assert lines.startswith("Leads: I ") and "\nHeart rate " in lines
    url, process, log_path = start_ecgflow_serve(
        str(folder), tmp_path, "--max-new-tokens", "6", timeout=180
    )
    try:
        ask = {"ecg": wfdb_instance(header), "question": QUESTION, "candidates": ["yes", "no"]}
        response = httpx.post(
            f"{url}/v1/models/{NAME}:predict", json={"instances": [ask]}, timeout=120
        )
        assert response.status_code == 200, log_path.read_text()[-2000:]
        served = response.json()["predictions"][0]
        assert served["evidence"]["text"] == lines
        assert served["evidence"]["heart_rate_bpm"] == evidence.to_json()["heart_rate_bpm"]
        want = model.choose(x, [QUESTION], [["yes", "no"]], evidence=[lines])[0]
        assert served["answer"] == want
        record = read_wfdb(header)
        ecg = {"signal": record.signal.tolist(), "fs": record.fs, "leads": record.leads}
        body = {
            "model": NAME,
            "messages": [{"role": "user", "content": [{"type": "ecg", "ecg": ecg},
                                                      {"type": "text", "text": DESCRIBE}]}],
            "max_tokens": 6,
        }  # fmt: skip
        reply = httpx.post(f"{url}/openai/v1/chat/completions", json=body, timeout=120).json()
        content = reply["choices"][0]["message"]["content"]
        generated = model.generate(x, [f"<ecg>\n{lines}\n{DESCRIBE}"], None, 6)[0]
        assert content == f"{generated}\n\nMeasured on this ECG:\n{lines}"
        assert reply["evidence"]["text"] == lines
    finally:
        stop(process)
