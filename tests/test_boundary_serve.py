"""Boundary: HTTP client -> `factory serve`, and index tree on disk -> `factory serve`.

Every request goes to a real uvicorn server over a socket, with http.client (or a
raw socket), so that paths reach the server exactly as written (curl
--path-as-is): no client normalizes "//", "..", or percent-encoded separators.

Canaries: secret files in the state dir (the signing keys' places), beside the
index, and unpublished files inside it (a stray in trust/, a stray wheel, a link
out of the tree). No answer may ever carry their bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factory.config import Settings, load_settings
from factory.index import Index
from factory.index import pages as simple_pages
from factory.index.records import Layout
from factory.index.serve import create_app
from factory.index.validation import load_record
from tests.index_fixtures import Answer, publish_wheel, request, running

JSON = "application/vnd.pypi.simple.v1+json"
SMALL = "alpha-1.0-py3-none-any.whl"
BIG = "bigpkg-1.0-py3-none-any.whl"  # over 256 KiB: streamed from disk, not from memory
NEVER = {500, 502, 503}
ANSWERS = {200, 301, 304, 400, 404, 405, 406, 410, 414, 431}


@dataclass
class Site:
    settings: Settings
    url: str
    host: str
    port: int
    canaries: dict[str, bytes]  # what: bytes that must never be sent
    published: set[str]  # sha256 of every file the records (and the trust manifest) name

    @property
    def index(self) -> Path:
        return self.settings.index_dir


def get(site: Site, target: str, headers: dict[str, str] | None = None,
        method: str = "GET") -> Answer:
    """``target`` sent exactly as given (http.client does not normalize the path)."""
    return request(site.host, site.port, target, headers, method, timeout=20)


def raw(site: Site, request: bytes) -> bytes:
    """Bytes a client sends (even ones http.client refuses), and the whole answer."""
    with socket.create_connection((site.host, site.port), timeout=20) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def short(target: str) -> str:
    """A target as an assertion message shows it (some are 5,000 characters)."""
    return target if len(target) <= 120 else f"{target[:100]}...({len(target)} chars)"


def assert_no_leak(site: Site, answer: Answer, target: str) -> None:
    for what, secret in site.canaries.items():
        assert secret not in answer.body, f"{short(target)} leaked {what}"
    assert b"root:x:0:0" not in answer.body, f"{short(target)} leaked /etc/passwd"


def _canaries(settings: Settings) -> dict[str, bytes]:
    """Secret files where an attacker would look, each with unique bytes."""
    state, index = settings.state_dir, settings.index_dir
    places = {
        "owner key": settings.private_keys_dir / "owner.pem.key",
        "CA key": settings.authority_dir / "ca-key.pem",
        "beside the index": state / "secret.txt",
        "stray in trust/": index / "trust" / "stray.pem",
        "stray wheel": index / "files" / "alpha" / "stray-1.0-py3-none-any.whl",
        "stray page dir": index / "simple" / "ghost" / "index.json",
    }
    canaries = {}
    for what, path in places.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = f"CANARY {what} {os.urandom(8).hex()}\n".encode()
        path.write_bytes(secret)
        canaries[what] = secret
    # Links inside the tree that point out of it.
    (index / "trust" / "passwd").symlink_to("/etc/passwd")
    (index / "trust" / "owner.pem.key").symlink_to(settings.private_keys_dir / "owner.pem.key")
    (index / "files" / "alpha" / "key.whl").symlink_to(settings.private_keys_dir / "owner.pem.key")
    return canaries


def _build_site(base: Path) -> tuple[Settings, dict[str, bytes], set[str]]:
    settings = load_settings(root=base, index_url="http://index.test")
    publish_wheel(settings, base / "work", "alpha", "1.0")
    publish_wheel(settings, base / "work", "bigpkg", "1.0", marker=os.urandom(400_000).hex())
    trusted = base / "trusted_root.json"
    trusted.write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json"}\n')
    owner = base / "owner.pub.pem"
    owner.write_text("-----BEGIN PUBLIC KEY-----\nMFk=\n-----END PUBLIC KEY-----\n")
    Index.of(settings).publish_trust({"trusted_root.json": trusted, "owner.pub.pem": owner})
    canaries = _canaries(settings)
    layout = Layout(settings.index_dir)
    for project in ("alpha", "bigpkg"):
        canaries[f"record of {project}"] = layout.record(project).read_bytes()
    published = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (trusted, owner)}
    for project in ("alpha", "bigpkg"):
        record = load_record(layout, project)
        assert record is not None
        published |= {stored.sha256 for stored in record.served().values()}
    return settings, canaries, published


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings, canaries, published = _build_site(tmp_path_factory.mktemp("serve-boundary"))
    with running(create_app(Index.of(settings))) as url:
        host, port = url.removeprefix("http://").split(":")
        yield Site(settings, url, host, int(port), canaries, published)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Site]:
    """A site of its own, for tests that tamper with the tree."""
    settings, canaries, published = _build_site(tmp_path)
    with running(create_app(Index.of(settings))) as url:
        host, port = url.removeprefix("http://").split(":")
        yield Site(settings, url, host, int(port), canaries, published)


# -- HTTP client -> serve: no request reaches a file outside what is published ----------


def _escapes(site: Site) -> list[str]:
    state = str(site.settings.state_dir)
    owner = f"{state}/keys/owner.pem.key"
    ca = f"{state}/authority/ca-key.pem"
    return [
        "/etc/passwd", "/proc/self/environ", owner, ca, f"{state}/secret.txt",
        quote("/etc/passwd", safe=""), quote(owner, safe=""), quote(ca, safe=""),
        "../../keys/owner.pem.key", "..%2F..%2Fkeys%2Fowner.pem.key",
        "%2e%2e/%2e%2e/keys/owner.pem.key", "..\\..\\keys\\owner.pem.key",
        "%2E%2E%5C%2E%2E%5Ckeys%5Cowner.pem.key", "./../../secret.txt",
    ]


@pytest.mark.parametrize("how", range(14))
def test_trust_route_reads_nothing_outside_the_published_trust_files(site: Site, how: int):
    """The issue's example: /.well-known/factory//etc/passwd answered 200, and so did
    %2F, /proc/self/environ and the state dir's keys/owner.pem.key and authority/ca-key.pem."""
    escapes = _escapes(site)
    assert len(escapes) == 14
    target = "/.well-known/factory/" + escapes[how]
    answer = get(site, target)
    assert answer.status == 404, (short(target), answer.status, answer.body[:200])
    assert_no_leak(site, answer, target)


