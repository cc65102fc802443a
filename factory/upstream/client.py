"""Client for the upstream package index (PEP 691 JSON, PEP 503 HTML fallback).

Answers which files a project has, with hashes, sizes, upload times and yank
flags, and downloads a file while checking its size and sha256. Transient
failures (connection errors, 5xx, 429) are retried with exponential backoff.
Listings are cached with their ETag so that polling makes conditional requests.

Everything upstream says is attacker-controlled data, so:

- every file name is checked to be a plain sdist or wheel name of the project
  asked for (no separators, no ``..``, no control characters, bounded), and
  every hash, size and URL is checked for shape; a file that fails is left out
  of the listing with the reason (``ProjectListing.rejected``);
- redirects are followed only within the index's origin (listings) or to the
  file's own origin, the index, or the index's known files host (downloads);
  anything else is an ``AlarmError``, as is a download whose bytes are not the
  pinned ones;
- bodies are bounded before they are kept or parsed: a listing after
  decompression, a download at its pinned size (the bytes past it are never
  written), and each request, retries included, has a wall-clock deadline that
  a slowly dripping server cannot stretch.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import socket
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

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
from factory._internal.atomic import TMP_PREFIX, write_json
from factory.errors import AlarmError, IntegrityError, UpstreamError, printable

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
USER_AGENT = f"artifact-factory/{__version__}"

MAX_FILENAME = 255  # a file name on every filesystem we write to
MAX_URL = 4096
MAX_TEXT = 200  # yank reasons, requires-python, upload times: shown, never trusted
MAX_FILE_BYTES = 1 << 30  # an sdist or wheel larger than this is refused outright
MAX_LISTING_BYTES = 64 << 20  # after decompression; PyPI's largest pages are a few MiB
DEADLINE = 120.0  # seconds for one request, retries and redirects included
MIN_RATE = 256 << 10  # bytes/s a download must average; its deadline grows with its size
MAX_REDIRECTS = 5
CHUNK = 1 << 16
# Where an index keeps its files when they are not on the index's own origin.
FILES_HOSTS: dict[str, tuple[str, ...]] = {
    "pypi.org": ("files.pythonhosted.org",),
    "test.pypi.org": ("test-files.pythonhosted.org",),
}

_PROJECT = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)
_FILENAME = re.compile(r"[A-Za-z0-9._+!-]+")  # names, PEP 440 versions, extensions
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ETAG = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,1023}")

T = TypeVar("T")


# -- what upstream may say -------------------------------------------------------------

def is_project_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_FILENAME and bool(_PROJECT.fullmatch(name))


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))


def size_problem(value: object) -> str | None:
    """Why ``value`` is not a file size we accept (a non-negative, bounded int), or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"size {printable(repr(value))[:40]} is not an integer"
    if not 0 <= value <= MAX_FILE_BYTES:
        return f"size {value} is outside 0..{MAX_FILE_BYTES}"
    return None


def _plain_name_problem(filename: object) -> str | None:
    if not isinstance(filename, str):
        return "the file name is not a string"
    if not filename or len(filename) > MAX_FILENAME:
        return f"the file name is empty or longer than {MAX_FILENAME} characters"
    if not _FILENAME.fullmatch(filename):
        return "the file name has characters other than letters, digits and ._+!-"
    if ".." in filename or filename.startswith((".", "-")):
        return "the file name has '..' or starts with '.' or '-'"
    return None


def sdist_name_problem(filename: object, project: str, version: str | None = None) -> str | None:
    """Why ``filename`` is not a plain sdist name of ``project`` (and ``version``), or None."""
    problem = _plain_name_problem(filename)
    if problem is not None:
        return problem
    assert isinstance(filename, str)
    try:
        name, parsed = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return "not an sdist file name (NAME-VERSION.tar.gz or .zip)"
    stem = filename.removesuffix(".tar.gz").removesuffix(".zip").rpartition("-")[0]
    if not _PROJECT.fullmatch(stem):
        return f"{stem!r} is not a project name"
    if name != canonicalize_name(project):
        return f"it names project {name!r}, not {canonicalize_name(project)!r}"
    if version is not None and parsed != _version(version):
        return f"it is version {parsed}, not {version}"
    return None


