"""Attack pass on issue 20's new inputs (by someone who did not write them).

The advisory source (a hostile OSV mirror), ``verify --index URL`` (a hostile index),
the published transparency log, the /log/ and /.well-known/ routes, and the inputs
of ``verify``/``sbom`` (pylock, requirements, venvs). Each case is either a break,
fixed in factory/ (the test says what broke), or a case that held. No network: local
servers on 127.0.0.1 and httpx mock transports.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from factory.upstream.advisories import (
    STALE_SECONDS,
    AdvisoriesUnavailable,
    fetch_archive,
    open_advisories,
)

GOOD = {"id": "PYSEC-0000-1", "summary": "alpha is bad",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "alpha"},
                      "ranges": [{"type": "ECOSYSTEM",
                                  "events": [{"introduced": "0"}, {"fixed": "1.0.1"}]}]}]}


def _zip(members: list[tuple[str, bytes | str]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, text in members:
            archive.writestr(name, text)
    return out.getvalue()


def _zip_file(tmp_path: Path, members: list[tuple[str, bytes | str]]) -> Path:
    path = tmp_path / "osv.zip"
    path.write_bytes(_zip(members))
    return path


# -- a hostile advisory mirror ---------------------------------------------------------------

MALFORMED = [  # one advisory per shape of OSV JSON a mirror may send
    {"id": "M1", "affected": "alpha"},
    {"id": "M2", "affected": 5},
    {"id": "M3", "affected": ["alpha"]},
    {"id": "M4", "affected": [{"package": "alpha"}]},
    {"id": "M5", "affected": [{"package": {"ecosystem": "PyPI", "name": 5}}]},
    {"id": "M6", "aliases": 5, "affected": []},
    {"id": "M7", "affected": [{"package": {"ecosystem": "PyPI", "name": "alpha"},
                               "ranges": [{"type": "ECOSYSTEM", "events": ["x"]}]}]},
    {"id": "M8", "affected": [{"package": {"ecosystem": "PyPI", "name": "alpha"},
                               "ranges": [5]}]},
    {"id": "M9", "affected": [{"package": {"ecosystem": "PyPI", "name": "alpha"},
                               "versions": 5}]},
    {"id": ["M10"], "affected": []},
    {"id": "M" * 100_000, "affected": GOOD["affected"]},
]


def test_malformed_osv_entries_do_not_stop_every_lookup(tmp_path: Path) -> None:
    """Broke: one advisory with a field of the wrong JSON type (affected a string, a
    package a string, events not objects...) raised AttributeError/TypeError on every
    lookup of the archive: a traceback from verify, lock and watch, and no advisory
    checked at all. Each field is now coerced to OSV's type; the rest is read."""
    members = [(f"M{i}.json", json.dumps(a)) for i, a in enumerate(MALFORMED)]
    members += [("deep.json", "[" * 100_000), ("GOOD.json", json.dumps(GOOD)),
                ("bad.yaml", b"\xff\xfe: [unclosed")]
    database, problem = open_advisories(str(_zip_file(tmp_path, members)), tmp_path / "c")
    assert problem is None and database is not None
    assert [a.id for a in database.affecting("alpha", "1.0.0")] == ["PYSEC-0000-1"]
    assert database.affecting("alpha", "1.0.1") == []
    assert [a.fixed_versions("alpha") for a in database.for_package("alpha")] != []


def test_a_zip_bomb_member_is_refused_not_inflated(tmp_path: Path) -> None:
    """Broke: each member was read whole (archive.read), however large it unpacks: a
    few KiB of deflated zeros became any number of GiB in memory. Members are now read
    bounded (4 MiB each, 4 GiB in all) and a bigger one makes the source unreadable,
    said as NOT CHECKED."""
    bomb = _zip([("GOOD.json", json.dumps(GOOD)), ("BOMB.json", b"\0" * (5 << 20))])
    assert len(bomb) < 64 << 10
    path = tmp_path / "osv.zip"
    path.write_bytes(bomb)
    database, problem = open_advisories(str(path), tmp_path / "c")
    assert database is None and problem is not None
    assert "unpacks to more than" in problem and "BOMB.json" in problem


def test_a_corrupt_member_is_a_reason_not_a_traceback(tmp_path: Path) -> None:
    data = bytearray(_zip([("GOOD.json", json.dumps(GOOD) * 50)]))
    start = data.index(b"GOOD.json") + len("GOOD.json")  # inside the deflated bytes
    data[start + 10:start + 40] = b"\xff" * 30
    path = tmp_path / "osv.zip"
    path.write_bytes(bytes(data))
    database, problem = open_advisories(str(path), tmp_path / "c")
    assert database is None and problem is not None and "not a readable OSV archive" in problem


def test_member_names_are_never_paths(tmp_path: Path) -> None:
    """Held: member names (../, absolute) are matched by suffix only, nothing extracted."""
    members = [("../../escape.json", json.dumps(GOOD)), ("/abs/x.json", json.dumps(GOOD))]
    path = _zip_file(tmp_path / "in", members) if (tmp_path / "in").mkdir() is None else None
    assert path is not None
    database, problem = open_advisories(str(path), tmp_path / "c")
    assert problem is None and database is not None
    assert len(database.affecting("alpha", "1.0.0")) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["in", "osv.zip"]


def _mock(handler) -> httpx.Client:  # type: ignore[no-untyped-def]
    return httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True,
                        max_redirects=3)


