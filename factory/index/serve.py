"""The index over HTTP: a Starlette ASGI app, run by uvicorn.

It serves the static tree that publishing writes, and adds what a plain web
server cannot: content negotiation by q-value (PEP 691), redirects to
normalized names, a 404 for any unknown project (never a fallback to a public
index), the Integrity API (PEP 740), and a digest check of every file against
its published record before it is sent (cached by size, mtime, inode and ctime,
so a file is hashed once per change, not on every request). Small files (core
metadata, most wheels) are kept in memory once verified, within a byte budget,
so a repeat request costs one stat: no read, no hash, no hop to a thread.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from factory.atomic import sha256_file
from factory.config import Settings
from factory.index import human, pages
from factory.index.records import (
    Layout,
    ProjectRecord,
    StoredFile,
    is_normalized,
    load_record,
    normalize,
)

log = logging.getLogger("factory.index.serve")

INTEGRITY_TYPE = "application/vnd.pypi.integrity.v1+json"
PAGE_CACHE = "no-cache"  # always revalidate (cheap with the ETag): yanks show at once
FILE_CACHE = "public, max-age=31536000, immutable"
SMALL_FILE = 256 * 1024  # sent from memory; larger files stream (with Range support)
VERIFIED_BYTES_BUDGET = 64 * 1024 * 1024  # small files kept in memory once verified

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


@dataclass
class _Cached:
    key: StatKey
    value: Any


class _StatCache:
    """Values derived from a file, recomputed only when its stat changes."""

    def __init__(self) -> None:
        self._items: dict[Path, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, path: Path, key: StatKey) -> Any | None:
        with self._lock:
            hit = self._items.get(path)
        return hit.value if hit and hit.key == key else None

    def put(self, path: Path, key: StatKey, value: Any) -> None:
        with self._lock:
            self._items[path] = _Cached(key, value)


class _VerifiedBytes:
    """Small files whose bytes matched their published digest, by path and stat key;
    the least recently used go first once the budget is spent."""

    def __init__(self, budget: int) -> None:
        self._items: OrderedDict[Path, tuple[StatKey, bytes]] = OrderedDict()
        self._size = 0
        self._budget = budget
        self._lock = threading.Lock()

    def get(self, path: Path, key: StatKey) -> bytes | None:
        with self._lock:
            hit = self._items.get(path)
            if hit is None or hit[0] != key:
                return None
            self._items.move_to_end(path)
            return hit[1]

    def put(self, path: Path, key: StatKey, body: bytes) -> None:
        with self._lock:
            old = self._items.pop(path, None)
            self._size -= len(old[1]) if old else 0
            self._items[path] = (key, body)
            self._size += len(body)
            while self._size > self._budget:
                _, (_, dropped) = self._items.popitem(last=False)
                self._size -= len(dropped)


@dataclass(frozen=True)
class _Loaded:
    record: ProjectRecord
    served: dict[str, StoredFile]  # built once per record, not on every request


def _stat_key(path: Path) -> StatKey | None:
    try:
        st = path.stat()
    except OSError:  # missing, or a name no file can have (too long, ...): not there
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class IndexApp:
    """Request handlers over one index directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layout = Layout(settings.index_dir)
        self._records = _StatCache()
        self._digests = _StatCache()
        self._pages = _StatCache()
        self._rendered_pages = _StatCache()
        self._bytes = _VerifiedBytes(VERIFIED_BYTES_BUDGET)

    # -- helpers -------------------------------------------------------------
    def record(self, project: str) -> ProjectRecord | None:
        loaded = self._loaded(project)
        return loaded.record if loaded else None

    def _loaded(self, project: str) -> _Loaded | None:
        path = self.layout.record(project)
        key = _stat_key(path)
        if key is None:
            return None
        cached = self._records.get(path, key)
        if cached is None:
            record = load_record(self.layout, project)
            if record is None:  # removed since the stat
                return None
            cached = _Loaded(record, record.served())
            self._records.put(path, key, cached)
        return cached  # type: ignore[no-any-return]

    def page(self, path: Path) -> tuple[bytes, str] | None:
        key = _stat_key(path)
        if key is None:
            return None
        cached = self._pages.get(path, key)
        if cached is None:
            body = path.read_bytes()
            cached = (body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
            self._pages.put(path, key, cached)
        return cached  # type: ignore[no-any-return]

    async def intact(self, path: Path, stored: StoredFile) -> bool:
        key = _stat_key(path)
        if key is None or key[0] != stored.size:
            return False
        digest = self._digests.get(path, key)
        if digest is None:
            digest = await run_in_threadpool(sha256_file, path)
            self._digests.put(path, key, digest)
        return bool(digest == stored.sha256)

    # -- pages ---------------------------------------------------------------
    async def simple_root(self, request: Request) -> Response:
        kind = _kind(request)
        if kind is None:
            return _not_acceptable()
        name = "index.json" if kind == pages.JSON_TYPE else "index.html"
        found = self.page(self.layout.simple / name)
        if found is None:  # nothing published yet: an empty, valid list
            body = (
                pages.project_list_json([])
                if kind == pages.JSON_TYPE
                else (pages.project_list_html([]))
            )
            found = (body.encode(), f'"{hashlib.sha256(body.encode()).hexdigest()[:32]}"')
        return _page_response(request, found, kind)

    async def simple_project(self, request: Request) -> Response:
        name = request.path_params["project"]
        project = normalize(name)
        folder = self.layout.simple_project(project)
        if not _plausible(project) or not (folder / "index.json").is_file():
            return _unknown(request, name, project)
        if name != project:
            return _redirect(request, f"/simple/{project}/")
        kind = _kind(request)
        if kind is None:
            return _not_acceptable()
        found = self.project_page(project, kind == pages.JSON_TYPE)
        if found is None:
            return _unknown(request, name, project)
        return _page_response(request, found, kind)

    def project_page(self, project: str, as_json: bool) -> tuple[bytes, str] | None:
        """The project's page as on disk, if it is what its record says; else the record's.

        Pages are derived from records: a page that differs (replaced to point at
        other files or hashes, or un-yank something) is never sent. A page with no
        record behind it is no project at all.
        """
        record = self.record(project)
        if record is None:
            return None
        path = self.layout.simple_project(project) / ("index.json" if as_json else "index.html")
        found = self.page(path)
        expected = self._rendered(project, record, as_json)
        if found is not None and found[0] == expected:
            return found
        page_key, record_key = _stat_key(path), _stat_key(self.layout.record(project))
        if page_key and record_key and page_key[1] < record_key[1]:
            log.info("page %s is older than its record (a publish is under way)", path.name)
        else:
            log.error("REFUSED page %s: it differs from the published record of %s; serving the "
                      "page the record gives (run the index regeneration to rewrite it)",
                      path.relative_to(self.layout.root), project)
        return expected, f'"{hashlib.sha256(expected).hexdigest()[:32]}"'

    def _rendered(self, project: str, record: ProjectRecord, as_json: bool) -> bytes:
        path = self.layout.record(project)
        key = _stat_key(path) or (0, 0, 0, 0)
        cached = self._rendered_pages.get(path, key)
        if cached is None:
            base = self.settings.index_url
            cached = (pages.project_json(record, base).encode(),
                      pages.project_html(record, base).encode())
            self._rendered_pages.put(path, key, cached)
        return bytes(cached[0] if as_json else cached[1])

    async def home(self, request: Request) -> Response:
        found = self.page(self.layout.root / "index.html")
        if found is None:
            body = human.render_home([], self.settings.index_url, "now").encode()
            found = (body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
        return _page_response(request, found, "text/html")

    async def human_project(self, request: Request) -> Response:
        name = request.path_params["project"]
        project = normalize(name)
        if not _plausible(project):
            return _unknown(request, name, project)
        found = self.page(self.layout.human_project(project) / "index.html")
        if found is None:
            return _unknown(request, name, project)
        if name != project:
            return _redirect(request, f"/project/{project}/")
        return _page_response(request, found, "text/html")

    # -- files ---------------------------------------------------------------
    async def files(self, request: Request) -> Response:
        return await self._recorded(request, "files")

    async def sources(self, request: Request) -> Response:
        return await self._recorded(request, "sources")

    async def _recorded(self, request: Request, area: str) -> Response:
        project, rest = request.path_params["project"], request.path_params["path"]
        if not is_normalized(project) or ".." in rest.split("/"):
            return PlainTextResponse("not found\n", status_code=404)
        loaded = self._loaded(project)
        record = loaded.record if loaded else None
        rel = f"{area}/{project}/{rest}"
        stored = loaded.served.get(rel) if loaded else None
        if record is None or stored is None:
            if loaded is not None and rest.rstrip("/").endswith(".in-toto"):
                return _listing(loaded.served, rel.rstrip("/"))
            log.info("not found: %s", rel)
            return PlainTextResponse("not found\n", status_code=404)
        if record.status == "quarantined":
            log.warning("refused %s: project %s is quarantined", rel, project)
            return PlainTextResponse(f"{project} is quarantined\n", status_code=410)
        return await self._send(request, rel, stored, content_type(rest))

    async def _send(
        self, request: Request, rel: str, stored: StoredFile, media_type: str
    ) -> Response:
        path = self.layout.root / rel
        etag = f'"{stored.sha256}"'
        headers = {"ETag": etag, "Cache-Control": FILE_CACHE}
        if stored.size <= SMALL_FILE:
            body = self._small(path, stored)
            if body is None:
                return _refused(rel, stored)
            if _etag_matches(request, etag):
                return Response(status_code=304, headers=headers)
            return Response(body, media_type=media_type, headers=headers)
        if not await self.intact(path, stored):
            return _refused(rel, stored)
        if _etag_matches(request, etag):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type=media_type, headers=headers)

    def _small(self, path: Path, stored: StoredFile) -> bytes | None:
        """The file's bytes if they are the published ones (read and checked once per change).

        Read in the event loop: at most 256 KiB, once, costs less than a hop to a thread.
        """
        key = _stat_key(path)
        if key is None or key[0] != stored.size:
            return None
        body = self._bytes.get(path, key)
        if body is None:
            try:
                body = path.read_bytes()
            except OSError:
                return None
            if len(body) != stored.size or hashlib.sha256(body).hexdigest() != stored.sha256:
                return None
            self._bytes.put(path, key, body)
        return body

    async def integrity(self, request: Request) -> Response:
        params = request.path_params
        project = normalize(params["project"])
        record = self.record(project)
        entry = record.find(params["filename"]) if record else None
        if record is None or entry is None or not _same(entry.version, params["version"]):
            return PlainTextResponse("no such file\n", status_code=404)
        group = entry.sidecars.get("provenance")
        if not group:
            return PlainTextResponse("no provenance for this file\n", status_code=404)
        return await self._send(request, group[0].path, group[0], INTEGRITY_TYPE)

    # -- trust material --------------------------------------------------------
    async def trust_index(self, request: Request) -> Response:
        trust = self.layout.trust
        items = sorted(p for p in trust.rglob("*") if p.is_file()) if trust.is_dir() else []
        listing = [
            {
                "name": p.relative_to(trust).as_posix(),
                "sha256": sha256_file(p),
                "size": p.stat().st_size,
            }
            for p in items
            if not p.name.startswith(".")
        ]
        return JSONResponse({"files": listing}, headers={"Cache-Control": PAGE_CACHE})

    async def trust_file(self, request: Request) -> Response:
        rest = request.path_params["path"]
        path = self.layout.trust / rest
        if ".." in rest.split("/") or rest.startswith(".") or not path.is_file():
            return PlainTextResponse("not found\n", status_code=404)
        found = self.page(path)
        assert found is not None
        return _page_response(request, found, content_type(rest))


def _listing(served: dict[str, StoredFile], rel: str) -> Response:
    inside = sorted(p for p in served if p.startswith(rel + "/"))
    if not inside:
        return PlainTextResponse("not found\n", status_code=404)
    return JSONResponse({"files": [p[len(rel) + 1 :] for p in inside]})


def _refused(rel: str, stored: StoredFile) -> Response:
    log.error("REFUSED %s: missing, or its bytes no longer match the published sha256 %s",
              rel, stored.sha256)
    return PlainTextResponse(
        "this file no longer matches its published digest; refused\n", status_code=500
    )


def _kind(request: Request) -> str | None:
    override = request.query_params.get("format")
    if override:  # an unescaped "+" in a typed URL arrives as a space
        override = override.replace(" ", "+")
    return negotiate(override if override else request.headers.get("accept"))


def _page_response(request: Request, found: tuple[bytes, str], kind: str) -> Response:
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


def _unknown(request: Request, name: str, project: str) -> Response:
    # Never redirect or fall back to a public index: that is dependency confusion.
    log.warning("unknown project requested: %r (normalized %r) -> 404", name, project)
    return PlainTextResponse(
        f"{project} is not an approved component of this index\n", status_code=404
    )


def _plausible(project: str) -> bool:
    """A normalized name a project directory can have (so no lookup can fail oddly)."""
    return is_normalized(project) and len(project) <= 200


def _redirect(request: Request, path: str) -> Response:
    query = request.url.query
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
        Route("/simple/{project}/", index.simple_project),
        Route("/project/{project}/", index.human_project),
        Route("/files/{project}/{path:path}", index.files),
        Route("/sources/{project}/{path:path}", index.sources),
        Route("/integrity/{project}/{version}/{filename}/provenance", index.integrity),
        Route("/.well-known/factory/", index.trust_index),
        Route("/.well-known/factory/{path:path}", index.trust_file),
    ]
    app = Starlette(routes=routes)
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
