"""Boundary: upstream -> lock/fetch. A hostile index, listing, file or cache entry.

Everything here runs against local HTTP servers on 127.0.0.x that the tests
control: hostile listings (path names, shapes), a redirect to another host,
a gzip bomb, a slowly dripping body, a file longer than its pin, a re-uploaded
file, and an sdist whose PKG-INFO names another project.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import re
import subprocess
import tarfile
import threading
import time
import tomllib
import zipfile
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from factory import fetch, ledger
from factory.config import Settings
from factory.errors import (
    AlarmError,
    IntegrityError,
    LockError,
    PolicyError,
    UpstreamError,
)
from factory.lock import Lock, load_lock, lock_report, lock_stage
from factory.upstream import cache
from factory.upstream.client import Upstream
from factory.upstream.listing import parse_html, parse_json, sdist_name_problem
from factory.watch import component_status
from tests import factories
from tests.factories import cli
from tests.local_upstream import (
    JSON_TYPE,
    Hook,
    LocalUpstream,
    build_tool,
    entry,
    locked_demo,
    project_page,
    redirect,
    reply,
    serving,
)
from tests.security_fixtures import raised

TRAVERSAL = "../../../../../pwned/x-1.0.tar.gz"


# -- servers the tests control (conftest's `upstream` answers as `hooks` say) -----------

@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[tuple[LocalUpstream, dict[str, Hook]]]:
    """Another host (127.0.0.2, another port): where a hostile redirect leads."""
    extra: dict[str, Hook] = {}
    with serving(tmp_path / "elsewhere", extra, host="127.0.0.2") as server:
        yield server, extra


def drip(head: bytes, stop: threading.Event, every: float = 0.05, seconds: float = 20) -> Hook:
    """Send ``head``, then one byte at a time, each well inside any read timeout."""
    def hook(h: BaseHTTPRequestHandler) -> None:
        try:
            h.wfile.write(head)
            h.wfile.flush()
            ends = time.monotonic() + seconds
            while time.monotonic() < ends and not stop.is_set():
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(every)
        except OSError:
            pass  # the client hung up: what the deadline should make it do
    return hook


def reupload(path: Path, version: str = "1.0.0") -> None:
    """Replace an upstream file by other bytes under the same name (a re-upload)."""
    factories.sdist(path.parent, "demo", version, files={"evil.py": b"import os\n"})


def outside(tmp_path: Path) -> list[Path]:
    """Files named like the hostile one anywhere but the upstream's own directory."""
    return [p for p in tmp_path.rglob("x-1.0.tar.gz")
            if "upstream" not in p.relative_to(tmp_path).parts[:1]]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "(hint: " in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- 1. names from listings and the lock -----------------------------------------------------

@pytest.mark.parametrize("kind", ["json", "html"])
def test_a_listed_traversal_name_is_skipped_and_nothing_is_written_outside_the_cache(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook], tmp_path: Path,
        kind: str) -> None:
    build_tool(upstream, project)
    real = upstream.add("x", "1.0").path
    factories.recipe(project.root, "x")
    if kind == "json":
        hooks["/simple/x/"] = reply(project_page("x", [entry(real, TRAVERSAL)]))
    else:
        digest = hashlib.sha256(real.read_bytes()).hexdigest()
        link = f'<a href="../../files/{real.name}#sha256={digest}">{html.escape(TRAVERSAL)}</a>'
        hooks["/simple/x/"] = reply(f"<html><body>{link}</body></html>".encode(),
                                    ctype="text/html")
    error = raised(lambda: lock_stage(project))
    assert outside(tmp_path) == [] and not (tmp_path / "pwned").exists()
    assert isinstance(error, PolicyError) and "no sdists upstream" in error.message
    listing = Upstream(upstream.url).project("x")
    assert listing.files == () and TRAVERSAL in listing.rejected[0].filename


