"""Datasets on an HTTP(S) mirror (requests), listed from PhysioNet RECORDS files or HTML indexes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ecgflow import __version__
from ecgflow.errors import EcgflowError
from ecgflow.io.storage.base import (
    CHUNK_BYTES,
    RECORDS_FILE,
    Storage,
    TransferError,
    clean_rel,
    redact,
    unsafe_reason,
    write_atomically,
)

log = logging.getLogger(__name__)


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

    Listed names are untrusted: each is percent-decoded once and must be a safe relative path
    (:func:`~ecgflow.io.storage.base.unsafe_reason`); any other name, a ``RECORDS`` line that
    is not one, and a sub-``RECORDS`` that cannot be read are left out of the listing and
    reported by :meth:`refused`. Every ``RECORDS`` file and index page is read once.
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
        self._refused: dict[str, str] = {}

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
                    for chunk in response.iter_content(CHUNK_BYTES):
                        out.write(chunk)

        try:
            return write_atomically(Path(dest), write)
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

    def _records_files(self, folder: str, seen: set[str] | None = None) -> Iterator[str]:
        """``folder/RECORDS`` and the header of every record it names, recursively.

        A line that is no safe name, and a sub-folder whose ``RECORDS`` cannot be read (or was
        read already: a loop), is refused with its reason; the other lines are still listed.
        """
        seen = set() if seen is None else seen
        records = f"{folder}{RECORDS_FILE}"
        seen.add(records)
        text = self.read_text(records)
        yield records
        for number, line in enumerate(text.splitlines(), start=1):
            name = line.strip()
            if not name or name.startswith("#"):
                continue
            where = f"{records} line {number}"
            if name.endswith("/"):  # a multi-level database: the folder has its own RECORDS
                sub = f"{folder}{name}{RECORDS_FILE}"
                reason = unsafe_reason(sub)
                if reason is None and sub in seen:
                    reason = "read already (a loop)"
                if reason is not None:
                    self._refused[f"{folder}{name}"] = f"{where}: folder {name!r}: {reason}"
                    continue
                try:
                    yield from self._records_files(f"{folder}{name}", seen)
                except TransferError:
                    raise
                except EcgflowError as exc:
                    self._refused[sub] = f"{where}: {exc}"
                continue
            header = f"{folder}{name}.hea"
            reason = unsafe_reason(header)
            if reason is not None:
                self._refused[header] = f"{where}: record {name!r}: {reason}"
            else:
                yield header

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
            if not rel:
                continue
            reason = unsafe_reason(rel[:-1] if rel.endswith("/") else rel)
            if reason is not None:
                self._refused[rel] = f"linked from {page} as {href!r}: {reason}"
            elif rel.endswith("/"):
                folders.add(target)
            else:
                files.add(rel)
        return folders, files

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()
