"""The index over HTTP: a Starlette ASGI app, run by uvicorn.

Nothing is sent because it is on disk. Every page (the home page, the Simple
API's project list and project pages in HTML and JSON, the human project
pages) is rendered from the published records and cached by the record's stat
key; the static copies publishing writes beside them (for nginx,
docs/nginx.md) are only compared with it, and a copy that differs is logged,
never sent. Every file (distributions, sidecars, sources, trust material) is
found by its exact name in a record (trust material: in the manifest
publish_trust writes), opened without following a symbolic link, only if it is
a regular file inside the index directory, and sent only if its bytes match
the recorded digest (hashed once per change of its size, mtime, inode and
ctime). Small files are kept in memory once verified, within a byte budget, so
a repeat request costs one stat: no read, no hash, no hop to a thread.

Requests are screened before routing: an over-long path or query answers 414,
too many or too large headers 431, and a path no published URL has (a dot or
empty segment, a control character or backslash, a percent-encoded slash,
backslash or NUL) 404. It also adds what a plain web server cannot: content
negotiation by q-value (PEP 691), redirects to normalized names, a 404 for any
unknown project (never a fallback to a public index) and the Integrity API
(PEP 740).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from factory.config import Settings
from factory.index import human, pages
from factory.index.records import (
    PRIVATE_KEY_MARK,
    TRUST_MANIFEST,
    TRUST_MAX_BYTES,
    TRUST_NAME,
    IndexCorruptError,
    ProjectRecord,
    StoredFile,
    is_normalized,
    normalize,
    validate_record,
)
from factory.index.regen import STATUS_FILE

log = logging.getLogger("factory.index.serve")

INTEGRITY_TYPE = "application/vnd.pypi.integrity.v1+json"
PAGE_CACHE = "no-cache"  # always revalidate (cheap with the ETag): yanks show at once
FILE_CACHE = "public, max-age=31536000, immutable"
SMALL_FILE = 256 * 1024  # sent from memory; larger files stream (with Range support)
VERIFIED_BYTES_BUDGET = 64 * 1024 * 1024  # small files kept in memory once verified
MAX_RECORD = 64 * 1024 * 1024  # a record, the catalog, the status or the trust manifest
# What a request may carry. The longest URL the index publishes is well under 1 KiB
# (a 200-character project, a 255-byte file name and a sidecar suffix).
MAX_PATH_BYTES = 2048
MAX_QUERY_BYTES = 2048
MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024
SHOWN = 300  # characters of a client-supplied name echoed in a log line or an answer

_CONTENT_TYPES = [  # longest suffix first
    (".metadata", "text/plain; charset=utf-8"),
    (".provenance", "application/json"),
    (".sigstore.json", "application/vnd.dev.sigstore.bundle.v0.3+json"),
    (".intoto.jsonl", "application/jsonl"),
    (".cdx.json", "application/vnd.cyclonedx+json"),
    (".json", "application/json"),
    (".whl", "application/octet-stream"),
    (".tar.gz", "application/gzip"),
    (".zip", "application/zip"),
    (".pem", "application/x-pem-file"),
    (".pub", "application/x-pem-file"),
    (".html", "text/html; charset=utf-8"),
]
_ACCEPTED = {
    pages.JSON_TYPE: pages.JSON_TYPE,
    "application/vnd.pypi.simple.latest+json": pages.JSON_TYPE,
    pages.HTML_TYPE: pages.HTML_TYPE,
    "application/vnd.pypi.simple.latest+html": pages.HTML_TYPE,
    "text/html": "text/html",
    "text/*": "text/html",
    "*/*": "text/html",
}
# A decoded path no published URL has: control characters, backslashes, empty
# segments ("//": an absolute path after a prefix), and "." or ".." segments.
_UNSAFE_PATH = re.compile(r"[\x00-\x1f\x7f\\]|//|/\.\.?(?:/|$)")
# Percent-encoded separators and NUL in the raw path: the decoded path would hide them.
_ENCODED_SEPARATOR = re.compile(rb"%(?:2f|5c|00)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def content_type(name: str) -> str:
    for suffix, kind in _CONTENT_TYPES:
        if name.endswith(suffix):
            return kind
    return "application/octet-stream"


def negotiate(accept: str | None) -> str | None:
    """The Simple API serialization to answer with, or None (406)."""
    if not accept or not accept.strip():
        return "text/html"
    choices = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        choices.append((quality, -position, media.lower()))
    for quality, _, media in sorted(choices, reverse=True):
        if quality > 0 and media in _ACCEPTED:
            return _ACCEPTED[media]
    return None


# size, mtime, inode and ctime: a write can restore the size and the mtime, not the
# ctime (the kernel sets it on every change), so a file changed in place misses.
StatKey = tuple[int, int, int, int]
Page = tuple[bytes, str]  # body and ETag


def _lstat(path: str) -> os.stat_result | None:
    """The path's own stat (a symbolic link is not followed), or None if there is none."""
    try:
        return os.lstat(path)
    except (OSError, ValueError):  # missing, or a name no file can have (too long, NUL)
        return None