def test_only_plain_names_of_the_project_survive_a_listing(tmp_path: Path) -> None:
    sdist = factories.sdist(tmp_path, "demo", "1.0")
    good = entry(sdist)
    bad: dict[str, Any] = {
        "other project": entry(sdist, "evil-1.0.tar.gz"),
        "separator": entry(sdist, "demo-1.0.tar.gz/../demo-1.0.tar.gz"),
        "backslash": entry(sdist, "..\\demo-1.0.tar.gz"),
        "control": entry(sdist, "demo-1.0\x1b[2J.tar.gz"),
        "absolute": entry(sdist, "/etc/demo-1.0.tar.gz"),
        "long": entry(sdist, "demo-" + "1." * 200 + "0.tar.gz"),
        "hidden": entry(sdist, ".demo-1.0.tar.gz"),
        "sha": {**good, "filename": "demo-1.1.tar.gz", "hashes": {"sha256": "../x"}},
        "size": {**good, "filename": "demo-1.2.tar.gz", "size": -1},
        "bool size": {**good, "filename": "demo-1.3.tar.gz", "size": True},
        "huge size": {**good, "filename": "demo-1.4.tar.gz", "size": 1 << 40},
        "http elsewhere": entry(sdist, "demo-1.5.tar.gz", "http://evil.example/demo-1.5.tar.gz"),
        "file url": entry(sdist, "demo-1.6.tar.gz", "file:///etc/passwd"),
        "other host": entry(sdist, "demo-1.7.tar.gz", "https://evil.example/demo-1.7.tar.gz"),
        "not an object": "demo-1.8.tar.gz",
        "hashes a list": {**good, "filename": "demo-1.9.tar.gz", "hashes": ["x"]},
    }
    listing = parse_json("demo", "http://127.0.0.1:1/simple/demo/",
                         json.loads(project_page("demo", [good, *bad.values()])))
    assert [f.filename for f in listing.files] == ["demo-1.0.tar.gz"]
    assert len(listing.rejected) == len(bad)
    assert all(r.reason and r.filename.isprintable() for r in listing.rejected)


def test_files_on_pypis_files_host_are_kept(tmp_path: Path) -> None:
    sdist = factories.sdist(tmp_path, "demo", "1.0")
    item = entry(sdist, url="https://files.pythonhosted.org/packages/ab/demo-1.0.tar.gz")
    listing = parse_json("demo", "https://pypi.org/simple/demo/", {"files": [item]})
    assert [f.filename for f in listing.files] == ["demo-1.0.tar.gz"]


def edit_lock(project: Settings, **sdist: object) -> None:
    rows = tomllib.loads(project.lock_path.read_text())["component"]
    for row in rows:
        if row["name"] == "demo":
            row["sdist"].update(sdist)
    project.lock_path.write_text(tomli_w.dumps({"lock-version": 1, "component": rows}))


def test_a_traversal_name_in_the_lock_is_refused_naming_the_row(
        project: Settings, upstream: LocalUpstream, tmp_path: Path) -> None:
    path = locked_demo(project, upstream)
    for cached in project.sources_dir.rglob("*.tar.gz"):
        cached.unlink()
    upstream.add_file("demo", path)
    edit_lock(project, filename="../../../../../pwned/demo-1.0.0.tar.gz")
    error = raised(lambda: fetch.fetch_stage(project))
    assert not (tmp_path / "pwned").exists()
    assert not list(tmp_path.rglob("pwned"))
    assert isinstance(error, LockError)
    assert re.search(r"component #\d+ \('demo' '1.0.0'\): sdist.filename", error.message)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("sha256", "../../etc", "sha256"),
    ("sha256", "A" * 64, "sha256"),
    ("size", -5, "size"),
    ("size", True, "size"),
    ("size", 1 << 50, "size"),
    ("url", "file:///etc/passwd", "sdist.url"),
    ("url", "https://evil.example/\x1b[31m", "sdist.url"),
    ("filename", "evil-1.0.0.tar.gz", "names project"),
    ("filename", "demo-6.6.6.tar.gz", "version"),
])
def test_a_malformed_lock_row_is_refused_naming_the_row(
        project: Settings, upstream: LocalUpstream, field: str, value: object,
        message: str) -> None:
    locked_demo(project, upstream)
    edit_lock(project, **{field: value})
    with pytest.raises(LockError, match=rf"component #\d+ \('demo' '1.0.0'\).*{message}"):
        fetch.load_lock(project)


