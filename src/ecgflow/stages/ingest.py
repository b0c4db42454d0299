"""The ingest stage: copy a dataset's records into an artifact folder and describe them.

Output (``out_dir``)::

    raw/               the accepted records' files (and the dataset's metadata files), as found
    records.parquet    one row per accepted record (ids, fs, leads, units, hashes, report, labels)
    rejected.parquet   one row per rejected input: path and reason
    manifest.json      source, counts, params, ecgflow version, sha256 of every file

Every record the source lists is either accepted or rejected with a reason; the same source
gives byte-identical parquet files.

Names from the source are untrusted (see docs/security-ingest.md): a listed name, a ``RECORDS``
line, a file name in a header or a record id that is not a safe relative path is a rejected
record, never a path outside the source or ``raw/``. A record whose signal files are
byte-identical to an earlier record's is kept with ``duplicate_of`` naming that record, so that
the split stage keeps the two on one side. A file that cannot be fetched because the storage is down
(after the storage's retries, see :class:`~ecgflow.io.storage.TransferError`) rejects nothing:
the stage fails naming the records not fetched, and writes no manifest. Before the manifest is
written every fetched file is checked against the size the source listed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ecgflow.artifacts import RAW, RECORDS, REJECTED
from ecgflow.errors import EcgflowError, RecordError
from ecgflow.io.readers import read_record
from ecgflow.io.record import ECGRecord
from ecgflow.io.sources import Discovery, RecordRef, discover, header_meta, parse_source
from ecgflow.io.storage import (
    LocalStorage,
    Storage,
    TransferError,
    open_storage,
    unsafe_reason,
)
from ecgflow.io.storage.base import URI_SCHEME
from ecgflow.io.wfdb_reader import referenced_files
from ecgflow.manifest import (
    INCOMPLETE,
    OutputWriteError,
    cannot_write,
    redact_uri,
    sha256_file,
    write_manifest,
    writes_output,
)
from ecgflow.params.ingest import IngestParams
from ecgflow.progress import task as progress_task

log = logging.getLogger(__name__)


RECORDS_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("patient_id", pa.string()),
        ("dataset", pa.string()),
        ("path", pa.string()),
        ("files", pa.list_(pa.string())),
        ("sha256", pa.list_(pa.string())),
        ("fs", pa.float64()),
        ("n_leads", pa.int32()),
        ("n_samples", pa.int64()),
        ("duration_s", pa.float64()),
        ("leads", pa.list_(pa.string())),
        ("units", pa.list_(pa.string())),
        ("n_nonfinite", pa.int64()),
        ("age", pa.float64()),
        ("sex", pa.string()),
        ("report", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("scp_codes", pa.string()),
        ("strat_fold", pa.int32()),
        ("meta", pa.string()),
        ("duplicate_of", pa.string()),
    ]
)
REJECTED_SCHEMA = pa.schema([("path", pa.string()), ("reason", pa.string())])

#: Signal-file suffixes that belong to some header; one no header claims is reported.
_SIGNAL_SUFFIXES = (".dat", ".mat")
_INLINE_BELOW = 64  # fewer records than this are read in-process (a pool costs more)
_MAX_WORKERS = 8
_COPY_CHUNK = 1 << 20
_LISTED = 10  # missing records named in an error message


@dataclass
class IngestResult:
    """What an ingest run produced."""

    out_dir: Path
    dataset: str
    accepted: int
    rejected: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seen(self) -> int:
        """Inputs seen: always ``accepted + rejected``."""
        return self.accepted + len(self.rejected)

    @property
    def metrics(self) -> dict[str, float]:
        """Counts for KFP / MLflow metrics."""
        return {"seen": self.seen, "accepted": self.accepted, "rejected": len(self.rejected)}


@dataclass
class _Outcome:
    key: str
    row: dict[str, Any] | None = None
    reason: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # raw/-relative path → sha256
    unfetched: str | None = None  # the storage failed (TransferError): the stage fails


def _source_folder(arguments: dict[str, Any]) -> list[Path]:
    """The local folder ``--source`` names, if any: an input the output must stay clear of."""
    spec = parse_source(arguments["params"].source)
    scheme = URI_SCHEME.match(spec.location)
    if spec.kind == "synthetic" or (scheme and scheme.group(1).lower() != "file"):
        return []
    storage = open_storage(spec.location)  # refuses a folder that does not exist
    return [storage.root] if isinstance(storage, LocalStorage) else []


@writes_output("ingest", inputs=_source_folder, complete_inputs=False)
def ingest(
    params: IngestParams,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Ingest ``params.source`` into ``out_dir`` (see the module docstring for the layout).

    ``progress(done, total)`` is called as records finish. Raises :class:`EcgflowError` for a
    bad source, :class:`TransferError` (before any manifest) when files could not be fetched, and
    — after writing every output — for rejections when ``params.strict``.
    """
    spec = parse_source(params.source)
    out_dir = Path(out_dir)
    raw_dir = out_dir / RAW
    if raw_dir.exists():
        shutil.rmtree(raw_dir)  # a re-run must not keep files of an earlier source
    raw_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="ecgflow-ingest-") as staging:
        found = discover(spec, Path(staging))
        refs = found.refs[: params.limit] if params.limit is not None else found.refs
        log.info("ingest %s: %d %s records", redact_uri(params.source), len(refs), found.dataset)
        outcomes = list(_process_all(found, refs, raw_dir, params.workers, progress))
        _fail_on_unfetched(found, outcomes, out_dir)
        _reject_duplicate_ids(outcomes)
        if params.limit is None:
            outcomes += _orphan_signal_files(found, outcomes)
            outcomes += _refused_names(found, outcomes)
        _mark_duplicate_signals(outcomes)
        _remove_rejected_files(raw_dir, outcomes)
        for name in found.metadata_files:
            _copy_and_hash(found.storage, name, raw_dir)
        _verify_fetched(found, outcomes, raw_dir)
    result = _write_outputs(out_dir, found.dataset, outcomes, params)
    log.info("ingest: %d accepted, %d rejected", result.accepted, len(result.rejected))
    if params.strict and result.rejected:
        listing = "\n".join(f"  {path}: {reason}" for path, reason in result.rejected)
        raise EcgflowError(f"--strict: {len(result.rejected)} input(s) rejected:\n{listing}")
    return result