def wheel_name_problem(filename: object, project: str) -> str | None:
    """Why ``filename`` is not a plain wheel name of ``project``, or None."""
    problem = _plain_name_problem(filename)
    if problem is not None:
        return problem
    assert isinstance(filename, str)
    try:
        name = parse_wheel_filename(filename)[0]
    except InvalidWheelFilename:
        return "not a wheel file name"
    if name != canonicalize_name(project):
        return f"it names project {name!r}, not {canonicalize_name(project)!r}"
    return None


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Origin = tuple[str, str, int]


def origin(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) URL, or None when it is not one we can use."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def url_problem(url: object, plain_http: bool = False) -> str | None:
    """Why ``url`` is not a well-formed http(s) URL (bounded, no spaces or controls), or None.

    Plain http is a problem unless to loopback, or ``plain_http`` (the caller checks
    the host itself, e.g. against the configured index)."""
    if not isinstance(url, str):
        return "the URL is not a string"
    if len(url) > MAX_URL:
        return f"the URL is longer than {MAX_URL} characters"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "the URL has spaces or control characters"
    found = origin(url)
    if found is None:
        return f"{printable(url[:80])!r} is not an http(s) URL with a host"
    if found[0] == "http" and not plain_http and not _is_loopback(found[1]):
        return f"plain http to {found[1]!r} (https is required but for loopback)"
    return None


def _clean(value: object, limit: int = MAX_TEXT) -> str | None:
    """A string upstream gave us for display only: printable and bounded, else None."""
    if not isinstance(value, str):
        return None
    return printable(value, keep="")[:limit]


class HostPolicy:
    """Which origins an index's listings and files may come from, and redirect to.

    A listing stays on the index's origin. A file may be on the index's origin or
    on the index's files host (files.pythonhosted.org for pypi.org, over https). A
    redirect of a download may also stay on the origin of the URL it was asked for.
    Plain http is allowed for the configured index itself and for loopback only.
    """

    def __init__(self, index_url: str, file_hosts: tuple[str, ...] = ()) -> None:
        found = origin(index_url)
        if found is None:
            raise UpstreamError(f"the upstream index URL {index_url!r} is not an http(s) URL",
                                "set [factory] upstream to an https URL")
        self.index = found
        self.file_hosts = {h.lower() for h in (*FILES_HOSTS.get(found[1], ()), *file_hosts)}

    def _shape(self, url: object) -> str | None:
        problem = url_problem(url)
        # the configured index may be plain http (a mirror on the LAN); nothing else may
        if problem and problem.startswith("plain http") and origin(str(url)) == self.index:
            return None
        return problem

    def listing(self, url: str) -> str | None:
        problem = self._shape(url)
        if problem is None and origin(url) != self.index:
            return f"{_host(url)} is not the index's origin {_host_of(self.index)}"
        return problem

    def file(self, url: str, also: Origin | None = None) -> str | None:
        problem = self._shape(url)
        if problem is not None:
            return problem
        found = origin(url)
        assert found is not None
        if found == self.index or found == also:
            return None
        if found[0] == "https" and found[1] in self.file_hosts and found[2] == 443:
            return None
        return f"{_host(url)} is neither the index {_host_of(self.index)} nor its files host"


def _host_of(found: Origin) -> str:
    return f"{found[0]}://{found[1]}:{found[2]}"


def _host(url: str) -> str:
    found = origin(url)
    return printable(_host_of(found)) if found else printable(url[:80])


# -- listings ---------------------------------------------------------------------------

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
class Rejected:
    """A file a listing offered that we refuse to consider, and why."""

    filename: str  # printable and bounded; the original may be anything
    reason: str


@dataclass(frozen=True)
class ProjectListing:
    name: str
    files: tuple[UpstreamFile, ...]
    etag: str | None = None
    rejected: tuple[Rejected, ...] = ()

    def sdists(self) -> list[UpstreamFile]:
        return [f for f in self.files if f.is_sdist and f.version is not None]


_LEGACY = (".egg", ".exe", ".msi", ".rpm", ".dmg", ".tar.bz2", ".tar.xz", ".tgz", ".tar")


def _file_problem(filename: str, project: str) -> str | None:
    if isinstance(filename, str) and filename.endswith(".whl"):
        return wheel_name_problem(filename, project)
    return sdist_name_problem(filename, project)