# -- 2. a pinned file that changed upstream is an alarm -----------------------------------------

def test_a_reuploaded_pinned_file_is_an_alarm_not_a_silent_repin(
        project: Settings, upstream: LocalUpstream) -> None:
    path = locked_demo(project, upstream)
    before = fetch.load_lock(project).primary("demo")
    reupload(path)
    with pytest.raises(AlarmError, match="upstream now lists demo-1.0.0.tar.gz with sha256") \
            as info:
        lock_stage(project)
    assert "--accept-change demo" in info.value.hint
    assert fetch.load_lock(project).primary("demo") == before  # the old pin is kept
    report = lock_report(project, update=True)  # --update: no "nothing moved"
    assert [a.name for a in report.alarms] == ["demo"] and report.changes == []
    assert fetch.load_lock(project).primary("demo") == before
    alarms = [d for d in ledger.decisions(project, "demo") if d["action"] == "alarm"]
    assert len(alarms) == 1 and alarms[0]["version"] == "1.0.0"  # recorded once
    row = {r.name: r for r in component_status(project)}["demo"]
    assert row.alarm is not None and "sha256" in row.alarm
    # an operator who checked the re-upload accepts it: re-pinned, recorded, then quiet
    lock, changes = lock_stage(project, accept={"demo"})
    assert lock.primary("demo").sdist.sha256 == hashlib.sha256(  # type: ignore[union-attr]
        path.read_bytes()).hexdigest()
    assert [c.why.split(":")[0] for c in changes] == ["accepted upstream change"]
    assert ledger.decisions(project, "demo")[0]["action"] == "alarm-accepted"
    assert lock_stage(project)[1] == []
    assert {r.name: r for r in component_status(project)}["demo"].alarm is None


def test_an_alarm_stays_until_accepted_even_if_upstream_reverts(
        project: Settings, upstream: LocalUpstream) -> None:
    path = locked_demo(project, upstream)
    original = path.read_bytes()
    reupload(path)
    with pytest.raises(AlarmError):
        lock_stage(project)
    path.write_bytes(original)  # flipped back: the trace must not vanish with it
    with pytest.raises(AlarmError, match="demo 1.0.0"):
        lock_stage(project)
    with pytest.raises(LockError, match="no upstream alarm to accept"):
        lock_stage(project, accept={"setuptools"})
    _, changes = lock_stage(project, accept={"demo"})
    assert changes == []  # nothing to re-pin: the bytes are the pinned ones again


def test_the_same_version_under_another_file_is_an_alarm(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook],
        tmp_path: Path) -> None:
    locked_demo(project, upstream)
    other = factories.sdist(tmp_path / "zip", "demo", "1.0.0", files={"evil.py": b"1"})
    zipped = other.with_name("demo-1.0.0.zip")
    with tarfile.open(other) as tar, zipfile.ZipFile(zipped, "w") as out:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                out.writestr(member.name, handle.read())
    upstream.add_file("demo", zipped)
    upstream.projects["demo"] = [r for r in upstream.projects["demo"] if r.path == zipped]
    with pytest.raises(AlarmError, match="upstream now offers demo-1.0.0.zip"):
        lock_stage(project, update=True)


