"""A local upstream index for tests: PEP 691 JSON + PEP 503 HTML on 127.0.0.1.

It serves sdists that the tests generate (``add`` passes its options on to
tests.factories.sdist), so unit tests never touch the network. Faults can be
switched on to test the client: HTML only, a number of 503 answers before a
good one, truncated files, or a server that is down. A hostile index is the
same server with hooks: paths that answer as a test says (``reply``,
``redirect``, or a hook of its own), the rest as the index would.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from factory.config import Settings
from factory.lock import lock_stage
from tests import factories

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
Hook = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Release:
    path: Path
    upload_time: datetime
    yanked: str | bool = False
    requires_python: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass
class LocalUpstream:
    """The index's content plus its fault switches; `url` is the /simple/ base."""

    directory: Path
    projects: dict[str, list[Release]] = field(default_factory=dict)
    html_only: bool = False
    failures_left: int = 0
    truncate: bool = False
    corrupt: bool = False
    requests: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    # PEP 792 project-status a project's page states: {"status": ..., "reason": ...}
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        assert self.server is not None
        address = self.server.server_address
        return f"http://{address[0]!s}:{address[1]}/simple/"

    def add(self, name: str, version: str, *, age_days: float = 30, yanked: str | bool = False,
            requires_python: str | None = None, **sdist_options: object) -> Release:
        path = factories.sdist(self.directory / "files", name, version, **sdist_options)  # type: ignore[arg-type]
        release = Release(path, datetime.now(UTC) - timedelta(days=age_days), yanked,
                          requires_python)
        self.projects.setdefault(canonicalize_name(name), []).append(release)
        return release

    def add_file(self, name: str, path: Path, age_days: float = 30) -> Release:
        release = Release(path, datetime.now(UTC) - timedelta(days=age_days))
        self.projects.setdefault(canonicalize_name(name), []).append(release)
        return release

    def find(self, filename: str) -> Release | None:
        return next((r for rs in self.projects.values() for r in rs
                     if r.path.name == filename), None)

    def json_page(self, key: str) -> bytes:
        files = [{
            "filename": r.path.name,
            "url": f"../../files/{r.path.name}",
            "hashes": {"sha256": r.sha256},
            "size": r.path.stat().st_size,
            "upload-time": r.upload_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "yanked": r.yanked,
            "requires-python": r.requires_python,
        } for r in self.projects[key]]
        page: dict[str, Any] = {"meta": {"api-version": "1.1"}, "name": key, "files": files}
        if key in self.statuses:
            page["project-status"] = self.statuses[key]
        return json.dumps(page).encode()

    def html_page(self, key: str) -> bytes:
        links = []
        for r in self.projects[key]:
            attrs = f' data-yanked="{r.yanked if isinstance(r.yanked, str) else ""}"' \
                if r.yanked else ""
            links.append(f'<a href="../../files/{r.path.name}#sha256={r.sha256}"{attrs}>'
                         f"{r.path.name}</a><br>")
        head = "".join(f'<meta name="pypi:project-{k}" content="{html.escape(str(v))}">'
                       for k, v in (("status", self.statuses.get(key, {}).get("status")),
                                    ("status-reason", self.statuses.get(key, {}).get("reason")))
                       if v is not None)
        return ("<!DOCTYPE html><html><head>" + head + "</head><body>" + "\n".join(links)
                + "</body></html>").encode()