def _check_file(project: str, file: UpstreamFile, policy: HostPolicy) -> str | None:
    """Why a listed file is refused, or None. Legacy formats are dropped silently."""
    problem = _file_problem(file.filename, project)
    if problem is None:
        problem = policy.file(file.url)
    if problem is None and file.sha256 is not None and not is_sha256(file.sha256):
        problem = "its sha256 is not 64 hex digits"
    if problem is None and file.size is not None:
        problem = size_problem(file.size)
    return problem


def _listing(name: str, candidates: list[UpstreamFile | Rejected],
             policy: HostPolicy) -> ProjectListing:
    files: list[UpstreamFile] = []
    rejected: list[Rejected] = []
    for item in candidates:
        if isinstance(item, Rejected):
            rejected.append(item)
            continue
        problem = _check_file(name, item, policy)
        if problem is None:
            files.append(item)
        elif not (_plain_name_problem(item.filename) is None and item.filename.endswith(_LEGACY)):
            rejected.append(Rejected(_shown(item.filename), problem))
    return ProjectListing(name=name, files=tuple(files), rejected=tuple(rejected))


def _join(base: str, url: str) -> str | None:
    """``url`` resolved against ``base``, or None when it cannot be parsed."""
    try:
        return urljoin(base, url)
    except ValueError:  # e.g. "http://[x": an unclosed IPv6 literal
        return None


def _shown(value: object) -> str:
    return printable(value if isinstance(value, str) else repr(value), keep="")[:MAX_FILENAME]


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


def parse_html(name: str, base_url: str, text: str,
               policy: HostPolicy | None = None) -> ProjectListing:
    """PEP 503 page -> listing (no sizes or upload times in HTML)."""
    policy = policy or HostPolicy(base_url)
    parser = _LinkParser()
    parser.feed(text)
    candidates: list[UpstreamFile | Rejected] = []
    for link in parser.links:
        href = link.get("href")
        if not href:
            continue
        joined = _join(base_url, href)
        if joined is None:
            candidates.append(Rejected(_shown(href)[:80], "its href is not a URL"))
            continue
        url, fragment = urldefrag(joined)
        algo, _, digest = fragment.partition("=")
        yanked = "data-yanked" in link
        filename = (link.get("#text") or "").strip() or unquote(url.rsplit("/", 1)[-1])
        candidates.append(UpstreamFile(
            filename=filename,
            url=url,
            sha256=digest.lower() if algo == "sha256" else None,
            size=None,
            upload_time=None,
            yanked=yanked,
            yanked_reason=_clean(link.get("data-yanked")) or None if yanked else None,
            requires_python=_clean(link.get("data-requires-python")),
            has_provenance=bool(link.get("data-provenance")),
        ))
    return _listing(canonicalize_name(name), candidates, policy)


def parse_json(name: str, base_url: str, data: Any,
               policy: HostPolicy | None = None) -> ProjectListing:
    """PEP 691 JSON -> listing."""
    policy = policy or HostPolicy(base_url)
    files = data.get("files", []) if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise UpstreamError(f"{base_url}: malformed PEP 691 JSON (no list of files)")
    return _listing(canonicalize_name(name), [_json_file(base_url, i) for i in files], policy)


def _json_file(base_url: str, item: object) -> UpstreamFile | Rejected:
    if not isinstance(item, dict):
        return Rejected(_shown(item)[:80], "a file entry is not an object")
    filename, url, hashes = item.get("filename"), item.get("url"), item.get("hashes", {})
    shown = _shown(filename)
    if not isinstance(filename, str) or not isinstance(url, str) or len(url) > MAX_URL:
        return Rejected(shown, "the entry has no string filename and url")
    if not isinstance(hashes, dict):
        return Rejected(shown, "its hashes are not an object")
    sha256, size = hashes.get("sha256"), item.get("size")
    if sha256 is not None and not isinstance(sha256, str):
        return Rejected(shown, "its sha256 is not a string")
    requires = item.get("requires-python")
    if requires is not None and not isinstance(requires, str):
        return Rejected(shown, "its requires-python is not a string")
    yanked, joined = item.get("yanked", False), _join(base_url, url)
    if joined is None:
        return Rejected(shown, "its url is not a URL")
    return UpstreamFile(
        filename=filename,
        url=joined,
        sha256=sha256.lower() if isinstance(sha256, str) else None,
        size=size,
        upload_time=_clean(item.get("upload-time"), 64),
        # PEP 691: a bool or a reason; anything else is read as yanked (hidden, not taken)
        yanked=bool(yanked) if isinstance(yanked, bool | str) or yanked is None else True,
        yanked_reason=_clean(yanked) or None,
        requires_python=_clean(requires),
        has_provenance=bool(item.get("provenance")),
    )