def test_cli_lock_exits_non_zero_with_one_line_and_the_way_to_accept(
        project: Settings, upstream: LocalUpstream) -> None:
    path = locked_demo(project, upstream)
    reupload(path)
    line = one_line_error(cli(project, "lock"))
    assert line.startswith("error: upstream alarm: demo 1.0.0:")
    assert "factory lock --accept-change demo" in line
    status = cli(project, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert {r["name"]: r for r in json.loads(status.stdout)}["demo"]["alarm"]
    accepted = cli(project, "lock", "--accept-change", "demo")
    assert accepted.returncode == 0, accepted.stderr
    assert cli(project, "lock").returncode == 0


def test_watch_reports_the_alarm_and_rebuilds_only_the_rest(
        project: Settings, upstream: LocalUpstream, tmp_path: Path) -> None:
    from factory.watch import watch_cycle
    from tests.index_fixtures import publish_wheel

    path = locked_demo(project, upstream)
    upstream.add("other", "1.0.0")
    factories.recipe(project.root, "other", 'track = "patch"\n')
    lock_stage(project)
    publish_wheel(project, tmp_path / "a", "demo", "1.0.0")
    reupload(path)
    upstream.add("other", "1.0.1")
    result = watch_cycle(project)
    assert [a.name for a in result.alarms] == ["demo"]
    assert result.rebuild == ["other"] and "ALARM demo 1.0.0" in result.summary()
    assert fetch.load_lock(project).primary("demo").sdist.sha256 != hashlib.sha256(  # type: ignore[union-attr]
        path.read_bytes()).hexdigest()
    home = (project.index_dir / "index.html").read_text()
    row = home[home.index("<td>demo"):]
    assert "upstream alarm" in row[: row.index("</tr>")]


def test_a_download_with_other_bytes_is_an_alarm_that_lock_then_reports(
        project: Settings, upstream: LocalUpstream) -> None:
    locked_demo(project, upstream)
    for cached in project.sources_dir.rglob("*.tar.gz"):
        cached.unlink()
    upstream.corrupt = True  # the listing still says the pinned sha256; the bytes differ
    with pytest.raises(AlarmError, match="sha256 mismatch"):
        fetch.fetch_stage(project, {"demo"})
    assert [d["action"] for d in ledger.decisions(project, "demo")] == ["alarm"]
    upstream.corrupt = False
    with pytest.raises(AlarmError, match="demo 1.0.0"):
        lock_stage(project)


def test_a_listing_that_redirects_to_another_host_is_an_alarm(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook],
        elsewhere: tuple[LocalUpstream, dict[str, Hook]]) -> None:
    locked_demo(project, upstream)
    before = fetch.load_lock(project).primary("demo")
    evil, _ = elsewhere
    evil.add("demo", "1.0.0", files={"evil.py": b"1"})  # what it would pin
    hooks["/simple/demo/"] = redirect(f"{evil.url}demo/")
    with pytest.raises(AlarmError, match=r"redirects to http://127\.0\.0\.2"):
        lock_stage(project, update=True)
    assert fetch.load_lock(project).primary("demo") == before
    assert [d["action"] for d in ledger.decisions(project, "demo")] == ["alarm"]
    assert not any(r.startswith("/simple/") for r in evil.requests)


def test_a_redirected_listing_with_nothing_pinned_is_refused_recorded_and_acceptable(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook],
        elsewhere: tuple[LocalUpstream, dict[str, Hook]]) -> None:
    build_tool(upstream, project)
    factories.recipe(project.root, "demo")
    upstream.add("demo", "1.0.0")
    evil, _ = elsewhere
    hooks["/simple/demo/"] = redirect(f"{evil.url}demo/")
    with pytest.raises(AlarmError, match="redirects to"):
        lock_stage(project)
    assert not project.lock_path.exists()
    assert {r.name: r for r in component_status(project)}["demo"].alarm
    del hooks["/simple/demo/"]  # upstream fixed; the operator checked and accepts
    lock_stage(project, accept={"demo"})
    assert {r.name: r for r in component_status(project)}["demo"].alarm is None
    assert fetch.load_lock(project).primary("demo") is not None


