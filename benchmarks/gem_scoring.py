"""GEM closed-set scoring: the prompt's key/value cache shared by the candidates vs one full pass
per candidate, side by side on the same questions, as a ratio.

``GemModel.candidate_scores`` runs each question's prompt once and scores every candidate
answer on its cache; before, every (question, candidate) pair ran prompt + answer
(``GemModel.answer_logprobs`` on the flattened pairs — the baseline here). Both paths score
the same batches, interleaved, and the benchmark reports the median seconds per question of
each, the ratio and the largest difference between their scores.

With ``--model GEM_DIR --data PREPROCESSED --instructions FILE.json`` it scores that file's
closed-set questions (evidence lines included) on their records' signals — e.g. a
finetune-gem output with build-instructions' ``val.json``. Without, a small GEM folder
(tests/datasets.py's ``tiny_gem``: the real SmolLM2-135M, random towers) answers synthetic
questions of the shared data's shape (~150-token evidence, yes / no / not sure).

Usage: python benchmarks/gem_scoring.py [--model DIR --data DIR --instructions FILE]
                                        [--questions 64] [--batch 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

EVIDENCE = (
    "Leads: I static 0.35; II static 0.37; III static 0.56; aVR ok; aVL ok; aVF ok; V1 ok; "
    "V2 ok; V3 ok; V4 ok; V5 ok; V6 ok\n"
    "Heart rate 64 bpm (normal rate, 60 to 100 beats per minute); RR variability 2 % "
    "(regular); QRS axis 2° (normal)\n"
    "Classifier: normal ECG likely 0.73; myocardial infarction unlikely 0.36; ST/T change "
    "unlikely 0.15; conduction disturbance unlikely 0.13; hypertrophy unlikely 0.08"
)


def real_batches(model_dir: Path, data: Path, instructions: Path, n: int, batch: int) -> Any:
    """The model and ``n`` closed-set questions of ``instructions`` in batches of ``batch``."""
    from ecgflow.models.gem_io import load_gem
    from ecgflow.training.gem_data import RecordSignals, ShardRows, read_instructions

    model = load_gem(model_dir)
    examples, _ = read_instructions(instructions, {"noise", "label", "feature", "ecgqa"})
    splits = [p.name for p in sorted(data.iterdir()) if p.is_dir()]
    signals = RecordSignals([ShardRows(data, s) for s in splits])
    present = set().union(*(set(ShardRows(data, s).record_ids) for s in splits))
    chosen = [e for e in examples if e.candidates and e.record_id in present][:n]
    batches = []
    for start in range(0, len(chosen), batch):
        part = chosen[start : start + batch]
        x = torch.stack([signals.get(e.record_id) for e in part])
        questions = [e.prompt for e in part]
        batches.append((x, questions, [list(e.candidates or ()) for e in part]))
    return model, batches


def synthetic_batches(folder: Path, n: int, batch: int) -> Any:
    """A tiny GEM and ``n`` synthetic evidence questions with three candidates each."""
    from datasets import tiny_gem

    from ecgflow.models.gem_io import load_gem

    model = load_gem(tiny_gem(folder))
    question = f"<ecg>\n{EVIDENCE}\nDoes lead V1 show any static noise on this ECG?"
    gen = torch.Generator().manual_seed(0)
    batches = []
    for start in range(0, n, batch):
        k = min(batch, n - start)
        x = torch.randn(k, 12, 1000, generator=gen)
        batches.append((x, [question] * k, [["yes", "no", "not sure"]] * k))
    return model, batches


def full_passes(model: Any, x: torch.Tensor, questions: list[str], candidates: Any) -> list:
    """The baseline: every (question, candidate) pair as one prompt + answer pass."""
    rows = [i for i, c in enumerate(candidates) for _ in c]
    flat_q = [questions[i] for i in rows]
    flat_a = [a for c in candidates for a in c]
    sums, _ = model.answer_logprobs(x, flat_q, flat_a, rows=rows)
    return sums.tolist()


def measure(model: Any, batches: list, repeats: int) -> dict[str, Any]:
    """Interleaved timings of both paths over all batches; seconds per question, medians."""
    n = sum(len(b[1]) for b in batches)
    cached_s, full_s, diff = [], [], 0.0
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            cached = [
                s for x, q, c in batches for row in model.candidate_scores(x, q, c) for s in row
            ]
            t1 = time.perf_counter()
            full = [s for x, q, c in batches for s in full_passes(model, x, q, c)]
            t2 = time.perf_counter()
            cached_s.append((t1 - t0) / n)
            full_s.append((t2 - t1) / n)
            diff = max(diff, max(abs(a - b) for a, b in zip(cached, full, strict=True)))
    cached_med, full_med = statistics.median(cached_s), statistics.median(full_s)
    return {
        "questions": n,
        "candidates": sum(len(c) for b in batches for c in b[2]),
        "cached_s_per_question": round(cached_med, 4),
        "full_s_per_question": round(full_med, 4),
        "speedup": round(full_med / cached_med, 2),
        "max_abs_score_difference": diff,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--instructions", type=Path)
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gem_scoring.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is not None:
            if args.data is None or args.instructions is None:
                parser.error("--model needs --data and --instructions")
            model, batches = real_batches(
                args.model, args.data, args.instructions, args.questions, args.batch
            )
            source = {"model": str(args.model), "instructions": str(args.instructions)}
        else:
            model, batches = synthetic_batches(Path(tmp) / "gem", args.questions, args.batch)
            source = {"model": "tiny_gem (random towers, SmolLM2-135M)", "instructions": None}
        result = source | measure(model, batches, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
