"""Datasets in an S3 bucket (boto3), riding out endpoint restarts with retries and backoff."""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import Boto3Error, RetriesExceededError
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProxyConnectionError,
    SSLError,
)

from ecgflow import __version__
from ecgflow.errors import EcgflowError
from ecgflow.io.storage.base import (
    Storage,
    T,
    TransferError,
    clean_rel,
    redact,
    unsafe_reason,
    write_atomically,
)

log = logging.getLogger(__name__)


#: Seconds an S3 transfer keeps being retried (with backoff) while the endpoint is unreachable
#: or answers 5xx, beyond botocore's own attempts; ``ECGFLOW_S3_RETRY_S`` overrides it.
S3_RETRY_S = 120.0
#: botocore attempts per request (``standard`` retry mode) unless ``AWS_MAX_ATTEMPTS`` is set.
S3_MAX_ATTEMPTS = 5
#: the largest object one PUT may send (S3's limit for a single request)
MAX_PUT_BYTES = 5 * 1024**3


class S3Storage(Storage):
    """Objects below ``s3://bucket/prefix``, read with boto3.

    Credentials, region and endpoint come from the standard AWS configuration: environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
    ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, which botocore reads
    itself), profiles or instance roles. Retries use botocore's ``standard`` mode
    (:data:`S3_MAX_ATTEMPTS` attempts; ``AWS_MAX_ATTEMPTS`` or ``max_attempts`` sets another
    number). On top of those, a request or transfer that fails for a transient reason (endpoint
    unreachable, connection closed, a body read broken off mid-stream, 5xx) is retried with
    exponential backoff for ``retry_s`` seconds (:data:`S3_RETRY_S`, ``ECGFLOW_S3_RETRY_S``),
    long enough to ride out a server restart; then :class:`TransferError`. The object listing
    (with sizes) is cached per instance: a dataset does not change while it is being ingested.
    """

    #: Keys requested per ``ListObjectsV2`` page.
    page_size: int = 1000

    _ACCESS_CODES = frozenset(
        {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
        | {"ExpiredToken", "InvalidToken", "AllAccessDisabled", "AccountProblem"}
    )
    _MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
    _UNREACHABLE = (
        EndpointConnectionError,
        ConnectTimeoutError,
        ProxyConnectionError,
        SSLError,
        HTTPClientError,  # read timeouts, closed connections, broken streams
    )
    _BUSY_CODES = frozenset(
        {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}
    )

    def __init__(
        self,
        uri: str,
        *,
        endpoint_url: str | None = None,
        max_attempts: int | None = None,
        retry_s: float | None = None,
    ) -> None:
        parts = urlsplit(uri)
        if parts.scheme.lower() != "s3" or not parts.netloc:
            raise EcgflowError(f"not an S3 URI: {redact(uri)!r} (expected s3://bucket/prefix)")
        if "@" in parts.netloc:
            raise EcgflowError(
                f"credentials in an S3 URI are not supported ({redact(uri)}): "
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
            )
        self.uri = uri
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.retry_s = _retry_seconds() if retry_s is None else retry_s
        retries: dict[str, Any] = {"mode": "standard"}
        if max_attempts is not None:
            retries["total_max_attempts"] = max_attempts
        elif "AWS_MAX_ATTEMPTS" not in os.environ:
            retries["total_max_attempts"] = S3_MAX_ATTEMPTS
        config = Config(
            retries=retries,
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
            user_agent_extra=f"ecgflow/{__version__}",
        )
        try:
            session = boto3.session.Session()
            self.client = session.client("s3", endpoint_url=endpoint_url, config=config)
        except (BotoCoreError, ValueError) as exc:  # bad AWS_PROFILE, AWS_ENDPOINT_URL, ...
            raise EcgflowError(
                f"cannot set up an S3 client for {uri}: {redact(str(exc))} "
                "(check the AWS_* environment variables)"
            ) from exc
        self.endpoint_url = redact(self.client.meta.endpoint_url)
        self._listing: list[str] | None = None
        self._sizes: dict[str, int] = {}
        self._refused: dict[str, str] = {}

    def _key(self, rel: str) -> str:
        rel = clean_rel(rel)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _where(self) -> str:
        custom = "amazonaws.com" not in (urlsplit(self.endpoint_url).hostname or "")
        return f" (endpoint {self.endpoint_url})" if custom else ""

    def describe(self, rel: str) -> str:
        """``s3://bucket/key``, plus the endpoint when it is not AWS."""
        key = f"{self.prefix}/{rel.lstrip('/')}" if self.prefix else rel.lstrip("/")
        return f"s3://{self.bucket}/{key}{self._where()}"

    def _error(self, exc: Exception, what: str) -> EcgflowError:
        """Translate a boto3/botocore exception into a message a user can act on."""
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return EcgflowError(
                f"no usable AWS credentials to read {what}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        if isinstance(exc, (*self._UNREACHABLE, IncompleteReadError)):
            return TransferError(
                f"cannot reach the S3 endpoint {self.endpoint_url} to read {what} "
                f"({type(exc).__name__}): check AWS_ENDPOINT_URL and the network"
            )
        if isinstance(exc, RetriesExceededError):  # s3transfer gave up on a broken stream
            last = exc.last_exception
            return TransferError(
                f"transfer of {what} from the S3 endpoint {self.endpoint_url} kept breaking off "
                f"({type(last).__name__ if last is not None else 'retries exceeded'})"
            )
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return EcgflowError(
                    f"S3 bucket {self.bucket!r} does not exist{self._where()} (reading {what})"
                )
            if code in self._MISSING_CODES:
                return EcgflowError(f"not found: {what}")
            if code in self._ACCESS_CODES or status == 403:
                return EcgflowError(
                    f"access denied to {what} ({code}): check the credentials "
                    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket policy"
                )
            error = TransferError if self._busy(exc) else EcgflowError
            return error(f"S3 request for {what} failed: {code} (HTTP {status})")
        return EcgflowError(
            f"S3 request for {what} failed: {type(exc).__name__}: {redact(str(exc))}"
        )

    def _busy(self, exc: ClientError) -> bool:
        """Whether the server answered a transient error (5xx, throttling)."""
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in self._BUSY_CODES or int(status) >= 500

    def _transient(self, exc: Exception) -> bool:
        if isinstance(exc, SSLError):  # a certificate problem does not heal by waiting
            return False
        if isinstance(exc, (*self._UNREACHABLE, IncompleteReadError, RetriesExceededError)):
            return True
        return isinstance(exc, ClientError) and self._busy(exc)

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, retried with exponential backoff for :attr:`retry_s` on transient errors.

        Raises :class:`TransferError` once the time is up, :class:`EcgflowError` at once for
        anything else (missing object, access denied, ...).
        """
        deadline = time.monotonic() + self.retry_s
        delay = 0.5
        for attempt in itertools.count(1):
            try:
                return call()
            except (BotoCoreError, ClientError, Boto3Error) as exc:
                error = self._error(exc, what)
                left = deadline - time.monotonic()
                if not self._transient(exc) or left <= 0:
                    if isinstance(error, TransferError) and self.retry_s > 0:
                        error = TransferError(f"{error} (gave up after {attempt} tries)")
                    raise error from exc
                pause = min(delay * (0.5 + random.random() / 2), left)
                log.warning("S3 transfer failed, retry %d in %.1f s: %s", attempt, pause, error)
                time.sleep(pause)
                delay = min(delay * 2, 10.0)
        raise AssertionError("not reached")  # itertools.count never ends

    def exists(self, rel: str) -> bool:
        """Whether the object exists; raises on access or connection problems."""

        def head() -> bool:
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in self._MISSING_CODES:
                    return False
                raise
            return True

        return self._retrying(self.describe(rel), head)

    def read_bytes(self, rel: str) -> bytes:
        """The whole object ``rel`` (the request and the body read are retried together)."""

        def get() -> bytes:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(rel))
            return response["Body"].read()

        return self._retrying(self.describe(rel), get)

    def list_files(self) -> list[str]:
        """Every object below the prefix (paginated ``ListObjectsV2``), sorted; cached.

        A key whose part below the prefix is no safe relative path (a leading or doubled
        ``/``, a ``.`` or ``..`` segment, ...) is left out and reported by :meth:`refused`.
        """
        if self._listing is None:
            listing = self._retrying(
                f"the listing of {self.uri}{self._where()}", lambda: dict(self._list_keys())
            )
            self._sizes = listing
            self._listing = sorted(listing)
            log.info("listed %d objects below %s", len(self._listing), self.uri)
        return list(self._listing)

    def size(self, rel: str) -> int | None:
        """The object's size from the cached listing (``None`` before :meth:`list_files`)."""
        return self._sizes.get(clean_rel(rel))

    def _list_keys(self) -> Iterator[tuple[str, int]]:
        start = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=start, PaginationConfig={"PageSize": self.page_size}
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                rel = key[len(start) :]
                if not rel or (rel.endswith("/") and not int(item.get("Size", 0))):
                    continue  # "folder" marker objects
                reason = unsafe_reason(rel)
                if reason is None:
                    yield rel, int(item.get("Size", 0))
                else:
                    self._refused[rel] = f"S3 key {key!r}: {reason}"

    def download(self, rel: str, dest: Path) -> Path:
        """Stream the object to ``dest`` (multipart for big objects, via s3transfer).

        A transfer that breaks off is retried (see :meth:`_retrying`); a file whose size differs
        from the listed one counts as broken off.
        """
        key, where = self._key(rel), self.describe(rel)
        expected = self.size(rel)

        def fetch(tmp: Path) -> None:
            self.client.download_file(self.bucket, key, str(tmp))
            got = tmp.stat().st_size
            if expected is not None and got != expected:
                raise IncompleteReadError(actual_bytes=got, expected_bytes=expected)

        return self._retrying(where, lambda: write_atomically(Path(dest), fetch))

    def upload(self, source: Path, rel: str) -> tuple[int, str]:
        """Put the file ``source`` at ``rel`` with its SHA-256 and check what S3 stored.

        One PUT (S3's single-PUT limit, 5 GiB, applies) carrying ``ChecksumSHA256``, so S3
        rejects a body that arrived damaged; then a HEAD with checksums on compares size and
        checksum. Returns (size, base64 SHA-256); raises :class:`EcgflowError` on a mismatch.
        """
        size, sha256 = file_sha256(source)
        if size > MAX_PUT_BYTES:
            raise EcgflowError(f"{source} is {size} bytes, over S3's single-PUT limit")
        key, where = self._key(rel), self.describe(rel)

        def put() -> None:
            with source.open("rb") as body:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentLength=size,
                    ChecksumSHA256=sha256,
                )  # fmt: skip

        def head() -> dict[str, Any]:
            return self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")

        self._retrying(where, put)
        stored = self._retrying(where, head)
        got_size, got_sha = stored.get("ContentLength"), stored.get("ChecksumSHA256")
        if got_size != size or (got_sha is not None and got_sha != sha256):
            raise EcgflowError(
                f"{where} does not match {source} after the upload "
                f"(size {got_size} vs {size}, SHA-256 {got_sha} vs {sha256})"
            )
        return size, sha256

    def close(self) -> None:
        """Close the client's connection pool."""
        self.client.close()


def file_sha256(path: Path) -> tuple[int, str]:
    """(size, base64 SHA-256) of a file, read in chunks (S3's ``ChecksumSHA256`` form)."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, base64.b64encode(digest.digest()).decode("ascii")


def _retry_seconds() -> float:
    """:data:`S3_RETRY_S`, or the ``ECGFLOW_S3_RETRY_S`` environment variable."""
    text = os.environ.get("ECGFLOW_S3_RETRY_S", "").strip()
    if not text:
        return S3_RETRY_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise EcgflowError(f"ECGFLOW_S3_RETRY_S={text!r}: expected seconds (a number >= 0)")
    return value