def test_a_download_that_redirects_to_another_host_is_an_alarm(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook],
        elsewhere: tuple[LocalUpstream, dict[str, Hook]]) -> None:
    path = locked_demo(project, upstream)
    for cached in project.sources_dir.rglob("*.tar.gz"):
        cached.unlink()
    evil, _ = elsewhere
    evil.add_file("demo", path)  # even the very same bytes: the host is not allowed
    base = upstream.url.removesuffix("/simple/")
    hooks["/files/demo-1.0.0.tar.gz"] = redirect(f"{evil.url.removesuffix('/simple/')}"
                                                 "/files/demo-1.0.0.tar.gz")
    with pytest.raises(AlarmError, match=r"redirects to http://127\.0\.0\.2"):
        fetch.fetch_stage(project, {"demo"})
    assert evil.requests == []
    assert [d["action"] for d in ledger.decisions(project, "demo")] == ["alarm"]
    # a redirect that stays on the index's origin is followed
    hooks["/files/demo-1.0.0.tar.gz"] = redirect(f"{base}/moved/demo-1.0.0.tar.gz")
    hooks["/moved/demo-1.0.0.tar.gz"] = reply(path.read_bytes(), ctype="application/x-tar")
    (item,) = fetch.fetch_stage(project, {"demo"})
    assert item.path.is_file()


# -- 3. bodies are bounded before they are kept or parsed ---------------------------------------

@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compression_bomb_listing_is_bounded_after_decompression(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook],
        encoding: str) -> None:
    build_tool(upstream, project)
    factories.recipe(project.root, "demo")
    upstream.add("demo", "1.0.0")
    padded = upstream.json_page("demo")[:-1] + b" " * (80 << 20) + b"}"  # 80 MiB, valid JSON
    body = gzip.compress(padded, 9) if encoding == "gzip" else zlib.compress(padded, 9)
    assert len(body) < 1 << 20
    hooks["/simple/demo/"] = reply(body, headers=[("Content-Encoding", encoding)])
    with pytest.raises(UpstreamError, match="after decompression"):
        lock_stage(project)


def test_a_compressed_listing_within_bounds_is_read(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook]) -> None:
    build_tool(upstream, project)
    factories.recipe(project.root, "demo")
    upstream.add("demo", "1.0.0")
    pieces = upstream.json_page("demo")
    hooks["/simple/demo/"] = reply(gzip.compress(pieces[:40]) + gzip.compress(pieces[40:]),
                                   headers=[("Content-Encoding", "gzip")])
    lock, _ = lock_stage(project)
    assert lock.primary("demo") is not None


def test_an_unasked_content_encoding_is_refused(upstream: LocalUpstream,
                                                hooks: dict[str, Hook]) -> None:
    upstream.add("demo", "1.0.0")
    hooks["/simple/demo/"] = reply(b"\x00" * 64, headers=[("Content-Encoding", "br")])
    with pytest.raises(UpstreamError, match="Content-Encoding 'br'"):
        Upstream(upstream.url, retries=0).project("demo")


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_slow_drip_listing_hits_the_overall_deadline(
        upstream: LocalUpstream, hooks: dict[str, Hook], stop: threading.Event,
        where: str) -> None:
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
            if where == "body" else b"HTTP/1.1 200 OK\r\nX-Slow:")
    hooks["/simple/demo/"] = drip(head, stop)
    with pytest.raises(UpstreamError, match="no complete answer within 1 s"):
        Upstream(upstream.url, retries=3, timeout=10, deadline=1.0).project("demo")


def test_a_slow_drip_download_hits_the_overall_deadline(
        upstream: LocalUpstream, hooks: dict[str, Hook], stop: threading.Event,
        tmp_path: Path) -> None:
    hooks["/files/demo-1.0.tar.gz"] = drip(
        b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n", stop)
    client = Upstream(upstream.url, retries=2, timeout=10, deadline=1.0)
    with pytest.raises(UpstreamError, match="no complete answer within"):
        client.download(upstream.url.removesuffix("/simple/") + "/files/demo-1.0.tar.gz",
                        tmp_path / "demo-1.0.tar.gz", sha256="0" * 64, size=4096)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("declared", [True, False])
def test_a_download_never_writes_past_the_pinned_size(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook],
        declared: bool) -> None:
    path = locked_demo(project, upstream)
    for cached in project.sources_dir.rglob("*.tar.gz"):
        cached.unlink()
    size = path.stat().st_size
    hooks["/files/demo-1.0.0.tar.gz"] = reply(path.read_bytes() + b"\0" * (4 << 20),
                                              ctype="application/x-tar", length=declared)
    seen: list[int] = []
    with pytest.raises(AlarmError, match=f"more than the pinned {size} bytes"):
        fetch.fetch_stage(project, {"demo"}, lambda _f, done, _t: seen.append(done))
    assert max(seen, default=0) <= size
    assert not [p for p in project.sources_dir.rglob("*") if p.is_file()
                and p.stat().st_size > size]