@pytest.mark.parametrize("name", ["stray.pem", "passwd", "owner.pem.key", ".", "..", "",
                                  "trusted_root.json/", "%2e%2e", "trusted_root.json%00"])
def test_trust_route_serves_only_what_the_manifest_names(site: Site, name: str):
    answer = get(site, "/.well-known/factory/" + name)
    if name == "":
        listing = json.loads(answer.body)
        assert sorted(f["name"] for f in listing["files"]) == ["owner.pub.pem",
                                                               "trusted_root.json"]
    else:
        assert answer.status == 404, (name, answer.status)
    assert_no_leak(site, answer, name)


def test_published_trust_files_are_served_with_their_digest(site: Site):
    answer = get(site, "/.well-known/factory/trusted_root.json")
    assert answer.status == 200 and answer.headers["content-type"] == "application/json"
    assert hashlib.sha256(answer.body).hexdigest() in site.published
    assert answer.headers["cache-control"] == "no-cache"  # may be rotated


@pytest.mark.parametrize("prefix", ["/files/alpha/", "/sources/alpha/", "/project/",
                                    "/simple/", "/integrity/alpha/1.0/", "/files/", "/"])
def test_every_route_refuses_paths_out_of_the_index(site: Site, prefix: str):
    for escape in _escapes(site):
        target = prefix + escape + ("/provenance" if prefix.startswith("/integrity") else "")
        answer = get(site, target)
        assert answer.status in {301, 404}, (short(target), answer.status, answer.body[:200])
        assert_no_leak(site, answer, target)
    for target in ("/files/alpha/key.whl", "/files/alpha/stray-1.0-py3-none-any.whl",
                   "/simple/ghost/", "/records/alpha.json", "/files/alpha/../../records/alpha.json",
                   f"/files/alpha//{SMALL}", f"/files/alpha/./{SMALL}",
                   f"/files/alpha/{SMALL}.in-toto%2Froot.layout"):
        answer = get(site, target)
        assert answer.status == 404, (short(target), answer.status)
        assert_no_leak(site, answer, target)


@pytest.mark.parametrize("prefix", ["/", "/simple/", "/project/", "/files/alpha/",
                                    "/sources/alpha/", "/integrity/alpha/1.0/",
                                    "/.well-known/factory/", "/.well-known/factory//"])