def test_a_304_to_an_unconditional_request_is_not_a_copy(tmp_path: Path) -> None:
    """Broke: with nothing cached, a mirror answering 304 was taken as 'the cached copy
    stands': a meta.json without the copy was written and the next read of the missing
    archive failed with a file error. Now the source is unreachable, said as such."""
    client = _mock(lambda request: httpx.Response(304))
    with pytest.raises(AdvisoriesUnavailable, match="304 Not Modified to an unconditional"):
        fetch_archive("https://mirror.test/all.zip", tmp_path, client=client)
    database, problem = open_advisories("https://mirror.test/all.zip", tmp_path,
                                        client=client)
    assert database is None and problem is not None and "304" in problem


def test_a_redirect_to_plain_http_is_refused(tmp_path: Path) -> None:
    """Broke: the archive client followed any redirect, https to plain http included (a
    network attacker then serves the advisories). A downgrade is now refused."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            return httpx.Response(302, headers={"Location": "http://evil.test/all.zip"})
        return httpx.Response(200, content=_zip([("X.json", "{}")]))

    with pytest.raises(AdvisoriesUnavailable, match="redirected to plain http"):
        fetch_archive("https://mirror.test/all.zip", tmp_path, client=_mock(handler))
    assert not (tmp_path / "archive.zip").exists()


# Seconds a fetch cut at its 1 s bound may take: a hang guard, not a timing claim (30 x
# the bound; the dripping server never ends, so a fetch it holds would never return). The
# error each test expects names the limit that cut it: that is the mechanism asserted.
HANG_GUARD = 30


@pytest.fixture
def dripping() -> Iterator[str]:
    """A server that sends its status line, then one header byte every 0.1 s, forever;
    under /body/ its headers whole, then one body byte every 0.1 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    def drip(conn: socket.socket) -> None:
        try:
            asked = conn.recv(4096)
            if b" /short" in asked:  # a body shorter than it declares, then the end
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
                         if b" /body/" in asked else b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.is_set():
                conn.sendall(b"a")
                time.sleep(0.1)
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()


def test_a_mirror_dripping_its_headers_is_cut_at_the_deadline(
        dripping: str, tmp_path: Path) -> None:
    """Broke: the archive's 300 s bound was checked between body chunks only; headers
    dripped a byte at a time inside the 30 s read timeout held the fetch (and verify,
    lock, watch) open without end. A timer now shuts the socket at the deadline."""
    started = time.monotonic()
    with pytest.raises(AdvisoriesUnavailable, match="slower than 1 s"):
        fetch_archive(f"{dripping}/all.zip", tmp_path, seconds=1)
    assert time.monotonic() - started < HANG_GUARD


def test_a_source_kept_unreachable_cannot_freeze_a_pass(tmp_path: Path) -> None:
    """Broke: once cached, an archive the source no longer renewed (blocked, down) was
    used for ever and verify passed 'none affects' on it with no word of its age. A copy
    not renewed for STALE_SECONDS whose last fetch failed now names no PASS: the check
    says NOT CHECKED, the reason, and the copy's date (an advisory it names still fails)."""
    from factory.verify.checks import Auditor

    client = _mock(lambda request: httpx.Response(200, content=_zip(
        [("GOOD.json", json.dumps(GOOD))])))
    url = "https://mirror.test/all.zip"
    fetch_archive(url, tmp_path, client=client)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["fetched"] -= STALE_SECONDS + 60
    meta["checked"] = 0
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    down = _mock(lambda request: httpx.Response(503))
    database, problem = open_advisories(url, tmp_path, client=down)
    assert problem is None and database is not None
    assert database.stale is not None and "HTTP 503" in database.stale
    auditor = Auditor.__new__(Auditor)
    auditor.advisories, auditor.advisories_problem = database, None  # type: ignore[assignment]

    class Item:
        project, version = "alpha", "2.0"

    verdict = auditor.advisory(Item(), None)  # type: ignore[arg-type]
    assert "NOT CHECKED" in str(verdict) and "cached copy is of" in str(verdict)
    Item.version = "1.0.0"
    assert "PYSEC-0000-1" in str(auditor.advisory(Item(), None))  # type: ignore[arg-type]


# -- a hostile index for verify --index URL ------------------------------------------------

def _index_app(page: object, files: dict[str, bytes] | None = None):  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def simple(request):  # type: ignore[no-untyped-def]
        return Response(json.dumps(page), media_type="application/vnd.pypi.simple.v1+json")

    async def file(request):  # type: ignore[no-untyped-def]
        body = (files or {}).get(request.path_params["name"])
        return Response(body, status_code=200) if body is not None else Response(b"", 404)

    return Starlette(routes=[Route("/simple/alpha/", simple),
                             Route("/files/alpha/{name:path}", file)])


WHEEL = "alpha-1.0.0-py3-none-any.whl"
ROW = {"filename": WHEEL, "hashes": {"sha256": "a" * 64}}


@pytest.mark.parametrize("page", [
    {"name": "alpha", "files": [ROW], "project-status": "quarantined"},  # not an object
    {"name": "alpha", "files": [{**ROW, "hashes": ["sha256"]}]},  # a list, not a dict
    {"name": "alpha", "files": {"a": 1}},
    ["alpha"],
], ids=["status-string", "hashes-list", "files-object", "page-list"])
def test_a_page_of_the_wrong_json_types_is_a_failed_project_not_a_crash(
        page: object, tmp_path: Path) -> None:
    """Broke (status-string, hashes-list): a PEP 691 page whose project-status was a
    string, or whose file's hashes were a list, raised AttributeError out of verify
    --index (a traceback, nothing reported). Now the project fails, saying why."""
    from factory.verify.remote import RemoteIndex
    from tests.index_fixtures import running

    with running(_index_app(page, {WHEEL: b"PK"})) as url:
        remote = RemoteIndex(url, tmp_path)
        try:
            assert remote.record("alpha") is None
            assert "/simple/alpha/" in remote.corrupt["alpha"]
        finally:
            remote.close()