@pytest.mark.parametrize("cached", [
    b"not json",
    b"[1, 2]",
    b"[" * 100_000,
    json.dumps({"etag": "x\r\nX-Injected: 1", "url": "", "type": JSON_TYPE, "body": ""}).encode(),
    json.dumps({"etag": 7, "url": None, "type": [], "body": {}}).encode(),
    json.dumps({"etag": '"e"', "url": "http://evil.example/simple/demo/", "type": JSON_TYPE,
                "body": "{}"}).encode(),
])
def test_a_tampered_listing_cache_is_ignored(project: Settings, upstream: LocalUpstream,
                                             hooks: dict[str, Hook], cached: bytes) -> None:
    build_tool(upstream, project)
    factories.recipe(project.root, "demo")
    upstream.add("demo", "1.0.0")
    fresh = reply(upstream.json_page("demo"), headers=[("ETag", '"e"')])

    def conditional(h: BaseHTTPRequestHandler) -> None:  # 304 to whoever sends an ETag
        if h.headers.get("If-None-Match"):
            return reply(b"", status=304)(h)
        fresh(h)

    hooks["/simple/demo/"] = conditional
    cache = project.state_dir / "upstream-cache"
    cache.mkdir(parents=True)
    (cache / "demo.json").write_bytes(cached)
    lock, _ = lock_stage(project)
    assert lock.primary("demo") is not None


def test_a_cached_listing_is_checked_like_a_fresh_one(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook],
        tmp_path: Path) -> None:
    real = upstream.add("x", "1.0").path
    cache = project.state_dir / "upstream-cache"
    cache.mkdir(parents=True)
    (cache / "x.json").write_text(json.dumps({
        "etag": '"v1"', "url": f"{upstream.url}x/", "type": JSON_TYPE,
        "body": project_page("x", [entry(real, TRAVERSAL)]).decode()}))
    hooks["/simple/x/"] = reply(b"", status=304)
    listing = Upstream(upstream.url, cache_dir=cache).project("x")
    assert listing.files == () and listing.rejected


# -- 4. the sdist's own metadata must name what was locked -------------------------------------

