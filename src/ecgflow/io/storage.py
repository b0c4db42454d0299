"""One read-only interface over datasets in local folders, S3 buckets and HTTP(S) mirrors.

:func:`open_storage` turns what the user passed (``PATH``, ``file://PATH``, ``s3://bucket/prefix``
or ``http(s)://host/path/``) into a :class:`Storage`; the ingest stage then detects the layout and
fetches records through it without caring where the files live. Paths given to a storage are
*relative* POSIX paths below its root (``records100/00000/00001_lr.hea``).

Credentials never appear in :attr:`Storage.uri`, :meth:`Storage.describe`, log lines or
exception messages: S3 takes them from the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, profiles), HTTP from ``user:password@`` in the
URL (stripped from :attr:`~Storage.uri` at once) or from ``~/.netrc``.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit, urlunsplit

import boto3
import requests
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
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ecgflow import __version__
from ecgflow.errors import EcgflowError

log = logging.getLogger(__name__)

#: Name of the PhysioNet record list (one record name, or ``subdir/``, per line).
RECORDS_FILE = "RECORDS"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_USERINFO = re.compile(r"(://)[^/?#@\s]*@")
_CHUNK = 1 << 20
T = TypeVar("T")

#: Seconds an S3 transfer keeps being retried (with backoff) while the endpoint is unreachable
#: or answers 5xx, beyond botocore's own attempts; ``ECGFLOW_S3_RETRY_S`` overrides it.
S3_RETRY_S = 120.0
#: botocore attempts per request (``standard`` retry mode) unless ``AWS_MAX_ATTEMPTS`` is set.
S3_MAX_ATTEMPTS = 5


class TransferError(EcgflowError):
    """A file could not be fetched for a reason that is not the file's own.

    The endpoint was unreachable, a transfer broke off or the server answered 5xx, after every
    retry. Ingest fails the stage for it (naming what is missing) instead of rejecting a record.
    """


def redact(text: str) -> str:
    """Remove any ``user:password@`` part of the URLs in ``text``."""
    return _USERINFO.sub(r"\1", text)


def clean_rel(rel: str) -> str:
    """Normalise a relative path (``./a//b`` → ``a/b``); reject empty paths and ``..``."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise EcgflowError(
            f"invalid relative path {rel!r}: expected a file below the storage root, without '..'"
        )
    return "/".join(parts)