def test_a_page_listing_another_projects_wheel_is_refused(tmp_path: Path) -> None:
    """Held: alpha's page listing beta's wheel (served under files/alpha/) is not a
    record of alpha: the assembled record is validated as one on disk."""
    from factory.verify.remote import RemoteIndex
    from tests.index_fixtures import running

    beta = "beta-1.0.0-py3-none-any.whl"
    page = {"name": "alpha", "files": [{"filename": beta, "hashes": {"sha256": "b" * 64}}]}
    with running(_index_app(page, {beta: b"PK"})) as url:
        remote = RemoteIndex(url, tmp_path)
        try:
            assert remote.record("alpha") is None
            assert "is not a wheel of alpha" in remote.corrupt["alpha"]
        finally:
            remote.close()


@pytest.mark.parametrize("where", ["simple/alpha/", "body/x"])
def test_an_index_dripping_its_answer_is_cut_at_the_bound(
        dripping: str, tmp_path: Path, where: str) -> None:
    """Broke: the Fetcher's only bound in time was httpx's per-read timeout (30 s): a
    page or wheel dripped a byte at a time held verify --index for ever. Each GET now
    has a wall-clock bound (timeout + its size limit / min_rate) that shuts the socket."""
    from factory.errors import FactoryError
    from factory.verify.remote import Fetcher, Limits

    fetcher = Fetcher(dripping, Limits(timeout=1.0, min_rate=float(1 << 40)))
    started = time.monotonic()
    try:
        with pytest.raises(FactoryError, match="no complete answer within 1"):
            fetcher.get(where, 1 << 20)
    finally:
        fetcher.close()
    assert time.monotonic() - started < HANG_GUARD


def test_a_lying_content_length_is_a_failed_fetch(dripping: str) -> None:
    """Held: a body shorter than its Content-Length is a failed GET (not a short file);
    a declared length over the bound is refused before reading."""
    from factory.errors import FactoryError
    from factory.verify.remote import Fetcher, Limits

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("big"):
            return httpx.Response(200, headers={"Content-Length": str(1 << 40)}, content=b"")
        return httpx.Response(404)

    fetcher = Fetcher("http://index.test/", Limits(),
                      httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(FactoryError, match="more than"):
        fetcher.get("big", 1 << 20)
    real = Fetcher(dripping, Limits())
    try:
        with pytest.raises(FactoryError, match="failed: RemoteProtocolError"):
            real.get("short", 1 << 20)
    finally:
        real.close()


def test_trust_served_by_the_index_itself_is_said(released_base: Path, tmp_path: Path) -> None:
    """Held as documented (trust on first use), made visible: with nothing pinned,
    verify --index URL takes the trusted root the index serves; an index that serves
    its own root and signs with it passes. The report said only a temporary path; the
    summary and JSON now say the trust was served by the index itself, not pinned."""
    from rich.console import Console

    from factory.index import Index
    from factory.index.serve import create_app
    from factory.verify import verify
    from factory.verify.render import print_report
    from tests import factories
    from tests.index_fixtures import running
    from tests.security_fixtures import released_copy

    settings = released_copy(released_base, tmp_path)
    with running(create_app(Index.of(settings))) as url:
        report = verify(factories.settings(tmp_path / "auditor"), "alpha==1.0.0",
                        index_dir=url, check_advisories=False,
                        identity=settings.identity, issuer=settings.issuer)
        pinned = verify(factories.settings(tmp_path / "pinned"), "alpha==1.0.0",
                        index_dir=url, check_advisories=False,
                        trusted_root=settings.public_keys_dir / "trusted_root.json",
                        owner_key=settings.public_keys_dir / "owner.pub.pem",
                        identity=settings.identity, issuer=settings.issuer)
        half = verify(factories.settings(tmp_path / "half"), "alpha==1.0.0",
                      index_dir=url, check_advisories=False,
                      trusted_root=settings.public_keys_dir / "trusted_root.json",
                      identity=settings.identity, issuer=settings.issuer)
    assert report.ok and report.trust.from_index
    assert json.loads(__import__("factory.verify.render", fromlist=["x"]).report_json(
        report))["trust"]["from_index"] is True
    console = Console(record=True, width=600)
    print_report(report, console)
    assert "SERVED BY THE INDEX ITSELF" in console.export_text()
    assert pinned.ok and not pinned.trust.from_index
    # The root pinned, the owner key not: the warning names the key and its option (it
    # blamed --trusted-root, which was given; a helper's new-user pass).
    assert half.trust.served == ["owner key"]
    console = Console(record=True, width=600)
    print_report(half, console)
    text = console.export_text()
    assert "not pinned: the owner key" in text and "--owner-key" in text
    assert "--trusted-root" not in text


# -- a hostile transparency log --------------------------------------------------------------

def _log_copy(released_base: Path, tmp_path: Path, name: str = "log") -> Path:
    import shutil

    from tests import factories

    settings = factories.settings(released_base, project="project")
    shutil.copytree(settings.index_dir / "log", tmp_path / name / "log")
    return tmp_path / name


def _root(released_base: Path):  # type: ignore[no-untyped-def]
    from factory.sign.monitor import load_trusted_root
    from tests import factories

    settings = factories.settings(released_base, project="project")
    return load_trusted_root((settings.public_keys_dir / "trusted_root.json").read_bytes())


def test_a_timestamp_line_of_nested_brackets_is_one_error(
        released_base: Path, tmp_path: Path) -> None:
    """Broke: a timestamps file whose line is 100,000 nested brackets raised
    RecursionError out of `factory log verify|monitor` (a traceback): the parser's
    failures caught were ValueError and the like. Now the entry's time is invalid."""
    from factory.errors import VerificationError
    from factory.sign.monitor import DirectorySource, read_log

    index = _log_copy(released_base, tmp_path)
    (path,) = list((index / "log" / "timestamps").rglob("*[0-9]"))
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([b"[" * 100_000, *lines[1:]]) + b"\n")
    with pytest.raises(VerificationError, match="entry 0's signed time"):
        read_log(DirectorySource(index), _root(released_base))