def hostile_sdist(directory: Path, name: str, version: str, pkg_info: str | None) -> Path:
    """A pyproject.toml naming no project, and ``pkg_info`` as PKG-INFO (None: none)."""
    return factories.sdist(directory, name, version, bare=True, files={
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n', "PKG-INFO": pkg_info})


@pytest.mark.parametrize(("pkg_info", "message"), [
    ("Metadata-Version: 2.1\nName: requests\nVersion: 1.0.0\n", "Name: 'requests'"),
    ("Metadata-Version: 2.1\nName: demo\nVersion: 6.6.6\n", "Version: '6.6.6'"),
    ("Metadata-Version: 2.1\nName: demo\nVersion: not a version\n", "Version: 'not a version'"),
    ("Metadata-Version: 2.1\nVersion: 1.0.0\n", "Name: ''"),
    (None, "no PKG-INFO"),
])
def test_an_sdist_whose_pkg_info_says_otherwise_is_not_locked(
        project: Settings, upstream: LocalUpstream, tmp_path: Path, pkg_info: str | None,
        message: str) -> None:
    build_tool(upstream, project)
    factories.recipe(project.root, "demo")
    upstream.add_file("demo", hostile_sdist(tmp_path / "files", "demo", "1.0.0", pkg_info))
    with pytest.raises(LockError, match=message):
        lock_stage(project)
    # the others are locked; demo is not
    assert load_lock(project).primary("setuptools") is not None
    assert load_lock(project).primary("demo") is None


@pytest.mark.parametrize("content", [b"not an archive at all", gzip.compress(b"x" * 600, mtime=0)])
def test_an_unreadable_sdist_is_one_clean_lock_error(
        project: Settings, upstream: LocalUpstream, tmp_path: Path, content: bytes) -> None:
    build_tool(upstream, project)
    factories.recipe(project.root, "demo")
    fake = tmp_path / "files" / "demo-1.0.0.tar.gz"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(content)
    upstream.add_file("demo", fake)
    with pytest.raises(LockError, match="demo-1.0.0.tar.gz: not a readable sdist"):
        lock_stage(project)


def test_fetch_checks_pkg_info_of_an_existing_lock(project: Settings, upstream: LocalUpstream,
                                                   tmp_path: Path) -> None:
    locked_demo(project, upstream)
    bad = hostile_sdist(tmp_path / "bad", "demo", "1.0.0",
                        "Metadata-Version: 2.1\nName: requests\nVersion: 1.0.0\n")
    # a lock written before this check existed pins the hostile sdist
    edit_lock(project, sha256=hashlib.sha256(bad.read_bytes()).hexdigest(),
              size=bad.stat().st_size)
    cached = cache.cache_path(project, hashlib.sha256(bad.read_bytes()).hexdigest(), bad.name)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(bad.read_bytes())
    with pytest.raises(LockError, match="Name: 'requests', the lock has demo"):
        fetch.fetch_stage(project, {"demo"})


def test_cli_lock_reports_a_mismatched_sdist_in_one_line(
        project: Settings, upstream: LocalUpstream, tmp_path: Path) -> None:
    build_tool(upstream, project)
    factories.recipe(project.root, "demo")
    upstream.add_file("demo", hostile_sdist(
        tmp_path / "files", "demo", "1.0.0",
        "Metadata-Version: 2.1\nName: requests\x1b]0;owned\x07\nVersion: 1.0.0\n"))
    line = one_line_error(cli(project, "lock"))
    assert "PKG-INFO says Name:" in line and "\x1b" not in line


# -- properties: whatever a listing or the lock says ----------------------------------------

PROJECT = "demo"
SHA = "ab" * 32
FRAGMENTS = st.sampled_from([
    "demo", "Demo", "DEMO_", "evil", "-", "_", ".", "..", "/", "\\", "\x00", "\x1b", "\u202e",
    "1.0", "2!1.0+local", ".tar.gz", ".zip", ".whl", "-py3-none-any.whl", " ", "%2e%2e%2f",
    "C:", "~", "\n", "http://[", "https://", "//evil.example/", "#sha256=", "?"])
NAMES = st.one_of(st.text(max_size=60), st.lists(FRAGMENTS, max_size=8).map("".join))


def confined(tmp: Settings, sha: str, filename: str) -> bool:
    path = cache.cache_path(tmp, sha, filename)
    base = (tmp.sources_dir / "sha256" / sha).resolve()
    return path.resolve().parent == base


PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(names=st.lists(NAMES, max_size=6))
@example(names=[TRAVERSAL.replace("x-", "demo-")])
@example(names=["/abs/demo-1.0.tar.gz", "demo-1.0.tar.gz/..", "demo-1.0.tar.gz"])
@example(names=["demo-1.0.tar.gz", "http://[x/demo-1.0.tar.gz"])
def test_property_json_listing_names(names: list[str], tmp_path: Path) -> None:
    files = [{"filename": n, "url": n if i % 2 else f"f/{i}", "hashes": {"sha256": SHA},
              "size": 1} for i, n in enumerate(names)]
    listing = parse_json(PROJECT, "http://127.0.0.1:9/simple/demo/", {"files": files})
    check_survivors(listing.files, tmp_path)
    assert len(listing.files) + len(listing.rejected) <= len(names)


@PROPERTY
@given(names=st.lists(NAMES, max_size=6))
@example(names=[TRAVERSAL.replace("x-", "demo-")])
@example(names=["demo-1.0.tar.gz", "http://[x/demo-1.0.tar.gz"])
def test_property_html_listing_names(names: list[str], tmp_path: Path) -> None:
    links = "".join(f'<a href="{html.escape(n) if i % 2 else i}#sha256={SHA}">'
                    f"{html.escape(n)}</a>" for i, n in enumerate(names))
    listing = parse_html(PROJECT, "http://127.0.0.1:9/simple/demo/", links)
    check_survivors(listing.files, tmp_path)


def check_survivors(files: Any, tmp_path: Path) -> None:
    tmp = factories.settings(tmp_path)
    for file in files:
        if file.filename.endswith(".whl"):
            continue  # wheels are never cached under sources/
        assert sdist_name_problem(file.filename, PROJECT) is None
        assert canonicalize_name(file.filename.rpartition("-")[0]) == PROJECT
        assert confined(tmp, SHA, file.filename)


VALUES = st.one_of(NAMES, st.integers(), st.booleans(), st.none(), st.just(SHA),
                   st.just("https://files.example/x"), st.lists(st.integers(), max_size=2))


@PROPERTY
@given(name=st.one_of(st.just("demo"), NAMES), version=st.one_of(st.just("1.0"), NAMES),
       filename=st.one_of(st.just("demo-1.0.tar.gz"), NAMES), sha=VALUES, size=VALUES,
       url=st.one_of(st.just("https://files.example/demo-1.0.tar.gz"), VALUES))
@example(name="demo", version="1.0", filename=TRAVERSAL, sha=SHA, size=1,
         url="https://files.example/demo-1.0.tar.gz")
def test_property_lock_rows(name: object, version: object, filename: object, sha: object,
                            size: object, url: object, tmp_path: Path) -> None:
    sdist = {k: v for k, v in {"filename": filename, "url": url, "sha256": sha,
                               "size": size}.items() if v is not None}
    row = {"name": name, "version": version, "kind": "runtime", "reason": "approved",
           "recipe_digest": "sha256:00", "sdist": sdist}
    try:
        text = tomli_w.dumps({"lock-version": 1, "component": [row]})
    except (TypeError, ValueError):
        return  # not expressible in TOML: cannot be in a lock file
    try:
        lock = Lock.from_toml(text)
    except LockError as exc:
        assert "component #1" in exc.message or "unreadable" in exc.message
        return
    tmp = factories.settings(tmp_path)
    (component,) = lock.components
    assert sdist_name_problem(component.sdist.filename, component.name, component.version) \
        is None
    assert confined(tmp, component.sdist.sha256, component.sdist.filename)


@PROPERTY
@given(data=st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(
                                ["files", "filename", "url", "hashes", "sha256", "size",
                                 "yanked", "requires-python", "upload-time"]), inner,
                                max_size=6)),
    max_leaves=30))
def test_property_any_json_is_a_listing_or_an_upstream_error(data: object) -> None:
    try:
        listing = parse_json(PROJECT, "http://127.0.0.1:9/simple/demo/", data)
    except UpstreamError:
        return
    for file in listing.files:
        assert isinstance(file.filename, str) and file.filename.isprintable()
        assert file.size is None or (isinstance(file.size, int) and file.size >= 0)


@PROPERTY
@given(filename=NAMES, sha=st.one_of(st.just(SHA), st.text(max_size=70)))
@example(filename="..", sha=SHA)
@example(filename="x", sha="../../..")
def test_property_cache_path_never_leaves_the_cache(filename: str, sha: str,
                                                   tmp_path: Path) -> None:
    tmp = factories.settings(tmp_path)
    try:
        path = cache.cache_path(tmp, sha, filename)
    except IntegrityError:
        return
    assert path.resolve().parent == (tmp.sources_dir / "sha256" / sha).resolve()