def _write_atomically(dest: Path, write: Callable[[Path], object]) -> Path:
    """Create ``dest`` (and its parents) by ``write``-ing a temporary file next to it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


class Storage(ABC):
    """A read-only tree of files addressed by relative POSIX paths.

    Attributes:
        uri: what the user passed to open the storage, without credentials.

    """

    uri: str

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether the file ``rel`` exists (directories do not count)."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The whole content of ``rel``; meant for small files (headers, CSVs).

        Raises :class:`EcgflowError` naming the full location when it is missing or unreadable.
        """

    def read_text(self, rel: str, encoding: str = "utf-8") -> str:
        """The content of ``rel`` decoded as ``encoding``; see :meth:`read_bytes`."""
        data = self.read_bytes(rel)
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise EcgflowError(
                f"{self.describe(rel)}: not valid {encoding} text (byte {exc.start})"
            ) from exc

    @abstractmethod
    def list_files(self) -> list[str]:
        """Every file below the root as sorted relative POSIX paths."""

    @abstractmethod
    def download(self, rel: str, dest: Path) -> Path:
        """Copy ``rel`` to ``dest`` (streaming, creating parent folders) and return ``dest``."""

    def local_path(self, rel: str) -> Path | None:
        """A path on disk for ``rel`` when the storage is local, else ``None``."""
        return None

    def size(self, rel: str) -> int | None:
        """The size of ``rel`` in bytes when known without a request (else ``None``)."""
        return None

    @abstractmethod
    def describe(self, rel: str) -> str:
        """Full human-readable location of ``rel`` for messages; never contains secrets."""

    def close(self) -> None:  # noqa: B027 - an optional hook: local storage holds nothing
        """Release network connections (a no-op for local storage)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalStorage(Storage):
    """A folder on the local file system."""

    def __init__(self, root: str | os.PathLike[str], uri: str | None = None) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            raise EcgflowError(f"dataset folder {path} {what}")
        self.root = path.resolve()
        self.uri = uri if uri is not None else os.fspath(root)

    def _path(self, rel: str) -> Path:
        return self.root / clean_rel(rel)

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` is a file below the root."""
        return self._path(rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        """The content of ``rel``; :class:`EcgflowError` with the full path when unreadable."""
        path = self._path(rel)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise EcgflowError(f"file not found: {path}") from exc
        except OSError as exc:
            raise EcgflowError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def list_files(self) -> list[str]:
        """Every file below the root (following symlinked folders), sorted."""
        files: list[str] = []
        for folder, _dirs, names in os.walk(self.root, followlinks=True):
            base = Path(folder).relative_to(self.root)
            files.extend((base / name).as_posix() for name in names)
        return sorted(files)

    def download(self, rel: str, dest: Path) -> Path:
        """Copy ``rel`` to ``dest``; a no-op when ``dest`` already is that file."""
        src = self._path(rel)
        dest = Path(dest)
        if not src.is_file():
            raise EcgflowError(f"file not found: {src}")
        if dest.exists() and dest.resolve() == src.resolve():
            return dest
        try:
            return _write_atomically(dest, lambda tmp: shutil.copyfile(src, tmp))
        except OSError as exc:
            raise EcgflowError(f"cannot copy {src} to {dest}: {exc.strerror or exc}") from exc

    def local_path(self, rel: str) -> Path:
        """The absolute path of ``rel`` on disk (whether or not it exists)."""
        return self._path(rel)

    def size(self, rel: str) -> int | None:
        """The size of the file ``rel``, or ``None`` when it is not there."""
        try:
            return self._path(rel).stat().st_size
        except OSError:
            return None

    def describe(self, rel: str) -> str:
        """The absolute path of ``rel``."""
        return str(self.root / rel.lstrip("/"))


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
        """Every object below the prefix (paginated ``ListObjectsV2``), sorted; cached."""
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
                rel = item["Key"][len(start) :]
                if rel and not rel.endswith("/"):  # skip "folder" marker objects
                    yield rel, int(item.get("Size", 0))

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

        return self._retrying(where, lambda: _write_atomically(Path(dest), fetch))

    def close(self) -> None:
        """Close the client's connection pool."""
        self.client.close()


class _LinkParser(HTMLParser):
    """Collects the ``href`` of every ``<a>`` tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.extend(value for name, value in attrs if name == "href" and value)


class HTTPStorage(Storage):
    """Files below an HTTP(S) base URL, such as a PhysioNet ``/files/`` mirror.

    HTTP has no listing API, so :meth:`list_files` uses, in order: the PhysioNet ``RECORDS``
    file (record names → ``NAME.hea``; a ``subdir/`` line refers to ``subdir/RECORDS``) plus
    the files of the top-level HTML index if there is one; else a crawl of the HTML directory
    index (Python's ``http.server``, nginx ``autoindex``, Apache, PhysioNet). Listings are
    cached per instance. Requests are retried by urllib3 (connection errors, 429, 5xx).
    """

    _RETRY_STATUS = (429, 500, 502, 503, 504)

    def __init__(
        self,
        uri: str,
        *,
        retries: int = 5,
        backoff_factor: float = 0.5,
        timeout: float | tuple[float, float] = (10.0, 60.0),
    ) -> None:
        parts = urlsplit(uri)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise EcgflowError(f"not an HTTP(S) URL: {redact(uri)!r}")
        if parts.query or parts.fragment:
            raise EcgflowError(f"{redact(uri)}: a mirror URL cannot have a query or fragment")
        netloc = parts.netloc.rpartition("@")[2]
        path = parts.path if parts.path.endswith("/") else f"{parts.path}/"
        self.uri = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self.base_url = urlunsplit((parts.scheme, netloc, path, "", ""))
        self.timeout = timeout
        self.session = requests.Session()
        if parts.username is not None:
            self.session.auth = (unquote(parts.username), unquote(parts.password or ""))
        self.session.headers["User-Agent"] = f"ecgflow/{__version__}"
        retry = Retry(
            total=retries,
            backoff_factor=backoff_factor,
            status_forcelist=self._RETRY_STATUS,
            allowed_methods=frozenset({"GET", "HEAD"}),
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._listing: list[str] | None = None

    def url(self, rel: str) -> str:
        """The absolute URL of ``rel``."""
        return self.base_url + quote(clean_rel(rel), safe="/")

    def describe(self, rel: str) -> str:
        """The absolute URL of ``rel``."""
        return self.base_url + quote(rel.lstrip("/"), safe="/")

    def _request(self, method: str, url: str, *, stream: bool = False) -> requests.Response:
        try:
            return self.session.request(method, url, stream=stream, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransferError(f"cannot reach {url} ({type(exc).__name__})") from exc

    @staticmethod
    def _check(response: requests.Response, url: str) -> None:
        status = response.status_code
        if status < 400:
            return
        response.close()
        if status in (404, 410):
            raise EcgflowError(f"not found: {url} (HTTP {status})")
        if status in (401, 403):
            raise EcgflowError(
                f"access denied to {url} (HTTP {status}): the mirror needs credentials "
                "(http(s)://USER:PASSWORD@host/... or ~/.netrc)"
            )
        error = TransferError if status >= 500 or status == 429 else EcgflowError
        raise error(f"HTTP {status} {response.reason} for {url}")

    def exists(self, rel: str) -> bool:
        """``HEAD`` the file (``GET`` where ``HEAD`` is refused); ``False`` for 404/410."""
        url = self.url(rel)
        response = self._request("HEAD", url)
        response.close()
        if response.status_code in (405, 501):
            response = self._request("GET", url, stream=True)
            response.close()
        if response.status_code in (404, 410):
            return False
        self._check(response, url)
        # http.server and nginx redirect a folder to "folder/": that is not a file
        return not response.url.endswith("/")

    def read_bytes(self, rel: str) -> bytes:
        """``GET`` the whole file."""
        url = self.url(rel)
        response = self._request("GET", url)
        self._check(response, url)
        return response.content

    def download(self, rel: str, dest: Path) -> Path:
        """Stream the file to ``dest`` in 1 MiB chunks."""
        url = self.url(rel)

        def write(tmp: Path) -> None:
            with self._request("GET", url, stream=True) as response:
                self._check(response, url)
                with tmp.open("wb") as out:
                    for chunk in response.iter_content(_CHUNK):
                        out.write(chunk)

        try:
            return _write_atomically(Path(dest), write)
        except requests.RequestException as exc:
            raise TransferError(f"download of {url} failed ({type(exc).__name__})") from exc

    def list_files(self) -> list[str]:
        """Files named by ``RECORDS`` (+ top-level index) or found by crawling the index."""
        if self._listing is None:
            self._listing = sorted(self._discover())
        return list(self._listing)

    def _discover(self) -> set[str]:
        if self.exists(RECORDS_FILE):
            files = set(self._records_files(""))
            top = self._read_index(self.base_url)
            if top is not None:
                files.update(top[1])
            log.info("%s: %d files from %s", self.base_url, len(files), RECORDS_FILE)
            return files
        files = self._crawl()
        if files is None:
            raise EcgflowError(
                f"cannot list {self.base_url}: the mirror has neither a {RECORDS_FILE} file nor "
                "an HTML directory index. Add a RECORDS file (one record name per line, as on "
                "PhysioNet) or enable directory listing (e.g. nginx 'autoindex on')"
            )
        log.info("%s: %d files from the directory index", self.base_url, len(files))
        return files

    def _records_files(self, folder: str) -> Iterator[str]:
        """``folder/RECORDS`` and the header of every record it names, recursively."""
        records = f"{folder}{RECORDS_FILE}"
        yield records
        for line in self.read_text(records).splitlines():
            name = line.strip()
            if not name or name.startswith("#"):
                continue
            if name.endswith("/"):  # a multi-level database: the folder has its own RECORDS
                yield from self._records_files(clean_rel(folder + name) + "/")
            else:
                yield clean_rel(folder + name) + ".hea"

    def _crawl(self) -> set[str] | None:
        """Every file reachable through directory-index pages below the base URL."""
        files: set[str] = set()
        pending, seen = [self.base_url], {self.base_url}
        while pending:
            page = pending.pop()
            index = self._read_index(page)
            if index is None:
                if page == self.base_url:
                    return None
                log.warning("no directory index at %s; its files are not listed", page)
                continue
            folders, page_files = index
            files.update(page_files)
            for folder in sorted(folders - seen):
                seen.add(folder)
                pending.append(folder)
        return files

    def _read_index(self, page: str) -> tuple[set[str], set[str]] | None:
        """(sub-folder URLs, relative file paths) linked from an HTML index page, or ``None``."""
        response = self._request("GET", page)
        if response.status_code >= 400 or "html" not in response.headers.get("Content-Type", ""):
            return None
        parser = _LinkParser()
        parser.feed(response.text)
        folders: set[str] = set()
        files: set[str] = set()
        for href in parser.links:
            target = urldefrag(urljoin(page, href)).url
            if "?" in target or not target.startswith(self.base_url) or target == page:
                continue  # sort links, downloads, parents, other sites
            rel = unquote(target[len(self.base_url) :])
            if not rel or ".." in rel.split("/"):
                continue
            if rel.endswith("/"):
                folders.add(target)
            else:
                files.add(rel)
        return folders, files

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


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


def _file_uri_path(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise EcgflowError(f"{uri}: a file:// URI must name a local path (file:///path)")
    return unquote(parts.path)


def open_storage(uri: str | os.PathLike[str]) -> Storage:
    """Open ``s3://bucket/prefix``, ``http(s)://host/path/``, ``file://PATH`` or a plain path.

    Raises :class:`EcgflowError` for an unknown scheme or a local folder that does not exist.
    """
    text = os.fspath(uri)
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme == "s3":
        return S3Storage(text)
    if scheme in ("http", "https"):
        return HTTPStorage(text)
    if scheme == "file":
        return LocalStorage(_file_uri_path(text), uri=text)
    if scheme:
        raise EcgflowError(
            f"unsupported storage scheme {scheme!r} in {redact(text)!r}: use a local path, "
            "file://PATH, s3://bucket/prefix or http(s)://host/path/"
        )
    return LocalStorage(text)