def _fork(released_base: Path, log: Path, bodies: list[bytes]) -> None:
    """Publish at ``log`` a log of ``bodies`` signed with the real log key."""
    import base64
    import shutil

    from factory.sign._authority.keys import load_keys
    from factory.sign._authority.log import sign_note
    from factory.sign._authority.static import write_static
    from tests import factories
    from tests.signing_fixtures import entry_timestamps, synthetic_log

    keys = load_keys(factories.settings(released_base, project="project").authority_dir)
    entries, tree, _note = synthetic_log(keys.log_key, bodies)
    root = base64.b64encode(tree.root(len(bodies))).decode()
    shutil.rmtree(log)
    write_static(log, entries, tree,
                 sign_note(keys.log_key, f"{keys.origin}\n{len(bodies)}\n{root}\n"),
                 entry_timestamps(keys.log_key))


def test_a_log_forked_between_two_locations_is_caught(
        released_base: Path, tmp_path: Path) -> None:
    """Broke: the checkpoint kept between runs was per location (URL or directory), so
    a log that showed one history at its index and another at a mirror (or at the same
    index under another spelling of its URL), both signed with the real key, passed at
    each. The largest checkpoint seen of each log origin is now kept too: a log at any
    location no smaller than it must extend it. A mirror behind (a prefix) still passes."""
    from factory.errors import VerificationError
    from factory.sign.monitor import DirectorySource, verify_log

    root, state = _root(released_base), tmp_path / "state"
    primary = _log_copy(released_base, tmp_path, "primary")
    seen = verify_log(DirectorySource(primary), root, state)
    bodies = [e.body for e in seen.log.entries]
    behind = _log_copy(released_base, tmp_path, "behind")
    _fork(released_base, behind / "log", bodies[:2])
    assert verify_log(DirectorySource(behind), root, state).log.size == 2
    mirror = _log_copy(released_base, tmp_path, "mirror")
    _fork(released_base, mirror / "log", [bodies[0], b'{"forked":1}', *bodies[2:]])
    with pytest.raises(VerificationError, match="rewrote its history") as caught:
        verify_log(DirectorySource(mirror), root, state)
    assert "another location showed it" in caught.value.message
    assert verify_log(DirectorySource(mirror), root, tmp_path / "elsewhere").previous is None


