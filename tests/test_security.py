"""No credentials in what git would commit, and no patient identifiers or report text in logs.

The scan looks for the shapes real credentials have (cloud access keys, private key blocks,
provider tokens, JWTs, passwords inside URLs) in every file git tracks or would track, the chart
and the image build contexts included; tests/test_manifests.py adds the Kubernetes-specific checks
(Secrets with data, literal secret values in env). The log check runs real stages on synthetic
records with logging at DEBUG and looks for each record's patient id and report text. A test
that needs a credential-shaped fake marks its line ``# fake credential``.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.split import SplitParams, split

ROOT = Path(__file__).resolve().parents[1]
CREDENTIALS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key": re.compile(
        r"(?i)aws_secret_access_key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+]{40}\b"
    ),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@\"'<>]+:([^/\s@\"'<>]+)@"),
}
# the words and shapes documentation uses in place of a real password
PLACEHOLDER = re.compile(r"(?i)^(password|pass|passwd|secret|changeme|x+|\*+|\$\{?\w+\}?|<[^>]*>)$")
BINARY = {".parquet", ".png", ".pt", ".gguf", ".safetensors", ".onnx", ".dat", ".mat", ".edf"}


def _tracked_files() -> list[Path]:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot list what git would commit")
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def credential_findings(text: str, label: str) -> list[str]:
    """Where ``text`` holds something shaped like a credential."""
    found = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if line.rstrip().endswith("# fake credential"):  # a test's deliberate fake
            continue
        for kind, pattern in CREDENTIALS.items():
            for match in pattern.finditer(line):
                if kind == "password in a URL" and PLACEHOLDER.match(match.group(1)):
                    continue
                found.append(f"{label}:{line_no}: {kind}")
    return found


def test_no_file_git_would_commit_holds_a_credential() -> None:
    findings = []
    for path in _tracked_files():
        if path.suffix in BINARY:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        findings += credential_findings(text, str(path.relative_to(ROOT)))
    assert findings == []


@pytest.mark.parametrize(
    "text, kind",
    [
        ("key = AKIA" + "ABCDEFGHIJKLMNOP", "AWS access key id"),
        ("aws_secret_access_key=" + "a" * 40, "AWS secret key"),
        ("-----BEGIN " + "PRIVATE KEY-----", "private key"),
        ("token: ghp_" + "x" * 36, "GitHub token"),
        ("uri: postgresql://mlflow:" + "s3cr3t" + "@db:5432/mlflow", "password in a URL"),
    ],
)
def test_the_scan_finds_real_shapes(text: str, kind: str) -> None:
    assert credential_findings(text, "f") == [f"f:1: {kind}"]


def test_the_scan_leaves_placeholders_alone() -> None:
    text = "postgresql://user:password@db.example:5432/mlflow\nhttp://host:8080/path\n"
    assert credential_findings(text, "f") == []


def test_logs_name_records_never_patients_or_report_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ingest(IngestParams(source="synthetic://?n=30&seed=9&fs=100", workers=1), tmp_path / "rec")
    label(LabelParams(label_set="synthetic"), tmp_path / "rec", tmp_path / "lab")
    split(SplitParams(ratios=[0.6, 0.2, 0.2]), tmp_path / "rec", tmp_path / "lab", tmp_path / "sp")
    preprocess(PreprocessParams(workers=1), tmp_path / "rec", tmp_path / "sp", tmp_path / "pre")
    records = pd.read_parquet(tmp_path / "rec" / "records.parquet")
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert logs  # the stages did log
    patients = {str(p) for p in records["patient_id"] if str(p) not in set(records["record_id"])}
    leaked = sorted(p for p in patients if re.search(rf"\b{re.escape(p)}\b", logs))
    assert leaked == []
    reports = [str(r) for r in records["report"] if isinstance(r, str) and len(r) > 12]
    assert reports and not [r for r in reports if r in logs]