# -- bounded requests --------------------------------------------------------------------

class _Deadline:
    """A wall-clock limit on one request, retries and redirects included.

    httpx only bounds each read, so a server that drips one byte just inside the
    read timeout (headers or body) could hold a request open forever. The sockets
    a request opens are reported by httpcore's trace hook; when the deadline
    passes a timer shuts them down, which ends any read at once. Connections are
    not kept alive between requests, so every request's socket is its own.
    """

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def __enter__(self) -> _Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete",
                         "connection.connect_unix_socket.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        if self.expired or self.remaining() <= 0:
            raise UpstreamError(f"{self.what}: no complete answer within {self.seconds:g} s",
                                "the upstream server is too slow or stalling on purpose; "
                                "retry later")

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self.remaining())))
        self.check()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: the request is over
        sock.shutdown(socket.SHUT_RDWR)


class _Inflater:
    """Content-Encoding gzip/deflate decoded in bounded pieces (at most CHUNK each),
    so a small compressed body cannot expand in memory before it is counted."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding.strip().lower() or "identity"
        if self.encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise UpstreamError(f"upstream answered with Content-Encoding "
                                f"{printable(self.encoding[:40])!r}, which we did not ask for")
        self._gzip = self.encoding in ("gzip", "x-gzip")
        self._first = True
        self._inflater = self._new()

    def _new(self) -> Any:
        return zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.encoding == "identity":
            yield data
            return
        try:
            yield from self._inflate(data)
        except zlib.error as exc:
            raise UpstreamError(f"upstream sent a corrupt {self.encoding} body ({exc})") from None

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self._inflater.decompress(data, CHUNK)
            except zlib.error:
                if not (self._first and not self._gzip):
                    raise
                # "deflate" servers often send raw deflate without the zlib header
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._inflater.decompress(data, CHUNK)
            self._first = False
            if out:
                yield out
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                rest = self._inflater.unused_data
                if not (self._gzip and rest.startswith(b"\x1f\x8b")):
                    return  # trailing bytes after the stream are ignored, as browsers do
                data = rest  # a further gzip member
                self._inflater = self._new()
                continue
            if not data and len(out) < CHUNK:
                return


class Upstream:
    """One upstream index. Use as a context manager to close its connections."""

    def __init__(self, index_url: str, *, retries: int = 4, timeout: float = 30.0,
                 cache_dir: Path | None = None, backoff: float = 0.5,
                 deadline: float = DEADLINE, max_listing_bytes: int = MAX_LISTING_BYTES,
                 file_hosts: tuple[str, ...] = ()) -> None:
        self.index_url = index_url.rstrip("/") + "/"
        self.retries, self.backoff, self.cache_dir = retries, backoff, cache_dir
        self.timeout, self.deadline, self.max_listing_bytes = timeout, deadline, max_listing_bytes
        self.policy = HostPolicy(self.index_url, file_hosts)
        # Redirects are followed by hand (each hop checked against the policy), and
        # connections are not reused so that each request's deadline owns its socket.
        self.client = httpx.Client(timeout=timeout, follow_redirects=False,
                                   headers={"User-Agent": USER_AGENT},
                                   limits=httpx.Limits(max_keepalive_connections=0))

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def _request(self, method: str, url: str, deadline: _Deadline, *, headers: dict[str, str],
                 allowed: Callable[[str], str | None],
                 consume: Callable[[httpx.Response], T]) -> T:
        """``consume`` the answer to ``url``, retrying transient failures until ``deadline``."""
        last = ""
        for attempt in range(self.retries + 1):
            try:
                response = self._follow(method, url, deadline, headers, allowed)
                try:
                    if response.status_code < 500 and response.status_code != 429:
                        return consume(response)
                    last = f"HTTP {response.status_code}"
                finally:
                    response.close()
            except httpx.TransportError as exc:
                deadline.check()  # a socket the deadline shut down is not a network fault
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < self.retries:
                deadline.sleep(self.backoff * 2**attempt)
        raise UpstreamError(f"{url} did not answer after {self.retries + 1} tries ({last})",
                            "check that the upstream index is up and reachable, then retry")

    def _follow(self, method: str, url: str, deadline: _Deadline, headers: dict[str, str],
                allowed: Callable[[str], str | None]) -> httpx.Response:
        """The streamed answer to ``url``, after the redirects the policy allows."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            deadline.check()
            timeout = httpx.Timeout(self.timeout, connect=max(0.01, min(self.timeout,
                                                                        deadline.remaining())))
            request = self.client.build_request(method, current, headers=headers,
                                                timeout=timeout,
                                                extensions={"trace": deadline.trace})
            try:
                response = self.client.send(request, stream=True)
            except httpx.InvalidURL as exc:  # httpx builds the redirect it will not follow:
                # a Location such as "javascript:x" (a scheme, no host) is refused there
                raise AlarmError(f"{url} redirects to a URL that is not http(s) "
                                 f"({printable(str(exc))[:80]})",
                                 "refused: redirects may not leave the index or its files "
                                 "host; check the upstream index") from None
            if not response.has_redirect_location:
                return response
            target = _join(current, response.headers["location"]) or "(not a URL)"
            response.close()
            problem = allowed(target)
            if problem is not None:
                raise AlarmError(f"{url} redirects to {_host(target)}: {problem}",
                                 "refused: redirects may not leave the index or its files host; "
                                 "check the upstream index (a changed redirect is an alarm)")
            current = target
        raise UpstreamError(f"{url}: more than {MAX_REDIRECTS} redirects")

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
        with _Deadline(self.deadline, url) as deadline:
            status, final, ctype, etag, body = self._request(
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

    def _read_listing(self, response: httpx.Response, deadline: _Deadline,
                      ) -> tuple[int, str, str, str | None, str | None]:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        etag = response.headers.get("etag")
        if response.status_code != 200:
            return response.status_code, str(response.url), ctype, etag, None
        cap = self.max_listing_bytes
        declared = _length(response.headers.get("content-length", ""))
        if declared is not None and declared > cap:
            raise UpstreamError(f"{response.url}: the listing is {declared} bytes, over the "
                                f"limit of {cap}", "the upstream index sent an oversized page")
        data = bytearray()
        inflater = _Inflater(response.headers.get("content-encoding", ""))
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
        return ProjectListing(listing.name, listing.files, etag, listing.rejected)

    # -- files --------------------------------------------------------------------------
    def _download_policy(self, url: str) -> Callable[[str], str | None]:
        start = origin(url)
        return lambda target: self.policy.file(target, also=start)

    def size_of(self, url: str) -> int | None:
        problem = self.policy.file(url)
        if problem is not None:
            raise UpstreamError(f"refusing to ask {_host(url)} for a size: {problem}")
        with _Deadline(self.deadline, url) as deadline:
            status, length = self._request(
                "HEAD", url, deadline, headers={"Accept-Encoding": "identity"},
                allowed=self._download_policy(url),
                consume=lambda r: (r.status_code, r.headers.get("content-length", "")))
        size = _length(length)
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
            with _Deadline(seconds, url) as deadline:
                digest, received = self._request(
                    "GET", url, deadline, headers={"Accept-Encoding": "identity"},
                    allowed=self._download_policy(url),
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
               deadline: _Deadline) -> tuple[str, int]:
        """The body, raw (no Content-Encoding is undone: the pin is of these bytes), into
        ``tmp``; stops before the first byte past ``size``."""
        if response.status_code != 200:
            raise UpstreamError(f"{response.url} answered HTTP {response.status_code}")
        cap = size if size is not None else MAX_FILE_BYTES
        declared = _length(response.headers.get("content-length", ""))
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


def _length(header: str) -> int | None:
    """A Content-Length header's value when it is plain ASCII digits (and not absurd)."""
    header = header.strip()
    if not header.isascii() or not header.isdigit() or len(header) > 20:
        return None
    return int(header)


def _oversized(name: str, size: int | None, cap: int) -> IntegrityError:
    if size is None:
        return IntegrityError(f"{name}: larger than {cap} bytes; refused")
    return AlarmError(f"{name}: upstream sends more than the pinned {size} bytes",
                      "upstream now serves other bytes for this file; it is refused "
                      "and the old pin kept")