def test_log_verify_from_a_device_or_fifo_is_one_line(
        released_base: Path, tmp_path: Path) -> None:
    """Broke: `factory log verify --from /dev/zero` read without end (read_bytes, then
    cut); a FIFO blocked. --from is now a regular file read bounded."""
    import os

    from typer.testing import CliRunner

    from factory.cli import app
    from tests import factories

    keys = factories.settings(released_base, project="project").public_keys_dir
    index = _log_copy(released_base, tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    runner = CliRunner()
    for given, said in (("/dev/zero", "not a regular file"), (str(fifo), "not a regular file"),
                        (str(tmp_path / "none"), "no such file")):
        result = runner.invoke(app, ["log", "verify", "--index", str(index), "--from", given,
                                     "--trusted-root", str(keys / "trusted_root.json")])
        assert result.exit_code != 0
        assert said in str(result.exception) or said in result.output, (given, result.output)


@pytest.mark.parametrize("where", ["log/checkpoint", "body/x"])
def test_a_log_server_dripping_is_cut(dripping: str, where: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Broke: `factory log verify --index URL` had httpx's per-read timeout only; a
    checkpoint or tile dripped a byte at a time held it for ever. Each GET is now
    bounded in all (30 s + its limit at 256 KiB/s; here 1 s)."""
    from factory.errors import VerificationError
    from factory.sign import monitor

    monkeypatch.setattr(monitor, "HTTP_TIMEOUT", 1.0)
    monkeypatch.setattr("factory.upstream.transport.MIN_RATE", 1 << 40)
    source = monitor.HttpSource(dripping, httpx.Client(timeout=5))
    started = time.monotonic()
    with pytest.raises(VerificationError, match="no complete answer within 1"):
        source._get(f"{dripping}/{where}", 1 << 20, where)
    assert time.monotonic() - started < HANG_GUARD


# -- hostile inputs of verify: locks, requirements files, venvs ------------------------------

TARGETS = {  # file name, bytes: each broke with a traceback (AttributeError, IndexError ...)
    "requirements.txt": b"alpha==1.0.0 \xff\xfe\n",
    "pylock.toml": b'lock-version = "1.0"\npackages = "x"\n',
    "pylock.name.toml": b'lock-version = "1.0"\n[[packages]]\nname = 5\n',
    "pylock.wheels.toml": b'lock-version = "1.0"\n[[packages]]\nname = "alpha"\nwheels = "x"\n',
    "pylock.utf.toml": b'lock-version = "1.0"\n# \xff\n',
    "uv.lock": b'package = "x"\n',
}
ITEMS = {  # ... or a failed item now
    "-r\n": "names no file",
    "-r 'unclosed\n": "cannot be read",
    'lock-version = "1.0"\n[[packages]]\nname = "alpha"\n'
    'wheels = [{name = "a.whl", hashes = ["x"]}]\n': "gives no sha256",
    'lock-version = "1.0"\n[[packages]]\nname = "alpha"\n'
    'wheels = [{name = "a.whl", hashes = {sha256 = 5}}]\n': "gives no sha256",
}


@pytest.fixture(scope="module")
def index_view(released_base: Path):  # type: ignore[no-untyped-def]
    from factory.verify import open_index
    from tests import factories

    return open_index(factories.settings(released_base, project="project"), None)


@pytest.mark.parametrize("name", list(TARGETS))
def test_a_malformed_lock_or_requirements_file_is_one_usage_error(
        index_view, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    """Broke: non-UTF-8 text raised UnicodeDecodeError; a pylock/uv.lock whose packages,
    name or wheels had the wrong TOML type raised AttributeError (tracebacks). Now one
    TargetError line (exit 2)."""
    from factory.verify.targets import TargetError, resolve

    path = tmp_path / ("pylock.toml" if name.startswith("pylock") else name)
    path.write_bytes(TARGETS[name])
    with pytest.raises(TargetError):
        resolve(index_view, str(path))


@pytest.mark.parametrize("text", list(ITEMS))
def test_a_bad_line_or_wheel_is_a_failed_item(index_view, tmp_path: Path, text: str) -> None:  # type: ignore[no-untyped-def]
    """Broke: `-r` with no file (IndexError), an unclosed quote (ValueError), a pylock
    wheel whose hashes were an array or whose sha256 was a number (AttributeError)."""
    from factory.verify.targets import resolve

    path = tmp_path / ("pylock.toml" if "lock-version" in text else "requirements.txt")
    path.write_text(text)
    [item] = resolve(index_view, str(path))
    assert item.problem is not None and ITEMS[text] in item.problem


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "huge"])
def test_an_included_requirements_file_is_read_as_a_bounded_regular_file(
        index_view, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Broke: `-r FILE` inside a requirements file was read whole with read_text: `-r
    /dev/zero` read without end, a FIFO blocked, a directory raised. A target file is now
    a regular file (opened without blocking), at most 64 MiB."""
    import os

    from factory.verify.targets import MAX_TARGET_BYTES, TargetError, resolve

    included = {"fifo": tmp_path / "fifo", "device": Path("/dev/zero"),
                "directory": tmp_path, "huge": tmp_path / "huge.txt"}[kind]
    if kind == "fifo":
        os.mkfifo(included)
    if kind == "huge":
        with included.open("wb") as handle:
            handle.truncate(MAX_TARGET_BYTES + 1)  # sparse
    path = tmp_path / "requirements.txt"
    path.write_text(f"-r {included}\n")
    with pytest.raises(TargetError, match="not a regular file|larger than"):
        resolve(index_view, str(path))


def test_a_venvs_hostile_names_reach_the_terminal_escaped(index_view, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Broke: a dist-info's Name and Version (and a lock's package names) went raw into
    the report's table and failure lines: ESC sequences (clear the screen, retitle the
    terminal, hide a line) reached the auditor's terminal. The report escapes them."""
    from rich.console import Console

    from factory.verify import audit
    from factory.verify.render import print_report
    from factory.verify.trust import Trust
    from tests import factories

    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    info = site / "evil-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Name: evil\x1b]0;owned\x07\x1b[2J\nVersion: 1.0\x1b[8m\n")
    (info / "RECORD").write_text("")
    settings = factories.settings(tmp_path / "auditor")
    trust = Trust.load(settings, index_view.root)
    report = audit(index_view, trust, str(tmp_path / "venv"), workers=1)
    console = Console(record=True, width=300, force_terminal=True)
    print_report(report, console)
    text = console.export_text(styles=False)
    assert "\x1b]0;" not in text and "\x1b[2J" not in text and "\x1b[8m" not in text
    assert "\\x1b" in text


