"""Client for the upstream package index (PEP 691 JSON, PEP 503 HTML fallback).

Answers which files a project has, with hashes, sizes, upload times and yank
flags, and downloads a file while checking its size and sha256. Transient
failures (connection errors, 5xx, 429) are retried with exponential backoff.
Listings are cached with their ETag so that polling makes conditional requests.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

import httpx
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from factory import __version__
from factory.atomic import TMP_PREFIX, write_json
from factory.errors import IntegrityError, UpstreamError

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
USER_AGENT = f"artifact-factory/{__version__}"


@dataclass(frozen=True)
class UpstreamFile:
    filename: str
    url: str
    sha256: str | None
    size: int | None
    upload_time: str | None
    yanked: bool
    yanked_reason: str | None
    requires_python: str | None
    has_provenance: bool = False
    declared_version: str | None = None  # git tags: the version comes from the tag

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip")) or self.declared_version is not None

    @property
    def version(self) -> Version | None:
        try:
            if self.declared_version is not None:
                return Version(self.declared_version)
            if self.filename.endswith(".whl"):
                return parse_wheel_filename(self.filename)[1]
            return parse_sdist_filename(self.filename)[1]
        except (InvalidSdistFilename, InvalidWheelFilename, InvalidVersion):
            return None


@dataclass(frozen=True)
class ProjectListing:
    name: str
    files: tuple[UpstreamFile, ...]
    etag: str | None = None

    def sdists(self) -> list[UpstreamFile]:
        return [f for f in self.files if f.is_sdist and f.version is not None]


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self._current: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current = dict(attrs)
            self._current["#text"] = ""

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current["#text"] = (self._current["#text"] or "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.links.append(self._current)
            self._current = None


def parse_html(name: str, base_url: str, text: str) -> ProjectListing:
    """PEP 503 page -> listing (no sizes or upload times in HTML)."""
    parser = _LinkParser()
    parser.feed(text)
    files = []
    for link in parser.links:
        href = link.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base_url, href))
        algo, _, digest = fragment.partition("=")
        yanked = "data-yanked" in link
        files.append(UpstreamFile(
            filename=(link.get("#text") or url.rsplit("/", 1)[-1]).strip(),
            url=url,
            sha256=digest if algo == "sha256" else None,
            size=None,
            upload_time=None,
            yanked=yanked,
            yanked_reason=link.get("data-yanked") or None if yanked else None,
            requires_python=link.get("data-requires-python"),
            has_provenance=bool(link.get("data-provenance")),
        ))
    return ProjectListing(name=name, files=tuple(files))


def parse_json(name: str, base_url: str, data: dict[str, Any]) -> ProjectListing:
    """PEP 691 JSON -> listing."""
    files = []
    for item in data.get("files", []):
        yanked = item.get("yanked", False)
        files.append(UpstreamFile(
            filename=item["filename"],
            url=urljoin(base_url, item["url"]),
            sha256=item.get("hashes", {}).get("sha256"),
            size=item.get("size"),
            upload_time=item.get("upload-time"),
            yanked=bool(yanked),
            yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
            requires_python=item.get("requires-python"),
            has_provenance=bool(item.get("provenance")),
        ))
    return ProjectListing(name=data.get("name", name), files=tuple(files))


class Upstream:
    """One upstream index. Use as a context manager to close its connections."""

    def __init__(self, index_url: str, *, retries: int = 4, timeout: float = 30.0,
                 cache_dir: Path | None = None, backoff: float = 0.5) -> None:
        self.index_url = index_url.rstrip("/") + "/"
        self.retries, self.backoff, self.cache_dir = retries, backoff, cache_dir
        self.client = httpx.Client(timeout=timeout, follow_redirects=True,
                                   headers={"User-Agent": USER_AGENT})

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        last: str = ""
        for attempt in range(self.retries + 1):
            try:
                response = self.client.request(method, url, **kwargs)
                if response.status_code < 500 and response.status_code != 429:
                    return response
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise UpstreamError(f"{url} did not answer after {self.retries + 1} tries ({last})",
                            "check that the upstream index is up and reachable, then retry")

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / f"{key}.json" if self.cache_dir else None

    def project(self, name: str) -> ProjectListing:
        """The files of one project; 404 is an error naming the project."""
        key = canonicalize_name(name)
        url = f"{self.index_url}{key}/"
        cache = self._cache_path(key)
        cached = json.loads(cache.read_text()) if cache and cache.is_file() else None
        headers = {"Accept": ACCEPT}
        if cached and cached.get("etag"):
            headers["If-None-Match"] = cached["etag"]
        response = self._request("GET", url, headers=headers)
        if response.status_code == 304 and cached:
            return self._listing(key, cached["url"], cached["type"], cached["body"], cached["etag"])
        if response.status_code == 404:
            raise UpstreamError(f"the upstream index {self.index_url} does not know {name!r}",
                                "check the recipe's name for a typo")
        if response.status_code != 200:
            raise UpstreamError(f"{url} answered HTTP {response.status_code}")
        ctype = response.headers.get("content-type", "").split(";")[0].strip()
        etag = response.headers.get("etag")
        if cache and etag:
            write_json(cache, {"etag": etag, "url": str(response.url), "type": ctype,
                               "body": response.text})
        return self._listing(key, str(response.url), ctype, response.text, etag)

    def _listing(self, key: str, url: str, ctype: str, body: str,
                 etag: str | None) -> ProjectListing:
        if ctype == JSON_TYPE or ctype == "application/json":
            try:
                listing = parse_json(key, url, json.loads(body))
            except (ValueError, KeyError, TypeError) as exc:
                raise UpstreamError(f"{url}: malformed PEP 691 JSON ({exc})") from None
        else:
            listing = parse_html(key, url, body)
        return ProjectListing(listing.name, listing.files, etag)

    def size_of(self, url: str) -> int | None:
        response = self._request("HEAD", url)
        length = response.headers.get("content-length")
        return int(length) if response.status_code == 200 and length else None

    def download(self, url: str, dest: Path, *, sha256: str, size: int | None,
                 progress: Callable[[int, int | None], None] | None = None) -> Path:
        """Stream ``url`` to ``dest``, verifying size and sha256; never leaves a partial file."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own: two processes fetching the same file must not write into
        # one temp file (one's O_TRUNC would corrupt what the other verified and renames).
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{dest.name}.", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            digest, received = self._stream(url, tmp, progress, size)
            if size is not None and received != size:
                raise IntegrityError(
                    f"{dest.name}: truncated or oversized download: expected {size} bytes, "
                    f"got {received}", "retry; if it persists the upstream file changed")
            if digest != sha256:
                raise IntegrityError(
                    f"{dest.name}: sha256 mismatch: expected {sha256}, got {digest}")
            tmp.chmod(0o644)  # mkstemp made it 0600; the cache is as readable as before
            tmp.replace(dest)
            return dest
        finally:
            tmp.unlink(missing_ok=True)

    def _stream(self, url: str, tmp: Path,
                progress: Callable[[int, int | None], None] | None,
                size: int | None) -> tuple[str, int]:
        for attempt in range(self.retries + 1):
            digest, received = hashlib.sha256(), 0
            try:
                with self.client.stream("GET", url) as response, tmp.open("wb") as out:
                    if response.status_code != 200:
                        raise UpstreamError(f"{url} answered HTTP {response.status_code}")
                    for chunk in response.iter_bytes(1 << 16):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if progress:
                            progress(received, size)
                return digest.hexdigest(), received
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise UpstreamError(f"downloading {url} failed: {exc}") from None
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")