def _handler(upstream: LocalUpstream,
             hooks: Mapping[str, Hook] | None = None) -> type[BaseHTTPRequestHandler]:
    routes: Mapping[str, Hook] = {} if hooks is None else hooks  # the test's own, kept live

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str, length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            upstream.requests.append(self.path)
            hook = routes.get(self.path.split("?")[0])
            if hook is not None:
                return hook(self)
            if upstream.failures_left > 0:
                upstream.failures_left -= 1
                return self._send(503, b"busy", "text/plain")
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) == 2 and parts[0] == "simple":
                key = canonicalize_name(parts[1])
                if key not in upstream.projects:
                    return self._send(404, b"not found", "text/plain")
                wants_json = JSON_TYPE in self.headers.get("Accept", "")
                if wants_json and not upstream.html_only:
                    return self._send(200, upstream.json_page(key), JSON_TYPE)
                return self._send(200, upstream.html_page(key), "text/html")
            if len(parts) == 2 and parts[0] == "files":
                release = upstream.find(parts[1])
                if release is None:
                    return self._send(404, b"not found", "text/plain")
                data = release.path.read_bytes()
                if upstream.corrupt:
                    data = data[:-1] + bytes([data[-1] ^ 1])
                if upstream.truncate:
                    return self._send(200, data[: len(data) // 2], "application/octet-stream")
                return self._send(200, data, "application/octet-stream")
            self._send(404, b"not found", "text/plain")

    return Handler


def start(upstream: LocalUpstream, hooks: Mapping[str, Hook] | None = None,
          host: str = "127.0.0.1") -> LocalUpstream:
    """``upstream`` served on ``host``; a path in ``hooks`` (which the test may still fill
    in) answers as its hook says."""
    upstream.server = ThreadingHTTPServer((host, 0), _handler(upstream, hooks))
    upstream.server.daemon_threads = True
    threading.Thread(target=upstream.server.serve_forever, daemon=True).start()
    return upstream


def stop(upstream: LocalUpstream) -> None:
    if upstream.server is not None:
        upstream.server.shutdown()
        upstream.server.server_close()


@contextmanager
def serving(directory: Path, hooks: Mapping[str, Hook] | None = None,
            host: str = "127.0.0.1") -> Iterator[LocalUpstream]:
    """A LocalUpstream of ``directory`` served (see ``start``) while inside."""
    server = start(LocalUpstream(directory), hooks, host)
    try:
        yield server
    finally:
        stop(server)


# -- hooks and listings of a hostile index -------------------------------------------------

def reply(body: bytes, status: int = 200, ctype: str = JSON_TYPE,
          headers: list[tuple[str, str]] | None = None, length: bool = True) -> Hook:
    """Answer ``body`` (none to a HEAD) with ``headers`` after the Content-Type;
    ``length=False`` sends no Content-Length of its own."""
    def hook(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        for key, value in headers or []:
            h.send_header(key, value)
        if length:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
    return hook


def redirect(to: str, status: int = 302) -> Hook:
    def hook(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return hook


def entry(path: Path, filename: str | None = None, url: str | None = None,
          **fields: Any) -> dict[str, Any]:
    """A PEP 691 file entry for ``path`` (its true hash and size), ``fields`` added."""
    data = path.read_bytes()
    return {"filename": filename or path.name, "url": url or f"../../files/{path.name}",
            "hashes": {"sha256": hashlib.sha256(data).hexdigest()}, "size": len(data),
            "upload-time": "2024-01-01T00:00:00Z", **fields}


def project_page(name: str, files: list[Any]) -> bytes:
    """A PEP 691 project page listing ``files``."""
    return json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()


# -- a project locked against the local upstream ----------------------------------------------

def build_tool(upstream: LocalUpstream, settings: Settings) -> None:
    """setuptools 80.0.0, self-contained (no build requirements), served and approved."""
    upstream.add("setuptools", "80.0.0", build_requires=[], backend="x")
    factories.recipe(settings.root, "setuptools", 'kind = "build-tool"\n')


# What every build needs and no recipe names: the build front end, the repair tool.
FRONT_END = ("pyproject-hooks", "packaging", "installer", "auditwheel")


def build_tools(upstream: LocalUpstream, settings: Settings) -> None:
    """``build_tool`` and the FRONT_END tools, served and approved (`factory add`
    walks those too, so a test of it approves them first)."""
    build_tool(upstream, settings)
    for name in FRONT_END:
        upstream.add(name, "1.0.0", build_requires=[], backend="x")
        factories.recipe(settings.root, name, 'kind = "build-tool"\n')


def locked_demo(settings: Settings, upstream: LocalUpstream) -> Path:
    """setuptools and demo 1.0.0 approved and locked; returns demo's upstream file."""
    build_tool(upstream, settings)
    release = upstream.add("demo", "1.0.0")
    factories.recipe(settings.root, "demo", 'track = "patch"\n')
    lock_stage(settings)
    return release.path