def test_an_installed_file_linked_out_of_site_packages_fails(
        released_base: Path, tmp_path: Path) -> None:
    """Broke: an installed file replaced by a symbolic link to a copy elsewhere (say in
    /tmp, writable by anyone) hashed as published and passed; its bytes can change after
    the check. A file that is a link, or reached through one, out of site-packages fails."""
    from factory.verify.installed import InstalledDist, compare
    from tests import factories

    settings = factories.settings(released_base, project="project")
    wheel = next((settings.index_dir / "files" / "alpha").glob("alpha-1.0.0-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        members = [n for n in archive.namelist() if not n.endswith("/")
                   and ".dist-info/" not in n]
    (info,) = site.glob("*.dist-info")
    dist = InstalledDist("alpha", "1.0.0", info, site)
    assert compare(dist, wheel) == []
    target = site / members[0]
    outside = tmp_path / "elsewhere.py"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    [problem] = compare(dist, wheel)
    assert "symbolic link out of site-packages" in problem


# -- hostile HTTP clients of /log/ and /.well-known/factory/ ---------------------------------

def test_log_and_trust_routes_answer_only_their_own_files(released_base: Path) -> None:
    """Held: encoded dots and slashes, NULs, backslashes, empty elements, a trailing
    slash, upper case, a zero-width partial and leading zeros are 404; other methods
    405; a Range header gets the whole file (never a slice of another)."""
    from starlette.testclient import TestClient

    from factory.index import Index, create_app
    from tests import factories

    settings = factories.settings(released_base, project="project")
    with TestClient(create_app(Index.of(settings))) as client:
        assert client.get("/log/checkpoint").status_code == 200
        for bad in ["/log/%2e%2e/records/_catalog.json", "/log/..%2frecords/alpha.json",
                    "/log//checkpoint", "/log/checkpoint/", "/log/CHECKPOINT",
                    "/log/tile/0/000%2f..%2f..%2f..%2fkeys", "/log/checkpoints/00",
                    "/log/checkpoints/1%00", "/log/tile/entries/000.p/0",
                    "/log/tile/entries/x000/000", "/log/tile%5c0%5c000", "/log/", "/log",
                    "/.well-known/factory/%2e%2e/%2e%2e/records/alpha.json",
                    "/.well-known/factory/trusted_root.json%00",
                    "/.well-known/factory/..%2f..%2fkeys/owner.pub.pem"]:
            answer = client.get(bad)
            assert answer.status_code == 404, bad
            assert b"PRIVATE" not in answer.content
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert client.request(method, "/log/checkpoint").status_code == 405
        whole = (settings.index_dir / "log" / "checkpoint").read_bytes()
        ranged = client.get("/log/checkpoint", headers={"Range": "bytes=0-5"})
        assert ranged.status_code == 200 and ranged.content == whole
        trust = client.get("/.well-known/factory/trust_config.json")
        assert trust.status_code == 200 and b"PRIVATE" not in trust.content
        assert set(json.loads(trust.content)) == {"mediaType", "trustedRoot", "signingConfig"}


def test_sbom_targets_are_bounded_regular_utf8_files(tmp_path: Path) -> None:
    """Held: `factory sbom` (factory.environment) refuses a FIFO, a device, non-UTF-8."""
    import os

    from factory.environment import TargetError, read_pins

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    bad = tmp_path / "requirements.txt"
    bad.write_bytes(b"alpha==1.0\n\xff\n")
    for target, said in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular"),
                         (bad, "not UTF-8")):
        with pytest.raises(TargetError, match=said):
            read_pins(target)


# -- the OSV API as the advisory source -------------------------------------------------------

@pytest.mark.parametrize("answer", [b"[1, 2]", b'{"vulns": "x"}', b"[" * 100_000,
                                    b'{"vulns": []}' + b" " * (33 << 20), 500],
                         ids=["list", "vulns-string", "nested", "endless", "http-500"])
def test_a_hostile_osv_api_is_not_checked_not_a_crash(answer: bytes | int) -> None:
    """Broke: the OSV API source read its answer whole with no bound (an endless body
    filled memory), had httpx's per-read timeout only, and a JSON list or a string of
    vulns raised AttributeError (a traceback from lock and watch, a 'malformed evidence'
    FAIL from verify). The answer is now bounded (32 MiB, 60 s in all) and checked; any
    failure is AdvisoriesUnavailable, which verify shows as NOT CHECKED."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from factory.upstream.advisories import AdvisoryDatabase
    from tests.index_fixtures import running

    async def query(request):  # type: ignore[no-untyped-def]
        if isinstance(answer, int):
            return Response(b"", status_code=answer)
        return Response(answer, media_type="application/json")

    with running(Starlette(routes=[Route("/v1/query", query, methods=["POST"])])) as url:
        database = AdvisoryDatabase(url)
        with pytest.raises(AdvisoriesUnavailable, match="the OSV API at"):
            database.affecting("alpha", "1.0.0")


def test_a_dripping_osv_api_is_cut(dripping: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from factory.upstream import advisories

    monkeypatch.setattr(advisories, "API_SECONDS", 1.0)
    started = time.monotonic()
    with pytest.raises(AdvisoriesUnavailable, match="no answer within 1 s"):
        advisories.AdvisoryDatabase(dripping).affecting("alpha", "1.0.0")
    assert time.monotonic() - started < HANG_GUARD


def test_verify_says_not_checked_when_the_osv_api_fails(dripping: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from factory.upstream import advisories
    from factory.verify.checks import Auditor
    from factory.verify.model import SKIP

    monkeypatch.setattr(advisories, "API_SECONDS", 0.5)
    auditor = Auditor.__new__(Auditor)
    auditor.advisories = advisories.AdvisoryDatabase(dripping)
    auditor.advisories_problem = "unused"

    class Item:
        project, version = "alpha", "1.0.0"

    verdict = auditor.advisory(Item(), None)  # type: ignore[arg-type]
    assert verdict.status == SKIP and verdict.message.startswith("NOT CHECKED: the OSV API")


def test_a_page_naming_a_file_too_long_for_the_disk_fails_its_project(tmp_path: Path) -> None:
    """Broke: a wheel name of 325 characters (valid to packaging) was written into the
    auditor's temporary directory as is: OSError 'File name too long' aborted the whole
    verify --index, blamed on the auditor's file system. A name over 238 bytes (its
    sidecars' names must fit 255) now fails its project; any OSError does too."""
    from factory.verify.remote import RemoteIndex
    from tests.index_fixtures import running

    name = "alpha-1.0.0-py3-none-" + "a" * 300 + ".whl"
    page = {"name": "alpha", "files": [{"filename": name, "hashes": {"sha256": "a" * 64}}]}
    with running(_index_app(page, {name: b"PK"})) as url:
        remote = RemoteIndex(url, tmp_path)
        try:
            assert remote.record("alpha") is None
            assert "325 bytes (at most 238)" in remote.corrupt["alpha"]
        finally:
            remote.close()


