"""The upstream index client: a project's files (PEP 691 JSON, PEP 503 HTML fallback),
and downloads checked against their pins.

Listings are cached with their ETag so that polling makes conditional requests;
the cache in the state directory is parsed as defensively as the network.
Bodies are bounded before they are kept or parsed: a listing after
decompression, a download at its pinned size (the bytes past it are never
written). A download whose bytes are not the pinned ones is an ``AlarmError``.
How requests are bounded and where they may go: ``factory.upstream.transport``;
what a listing may say: ``factory.upstream.listing``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from factory._internal.atomic import TMP_PREFIX, write_json
from factory.config import Settings
from factory.errors import AlarmError, IntegrityError, UpstreamError, printable
from factory.upstream.listing import (
    JSON_TYPE,
    MAX_FILE_BYTES,
    MAX_TEXT,
    ProjectListing,
    is_project_name,
    is_sha256,
    parse_html,
    parse_json,
    size_problem,
)
from factory.upstream.transport import (
    CHUNK,
    DEADLINE,
    MIN_RATE,
    Deadline,
    HostPolicy,
    Inflater,
    Transport,
    content_length,
    host,
    origin,
    url_problem,
)

ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
MAX_LISTING_BYTES = 64 << 20  # after decompression; PyPI's largest pages are a few MiB
_ETAG = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,1023}")


class Upstream:
    """One upstream index. Use as a context manager to close its connections."""

    def __init__(self, index_url: str, *, retries: int = 4, timeout: float = 30.0,
                 cache_dir: Path | None = None, backoff: float = 0.5,
                 deadline: float = DEADLINE, max_listing_bytes: int = MAX_LISTING_BYTES,
                 file_hosts: tuple[str, ...] = ()) -> None:
        self.index_url = index_url.rstrip("/") + "/"
        self.cache_dir, self.deadline = cache_dir, deadline
        self.max_listing_bytes = max_listing_bytes
        self.policy = HostPolicy(self.index_url, file_hosts)
        self.transport = Transport(retries=retries, timeout=timeout, backoff=backoff)

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # -- listings -----------------------------------------------------------------------
    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / f"{key}.json" if self.cache_dir else None

    def _read_cache(self, key: str) -> dict[str, str] | None:
        """The cached listing, or None when absent or not what we wrote (never trusted:
        the state directory's cache is parsed as defensively as the network)."""
        path = self._cache_path(key)
        if path is None:
            return None
        try:
            if not path.is_file() or path.is_symlink():
                return None
            if path.stat().st_size > 8 * self.max_listing_bytes + 65536:  # JSON escapes
                return None
            data = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or not all(
                isinstance(data.get(k), str) for k in ("etag", "url", "type", "body")):
            return None
        if (not _ETAG.fullmatch(data["etag"]) or self.policy.listing(data["url"]) is not None
                or len(data["type"]) > MAX_TEXT
                or len(data["body"]) > self.max_listing_bytes):
            return None
        return {k: data[k] for k in ("etag", "url", "type", "body")}

    def project(self, name: str) -> ProjectListing:
        """The files of one project; 404 is an error naming the project."""
        if not is_project_name(name):
            raise UpstreamError(f"{printable(str(name))[:80]!r} is not a valid project name",
                                "check the recipe's name")
        key = canonicalize_name(name)
        url = f"{self.index_url}{key}/"
        cached = self._read_cache(key)
        headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
        if cached:
            headers["If-None-Match"] = cached["etag"]
        with Deadline(self.deadline, url) as deadline:
            status, final, ctype, etag, body = self.transport.request(
                "GET", url, deadline, headers=headers, allowed=self.policy.listing,
                consume=lambda r: self._read_listing(r, deadline))
        if status == 304 and cached:
            return self._parse(key, cached["url"], cached["type"], cached["body"], cached["etag"])
        if status == 404:
            raise UpstreamError(f"the upstream index {self.index_url} does not know {name!r}",
                                "check the recipe's name for a typo")
        if status != 200 or body is None:
            raise UpstreamError(f"{url} answered HTTP {status}")
        etag = etag if etag and _ETAG.fullmatch(etag) else None
        cache = self._cache_path(key)
        if cache and etag:
            write_json(cache, {"etag": etag, "url": final, "type": ctype, "body": body})
        return self._parse(key, final, ctype, body, etag)

    def _read_listing(self, response: httpx.Response, deadline: Deadline,
                      ) -> tuple[int, str, str, str | None, str | None]:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        etag = response.headers.get("etag")
        if response.status_code != 200:
            return response.status_code, str(response.url), ctype, etag, None
        cap = self.max_listing_bytes
        declared = content_length(response.headers.get("content-length", ""))
        if declared is not None and declared > cap:
            raise UpstreamError(f"{response.url}: the listing is {declared} bytes, over the "
                                f"limit of {cap}", "the upstream index sent an oversized page")
        data = bytearray()
        inflater = Inflater(response.headers.get("content-encoding", ""))
        for raw in response.iter_raw(CHUNK):
            deadline.check()
            for piece in inflater.feed(raw):
                if len(data) + len(piece) > cap:
                    raise UpstreamError(
                        f"{response.url}: the listing is over the limit of {cap} bytes "
                        "(after decompression)", "the upstream index sent an oversized page")
                data += piece
        charset = response.charset_encoding or "utf-8"
        try:
            text = bytes(data).decode(charset, errors="replace")
        except LookupError:
            text = bytes(data).decode("utf-8", errors="replace")
        return 200, str(response.url), ctype, etag, text

    def _parse(self, key: str, url: str, ctype: str, body: str,
               etag: str | None) -> ProjectListing:
        if ctype in (JSON_TYPE, "application/json"):
            try:
                listing = parse_json(key, url, json.loads(body), self.policy)
            except (ValueError, RecursionError) as exc:
                raise UpstreamError(f"{url}: malformed PEP 691 JSON ({exc})") from None
        else:
            listing = parse_html(key, url, body, self.policy)
        return replace(listing, etag=etag)

    # -- files --------------------------------------------------------------------------
    def size_of(self, url: str) -> int | None:
        problem = self.policy.file(url)
        if problem is not None:
            raise UpstreamError(f"refusing to ask {host(url)} for a size: {problem}")
        with Deadline(self.deadline, url) as deadline:
            status, length = self.transport.request(
                "HEAD", url, deadline, headers={"Accept-Encoding": "identity"},
                allowed=self.policy.download(url),
                consume=lambda r: (r.status_code, r.headers.get("content-length", "")))
        size = content_length(length)
        return size if status == 200 and size is not None and size <= MAX_FILE_BYTES else None

    def download(self, url: str, dest: Path, *, sha256: str, size: int | None,
                 progress: Callable[[int, int | None], None] | None = None) -> Path:
        """Stream ``url`` to ``dest``, verifying size and sha256; never leaves a partial file.

        Never writes more than ``size`` bytes (or MAX_FILE_BYTES without one). More
        bytes than pinned, or the pinned number of other bytes, is an ``AlarmError``.
        """
        problem = url_problem(url)
        if problem and not (problem.startswith("plain http") and origin(url) == self.policy.index):
            raise IntegrityError(f"{dest.name}: refusing to download {printable(url[:120])!r}: "
                                 f"{problem}", "fix the URL in recipes.lock (run `factory lock`)")
        if not is_sha256(sha256) or (size is not None and size_problem(size)):
            raise IntegrityError(f"{dest.name}: no valid sha256 and size to check it against")
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own: two processes fetching the same file must not write into
        # one temp file (one's O_TRUNC would corrupt what the other verified and renames).
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{dest.name}.", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        seconds = self.deadline + (size if size is not None else MAX_FILE_BYTES) / MIN_RATE
        try:
            with Deadline(seconds, url) as deadline:
                digest, received = self.transport.request(
                    "GET", url, deadline, headers={"Accept-Encoding": "identity"},
                    allowed=self.policy.download(url),
                    consume=lambda r: self._write(r, tmp, dest.name, size, progress, deadline))
            if size is not None and received != size:
                raise IntegrityError(
                    f"{dest.name}: truncated download: expected {size} bytes, got {received}",
                    "retry; if it persists the upstream file changed")
            if digest != sha256:
                raise AlarmError(f"{dest.name}: sha256 mismatch: expected {sha256}, got {digest}",
                                 "upstream now serves other bytes for this file; it is refused "
                                 "and the old pin kept")
            tmp.chmod(0o644)  # mkstemp made it 0600; the cache is as readable as before
            tmp.replace(dest)
            return dest
        finally:
            tmp.unlink(missing_ok=True)

    def _write(self, response: httpx.Response, tmp: Path, name: str, size: int | None,
               progress: Callable[[int, int | None], None] | None,
               deadline: Deadline) -> tuple[str, int]:
        """The body, raw (no Content-Encoding is undone: the pin is of these bytes), into
        ``tmp``; stops before the first byte past ``size``."""
        if response.status_code != 200:
            raise UpstreamError(f"{response.url} answered HTTP {response.status_code}")
        cap = size if size is not None else MAX_FILE_BYTES
        declared = content_length(response.headers.get("content-length", ""))
        if declared is not None and declared > cap:
            raise _oversized(name, size, cap)
        digest, received = hashlib.sha256(), 0
        with tmp.open("wb") as out:
            for chunk in response.iter_raw(CHUNK):
                deadline.check()
                if received + len(chunk) > cap:
                    raise _oversized(name, size, cap)
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if progress:
                    progress(received, size)
        return digest.hexdigest(), received



def _oversized(name: str, size: int | None, cap: int) -> IntegrityError:
    if size is None:
        return IntegrityError(f"{name}: larger than {cap} bytes; refused")
    return AlarmError(f"{name}: upstream sends more than the pinned {size} bytes",
                      "upstream now serves other bytes for this file; it is refused "
                      "and the old pin kept")


def open_upstream(settings: Settings, url: str | None = None) -> Upstream:
    """The upstream index ``url`` (default: the configured one) with the settings' retries,
    timeout and listing cache."""
    return Upstream(url or settings.upstream, retries=settings.http_retries,
                    timeout=settings.http_timeout,
                    cache_dir=settings.state_dir / "upstream-cache")
