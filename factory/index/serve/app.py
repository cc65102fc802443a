"""The request handlers: pages rendered from records, files sent only as recorded.

Every page is rendered from the published records and cached by the record's
stat key; the static copy publishing wrote beside it is only compared with it
(a copy that differs is logged, never sent). Every file is found by its exact
name in a record (trust material: in the trust manifest) and sent only if its
bytes match the recorded digest. A record that is damaged answers 503 for what
is derived from it, and only that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from factory.index import about, human, pages
from factory.index.records import (
    PRIVATE_KEY_MARK,
    TRUST_MANIFEST,
    TRUST_MAX_BYTES,
    ProjectRecord,
    Sidecars,
    StoredFile,
    is_normalized,
    normalize,
)
from factory.index.regen import STATUS_FILE
from factory.index.serve.explain import Explainer
from factory.index.serve.files import (
    PinnedFile,
    Refused,
    StatCache,
    StatKey,
    Tree,
    VerifiedBytes,
    lstat,
    stat_key,
)
from factory.index.serve.protocol import (
    PAGE_CACHE,
    Page,
    content_type,
    etag,
    etag_matches,
    not_acceptable,
    not_found,
    page_response,
    redirect,
    refused,
    requested_kind,
)
from factory.index.validation import catalog_rows, record_from, status_rows, trust_manifest
from factory.sign.tiles import (
    MAX_BUNDLE_BYTES,
    MAX_CHECKPOINT_BYTES,
    MAX_TIMESTAMPS_BYTES,
    TILE_WIDTH,
)
from factory.sign.tiles import PREFIX as LOG_PREFIX
from factory.sign.tiles import parse_path as parse_log_path
from factory.sign.tuf_paths import MAX_METADATA_BYTES as TUF_MAX_BYTES
from factory.sign.tuf_paths import PREFIX as TUF_PREFIX
from factory.sign.tuf_paths import is_repository_path, is_target_path
from factory.why import releases_of

if TYPE_CHECKING:
    from factory.index.changes import Index

log = logging.getLogger("factory.index.serve")

INTEGRITY_TYPE = "application/vnd.pypi.integrity.v1+json"
FILE_CACHE = "public, max-age=31536000, immutable"
SMALL_FILE = 256 * 1024  # sent from memory; larger files stream (with Range support)
VERIFIED_BYTES_BUDGET = 64 * 1024 * 1024  # small files kept in memory once verified
MAX_RECORD = 64 * 1024 * 1024  # a record, the catalog, the status or the trust manifest
LOG_LIMITS = {"checkpoint": MAX_CHECKPOINT_BYTES, "checkpoints": MAX_CHECKPOINT_BYTES,
              "tile": TILE_WIDTH * 32, "entries": MAX_BUNDLE_BYTES,
              "timestamps": MAX_TIMESTAMPS_BYTES}
_RENDER_ERRORS = (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError)


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


def _project_record(project: str, value: Any) -> tuple[ProjectRecord, dict[str, StoredFile]]:
    # The same rules as `index check` and `verify` (factory.index.validation): a record
    # they call corrupt is never served as sound (a wheel of another project, a lying
    # version or name, a path out of the project's directories...).
    record = record_from(value, project)
    return record, record.served()


class IndexApp:
    """Request handlers over one index directory."""

    def __init__(self, index: Index) -> None:
        self.base_url = index.base_url
        # Paths as strings, built by concatenation: pathlib costs more than the lstat.
        self.root = str(index.root)
        self._records_dir = f"{self.root}/records/"
        self.tree = Tree(index.root)
        self._records = StatCache()
        self._json = StatCache()
        self._derived = StatCache()
        self._watched = StatCache()
        self._digests = StatCache()
        self._bytes = VerifiedBytes(VERIFIED_BYTES_BUDGET)
        # The 404 of an unknown name, and the knowledge of the policy API.
        self.explain = Explainer(self._data, DamagedRecord,
                                 lambda project: releases_of(self.record(project)))

    # -- records ---------------------------------------------------------------
    def record(self, project: str) -> ProjectRecord | None:
        loaded = self._loaded(project)
        return loaded.record if loaded else None

    def _loaded(self, project: str) -> _Loaded | None:
        """The project's record (parsed once per change); None if it has none.

        Raises DamagedRecord when the record is there but unreadable or malformed.
        """
        path = f"{self._records_dir}{project}.json"
        st = lstat(path)
        if st is None:
            return None
        cached = self._records.get(path, stat_key(st))
        if cached is None:
            cached = self._load(project, path, stat_key(st))
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
        except (Refused, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            damage = _Damage(str(exc)[:300] or type(exc).__name__)
        log.error("REFUSED record %s: %s; nothing derived from it is served "
                  "(run `factory index check`)", os.path.basename(path), damage.reason)
        return damage

    def _data(self, name: str, shape: Callable[[Any], Any]) -> tuple[StatKey, Any] | None:
        """records/<name> read and shaped once per change; None if absent."""
        path = self._records_dir + name
        st = lstat(path)
        if st is None:
            return None
        cached = self._json.get(path, stat_key(st))
        if cached is None:
            cached = self._parse(path, shape)
            if cached is None:
                return None
            self._json.put(path, stat_key(st) if isinstance(cached, _Damage) else cached[0],
                           cached)
        if isinstance(cached, _Damage):
            raise DamagedRecord(f"{name}: {cached.reason}")
        return cached  # type: ignore[no-any-return]

    # -- pages -------------------------------------------------------------------
    def _render(self, loaded: _Loaded, kind: str) -> Page:
        """One of the project's pages as its record gives it (rendered once per record)."""
        found = loaded.pages.get(kind)
        if found is None:
            renderers = {"json": pages.project_json, "html": pages.project_html}
            try:
                body = renderers[kind](loaded.record, self.base_url).encode()
                found = (body, etag(body))
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
        st = lstat(disk)
        if st is None:
            return  # not written (yet): nothing to compare
        key = (stat_key(st), source)
        if self._watched.get(disk, key) is not None:
            return
        self._watched.put(disk, key, True)
        if st.st_size == len(expected) and stat.S_ISREG(st.st_mode):
            try:
                found = self.tree.read(disk, len(expected))
            except Refused:
                found = None
            if found is not None and found[0] == expected:
                return
        if st.st_mtime_ns < source[1]:
            log.info("page %s is older than the record of %s (a publish is under way)", rel, what)
        else:
            log.error("REFUSED page %s: it differs from the published record of %s; serving the "
                      "page the record gives (run the index regeneration to rewrite it)", rel, what)

    async def simple_root(self, request: Request) -> Response:
        kind = requested_kind(request)
        if kind is None:
            return not_acceptable()
        as_json = kind == pages.JSON_TYPE
        catalog = self._data("_catalog.json", catalog_rows)
        if catalog is None:  # nothing published yet: an empty, valid list
            body = (pages.project_list_json([]) if as_json else pages.project_list_html([]))
            return page_response(request, (body.encode(), etag(body.encode())), kind)
        key, rows = catalog
        name = ("root", as_json)
        found = self._derived.get(name, key)
        if found is None:
            names = [(row["name"], row["display_name"]) for row in rows]
            text = pages.project_list_json(names) if as_json else pages.project_list_html(names)
            found = (text.encode(), etag(text.encode()))
            self._derived.put(name, key, found)
        self._watch("simple/index.json" if as_json else "simple/index.html", key, found[0],
                    "the project list")
        return page_response(request, found, kind)

    def _named(self, request: Request, area: str) -> _Loaded | Response:
        """The record of the project the path names, or the answer when it names none
        (404, saying why: factory.why) or not by its normalized name (a redirect to
        /<area>/<normalized>/). Never a redirect elsewhere, never a fallback."""
        name = request.path_params["project"]
        project = _project(name)
        loaded = self._loaded(project) if project else None
        if project is None or loaded is None:
            return self.explain.not_served(request, name)
        if name != project:
            return redirect(request, f"/{area}/{project}/")
        return loaded

    async def simple_project(self, request: Request) -> Response:
        loaded = self._named(request, "simple")
        if isinstance(loaded, Response):
            return loaded
        kind = requested_kind(request)
        if kind is None:
            return not_acceptable()
        return page_response(request, self.project_page(loaded, kind == pages.JSON_TYPE), kind)

    async def home(self, request: Request) -> Response:
        catalog = self._data("_catalog.json", catalog_rows)
        status = self._data(STATUS_FILE, status_rows)
        key = (catalog[0] if catalog else None, status[0] if status else None)
        found = self._derived.get("home", key)
        if found is None:
            found = self._render_home(catalog[1] if catalog else [], status[1] if status else [],
                                      [k for k in key if k is not None])
            self._derived.put("home", key, found)
        return page_response(request, found, "text/html")

    def _render_home(self, rows: list[dict[str, Any]], status: list[dict[str, Any]],
                     keys: list[StatKey]) -> Page:
        # "Generated": when the newest record behind the page was written.
        generated = (datetime.fromtimestamp(max(k[1] for k in keys) / 1e9, UTC)
                     .strftime("%Y-%m-%d %H:%M:%S UTC") if keys else "now")
        try:
            body = human.render_home(rows, self.base_url, generated, status).encode()
        except _RENDER_ERRORS as exc:
            log.error("REFUSED home page: the catalog or status record does not render: %s", exc)
            raise DamagedRecord(f"the catalog or the status record: {exc}"[:300]) from None
        return body, etag(body)

    async def human_project(self, request: Request) -> Response:
        loaded = self._named(request, "project")
        if isinstance(loaded, Response):
            return loaded
        project = loaded.record.name
        found = self._human(loaded)
        self._watch(f"project/{project}/index.html", loaded.key, found[0], project)
        return page_response(request, found, "text/html")

    def _human(self, loaded: _Loaded) -> Page:
        """The human page: what the record pins is read once per record; which of its
        dependencies have a record is looked up (one lstat each) on every request, and
        the page rendered again when that changes (as a publish rewrites the static one)."""
        record = loaded.record
        facts = self._derived.get(("about", record.name), loaded.key)
        if facts is None:
            facts = about.gather(record, self._read_pinned, lambda name: False)
            self._derived.put(("about", record.name), loaded.key, facts)
        names = about.dependencies_of(facts)
        served = frozenset(n for n in names
                           if n == record.name or lstat(f"{self._records_dir}{n}.json"))
        key = (loaded.key, served)
        found = self._derived.get(("human", record.name), key)
        if found is None:
            try:
                body = human.render_project(record, self.base_url,
                                            about.mark_served(facts, served)).encode()
                found = (body, etag(body))
            except _RENDER_ERRORS as exc:
                found = _Damage(f"cannot render its human page: {exc}"[:300])
                log.error("REFUSED record of %s: %s", record.name, found.reason)
            self._derived.put(("human", record.name), key, found)
        if isinstance(found, _Damage):
            raise DamagedRecord(f"the record of {record.name}: {found.reason}")
        return found  # type: ignore[no-any-return]

    def _read_pinned(self, rel: str, limit: int) -> bytes | None:
        try:
            found = self.tree.read(f"{self.root}/{rel}", limit)
        except Refused:
            return None
        return found[0] if found else None

    async def add_slash(self, request: Request) -> Response:
        """/simple/NAME -> /simple/NAME/ (relative: the Host header is not echoed)."""
        return redirect(request, quote(request.scope["path"], safe="/") + "/")

    # -- files ---------------------------------------------------------------
    async def files(self, request: Request) -> Response:
        return await self._recorded(request, "files")

    async def sources(self, request: Request) -> Response:
        return await self._recorded(request, "sources")

    async def _recorded(self, request: Request, area: str) -> Response:
        project, rest = request.path_params["project"], request.path_params["path"]
        if not _plausible(project):
            return not_found()
        loaded = self._loaded(project)
        rel = f"{area}/{project}/{rest}"
        stored = loaded.served.get(rel) if loaded else None
        if loaded is None or stored is None:
            if loaded is not None and rest.rstrip("/").endswith(Sidecars.suffix("in-toto")):
                return _listing(loaded.served, rel.rstrip("/"))
            log.info("not found: %.300s", rel)
            return not_found()
        if loaded.record.status == "quarantined":
            log.warning("refused %s: project %s is quarantined", rel, project)
            return PlainTextResponse(f"{project} is quarantined\n", status_code=410)
        return await self._send(request, stored, content_type(rest))

    async def _send(self, request: Request, stored: StoredFile, media_type: str,
                    cache: str = FILE_CACHE) -> Response:
        """The recorded file, if its bytes are the recorded ones; else a refusal (500)."""
        path = f"{self.root}/{stored.path}"
        tag = f'"{stored.sha256}"'
        headers = {"ETag": tag, "Cache-Control": cache}
        if stored.size <= SMALL_FILE:
            body = self._small(path, stored)
            if body is None:
                return refused(stored)
            if etag_matches(request, tag):
                return Response(status_code=304, headers=headers)
            return Response(body, media_type=media_type, headers=headers)
        st = await self.intact(path, stored)
        if st is None:
            return refused(stored)
        if etag_matches(request, tag):
            return Response(status_code=304, headers=headers)
        return PinnedFile(path, st, media_type=media_type, headers=headers)

    async def intact(self, path: str, stored: StoredFile) -> os.stat_result | None:
        """The file's stat if it is a regular file whose bytes hash to the recorded digest."""
        st = lstat(path)
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != stored.size:
            return None
        key = stat_key(st)
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
        st = lstat(path)
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != stored.size:
            return None
        body = self._bytes.get(path, stat_key(st))
        if body is None:
            try:
                found = self.tree.read(path, stored.size)
            except Refused:
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
        return self._data(TRUST_MANIFEST, trust_manifest)

    async def trust_index(self, request: Request) -> Response:
        manifest = self._trust()
        key = manifest[0] if manifest else None
        found = self._derived.get("trust", key)
        if found is None:
            files = manifest[1] if manifest else {}
            listing = [{"name": name, "sha256": files[name].sha256, "size": files[name].size}
                       for name in sorted(files)]
            body = json.dumps({"files": listing}).encode()
            found = (body, etag(body))
            self._derived.put("trust", key, found)
        return page_response(request, found, "application/json")

    async def trust_file(self, request: Request) -> Response:
        """A trust file the manifest names, with the bytes it records; nothing else."""
        manifest = self._trust()
        stored = manifest[1].get(request.path_params["path"]) if manifest else None
        if stored is None:
            return not_found()
        # Public material is small and never a private key, whatever the manifest says
        # (a key hard-linked or copied into trust/ and named there is refused).
        body = self._small(f"{self.root}/{stored.path}", stored) \
            if stored.size <= min(TRUST_MAX_BYTES, SMALL_FILE) else None
        if body is None or PRIVATE_KEY_MARK in body:
            return refused(stored)
        return await self._send(request, stored, content_type(stored.path), PAGE_CACHE)


    # -- the transparency log (factory.sign.tiles) -----------------------------------------
    async def log_file(self, request: Request) -> Response:
        """A file of the published log (/log/...): only a path of the tlog-tiles grammar,
        a regular file inside the index, read without following a link, bounded. Not
        checked against a digest: the log is self-verifying (a signed checkpoint over
        every entry), and a tampered file is what `factory log verify` reports."""
        path = request.path_params["path"]
        parsed = parse_log_path(path)
        if parsed is None:
            return not_found()
        kind, _level, _n, width = parsed
        fixed = kind == "checkpoints" or (kind in ("tile", "entries", "timestamps")
                                          and width == TILE_WIDTH)
        media = "text/plain; charset=utf-8" if kind.startswith("checkpoint") else \
            "application/jsonl" if kind == "timestamps" else "application/octet-stream"
        return await self._self_verifying(request, LOG_PREFIX, path, LOG_LIMITS[kind], media,
                                          FILE_CACHE if fixed else PAGE_CACHE)

    # -- the TUF repository (factory.sign.tuf_repo) -----------------------------------------
    async def tuf_file(self, request: Request) -> Response:
        """A file of the TUF repository (/tuf/...): only a name the repository can hold,
        a regular file inside the index read without following a link, bounded; no
        listing. Not checked against a digest: every file is signed metadata or a target
        whose hash signed metadata names, and the TUF client refuses what does not verify.
        Only the digest-named targets are cached for long: a metadata file could be one a
        publish that stopped left and the next one rewrites under the same name."""
        path = request.path_params["path"]
        if not is_repository_path(path):
            return not_found()
        return await self._self_verifying(
            request, TUF_PREFIX, path, TUF_MAX_BYTES, "application/json",
            FILE_CACHE if is_target_path(path) else PAGE_CACHE)

    async def _self_verifying(self, request: Request, prefix: str, path: str, limit: int,
                              media: str, cache: str) -> Response:
        """``prefix/path`` of the index (a name its caller validated), a regular file read
        without following a link and bounded by ``limit``, with an ETag. No digest: what
        /log/ and /tuf/ serve is checked by whoever reads it (signed checkpoints, signed
        metadata)."""
        try:
            found = await run_in_threadpool(self.tree.read, f"{self.root}/{prefix}/{path}",
                                            limit)
        except Refused as exc:
            log.error("REFUSED %s/%s: %s", prefix, path, exc)
            return PlainTextResponse("refused\n", status_code=500)
        if found is None:
            return not_found()
        body, _key = found
        tag = etag(body)
        headers = {"ETag": tag, "Cache-Control": cache}
        if etag_matches(request, tag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media, headers=headers)


def _listing(served: dict[str, StoredFile], rel: str) -> Response:
    inside = sorted(p for p in served if p.startswith(rel + "/"))
    if not inside:
        return not_found()
    return Response(json.dumps({"files": [p[len(rel) + 1 :] for p in inside]}),
                    media_type="application/json")


def _project(name: str) -> str | None:
    """The normalized name, if it is one a project can have (so no lookup can fail oddly)."""
    if len(name) > 200:
        return None
    project = normalize(name)
    return project if _plausible(project) else None


def _plausible(project: str) -> bool:
    return len(project) <= 200 and is_normalized(project)


def _same(a: str, b: str) -> bool:
    return a == b or normalize(a) == normalize(b)