def test_an_advisory_problem_with_markup_is_printed_as_text(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Broke: `factory publish` printed why advisories were NOT CHECKED through Rich with
    markup on: the reason quotes the source (an archive member's name, a protocol error
    naming a header line), and a '[/x]' in it raised MarkupError (a traceback after a
    publish) while '[link=...]' styled it. Printed as plain text now."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from factory.cli import app
    from factory.cli import build as build_cli
    from tests import factories

    settings = factories.settings(tmp_path / "project")
    monkeypatch.setattr(build_cli, "settings", lambda: settings)
    monkeypatch.setattr("factory.publish.release_all", lambda s, records: SimpleNamespace(
        published=[], refused=[], advisories_problem="'BOMB[/x][link=file:///etc]y' "
                                                     "unpacks to more than 4 bytes",
        equivalence="", equivalence_notes=["upstream's [/y] note"],
        equivalence_alarms=["[bold]ALARM[/bold] [/z]"], tuf_problem=None,
        raise_for_refusals=lambda: None))
    result = CliRunner().invoke(app, ["publish"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "[/x][link=file:///etc]y" in result.output
    assert "upstream's [/y] note" in result.output and "[bold]ALARM[/bold] [/z]" in result.output


def test_the_progress_line_shows_a_hostile_label_as_text(released_base: Path,
                                                         tmp_path: Path) -> None:
    """Broke: on a terminal, verify's progress line rendered each artifact's label as
    Rich markup: a venv's dist-info named 'evil[/x]' raised MarkupError mid-verify (a
    traceback), and ESC sequences went out raw. The label is escaped text now."""
    import io

    from rich.console import Console

    from factory.cli.verify import run
    from tests import factories

    settings = factories.settings(released_base, project="project")
    info = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "evil-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Name: evil[/x]\x1b[2J\nVersion: 1.0\n")
    (info / "RECORD").write_text("")
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    code = run(settings, str(tmp_path / "venv"), console=console, check_advisories=False,
               workers=1)
    assert code == 1
    assert "\x1b[2J" not in out.getvalue() and "[/x]" in out.getvalue()


def test_a_poisoned_etag_does_not_break_every_later_fetch(tmp_path: Path) -> None:
    """Broke: the archive's ETag and Last-Modified were kept as the server sent them;
    bytes outside ASCII (read as latin-1) sent back in the next conditional request
    raised UnicodeEncodeError before it left: every verify, lock and watch crashed from
    then on (a poisoned cache). Only printable ASCII validators are kept or sent now."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=_zip([("GOOD.json", json.dumps(GOOD))]),
                              headers=[(b"etag", b'"\xe9\xff"'), (b"last-modified", b"\xe9")])

    url = "https://mirror.test/all.zip"
    fetch_archive(url, tmp_path, client=_mock(handler))
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["etag"] is None and meta["last_modified"] is None
    meta["etag"] = '"\xe9"'  # a cache written before: not sent either
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    database, problem = open_advisories(url, tmp_path, client=_mock(handler), recheck=0)
    assert problem is None and database is not None
    assert "if-none-match" not in calls[-1].headers


@pytest.mark.parametrize("location", ["javascript:alert(1)", "http://[x/", "/\x00x"])
def test_a_redirect_to_no_url_is_a_reason_not_a_traceback(tmp_path: Path, location: str) -> None:
    """Broke: a redirect to 'javascript:...' raised httpx.InvalidURL out of the archive
    fetch (not an HTTPError); in verify --index a redirect to 'http://[x' raised ValueError
    from urlsplit and one to '/\\0' InvalidURL: tracebacks. Each is a failed fetch now."""
    from factory.errors import FactoryError
    from factory.verify.remote import Fetcher, Limits

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers=[(b"location", location.encode())])

    if location.startswith("javascript"):
        with pytest.raises(AdvisoriesUnavailable, match="unreachable"):
            fetch_archive("https://mirror.test/all.zip", tmp_path, client=_mock(handler))
    fetcher = Fetcher("http://index.test/", Limits(),
                      httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(FactoryError):
        fetcher.get("simple/", 1 << 20)


@pytest.mark.parametrize("metadata", ["missing", "fifo", "directory", "device", "no-name"])
def test_a_dist_info_without_readable_metadata_is_not_skipped(
        tmp_path: Path, metadata: str) -> None:
    """Broke: a dist-info whose METADATA was missing, a FIFO, a directory, a device, or
    had no Name/Version was skipped: the distribution's files went unchecked and the
    venv could pass (a way to hide one). It is now a distribution that fails, named from
    its directory; METADATA, WHEEL and RECORD are read as bounded regular files."""
    import os

    from factory.verify.installed import find_distributions

    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    info = site / "hidden_pkg-2.0.dist-info"
    info.mkdir(parents=True)
    (info / "RECORD").write_text("hidden_pkg/__init__.py,sha256=x,1\n")
    meta = info / "METADATA"
    if metadata == "fifo":
        os.mkfifo(meta)
    elif metadata == "directory":
        meta.mkdir()
    elif metadata == "device":
        meta.symlink_to("/dev/zero")
    elif metadata == "no-name":
        meta.write_text("Summary: nothing\n")
    [dist] = find_distributions(tmp_path / "venv")
    assert (dist.name, dist.version) == ("hidden-pkg", "2.0")
    assert dist.problem is not None and "no readable METADATA" in dist.problem


def test_an_index_password_in_the_url_stays_out_of_reports(released_base: Path,
                                                           tmp_path: Path) -> None:
    """Broke: `verify --index https://user:token@host/` (an index behind basic auth, as
    pip takes it) wrote the token into the report (trust.index, every message naming a
    URL), a file that gets filed and shared; `log verify` printed it too. URLs are shown
    without user:password@ (still sent to the server)."""
    from factory.index import Index
    from factory.index.serve import create_app
    from factory.sign.monitor import HttpSource
    from factory.verify import verify
    from factory.verify.render import report_json
    from tests import factories
    from tests.index_fixtures import running
    from tests.security_fixtures import released_copy

    settings = released_copy(released_base, tmp_path)
    with running(create_app(Index.of(settings))) as url:
        secret = url.replace("http://", "http://reader:s3cret-token@")
        report = verify(factories.settings(tmp_path / "auditor"), "alpha==1.0.0",
                        index_dir=secret, check_advisories=False,
                        identity=settings.identity, issuer=settings.issuer)
        missing = verify(factories.settings(tmp_path / "auditor2"), "nosuch==1.0",
                         index_dir=secret, check_advisories=False)
        source = HttpSource(secret)
        assert source.get("checkpoint", 1 << 13) is not None  # still reaches the server
    for text in (report_json(report), report_json(missing), source.location):
        assert "s3cret" not in text
    assert report.ok and "***@127.0.0.1" in report.trust.index


def test_an_advisory_mirror_password_stays_out_of_messages(tmp_path: Path) -> None:
    """Broke: a private mirror's URL with user:token@ was quoted whole in why advisories
    were NOT CHECKED: verify's report, watch's summary, the ledger and the served home
    page (the status record). Shown as ***@host now."""
    from tests.index_fixtures import free_port

    url = f"http://reader:s3cret@127.0.0.1:{free_port()}/all.zip"
    database, problem = open_advisories(url, tmp_path)
    assert database is None and problem is not None
    assert "s3cret" not in problem and "***@127.0.0.1" in problem


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=9)


def test_a_stacked_content_encoding_is_refused_not_inflated(tmp_path: Path) -> None:
    """Broke: httpx decodes every Content-Encoding a server lists, each read whole:
    1 GiB of zeros sent gzip'd twice is 1,827 bytes, and was inflated in one piece
    before any bound was checked (the advisory archive, the OSV API, verify --index,
    log verify). Bodies are now read raw and inflated from one gzip or deflate layer
    in bounded pieces (transport.inflated); stacked or other encodings are refused."""
    from factory.errors import FactoryError, VerificationError
    from factory.sign.monitor import HttpSource
    from factory.verify.remote import Fetcher, Limits

    bomb = _gzip(_gzip(b"\0" * (8 << 20)))
    page = json.dumps({"name": "alpha", "files": []}).encode()

    class Streamed(httpx.SyncByteStream):  # as a server's answer arrives: not read yet
        def __init__(self, data: bytes) -> None:
            self.data = data

        def __iter__(self) -> Iterator[bytes]:
            yield self.data

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/plain/"):  # one gzip layer: read as before
            return httpx.Response(200, headers={"Content-Encoding": "gzip"},
                                  stream=Streamed(_gzip(page)))
        return httpx.Response(200, headers={"Content-Encoding": "gzip, gzip"},
                              stream=Streamed(bomb))

    with pytest.raises(AdvisoriesUnavailable, match="Content-Encoding"):
        fetch_archive("https://mirror.test/all.zip", tmp_path, client=_mock(handler))
    fetcher = Fetcher("http://index.test/", Limits(page=1 << 20),
                      httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(FactoryError, match="Content-Encoding"):
        fetcher.get("simple/alpha/", 1 << 20)
    assert fetcher.get("simple/plain/", 1 << 20) == page
    source = HttpSource("http://index.test/", httpx.Client(transport=httpx.MockTransport(
        handler)))
    with pytest.raises(VerificationError, match="Content-Encoding"):
        source.get("checkpoint", 1 << 13)


def test_the_answers_key_fetch_is_bounded_in_all(dripping: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Broke (same classes, issue 18's fetch): `verify answer --index URL` bounded the
    key's body in time but not its headers (dripped headers held it), and read it
    through httpx's decoding (a 'gzip, gzip' body inflated whole). Now a deadline over
    the whole fetch and transport.inflated."""
    from factory.cli import verify as verify_cli
    from factory.errors import VerificationError

    monkeypatch.setattr(verify_cli, "KEY_SECONDS", 1.0)
    started = time.monotonic()
    with pytest.raises(VerificationError, match="took more than 1 seconds"):
        verify_cli._answers_key(lambda: None, None, dripping)  # type: ignore[arg-type,return-value]
    assert time.monotonic() - started < HANG_GUARD


def test_a_long_chain_of_included_requirements_is_one_error(index_view, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Broke: each `-r` recursed, so 1,200 requirements files each including the next
    raised RecursionError (a traceback). At most 64 files are included now."""
    from factory.verify.targets import TargetError, resolve

    for n in range(1200):
        (tmp_path / f"r{n}.txt").write_text(f"-r r{n + 1}.txt\n")
    (tmp_path / "r1200.txt").write_text("alpha==1.0.0\n")
    with pytest.raises(TargetError, match="more than 64 requirements files"):
        resolve(index_view, str(tmp_path / "r0.txt"))