def test_a_5000_character_path_is_404_or_414_never_500(site: Site, prefix: str):
    """The issue's example: a 5,000-character path must answer 404/414, never 500."""
    answer = get(site, prefix + "a" * 5000)
    assert answer.status in {404, 414}, (prefix, answer.status)
    for length in (255, 256, 1000, 2000):  # around name and path limits of the filesystem
        answer = get(site, prefix + "b" * length + "/")
        assert answer.status in {301, 404, 414}, (prefix, length, answer.status)


def test_oversize_headers_and_queries_are_refused_with_their_own_status(site: Site):
    assert get(site, "/simple/alpha/", {"X-Big": "a" * 100_000}).status == 431
    assert get(site, "/simple/alpha/", {"Accept": "text/html," * 10_000}).status == 431
    assert get(site, "/simple/alpha/", {"If-None-Match": '"x",' * 20_000}).status == 431
    many = raw(site, b"GET /simple/alpha/ HTTP/1.1\r\nHost: x\r\n"
               + b"".join(b"X-%d: a\r\n" % i for i in range(500)) + b"Connection: close\r\n\r\n")
    assert many.startswith(b"HTTP/1.1 431"), many[:60]
    assert get(site, "/simple/?" + "a=b&" * 2000).status == 414
    assert get(site, "/simple/alpha/?format=" + "x" * 1000).status == 406  # long, but allowed


@pytest.mark.parametrize("target", [
    "/integrity/%00/1.0/x.whl/provenance",  # NUL in a name looked up on disk: was a 500
    "/integrity/alpha/%00/x.whl/provenance",
    "/simple/%00/", "/project/%00/", "/files/%00/x", "/files/alpha/%00",
    "/simple/%ff%fe/", "/project/%c0%ae%c0%ae/", "/files/alpha/%c0%af",
    "/simple/%zz/", "/simple/%/", "/simple/%2/", "/files/alpha/%e2%80%ae.whl",
    quote("/simple/\u00e9/"),
    "/.well-known/factory/%ff", "/.well-known/factory/%0a",
    "/simple/Alpha", "/project/Alpha", "/.well-known/factory", "/simple",
])
def test_malformed_encodings_never_answer_500(site: Site, target: str):
    answer = get(site, target)
    assert answer.status in (ANSWERS - {200}) | {301}, (target, answer.status, answer.body[:200])


@pytest.mark.parametrize("accept", ["*/*;q=x", ";;;", "q=1", ",,,", "text/html;q=nan",
                                    "text/html;q=1e999", "text/html;q=-1", "\u00e9/\u00e9",
                                    "application/vnd.pypi.simple.v1+json;q=0.5;q=0.9"])
def test_odd_accept_headers_never_answer_500(site: Site, accept: str):
    for target in ("/simple/", "/simple/alpha/", "/"):
        answer = get(site, target, {"Accept": accept.encode().decode("latin-1")})
        assert answer.status in {200, 406}, (target, accept, answer.status)