# --- reading records -------------------------------------------------------------------------

_worker_state: dict[str, Any] = {}


def _process_all(
    found: Discovery,
    refs: list[RecordRef],
    raw_dir: Path,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> Iterator[_Outcome]:
    workers = workers or min(os.cpu_count() or 1, _MAX_WORKERS)
    if workers == 1 or len(refs) < _INLINE_BELOW:
        _init_worker(found.storage, raw_dir, found.dataset)
        outcomes: Iterable[_Outcome] = map(_process_ref, refs)
        yield from _report(outcomes, len(refs), progress)
        return
    chunk = max(1, min(32, len(refs) // (workers * 4)))
    with ProcessPoolExecutor(
        max_workers=workers,
        initializer=_init_worker,
        initargs=(found.storage.uri, raw_dir, found.dataset),
    ) as pool:
        yield from _report(pool.map(_process_ref, refs, chunksize=chunk), len(refs), progress)


def _report(
    outcomes: Iterable[_Outcome], total: int, progress: Callable[[int, int], None] | None
) -> Iterator[_Outcome]:
    with progress_task("ingest records", total) as bar:
        for done, outcome in enumerate(outcomes, start=1):
            if progress is not None:
                progress(done, total)
            bar.update(done=done)
            yield outcome


def _init_worker(storage: Storage | str, raw_dir: Path, dataset: str) -> None:
    """Set up a reader process: each process opens its own storage client."""
    _worker_state["storage"] = open_storage(storage) if isinstance(storage, str) else storage
    _worker_state["raw_dir"] = raw_dir
    _worker_state["dataset"] = dataset
    _worker_state["down"] = None  # set by the first TransferError: the rest are not tried


def _process_ref(ref: RecordRef) -> _Outcome:
    """Fetch, read and describe one record; any failure becomes a rejection with its reason."""
    storage: Storage = _worker_state["storage"]
    raw_dir: Path = _worker_state["raw_dir"]
    outcome = _Outcome(ref.key)
    if ref.error:
        outcome.reason = ref.error
        return outcome
    if (unsafe := unsafe_reason(ref.key)) is not None:
        outcome.reason = f"{ref.key!r}: not a file below the source root ({unsafe})"
        return outcome
    if _worker_state["down"]:
        outcome.unfetched = f"not tried: {_worker_state['down']}"
        return outcome
    try:
        _fetch(storage, ref.key, raw_dir, outcome.files)
        record = read_record(raw_dir / ref.key, **ref.read_options)
        row = _row(ref, record, _worker_state["dataset"], outcome.files)
        if (unsafe := unsafe_reason(row["record_id"])) is not None:
            raise RecordError(f"{ref.key}: record id {row['record_id']!r} is unsafe ({unsafe})")
        outcome.row = row
    except TransferError as exc:  # the storage, not the record: never a rejection
        _worker_state["down"] = outcome.unfetched = str(exc)
    except OutputWriteError:  # our own folder: the stage fails
        raise
    except EcgflowError as exc:
        outcome.reason = str(exc).replace(f"{raw_dir}{os.sep}", "")
    except Exception as exc:  # bad input must never crash the stage: reject it instead
        outcome.reason = f"{ref.key}: unreadable ({type(exc).__name__}: {exc})"
    return outcome


def _dest(raw_dir: Path, rel: str) -> Path:
    """Where the file ``rel`` goes below ``raw_dir``; :class:`RecordError` for an unsafe name.

    Every write and delete of the stage below ``raw/`` goes through here: a name that is no
    canonical relative path, or whose (lexically normalised) path leaves ``raw_dir``, is refused.
    """
    if (unsafe := unsafe_reason(rel)) is not None:
        raise RecordError(f"{rel!r}: not a file below the source root ({unsafe})")
    dest = raw_dir / rel
    if not Path(os.path.normpath(dest)).is_relative_to(raw_dir):
        raise RecordError(f"{rel!r}: resolves outside {raw_dir}")
    return dest


def _copy_and_hash(storage: Storage, rel: str, raw_dir: Path) -> str:
    """Copy ``rel`` to ``raw_dir / rel`` and return its SHA-256, reading a local file only once.

    A failure to write (disk full, file too large) raises :class:`OutputWriteError`: that is no
    fault of the record. A name that clashes with a folder or file another name created is.
    """
    dest = _dest(raw_dir, rel)
    folders = [p for p in dest.parents if p != raw_dir and p.is_relative_to(raw_dir)]
    clash = dest if dest.is_dir() else next((p for p in folders if p.is_file()), None)
    if clash is not None:
        raise RecordError(f"{rel}: clashes with {clash.relative_to(raw_dir)} of another record")
    src = storage.local_path(rel)
    if src is None:
        try:
            storage.download(rel, dest)
        except OSError as exc:
            raise cannot_write(dest, exc) from exc
        return sha256_file(dest)
    digest = hashlib.sha256()
    try:
        reader = src.open("rb")
    except FileNotFoundError:
        raise EcgflowError(f"file not found: {src}") from None
    except OSError as exc:
        raise EcgflowError(f"cannot copy {src}: {exc.strerror or exc}") from None
    with reader:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as writer:
                while chunk := reader.read(_COPY_CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
        except OSError as exc:
            dest.unlink(missing_ok=True)
            raise cannot_write(dest, exc) from exc
    return digest.hexdigest()


def _fetch(
    storage: Storage, key: str, raw_dir: Path, fetched: dict[str, str], depth: int = 0
) -> None:
    """Copy ``key`` and, for a WFDB header, every file it references into ``raw_dir``."""
    try:
        fetched[key] = _copy_and_hash(storage, key, raw_dir)
    except (TransferError, OutputWriteError, RecordError):
        raise
    except EcgflowError as exc:
        what = "header" if key.endswith(".hea") and depth == 0 else "file"
        raise RecordError(f"{key}: {what} not found or unreadable ({exc})") from exc
    if not key.endswith(".hea") or depth > 1:
        return
    folder, _, name = key.rpartition("/")
    try:
        text = (raw_dir / key).read_text(encoding="latin-1")
        names = referenced_files(text, name[: -len(".hea")])
    except Exception:  # a garbage header: the reader names the problem
        return
    for ref_name in names:
        rel = f"{folder}/{ref_name}" if folder else ref_name
        if (unsafe := unsafe_reason(ref_name)) is not None:
            raise RecordError(
                f"{key}: refers to {ref_name!r}, not a file below its folder ({unsafe})"
            )
        if rel in fetched:
            continue
        if ref_name.endswith(".hea"):
            _fetch(storage, rel, raw_dir, fetched, depth + 1)
            continue
        try:
            fetched[rel] = _copy_and_hash(storage, rel, raw_dir)
        except (TransferError, OutputWriteError, RecordError):
            raise
        except EcgflowError as exc:
            detail = "" if "not found" in str(exc) else f" ({exc})"
            raise RecordError(f"{key}: signal file {ref_name} is missing{detail}") from None


def _row(ref: RecordRef, record: ECGRecord, dataset: str, files: dict[str, str]) -> dict[str, Any]:
    """One records.parquet row from the source's reference and the record read from disk."""
    read_meta = header_meta(dataset)
    meta: dict[str, Any] = {}
    if read_meta is not None:
        meta.update(read_meta(list(record.metadata.get("comments", []))))
    meta.update(ref.meta)
    record_id = ref.record_id or meta.pop("record_id", None) or record.record_id
    patient_id = ref.patient_id or meta.pop("patient_id", None)
    meta.pop("record_id", None)
    meta.pop("patient_id", None)
    extra = {k: v for k, v in meta.items() if k not in RECORDS_SCHEMA.names}
    return {
        "record_id": str(record_id),
        "patient_id": patient_id,
        "dataset": dataset,
        "path": ref.key,
        "files": list(files),
        "sha256": list(files.values()),
        "fs": float(record.fs),
        "n_leads": record.n_leads,
        "n_samples": record.n_samples,
        "duration_s": record.duration_s,
        "leads": list(record.leads),
        "units": list(record.units),
        "n_nonfinite": record.n_nonfinite,
        "age": meta.get("age"),
        "sex": meta.get("sex"),
        "report": meta.get("report"),
        "labels": list(meta.get("labels") or []),
        "scp_codes": meta.get("scp_codes"),
        "strat_fold": meta.get("strat_fold"),
        "meta": json.dumps({**record.metadata, **extra}, sort_keys=True, default=str),
        "duplicate_of": None,
    }


# --- bookkeeping -------------------------------------------------------------------------------


def _fail_on_unfetched(found: Discovery, outcomes: list[_Outcome], out_dir: Path) -> None:
    """Raise :class:`TransferError` naming the records the storage failed to deliver."""
    unfetched = [o for o in outcomes if o.unfetched]
    if not unfetched:
        return
    tried = [o.unfetched for o in unfetched if not str(o.unfetched).startswith("not tried")]
    first = tried[0] if tried else unfetched[0].unfetched
    names = ", ".join(o.key for o in unfetched[:_LISTED])
    more = f" (+{len(unfetched) - _LISTED} more)" if len(unfetched) > _LISTED else ""
    raise TransferError(
        f"ingest: {len(unfetched)} of {len(outcomes)} records could not be fetched from "
        f"{redact_uri(found.storage.uri)}: {first}. Missing: {names}{more}. No manifest was "
        f"written; {out_dir} is marked {INCOMPLETE}: re-run the ingest when the storage is back"
    )


def _verify_fetched(found: Discovery, outcomes: list[_Outcome], raw_dir: Path) -> None:
    """Every file the outputs will name is in ``raw_dir`` with the size the source listed."""
    expected = [f for o in outcomes if o.row is not None for f in o.files]
    expected += found.metadata_files
    problems = []
    for rel in expected:
        path = raw_dir / rel
        size = found.storage.size(rel)
        if not path.is_file():
            problems.append(f"{rel} (not in {raw_dir})")
        elif size is not None and path.stat().st_size != size:
            problems.append(f"{rel} ({path.stat().st_size} bytes, the source has {size})")
    if problems:
        listing = ", ".join(problems[:_LISTED])
        more = f" (+{len(problems) - _LISTED} more)" if len(problems) > _LISTED else ""
        raise TransferError(
            f"{len(problems)} fetched file(s) do not match {redact_uri(found.storage.uri)}: "
            f"{listing}{more}; no manifest was written"
        )


def _reject_duplicate_ids(outcomes: list[_Outcome]) -> None:
    """Keep the first record of each id; later ones are rejected, naming the first."""
    first: dict[str, str] = {}
    for outcome in outcomes:
        if outcome.row is None:
            continue
        record_id = outcome.row["record_id"]
        if record_id in first:
            outcome.reason = f"duplicate record_id {record_id!r} (first seen at {first[record_id]})"
            outcome.row = None
        else:
            first[record_id] = outcome.key


def _orphan_signal_files(found: Discovery, outcomes: list[_Outcome]) -> list[_Outcome]:
    """Signal files in a listed folder that no header claims (a header gone missing)."""
    if found.dataset == "ptbxl":  # the database CSV, not the folder, lists PTB-XL's records
        return []
    claimed = {f for outcome in outcomes for f in outcome.files}
    claimed |= {outcome.key for outcome in outcomes}
    orphans = [
        f for f in found.storage.list_files() if f.endswith(_SIGNAL_SUFFIXES) and f not in claimed
    ]
    return [_Outcome(f, reason=f"{f}: signal file with no header referencing it") for f in orphans]


def _refused_names(found: Discovery, outcomes: list[_Outcome]) -> list[_Outcome]:
    """Names the storage's listing left out (unsafe, outside the root, a symlink), as rejections."""
    known = {outcome.key for outcome in outcomes}
    refused = found.storage.refused()
    return [
        _Outcome(name, reason=why) for name, why in sorted(refused.items()) if name not in known
    ]


def _signal_digest(files: dict[str, str]) -> tuple[str, ...]:
    """The record's signal content: sha256 of its files other than headers, sorted."""
    return tuple(sorted(digest for rel, digest in files.items() if not rel.endswith(".hea")))


def _mark_duplicate_signals(outcomes: list[_Outcome]) -> None:
    """Set ``duplicate_of`` of a record whose signal bytes equal an earlier record's."""
    first: dict[tuple[str, ...], str] = {}
    for outcome in outcomes:
        if outcome.row is None or not (digest := _signal_digest(outcome.files)):
            continue
        original = first.setdefault(digest, outcome.row["record_id"])
        if original != outcome.row["record_id"]:
            outcome.row["duplicate_of"] = original
            log.warning("ingest: %s has the same signal bytes as %s", outcome.key, original)


def _remove_rejected_files(raw_dir: Path, outcomes: list[_Outcome]) -> None:
    """raw/ holds accepted records only: drop files fetched for rejected ones."""
    keep = {f for outcome in outcomes if outcome.row is not None for f in outcome.files}
    for outcome in outcomes:
        for rel in outcome.files:
            if outcome.row is None and rel not in keep:
                _dest(raw_dir, rel).unlink(missing_ok=True)


def _write_outputs(
    out_dir: Path, dataset: str, outcomes: list[_Outcome], params: IngestParams
) -> IngestResult:
    rows = [o.row for o in outcomes if o.row is not None]
    rejected = [(o.key, o.reason or "rejected") for o in outcomes if o.row is None]
    records = pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA)
    pq.write_table(records, out_dir / RECORDS)
    rejected_table = pa.Table.from_pylist(
        [{"path": p, "reason": r} for p, r in rejected], schema=REJECTED_SCHEMA
    )
    pq.write_table(rejected_table, out_dir / REJECTED)
    result = IngestResult(out_dir, dataset, len(rows), rejected)
    known = {f"{RAW}/{rel}": digest for o in outcomes if o.row for rel, digest in o.files.items()}
    write_manifest(
        out_dir,
        known_hashes=known,
        stage="ingest",
        source=redact_uri(params.source),
        dataset=dataset,
        params=params.model_dump(mode="json", exclude={"source"}),
        counts=result.metrics,
    )
    return result