def _key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


@dataclass
class _Cached:
    key: Hashable
    value: Any


class _StatCache:
    """Values derived from files, recomputed only when their stat keys change."""

    def __init__(self) -> None:
        self._items: dict[Hashable, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, name: Hashable, key: Hashable) -> Any | None:
        with self._lock:
            hit = self._items.get(name)
        return hit.value if hit and hit.key == key else None

    def put(self, name: Hashable, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[name] = _Cached(key, value)


class _VerifiedBytes:
    """Small files whose bytes matched their published digest, by path and stat key;
    the least recently used go first once the budget is spent."""

    def __init__(self, budget: int) -> None:
        self._items: OrderedDict[str, tuple[StatKey, bytes]] = OrderedDict()
        self._size = 0
        self._budget = budget
        self._lock = threading.Lock()

    def get(self, path: str, key: StatKey) -> bytes | None:
        with self._lock:
            hit = self._items.get(path)
            if hit is None or hit[0] != key:
                return None
            self._items.move_to_end(path)
            return hit[1]

    def put(self, path: str, key: StatKey, body: bytes) -> None:
        with self._lock:
            old = self._items.pop(path, None)
            self._size -= len(old[1]) if old else 0
            self._items[path] = (key, body)
            self._size += len(body)
            while self._size > self._budget:
                _, (_, dropped) = self._items.popitem(last=False)
                self._size -= len(dropped)


# -- reading the tree ------------------------------------------------------------

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class _Refused(Exception):
    """A file that is there but is not one to read: a symbolic link, a FIFO or device,
    a file reached through a link out of the index, or one over its size limit."""


class _Tree:
    """Opens files under the index directory, never through a symbolic link.

    The final component is opened with O_NOFOLLOW (a link is refused, not followed)
    and O_NONBLOCK (a FIFO cannot hang the server); what was opened must be a
    regular file whose real path, as the kernel names it, is inside the index
    directory (a directory above it replaced by a link leads nowhere). The index
    directory itself may be a link. Only done when a stat key changes.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, path: str) -> tuple[int, os.stat_result] | None:
        """A descriptor of the regular file at ``path`` and its stat; None if there is none."""
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:  # ELOOP: the name is a symbolic link
            raise _Refused(getattr(exc, "strerror", None) or str(exc)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _Refused("not a regular file")
            if not self._inside(fd, path):
                raise _Refused("reached through a symbolic link out of the index")
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _inside(self, fd: int, path: str) -> bool:
        root = os.path.realpath(self.root).rstrip(os.sep) + os.sep
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc: resolve the name (its last component is no link)
            real = os.path.realpath(path)
        return real.startswith(root)

    def read(self, path: str, limit: int) -> tuple[bytes, StatKey] | None:
        """The bytes of the regular file at ``path`` (at most ``limit``) and their stat key."""
        opened = self.open(path)
        if opened is None:
            return None
        fd, st = opened
        with os.fdopen(fd, "rb") as handle:
            if st.st_size > limit:
                raise _Refused(f"larger than {limit} bytes")
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise _Refused(f"larger than {limit} bytes")
        return data, _key(st)

    def hash(self, path: str, key: StatKey) -> str | None:
        """The sha256 of the regular file at ``path`` if it still has stat key ``key``."""
        try:
            opened = self.open(path)
        except _Refused:
            return None
        if opened is None:
            return None
        fd, st = opened
        with os.fdopen(fd, "rb") as handle:
            if _key(st) != key:
                return None
            digest = hashlib.sha256()
            while block := handle.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()


# -- records -----------------------------------------------------------------------


class DamagedRecord(Exception):
    """A record serve reads (a project's, the catalog, the status, the trust manifest)
    that is unreadable or malformed: nothing derived from it is served (503)."""


@dataclass(frozen=True)
class _Damage:
    reason: str


@dataclass(frozen=True)
class _Loaded:
    key: StatKey
    record: ProjectRecord
    served: dict[str, StoredFile]  # built once per record, not on every request
    pages: dict[str, Page | _Damage] = field(default_factory=dict)  # rendered on first use


def _safe_rel(rel: Any, prefixes: tuple[str, ...]) -> bool:
    """A path inside the index under one of ``prefixes``: no empty, "." or ".." segment."""
    if not isinstance(rel, str) or not rel.startswith(prefixes) or _CONTROL.search(rel):
        return False
    return all(p not in ("", ".", "..") and len(p.encode()) <= 255 for p in rel.split("/"))


def _stored(item: Any, prefixes: tuple[str, ...]) -> StoredFile:
    ok = (isinstance(item, StoredFile) and _safe_rel(item.path, prefixes)
          and isinstance(item.sha256, str) and bool(_SHA256.fullmatch(item.sha256))
          and isinstance(item.size, int) and item.size >= 0)
    if not ok:
        raise ValueError(f"a file entry that is not a plain path inside the index: {item!r:.200}")
    return item


def _project_record(project: str, value: Any) -> tuple[ProjectRecord, dict[str, StoredFile]]:
    # The same validation as `index check` and `verify`: a record they call corrupt is
    # never served as sound (a wheel of another project, a lying version or name...).
    try:
        record = validate_record(value, project)
    except IndexCorruptError as exc:
        raise ValueError(exc.message.split(": ", 1)[-1]) from None
    if record.name != project:
        raise ValueError(f"it names project {record.name!r:.{SHOWN}}")
    prefixes = (f"files/{project}/", f"sources/{project}/")
    served = record.served()
    for rel, item in served.items():
        if _stored(item, prefixes).path != rel:
            raise ValueError(f"file {rel!r:.200} is listed under another name")
    return record, served


def _trust_manifest(value: Any) -> dict[str, StoredFile]:
    files = value.get("files") if isinstance(value, dict) else None
    if not isinstance(files, dict):
        raise ValueError("no files listed")
    out = {}
    for name, item in files.items():
        if not (isinstance(name, str) and TRUST_NAME.fullmatch(name) and isinstance(item, dict)):
            raise ValueError(f"trust file name {name!r:.{SHOWN}} is not a plain file name")
        stored = _stored(StoredFile(**item), ("trust/",))
        if stored.path != f"trust/{name}":
            raise ValueError(f"trust file {name!r} is stored as {stored.path!r:.200}")
        out[name] = stored
    return out


def _catalog(value: Any) -> list[dict[str, Any]]:
    """The catalog's project summaries in name order, each naming itself."""
    if not isinstance(value, dict):
        raise ValueError("not a mapping of projects")
    rows = []
    for name in sorted(value):
        row = value[name]
        if not (is_normalized(name) and isinstance(row, dict) and row.get("name") == name
                and isinstance(row.get("display_name"), str)
                and normalize(row["display_name"]) == name):  # a spelling of it, never another
            raise ValueError(f"entry {name!r:.{SHOWN}} is not a project summary")
        rows.append(row)
    return rows


def _status_rows(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise ValueError("not a list of component rows")
    return value


_RENDER_ERRORS = (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError)


class IndexApp:
    """Request handlers over one index directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Paths as strings, built by concatenation: pathlib costs more than the lstat.
        self.root = str(settings.index_dir)
        self._records_dir = f"{self.root}/records/"
        self.tree = _Tree(settings.index_dir)
        self._records = _StatCache()
        self._json = _StatCache()
        self._derived = _StatCache()
        self._watched = _StatCache()
        self._digests = _StatCache()
        self._bytes = _VerifiedBytes(VERIFIED_BYTES_BUDGET)

    # -- records ---------------------------------------------------------------
    def record(self, project: str) -> ProjectRecord | None:
        loaded = self._loaded(project)
        return loaded.record if loaded else None

    def _loaded(self, project: str) -> _Loaded | None:
        """The project's record (parsed once per change); None if it has none.

        Raises DamagedRecord when the record is there but unreadable or malformed.
        """
        path = f"{self._records_dir}{project}.json"
        st = _lstat(path)
        if st is None:
            return None
        cached = self._records.get(path, _key(st))
        if cached is None:
            cached = self._load(project, path, _key(st))
            if cached is None:  # removed since the stat
                return None
        if isinstance(cached, _Damage):
            raise DamagedRecord(f"the record of {project}: {cached.reason}")
        return cached  # type: ignore[no-any-return]

    def _load(self, project: str, path: str, key: StatKey) -> _Loaded | _Damage | None:
        value = self._parse(path, lambda v: _project_record(project, v))
        if value is None or isinstance(value, _Damage):
            if value is not None:
                self._records.put(path, key, value)  # logged once per change, not per request
            return value
        found_key, (record, served) = value
        loaded = _Loaded(found_key, record, served)
        self._records.put(path, found_key, loaded)
        return loaded

    def _parse(self, path: str,
               shape: Callable[[Any], Any]) -> tuple[StatKey, Any] | _Damage | None:
        """A JSON record read from the tree and checked by ``shape``, with the stat key of
        what was read; a _Damage (logged here; callers cache it) if it cannot be; None if
        it is gone."""
        try:
            found = self.tree.read(path, MAX_RECORD)
            if found is None:
                return None
            data, found_key = found
            return found_key, shape(json.loads(data))
        except (_Refused, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            damage = _Damage(str(exc)[:300] or type(exc).__name__)
        log.error("REFUSED record %s: %s; nothing derived from it is served "
                  "(run `factory index check`)", os.path.basename(path), damage.reason)
        return damage

    def _data(self, name: str, shape: Callable[[Any], Any]) -> tuple[StatKey, Any] | None:
        """records/<name> read and shaped once per change; None if absent."""
        path = self._records_dir + name
        st = _lstat(path)
        if st is None:
            return None
        cached = self._json.get(path, _key(st))
        if cached is None:
            cached = self._parse(path, shape)
            if cached is None:
                return None
            self._json.put(path, _key(st) if isinstance(cached, _Damage) else cached[0], cached)
        if isinstance(cached, _Damage):
            raise DamagedRecord(f"{name}: {cached.reason}")
        return cached  # type: ignore[no-any-return]

    # -- pages -------------------------------------------------------------------
    def _render(self, loaded: _Loaded, kind: str) -> Page:
        """One of the project's pages as its record gives it (rendered once per record)."""
        found = loaded.pages.get(kind)
        if found is None:
            base = self.settings.index_url
            renderers = {"json": pages.project_json, "html": pages.project_html,
                         "human": human.render_project}
            try:
                body = renderers[kind](loaded.record, base).encode()
                found = (body, _etag(body))
            except _RENDER_ERRORS as exc:
                found = _Damage(f"cannot render its {kind} page: {exc}"[:300])
                log.error("REFUSED record of %s: %s", loaded.record.name, found.reason)
            loaded.pages[kind] = found
        if isinstance(found, _Damage):
            raise DamagedRecord(f"the record of {loaded.record.name}: {found.reason}")
        return found

    def project_page(self, loaded: _Loaded, as_json: bool) -> Page:
        """The project's Simple API page as its record gives it."""
        project = loaded.record.name
        found = self._render(loaded, "json" if as_json else "html")
        disk = f"simple/{project}/index.json" if as_json else f"simple/{project}/index.html"
        self._watch(disk, loaded.key, found[0], project)
        return found

    def _watch(self, rel: str, source: StatKey, expected: bytes, what: str) -> None:
        """Log (once per change) a static copy that differs from what the records give.

        The copy is never sent; this only tells the operator that what nginx would
        serve from the tree is not what the records say.
        """
        disk = f"{self.root}/{rel}"
        st = _lstat(disk)
        if st is None:
            return  # not written (yet): nothing to compare
        key = (_key(st), source)
        if self._watched.get(disk, key) is not None:
            return
        self._watched.put(disk, key, True)
        if st.st_size == len(expected) and stat.S_ISREG(st.st_mode):
            try:
                found = self.tree.read(disk, len(expected))
            except _Refused:
                found = None
            if found is not None and found[0] == expected:
                return
        if st.st_mtime_ns < source[1]:
            log.info("page %s is older than the record of %s (a publish is under way)", rel, what)
        else:
            log.error("REFUSED page %s: it differs from the published record of %s; serving the "
                      "page the record gives (run the index regeneration to rewrite it)", rel, what)

    async def simple_root(self, request: Request) -> Response:
        kind = _kind(request)
        if kind is None:
            return _not_acceptable()
        as_json = kind == pages.JSON_TYPE
        catalog = self._data("_catalog.json", _catalog)
        if catalog is None:  # nothing published yet: an empty, valid list
            body = (pages.project_list_json([]) if as_json else pages.project_list_html([]))
            return _page_response(request, (body.encode(), _etag(body.encode())), kind)
        key, rows = catalog
        name = ("root", as_json)
        found = self._derived.get(name, key)
        if found is None:
            names = [(row["name"], row["display_name"]) for row in rows]
            text = pages.project_list_json(names) if as_json else pages.project_list_html(names)
            found = (text.encode(), _etag(text.encode()))
            self._derived.put(name, key, found)
        self._watch("simple/index.json" if as_json else "simple/index.html", key, found[0],
                    "the project list")
        return _page_response(request, found, kind)

    async def simple_project(self, request: Request) -> Response:
        name = request.path_params["project"]
        project = _project(name)
        loaded = self._loaded(project) if project else None
        if project is None or loaded is None:
            return _unknown(name)
        if name != project:
            return _redirect(request, f"/simple/{project}/")
        kind = _kind(request)
        if kind is None:
            return _not_acceptable()
        return _page_response(request, self.project_page(loaded, kind == pages.JSON_TYPE), kind)

    async def home(self, request: Request) -> Response:
        catalog = self._data("_catalog.json", _catalog)
        status = self._data(STATUS_FILE, _status_rows)
        key = (catalog[0] if catalog else None, status[0] if status else None)
        found = self._derived.get("home", key)
        if found is None:
            found = self._render_home(catalog[1] if catalog else [], status[1] if status else [],
                                      [k for k in key if k is not None])
            self._derived.put("home", key, found)
        return _page_response(request, found, "text/html")

    def _render_home(self, rows: list[dict[str, Any]], status: list[dict[str, Any]],
                     keys: list[StatKey]) -> Page:
        # "Generated": when the newest record behind the page was written.
        generated = (datetime.fromtimestamp(max(k[1] for k in keys) / 1e9, UTC)
                     .strftime("%Y-%m-%d %H:%M:%S UTC") if keys else "now")
        try:
            body = human.render_home(rows, self.settings.index_url, generated, status).encode()
        except _RENDER_ERRORS as exc:
            log.error("REFUSED home page: the catalog or status record does not render: %s", exc)
            raise DamagedRecord(f"the catalog or the status record: {exc}"[:300]) from None
        return body, _etag(body)

    async def human_project(self, request: Request) -> Response:
        name = request.path_params["project"]
        project = _project(name)
        loaded = self._loaded(project) if project else None
        if project is None or loaded is None:
            return _unknown(name)
        if name != project:
            return _redirect(request, f"/project/{project}/")
        found = self._render(loaded, "human")
        self._watch(f"project/{project}/index.html", loaded.key, found[0], project)
        return _page_response(request, found, "text/html")

    async def add_slash(self, request: Request) -> Response:
        """/simple/NAME -> /simple/NAME/ (relative: the Host header is not echoed)."""
        return _redirect(request, quote(request.scope["path"], safe="/") + "/")

    # -- files ---------------------------------------------------------------
    async def files(self, request: Request) -> Response:
        return await self._recorded(request, "files")

    async def sources(self, request: Request) -> Response:
        return await self._recorded(request, "sources")

    async def _recorded(self, request: Request, area: str) -> Response:
        project, rest = request.path_params["project"], request.path_params["path"]
        if not _plausible(project):
            return _not_found()
        loaded = self._loaded(project)
        rel = f"{area}/{project}/{rest}"
        stored = loaded.served.get(rel) if loaded else None
        if loaded is None or stored is None:
            if loaded is not None and rest.rstrip("/").endswith(".in-toto"):
                return _listing(loaded.served, rel.rstrip("/"))
            log.info("not found: %.300s", rel)
            return _not_found()
        if loaded.record.status == "quarantined":
            log.warning("refused %s: project %s is quarantined", rel, project)
            return PlainTextResponse(f"{project} is quarantined\n", status_code=410)
        return await self._send(request, stored, content_type(rest))

    async def _send(self, request: Request, stored: StoredFile, media_type: str,
                    cache: str = FILE_CACHE) -> Response:
        """The recorded file, if its bytes are the recorded ones; else a refusal (500)."""
        path = f"{self.root}/{stored.path}"
        etag = f'"{stored.sha256}"'
        headers = {"ETag": etag, "Cache-Control": cache}
        if stored.size <= SMALL_FILE:
            body = self._small(path, stored)
            if body is None:
                return _refused(stored)
            if _etag_matches(request, etag):
                return Response(status_code=304, headers=headers)
            return Response(body, media_type=media_type, headers=headers)
        st = await self.intact(path, stored)
        if st is None:
            return _refused(stored)
        if _etag_matches(request, etag):
            return Response(status_code=304, headers=headers)
        return _PinnedFile(path, st, media_type=media_type, headers=headers)

    async def intact(self, path: str, stored: StoredFile) -> os.stat_result | None:
        """The file's stat if it is a regular file whose bytes hash to the recorded digest."""
        st = _lstat(path)
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != stored.size:
            return None
        key = _key(st)
        digest = self._digests.get(path, key)
        if digest is None:
            digest = await run_in_threadpool(self.tree.hash, path, key)
            if digest is None:
                return None
            self._digests.put(path, key, digest)
        return st if digest == stored.sha256 else None

    def _small(self, path: str, stored: StoredFile) -> bytes | None:
        """The file's bytes if they are the published ones (read and checked once per change).

        Read in the event loop: at most 256 KiB, once, costs less than a hop to a thread.
        """
        st = _lstat(path)
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != stored.size:
            return None
        body = self._bytes.get(path, _key(st))
        if body is None:
            try:
                found = self.tree.read(path, stored.size)
            except _Refused:
                return None
            if found is None:
                return None
            body, key = found
            if len(body) != stored.size or hashlib.sha256(body).hexdigest() != stored.sha256:
                return None
            self._bytes.put(path, key, body)
        return body

    async def integrity(self, request: Request) -> Response:
        params = request.path_params
        project = _project(params["project"])
        record = self.record(project) if project else None
        entry = record.find(params["filename"]) if record else None
        if record is None or entry is None or not _same(entry.version, params["version"]):
            return PlainTextResponse("no such file\n", status_code=404)
        group = entry.sidecars.get("provenance")
        if not group:
            return PlainTextResponse("no provenance for this file\n", status_code=404)
        if record.status == "quarantined":
            return PlainTextResponse(f"{project} is quarantined\n", status_code=410)
        return await self._send(request, group[0], INTEGRITY_TYPE)

    # -- trust material --------------------------------------------------------
    def _trust(self) -> tuple[StatKey, dict[str, StoredFile]] | None:
        return self._data(TRUST_MANIFEST, _trust_manifest)

    async def trust_index(self, request: Request) -> Response:
        manifest = self._trust()
        key = manifest[0] if manifest else None
        found = self._derived.get("trust", key)
        if found is None:
            files = manifest[1] if manifest else {}
            listing = [{"name": name, "sha256": files[name].sha256, "size": files[name].size}
                       for name in sorted(files)]
            body = json.dumps({"files": listing}).encode()
            found = (body, _etag(body))
            self._derived.put("trust", key, found)
        return _page_response(request, found, "application/json")

    async def trust_file(self, request: Request) -> Response:
        """A trust file the manifest names, with the bytes it records; nothing else."""
        manifest = self._trust()
        stored = manifest[1].get(request.path_params["path"]) if manifest else None
        if stored is None:
            return _not_found()
        # Public material is small and never a private key, whatever the manifest says
        # (a key hard-linked or copied into trust/ and named there is refused).
        body = self._small(f"{self.root}/{stored.path}", stored) \
            if stored.size <= min(TRUST_MAX_BYTES, SMALL_FILE) else None
        if body is None or PRIVATE_KEY_MARK in body:
            return _refused(stored)
        return await self._send(request, stored, content_type(stored.path), PAGE_CACHE)


class _PinnedFile(FileResponse):
    """Streams the file that was verified, and only it: opened without following a
    symbolic link, and only if its stat key is still the verified one (a file swapped
    since is not sent). Range requests are served by Starlette's FileResponse."""

    def __init__(self, path: str, st: os.stat_result, **kwargs: Any) -> None:
        super().__init__(path, stat_result=st, **kwargs)
        self._verified = _key(st)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions") or {}
        if "http.response.pathsend" in extensions:  # the server would open the name itself
            extensions = {k: v for k, v in extensions.items() if k != "http.response.pathsend"}
            scope = {**scope, "extensions": extensions}
        await super().__call__(scope, receive, send)

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        fd = await anyio.to_thread.run_sync(_open_pinned, self.path, self._verified)
        file = anyio.AsyncFile(os.fdopen(fd, "rb"))
        try:
            yield file
        finally:
            with anyio.CancelScope(shield=True):
                await file.aclose()


def _open_pinned(path: str | os.PathLike[str], key: StatKey) -> int:
    fd = os.open(path, _OPEN_FLAGS)
    if _key(os.fstat(fd)) != key:
        os.close(fd)
        raise OSError(f"{path} changed after its digest was checked; not sent")
    return fd


class _Screen:
    """ASGI middleware: refuses, before routing, requests no published URL can match.

    Oversize input is refused with its own status (414, 431), never a 500; a path
    with what could address a file outside the index (dot or empty segments, a
    backslash, a control character, a percent-encoded separator or NUL) is a 404
    whatever route it would reach.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = _screen(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _screen(scope: Scope) -> Response | None:
    path: str = scope["path"]
    raw: bytes = scope.get("raw_path") or path.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_PATH_BYTES or len(path) > MAX_PATH_BYTES:
        return PlainTextResponse("request path too long\n", status_code=414)
    if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
        return PlainTextResponse("query string too long\n", status_code=414)
    headers = scope["headers"]
    if len(headers) > MAX_HEADERS or sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES:
        return PlainTextResponse("request headers too large\n", status_code=431)
    if _UNSAFE_PATH.search(path) or _ENCODED_SEPARATOR.search(raw):
        log.info("refused path %r", path[:300])
        return _not_found()
    return None


def _listing(served: dict[str, StoredFile], rel: str) -> Response:
    inside = sorted(p for p in served if p.startswith(rel + "/"))
    if not inside:
        return _not_found()
    return Response(json.dumps({"files": [p[len(rel) + 1 :] for p in inside]}),
                    media_type="application/json")


def _not_found() -> Response:
    return PlainTextResponse("not found\n", status_code=404)


def _refused(stored: StoredFile) -> Response:
    log.error("REFUSED %s: missing, not a regular file inside the index, or its bytes no "
              "longer match the published sha256 %s", stored.path, stored.sha256)
    return PlainTextResponse(
        "this file no longer matches its published digest; refused\n", status_code=500
    )


async def _damaged(request: Request, exc: Exception) -> Response:
    log.warning("503 for %s: %s", request.scope["path"][:300], exc)
    return PlainTextResponse(
        "this part of the index is damaged on the server and is not served; the operator "
        "is told (log)\n", status_code=503)


def _kind(request: Request) -> str | None:
    override = request.query_params.get("format")
    if override:  # an unescaped "+" in a typed URL arrives as a space
        override = override.replace(" ", "+")
    return negotiate(override if override else request.headers.get("accept"))


def _page_response(request: Request, found: Page, kind: str) -> Response:
    body, etag = found
    media = kind if kind != "text/html" else "text/html; charset=utf-8"
    headers = {"ETag": etag, "Cache-Control": PAGE_CACHE, "Vary": "Accept"}
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media, headers=headers)


def _etag_matches(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    if not wanted:
        return False
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    return etag in tags or "*" in tags


def _unknown(name: str) -> Response:
    # Never redirect or fall back to a public index: that is dependency confusion.
    shown = normalize(name[:SHOWN])
    log.warning("unknown project requested: %r (normalized %r) -> 404", name[:SHOWN], shown)
    return PlainTextResponse(
        f"{shown} is not an approved component of this index\n", status_code=404
    )


def _project(name: str) -> str | None:
    """The normalized name, if it is one a project can have (so no lookup can fail oddly)."""
    if len(name) > 200:
        return None
    project = normalize(name)
    return project if _plausible(project) else None


def _plausible(project: str) -> bool:
    return len(project) <= 200 and is_normalized(project)


def _redirect(request: Request, path: str) -> Response:
    # Relative, and the query as the client sent it (its raw bytes; no Host header echoed).
    query = request.scope.get("query_string", b"").decode("latin-1")
    return RedirectResponse(path + (f"?{query}" if query else ""), status_code=301)


def _not_acceptable() -> Response:
    accepted = ", ".join(sorted(set(_ACCEPTED.values())))
    return PlainTextResponse(f"not acceptable; this index serves {accepted}\n", status_code=406)


def _same(a: str, b: str) -> bool:
    return a == b or normalize(a) == normalize(b)


def create_app(settings: Settings) -> Starlette:
    index = IndexApp(settings)
    routes = [
        Route("/", index.home),
        Route("/simple/", index.simple_root),
        Route("/simple", index.add_slash),
        Route("/simple/{project}/", index.simple_project),
        Route("/simple/{project}", index.add_slash),
        Route("/project/{project}/", index.human_project),
        Route("/project/{project}", index.add_slash),
        Route("/files/{project}/{path:path}", index.files),
        Route("/sources/{project}/{path:path}", index.sources),
        Route("/integrity/{project}/{version}/{filename}/provenance", index.integrity),
        Route("/.well-known/factory/", index.trust_index),
        Route("/.well-known/factory", index.add_slash),
        Route("/.well-known/factory/{path:path}", index.trust_file),
    ]
    app = Starlette(routes=routes, exception_handlers={DamagedRecord: _damaged})
    # Trailing-slash redirects are the routes above: Starlette's own would echo the
    # Host header into an absolute Location.
    app.router.redirect_slashes = False
    app.add_middleware(_Screen)
    app.state.index = index
    return app


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the index server until interrupted (binds 127.0.0.1 by default)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=host or settings.serve_host,
        port=port or settings.serve_port,
        log_level="info",
        server_header=False,
    )
