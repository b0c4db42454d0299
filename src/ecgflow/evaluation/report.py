"""One evaluation as a page: ``report.html`` (self-contained) and a Markdown summary.

``report.html`` holds the headline numbers with their bootstrap intervals, the per-label table
and every plot embedded as a base64 PNG: no external file, script or stylesheet, so it opens
from a laptop, an MLflow artifact view or an e-mail alike. ``summary.md`` is the same headline
and table in Markdown (the KFP UI renders it).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

REPORT = "report.html"
SUMMARY = "summary.md"
HEADLINE = ("macro_auroc", "macro_auprc", "macro_f1", "fmax", "challenge_score")
COLUMNS = ("support", "auroc", "auprc", "f1", "sensitivity", "specificity", "threshold")
STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th{background:#f0f4f8}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%;border:1px solid #eee;margin:0.5em 0}"
)


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _headline(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value with its 95 % interval) for the headline metrics present."""
    ci = metrics.get("ci95") or {}
    rows = []
    for key in HEADLINE:
        if metrics.get(key) is None:
            continue
        text = _number(metrics[key])
        if key in ci:
            low, high = ci[key]
            text += f" (95 % CI {low:.3f}–{high:.3f})"
        rows.append((key, text))
    unit = metrics.get("ci_unit")
    rows.append(("records", str(metrics.get("n_records"))))
    if metrics.get("n_patients") is not None:
        rows.append(("patients", str(metrics["n_patients"])))
    if unit:
        rows.append(("intervals", f"bootstrap over {unit}s ({metrics.get('bootstrap')} draws)"))
    rows.append(("split", str(metrics.get("split"))))
    rows.append(("data hash", str(metrics.get("data_hash", ""))[:16]))
    return rows


def _label_rows(metrics: dict[str, Any]) -> list[list[str]]:
    return [
        [name, *(_number(row.get(c)) for c in COLUMNS)]
        for name, row in (metrics.get("per_label") or {}).items()
    ]


def summary_markdown(metrics: dict[str, Any]) -> str:
    """The headline and per-label table as Markdown."""
    lines = ["# Evaluation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _headline(metrics)]
    rows = _label_rows(metrics)
    if rows:
        lines += ["", "| label | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    thresholds = metrics.get("thresholds_from")
    if thresholds:
        lines += ["", f"Thresholds from {thresholds}."]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(out_dir: Path, metrics: dict[str, Any], plots: list[Path]) -> Path:
    """Write ``report.html`` and ``summary.md`` into ``out_dir``; returns the HTML path."""
    out_dir = Path(out_dir)
    title = f"Evaluation: {metrics.get('kind', 'model')} on {metrics.get('split')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _table(["metric", "value"], [list(r) for r in _headline(metrics)]),
    ]
    rows = _label_rows(metrics)
    if rows:
        parts += ["<h2>Per label</h2>", _table(["label", *COLUMNS], rows)]
        if metrics.get("thresholds_from"):
            parts.append(f"<p>Thresholds from {html.escape(metrics['thresholds_from'])}.</p>")
    for path in plots:
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            name = html.escape(path.stem)
            parts += [f"<h2>{name}</h2>", f'<img alt="{name}" src="data:image/png;base64,{data}">']
    parts.append("</body></html>")
    (out_dir / SUMMARY).write_text(summary_markdown(metrics), encoding="utf-8")
    report = out_dir / REPORT
    report.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return report