@pytest.mark.parametrize("request_line", [
    b"GET /simple/\xff/ HTTP/1.1", b"GET /files/alpha/\x00 HTTP/1.1",
    "GET /simple/é/ HTTP/1.1".encode(), b"GET /.well-known/factory/\xc0\xaf HTTP/1.1",
    b"GET http://evil.invalid/.well-known/factory//etc/passwd HTTP/1.1",
    b"GET //etc/passwd HTTP/1.1", b"GET * HTTP/1.1", b"GET ../../etc/passwd HTTP/1.1",
])
def test_raw_bytes_in_the_request_line_never_answer_500(site: Site, request_line: bytes):
    answer = raw(site, request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    status = int(answer.split(b" ", 2)[1])
    assert status in {400, 404, 414}, (request_line, answer[:200])
    for what, secret in site.canaries.items():
        assert secret not in answer, what
    assert b"root:x:0:0" not in answer


def test_redirects_are_relative_and_never_echo_the_host(site: Site):
    for target, location in (("/simple/Alpha/?format=x", "/simple/alpha/?format=x"),
                             ("/simple/alpha", "/simple/alpha/"),
                             ("/project/Alpha/", "/project/alpha/")):
        answer = get(site, target, {"Host": "evil.invalid"})
        assert answer.status == 301 and answer.headers["location"] == location, answer.headers


def test_large_files_stream_with_ranges_and_etags(site: Site):
    whole = get(site, f"/files/bigpkg/{BIG}")
    assert whole.status == 200 and len(whole.body) > 256 * 1024
    assert hashlib.sha256(whole.body).hexdigest() in site.published
    part = get(site, f"/files/bigpkg/{BIG}", {"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == whole.body[10:20]
    again = get(site, f"/files/bigpkg/{BIG}", {"If-None-Match": whole.headers["etag"]})
    assert again.status == 304
    assert get(site, f"/files/bigpkg/{BIG}", method="HEAD").status == 200


# -- property: for any path, never a 500, never a byte outside the published set --------

_HOSTILE = st.sampled_from([
    "..", ".", "", "%2e%2e", "%2E.", "..%2f", "%2F", "%2f", "%5c", "\\", "%00", "%0a", "%ff%fe",
    "%c0%ae", "etc", "passwd", "proc", "self", "environ", "keys", "owner.pem.key", "authority",
    "ca-key.pem", "secret.txt", "records", "alpha.json", "trust", "stray.pem", "key.whl",
    "alpha", "Alpha", "bigpkg", SMALL, SMALL + ".metadata", SMALL + ".provenance", BIG,
    SMALL + ".in-toto", "root.layout", "1.0", "provenance", "trusted_root.json", "index.json",
    "a" * 300, "\u202e", "\u0430lpha", "~", ";", "%3B", "?format=" + JSON, "#x",
])
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_PREFIX = st.sampled_from(["/", "/simple/", "/project/", "/files/", "/files/alpha/",
                           "/sources/alpha/", "/integrity/alpha/1.0/", "/.well-known/factory/",
                           "/.well-known/factory//", "//"])


def _encode(segment: str, how: int) -> str:
    """A segment as a client could put it on the wire: raw ASCII, or percent-encoded."""
    if how == 0 and segment.isascii() and segment.isprintable() and " " not in segment:
        return segment
    return quote(segment, safe="" if how == 1 else "%/.")


@st.composite
def _targets(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.one_of(_HOSTILE, _TEXT), max_size=8))
    how = draw(st.integers(0, 2))
    path = draw(_PREFIX) + "/".join(_encode(s, how) for s in segments)
    if draw(st.booleans()):  # absolute paths of the secrets, raw or encoded
        secret = draw(st.sampled_from(["/etc/passwd", "/proc/self/environ", "{state}/keys/"
                                       "owner.pem.key", "{state}/authority/ca-key.pem",
                                       "{state}/secret.txt"]))
        path += secret if how != 1 else quote(secret, safe="{}")
    if draw(st.booleans()):
        path += draw(st.sampled_from(["/", "/provenance", "?format=" + JSON, "?" + "x" * 3000]))
    return path + draw(st.sampled_from(["", "a" * 5000]))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(target=_targets(), accept=st.one_of(st.none(), st.sampled_from([JSON, "*/*;q=x"]),
                                           st.text(st.characters(min_codepoint=32,
                                                                 max_codepoint=126),
                                                   max_size=30)))
def test_any_path_never_500s_and_never_sends_an_unpublished_byte(site: Site, target: str,
                                                                  accept: str | None):
    target = target.replace("{state}", str(site.settings.state_dir))
    answer = get(site, target, {"Accept": accept} if accept is not None else None)
    assert answer.status not in NEVER, (short(target), answer.status, answer.body[:200])
    assert answer.status in ANSWERS | {206}, (short(target), answer.status)
    assert_no_leak(site, answer, target)
    path = target.split("?", 1)[0]
    if answer.status == 200 and path.startswith(("/files/", "/sources/", "/integrity/")) \
            and not path.rstrip("/").endswith(".in-toto"):
        assert hashlib.sha256(answer.body).hexdigest() in site.published, short(target)
    if answer.status == 200 and path.startswith("/.well-known/factory/") \
            and path != "/.well-known/factory/":
        assert hashlib.sha256(answer.body).hexdigest() in site.published, short(target)


# -- index tree on disk -> serve: pages come from records, never from disk --------------

EVIL = b"<a href='https://evil.invalid/x.whl'>EVIL</a>"


def _tamper(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize(("target", "disk", "accept"), [
    ("/", "index.html", "text/html"),
    ("/simple/", "simple/index.html", "text/html"),
    ("/simple/", "simple/index.json", JSON),
    ("/project/alpha/", "project/alpha/index.html", "text/html"),
    ("/simple/alpha/", "simple/alpha/index.html", "text/html"),
    ("/simple/alpha/", "simple/alpha/index.json", JSON),
])
def test_a_page_edited_on_disk_is_never_sent(fresh: Site, target: str, disk: str, accept: str,
                                             caplog: pytest.LogCaptureFixture):
    honest = get(fresh, target, {"Accept": accept})
    assert honest.status == 200
    forged = EVIL + (b"{}" if disk.endswith(".json") else b"")
    _tamper(fresh.index / disk, forged)
    with caplog.at_level(logging.INFO, logger="factory.index.serve"):
        served = get(fresh, target, {"Accept": accept})
    assert served.status == 200 and b"evil.invalid" not in served.body
    assert served.body == honest.body
    if disk != "index.html":  # the home page's copy carries its own time stamp
        assert "REFUSED page" in caplog.text


def test_pages_are_rendered_from_records_even_with_no_copy_on_disk(fresh: Site):
    """Served pages are what the records produce: deleting the static copies changes nothing."""
    layout = Layout(fresh.index)
    record = load_record(layout, "alpha")
    assert record is not None
    expected = simple_pages.project_json(record, fresh.settings.index_url).encode()
    names = [("alpha", "alpha"), ("bigpkg", "bigpkg")]
    for disk in ("index.html", "simple/index.html", "simple/index.json",
                 "project/alpha/index.html", "simple/alpha/index.html", "simple/alpha/index.json"):
        (fresh.index / disk).unlink()
    assert get(fresh, "/simple/alpha/", {"Accept": JSON}).body == expected
    assert get(fresh, "/simple/", {"Accept": JSON}).body == \
        simple_pages.project_list_json(names).encode()
    assert b'href="alpha/"' in get(fresh, "/simple/").body
    assert SMALL.encode() in get(fresh, "/project/alpha/").body
    assert b'href="project/alpha/"' in get(fresh, "/").body


def test_the_home_page_shows_the_status_record_and_ignores_a_forged_copy(fresh: Site):
    row = {"name": "alpha", "kind": "runtime", "allowed": ">=1", "newest_upstream": "1.1",
           "locked": "1.0", "published": "1.0", "advisories": ["GHSA-xxxx-yyyy-zzzz"],
           "waiting_days": 2.5, "note": ""}
    Index.of(fresh.settings).write_status([row])
    assert json.loads((fresh.index / "records" / "_status.json").read_text()) == [row]
    _tamper(fresh.index / "index.html", EVIL)
    home = get(fresh, "/")
    assert home.status == 200 and b"evil.invalid" not in home.body
    assert b"GHSA-xxxx-yyyy-zzzz" in home.body and b"2.5 d" in home.body
    Index.of(fresh.settings).write_status([{**row, "advisories": []}])
    assert b"GHSA-xxxx-yyyy-zzzz" not in get(fresh, "/").body  # the new record, at once


# -- index tree on disk -> serve: files only as recorded, never through a link ------------


def test_a_trust_file_edited_on_disk_is_refused(fresh: Site, caplog: pytest.LogCaptureFixture):
    path = fresh.index / "trust" / "trusted_root.json"
    assert get(fresh, "/.well-known/factory/trusted_root.json").status == 200
    path.write_text('{"mediaType": "an attacker\'s root"}\n')
    with caplog.at_level(logging.ERROR, logger="factory.index.serve"):
        answer = get(fresh, "/.well-known/factory/trusted_root.json")
    assert answer.status == 500 and b"attacker" not in answer.body
    assert "REFUSED" in caplog.text


def test_a_trust_file_replaced_by_a_link_is_never_followed(fresh: Site):
    path = fresh.index / "trust" / "trusted_root.json"
    outside = fresh.settings.state_dir / "copy-of-root.json"
    shutil.copyfile(path, outside)  # the same bytes: only the link is wrong
    path.unlink()
    path.symlink_to(outside)
    assert get(fresh, "/.well-known/factory/trusted_root.json").status == 500


def test_a_trust_manifest_naming_a_path_out_of_trust_is_refused(fresh: Site):
    manifest = fresh.index / "records" / "_trust.json"
    secret = fresh.settings.private_keys_dir / "owner.pem.key"
    entry = {"sha256": hashlib.sha256(secret.read_bytes()).hexdigest(),
             "size": secret.stat().st_size}
    for name, path in (("owner.pem.key", "trust/../../keys/owner.pem.key"),
                       ("owner.pem.key", str(secret)), ("../keys/owner.pem.key", "trust/x")):
        manifest.write_text(json.dumps({"files": {name: {"path": path, **entry}}}))
        for target in ("/.well-known/factory/owner.pem.key", "/.well-known/factory/"):
            answer = get(fresh, target)
            assert answer.status in {404, 503}, (path, target, answer.status)
            assert_no_leak(fresh, answer, target)


@pytest.mark.parametrize("name", [SMALL + ".metadata", SMALL])
def test_a_published_file_replaced_by_a_link_out_of_the_tree_is_refused(fresh: Site, name: str):
    path = fresh.index / "files" / "alpha" / name
    outside = fresh.settings.state_dir / ("outside-" + name)
    shutil.copyfile(path, outside)  # the same bytes: only the link is wrong
    path.unlink()
    path.symlink_to(outside)
    assert get(fresh, f"/files/alpha/{name}").status == 500


def test_a_large_file_replaced_by_a_link_out_of_the_tree_is_refused(fresh: Site):
    path = fresh.index / "files" / "bigpkg" / BIG
    outside = fresh.settings.state_dir / BIG
    shutil.copyfile(path, outside)
    path.unlink()
    path.symlink_to(outside)
    assert get(fresh, f"/files/bigpkg/{BIG}").status == 500


def test_a_project_directory_moved_out_and_linked_back_is_refused(fresh: Site):
    inside = fresh.index / "files" / "alpha"
    outside = fresh.settings.state_dir / "moved-alpha"
    inside.rename(outside)
    inside.symlink_to(outside)
    assert get(fresh, f"/files/alpha/{SMALL}.metadata").status == 500
    assert get(fresh, f"/files/alpha/{SMALL}").status == 500


def test_a_fifo_in_place_of_a_file_or_record_never_hangs_the_server(fresh: Site):
    path = fresh.index / "files" / "alpha" / (SMALL + ".metadata")
    path.unlink()
    os.mkfifo(path)
    assert get(fresh, f"/files/alpha/{SMALL}.metadata").status == 500
    record = fresh.index / "records" / "alpha.json"
    record.unlink()
    os.mkfifo(record)
    assert get(fresh, "/simple/alpha/").status == 503
    assert get(fresh, "/simple/bigpkg/").status == 200  # the rest still serves


@pytest.mark.parametrize("damage", ["not json", "link out", "wrong name", "path out",
                                    "absolute path", "deep nesting", "not an object"])
def test_a_damaged_record_is_a_503_never_a_500_or_a_leak(fresh: Site, damage: str,
                                                         caplog: pytest.LogCaptureFixture):
    path = fresh.index / "records" / "alpha.json"
    data = json.loads(path.read_text())
    secret = fresh.settings.private_keys_dir / "owner.pem.key"
    if damage == "not json":
        path.write_text("{broken")
    elif damage == "link out":
        outside = fresh.settings.state_dir / "alpha.json"
        shutil.copyfile(path, outside)
        path.unlink()
        path.symlink_to(outside)
    elif damage == "wrong name":
        data["name"] = "bigpkg"
        path.write_text(json.dumps(data))
    elif damage in ("path out", "absolute path"):
        entry = data["files"][0]
        entry["metadata"] = {"path": "files/alpha/../../../keys/owner.pem.key"
                             if damage == "path out" else str(secret),
                             "sha256": hashlib.sha256(secret.read_bytes()).hexdigest(),
                             "size": secret.stat().st_size}
        path.write_text(json.dumps(data))
    elif damage == "deep nesting":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        path.write_text("[1, 2]")
    with caplog.at_level(logging.ERROR, logger="factory.index.serve"):
        for target in ("/simple/alpha/", "/project/alpha/", f"/files/alpha/{SMALL}",
                       f"/files/alpha/{SMALL}.metadata", f"/integrity/alpha/1.0/{SMALL}/provenance",
                       "/files/alpha/../../../keys/owner.pem.key"):
            answer = get(fresh, target)
            assert answer.status in {404, 503}, (damage, target, answer.status)
            assert_no_leak(fresh, answer, target)
    assert "REFUSED record" in caplog.text
    assert get(fresh, f"/files/bigpkg/{BIG}").status == 200  # the rest still serves


def test_a_damaged_catalog_or_status_is_a_503_for_the_pages_it_feeds(fresh: Site):
    (fresh.index / "records" / "_catalog.json").write_text('{"alpha": {"name": "../evil"}}')
    assert get(fresh, "/").status == 503
    assert get(fresh, "/simple/").status == 503
    assert get(fresh, "/simple/alpha/").status == 200  # project pages need only their record
    (fresh.index / "records" / "_catalog.json").unlink()
    (fresh.index / "records" / "_status.json").write_text('[{"name": 1}]')
    assert get(fresh, "/").status == 503
