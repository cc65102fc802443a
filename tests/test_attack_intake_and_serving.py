"""Adversarial pass (issue 15) on intake and serving: boundaries 1, 2, 6 and 7 of
docs/threat-model.md, with cases not already in tests/test_boundary_*.py,
tests/test_security_extract.py or tests/test_sources_extract.py.

Every case asserts the SAFE behaviour, so a case that held is a regression test
and a break is a failing (or strict xfail) test. Everything runs against the
real code paths: local HTTP servers on 127.0.0.x for upstream, `factory serve`'s
app under real uvicorn on 127.0.0.1 reached with raw sockets and http.client
(no client-side normalization), real archives, real index trees.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import html
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from factory import fetch, ledger
from factory.config import Settings, load_settings
from factory.errors import (
    AlarmError,
    FactoryError,
    IntegrityError,
    LockError,
    UnsafeArchiveError,
    UpstreamError,
)
from factory.index import Index
from factory.index.serve import create_app
from factory.lock import Lock, lock_stage
from factory.upstream.archive import extract, read_member
from factory.upstream.cache import check_identity
from factory.upstream.client import Upstream
from factory.upstream.listing import parse_html, parse_json, sdist_name_problem
from tests import factories, local_upstream
from tests.factories import tar_member as member
from tests.index_fixtures import Answer, publish_wheel, request, running
from tests.local_upstream import Hook, LocalUpstream, entry, project_page, redirect, reply
from tests.security_fixtures import raised

# =====================================================================================
# Boundary 7 (HTTP client -> serve) and 6 (index tree on disk -> serve, index check)
# =====================================================================================

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
A1 = "alpha-1.0-py3-none-any.whl"
A2 = "alpha-2.0-py3-none-any.whl"
BIG = "bigpkg-1.0-py3-none-any.whl"  # > 256 KiB: streamed (Range support), not from memory
B1 = "beta-1.0-py3-none-any.whl"


@dataclass
class Site:
    settings: Settings
    host: str
    port: int
    canaries: dict[str, bytes]

    @property
    def index(self) -> Path:
        return self.settings.index_dir


def get(site: Site, target: str, headers: dict[str, str] | list[tuple[str, str]] | None = None,
        method: str = "GET") -> Answer:
    """``target`` sent as written (http.client neither normalizes nor encodes it)."""
    return request(site.host, site.port, target, headers, method)


def raw(site: Site, request: bytes, timeout: float = 30) -> bytes:
    """Bytes as a client sends them (even what http.client refuses); the whole answer.
    ``timeout``: a guard per read, generous for a loaded machine (the server closes
    after each of these requests, so no test waits it out: seen 13 in 3 s)."""
    with socket.create_connection((site.host, site.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass  # a keep-alive connection the server left open: what came is the answer
    return b"".join(chunks)


def statuses(answer: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"^HTTP/1\.[01] (\d{3})", answer, re.MULTILINE)]


def no_leak(site: Site, body: bytes, what: str) -> None:
    for name, secret in site.canaries.items():
        assert secret not in body, f"{what} leaked {name}"
    assert b"root:x:0:0" not in body, f"{what} leaked /etc/passwd"


def _build(base: Path) -> tuple[Settings, dict[str, bytes]]:
    settings = load_settings(root=base, index_url="http://index.test")
    work = base / "work"
    publish_wheel(settings, work, "alpha", "1.0")
    publish_wheel(settings, work, "alpha", "2.0")
    publish_wheel(settings, work, "beta", "1.0")
    publish_wheel(settings, work, "bigpkg", "1.0", marker=os.urandom(400_000).hex())
    trusted = base / "trusted_root.json"
    trusted.write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json"}\n')
    Index.of(settings).publish_trust({"trusted_root.json": trusted})
    key = settings.private_keys_dir / "owner.pem.key"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nCANARY owner " + os.urandom(8).hex().encode()
                    + b"\n-----END PRIVATE KEY-----\n")
    secret = settings.state_dir / "secret.txt"
    secret.write_bytes(b"CANARY beside the index " + os.urandom(8).hex().encode())
    stray = settings.index_dir / "files" / "alpha" / "stray-1.0-py3-none-any.whl"
    stray.write_bytes(b"CANARY stray " + os.urandom(8).hex().encode())
    return settings, {"owner key": key.read_bytes(), "secret": secret.read_bytes(),
                      "stray": stray.read_bytes(),
                      "record": (settings.index_dir / "records" / "alpha.json").read_bytes()}


def _site(base: Path) -> Iterator[Site]:
    settings, canaries = _build(base)
    with running(create_app(Index.of(settings))) as url:
        host, port = url.removeprefix("http://").split(":")
        yield Site(settings, host, int(port), canaries)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from _site(tmp_path_factory.mktemp("attack-serve"))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Site]:
    """A site of its own, for the tests that tamper with the tree."""
    yield from _site(tmp_path)


def published(site: Site, rel: str) -> bytes:
    return (site.index / rel).read_bytes()


ROUTES = ["/", "/simple/", "/simple/alpha/", "/project/alpha/", f"/files/alpha/{A1}",
          f"/files/alpha/{A1}.metadata", f"/files/bigpkg/{BIG}",
          f"/integrity/alpha/1.0/{A1}/provenance",
          "/.well-known/factory/", "/.well-known/factory/trusted_root.json"]


# -- class: request smuggling-ish inputs ------------------------------------------------


def test_duplicate_host_headers_never_500_and_never_reach_a_location(site: Site) -> None:
    for target in ("/simple/Alpha/", "/simple/alpha", "/project/Alpha/", f"/files/alpha/{A1}"):
        answer = raw(site, f"GET {target} HTTP/1.1\r\nHost: index.test\r\nHost: evil.invalid\r\n"
                           "Connection: close\r\n\r\n".encode())
        codes = statuses(answer)
        assert codes and codes[0] in {200, 301, 400}, (target, answer[:200])
        assert b"evil.invalid" not in answer, (target, answer[:300])


def test_absolute_form_targets_never_lead_elsewhere(site: Site) -> None:
    for target, allowed in ((b"http://evil.invalid/simple/Alpha/", {301, 400, 404}),
                            (b"http://evil.invalid/files/alpha/../../records/alpha.json",
                             {400, 404}),
                            (b"http://evil.invalid:80/files/alpha/" + A1.encode(),
                             {200, 400, 404}),
                            (b"https://index.test/.well-known/factory/../../keys/owner.pem.key",
                             {400, 404}),
                            (b"http://[::1]/simple/", {200, 400, 404})):
        answer = raw(site, b"GET " + target + b" HTTP/1.1\r\nHost: index.test\r\n"
                     b"Connection: close\r\n\r\n")
        codes = statuses(answer)
        assert codes and codes[0] in allowed, (target, answer[:200])
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert b"location: http" not in head and b"evil.invalid" not in head, head
        no_leak(site, answer, target.decode())
        if codes[0] == 200 and target.endswith(b".whl"):
            assert answer.split(b"\r\n\r\n", 1)[1] == published(site, f"files/alpha/{A1}")


@pytest.mark.parametrize("request_bytes", [
    # Content-Length and Transfer-Encoding both: the classic desync
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
    b"\r\n0\r\n\r\nGET /files/alpha/stray-1.0-py3-none-any.whl HTTP/1.1\r\nHost: x\r\n"
    b"Connection: close\r\n\r\n",
    # two different Content-Lengths
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 60\r\n\r\n"
    b"GET /files/alpha/stray-1.0-py3-none-any.whl HTTP/1.1\r\nHost: x\r\n\r\n",
    # a chunked body with a bogus chunk size, then a smuggled request
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"
    b"GET /records/alpha.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    # obfuscated Transfer-Encoding
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n"
    b"\r\nabc",
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
    # header folding (obsolete line continuation) and a bare LF
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n",
    b"GET /simple/ HTTP/1.1\nHost: x\nConnection: close\n\n",
    # HTTP/0.9 and a made-up version
    b"GET /records/alpha.json\r\n\r\n",
    b"GET /simple/ HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n",
    # a NUL and a lone CR inside a header value
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nConnection: close\r\n\r\n",
    b"GET /simple/ HTTP/1.1\r\nHost: x\r\nX-A: a\rGET /records/alpha.json\r\n\r\n",
])
def test_smuggling_shaped_requests_never_500_or_leak(site: Site, request_bytes: bytes) -> None:
    answer = raw(site, request_bytes)
    codes = statuses(answer)
    assert codes, answer[:300]
    assert 500 not in codes and 502 not in codes and 503 not in codes, answer[:300]
    assert all(c in {200, 400, 404, 405, 411, 413, 501, 505} for c in codes), answer[:300]
    no_leak(site, answer, repr(request_bytes[:40]))


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PUT", "DELETE", "PATCH", "POST",
                                    "CONNECT", "PROPFIND", "FOO"])
def test_other_methods_are_refused_on_every_route_and_trace_echoes_nothing(
        site: Site, method: str) -> None:
    for target in ROUTES + ["/files/alpha/../../records/alpha.json", "/nowhere"]:
        answer = get(site, target, {"X-Canary": "ECHO-ME-NOT", "Content-Length": "0"},
                     method=method)
        assert answer.status in {400, 404, 405, 501}, (method, target, answer.status)
        assert b"ECHO-ME-NOT" not in answer.body, (method, target)
        no_leak(site, answer.body, f"{method} {target}")
    assert published(site, f"files/alpha/{A1}")  # a DELETE/PUT changed nothing on disk


def test_head_answers_like_get_without_a_body_on_every_route(site: Site) -> None:
    for target in ROUTES + ["/simple/Alpha/", "/simple/ghost/", f"/files/alpha/{A1}.nothing"]:
        whole, head = get(site, target), get(site, target, method="HEAD")
        assert head.status == whole.status, (target, head.status, whole.status)
        assert head.body == b"", target
        for name in ("content-type", "etag", "location", "cache-control"):
            assert head.headers.get(name) == whole.headers.get(name), (target, name)


def test_head_of_a_tampered_file_is_refused_like_get(fresh: Site) -> None:
    for rel in (f"files/alpha/{A1}", f"files/bigpkg/{BIG}"):
        path = fresh.index / rel
        data = bytearray(path.read_bytes())
        data[100] ^= 1
        path.write_bytes(bytes(data))
        assert get(fresh, "/" + rel, method="HEAD").status == 500, rel
        assert get(fresh, "/" + rel, {"If-None-Match": "*"}).status == 500, rel


# -- class: Range and conditional headers ------------------------------------------------------


def test_range_abuse_never_amplifies_or_500s(site: Site) -> None:
    target = f"/files/bigpkg/{BIG}"
    whole = published(site, f"files/bigpkg/{BIG}")
    size = len(whole)
    cases = {
        "100 overlapping": "bytes=" + ",".join(["0-"] * 100),
        "99 overlapping": "bytes=" + ",".join(["0-"] * 99),
        "many suffixes": "bytes=" + ",".join([f"-{size}"] * 99),
        "many small": "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 990, 10)),
        "over the limit": "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 5000, 10)),
        "negative": "bytes=-1-5",
        "inverted": "bytes=500-100",
        "minus zero": "bytes=-0",
        "past the end": f"bytes={size}-",
        "huge numbers": "bytes=0-" + "9" * 40,
        "huge suffix": "bytes=-" + "9" * 40,
        "double dash": "bytes=--5",
        "not bytes": "lines=0-5",
        "no equals": "bytes 0-5",
        "spaces": "bytes = 0 - 5 , 7 - 9",
        "unicode digits": "bytes=\u0660-\u0665",
        "empty": "bytes=",
        "lone comma": "bytes=,",
    }
    for what, value in cases.items():
        answer = get(site, target, {"Range": value.encode("utf-8").decode("latin-1")})
        assert answer.status in {200, 206, 400, 416}, (what, answer.status, answer.body[:100])
        # 99 ranges of the whole file must not send it 99 times
        assert len(answer.body) <= size + 100 * 200, (what, len(answer.body))
        if answer.status == 200:
            assert answer.body == whole, what
        if answer.status == 206 and not answer.headers["content-type"].startswith("multipart"):
            start, end = map(int, re.findall(r"(\d+)-(\d+)/", answer.headers["content-range"])[0])
            assert answer.body == whole[start:end + 1], what


def test_range_on_a_tampered_large_file_sends_nothing(fresh: Site) -> None:
    path = fresh.index / "files" / "bigpkg" / BIG
    data = bytearray(path.read_bytes())
    data[-10] ^= 1  # past the first range: only a full hash can tell
    path.write_bytes(bytes(data))
    for value in ("bytes=0-9", "bytes=-5", "bytes=0-0,5-9"):
        answer = get(fresh, f"/files/bigpkg/{BIG}", {"Range": value})
        assert answer.status == 500, (value, answer.status)
        assert bytes(data[:10]) not in answer.body


def test_if_none_match_floods_and_wildcards(site: Site) -> None:
    target = f"/files/alpha/{A1}"
    etag = get(site, target).headers["etag"]
    flood = ", ".join(f'"{i:032x}"' for i in range(700))  # about 25 KiB, under the 32 KiB cap
    assert get(site, target, {"If-None-Match": flood}).status == 200
    assert get(site, target, {"If-None-Match": flood + ", " + etag}).status == 304
    assert get(site, target, {"If-None-Match": "W/" + etag}).status == 304
    assert get(site, target, {"If-None-Match": etag[:-1]}).status == 200  # not a prefix match
    assert get(site, target, {"If-None-Match": ","}).status == 200
    for page in ("/", "/simple/", "/simple/alpha/", "/project/alpha/", "/.well-known/factory/"):
        tag = get(site, page).headers["etag"]
        assert get(site, page, {"If-None-Match": flood}).status == 200, page
        assert get(site, page, [("If-None-Match", '"x"'), ("If-None-Match", tag)]).status in {
            200, 304}, page
    many = [("If-None-Match", '"x"')] * 90  # many headers, each small: within both caps
    assert get(site, target, many).status == 200


# -- class: encodings of dots, separators and UTF-8 ---------------------------------------------

ENCODED = [
    # encoded dot segments, mixed case and mixed with literal dots
    "/files/alpha/%2e%2e/%2e%2e/records/alpha.json", "/files/alpha/.%2e/.%2E/records/alpha.json",
    "/files/alpha/%2E%2e/beta/" + B1, "/files/%2e%2e/alpha/" + A1, "/simple/%2e%2e/",
    "/simple/alpha/%2e%2e/%2e%2e/records/alpha.json", "/project/%2e%2e/records/",
    "/sources/alpha/%2e%2e/%2e%2e/records/alpha.json", "/.well-known/factory/%2e%2e/records/",
    "/integrity/alpha/%2e%2e/%2e%2e/records/alpha.json/provenance",
    "/files/alpha/..;/..;/records/alpha.json", "/files/alpha/.%00./records/alpha.json",
    # overlong UTF-8 for '.', '/' and '\\'
    "/files/alpha/%c0%ae%c0%ae/%c0%ae%c0%ae/records/alpha.json",
    "/files/alpha/%e0%80%ae%e0%80%ae%c0%af%e0%80%ae%e0%80%ae%c0%afrecords/alpha.json",
    "/files/alpha/%f0%80%80%ae%f0%80%80%ae/records/alpha.json", "/files/alpha/%c1%9c..%c1%9c",
    "/.well-known/factory/%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afkeys%c0%afowner.pem.key",
    "/simple/%c0%ae%c0%ae/", "/files/alpha/%c0%2e%c0%2e/records/alpha.json",
    # double and triple encoding
    "/files/alpha/%252e%252e%252f%252e%252e%252frecords%252falpha.json",
    "/files/alpha/..%252F..%252Frecords%252Falpha.json", "/simple/alpha%252F/",
    "/.well-known/factory/%252e%252e%252fstate%252fkeys%252fowner.pem.key",
    "/files/alpha/%25252e%25252e/records/alpha.json", "/files/alpha%2Fstray-1.0-py3-none-any.whl",
    "/files/alpha/stray-1.0-py3-none-any.whl", "/files/alpha/stray%2d1.0-py3-none-any.whl",
    # unicode look-alikes of separators and dots
    "/files/alpha/%ef%bc%8e%ef%bc%8e%e2%88%95records", "/files/alpha/%e2%80%a4%e2%80%a4/x",
    # the fragment and the query may not smuggle a path
    "/files/alpha/#/../../records/alpha.json", "/files/alpha/?/../../records/alpha.json",
    "/files/alpha/" + A1 + "/..", "/files/alpha/" + A1 + "/.", "/files/alpha/" + A1 + "%2f..",
]


@pytest.mark.parametrize("target", ENCODED)
def test_encoded_dots_overlong_utf8_and_double_encoding_reach_nothing(site: Site,
                                                                      target: str) -> None:
    answer = get(site, target)
    assert answer.status in {301, 400, 404}, (target, answer.status, answer.body[:200])
    no_leak(site, answer.body, target)
    if answer.status == 301:
        assert answer.headers["location"].startswith("/"), answer.headers


# -- class: query strings on file routes and ?format= injection -------------------------------


@pytest.mark.parametrize("query", ["?format=text/html", "?format=" + SIMPLE_JSON, "?x=1",
                                   "?/../../records/alpha.json", "?%00", "?format=%0d%0aX-A:1",
                                   "?", "?format=text/html&format=text/html"])
def test_query_strings_on_file_routes_change_neither_bytes_nor_type(site: Site,
                                                                    query: str) -> None:
    for rel, kind in ((f"files/alpha/{A1}", "application/octet-stream"),
                      (f"files/alpha/{A1}.metadata", "text/plain; charset=utf-8"),
                      ("trust/trusted_root.json", "application/json")):
        target = ("/.well-known/factory/trusted_root.json" if rel.startswith("trust/")
                  else "/" + rel) + query
        answer = get(site, target)
        assert answer.status == 200, (target, answer.status)
        assert answer.headers["content-type"] == kind, (target, answer.headers["content-type"])
        assert answer.body == published(site, rel), target
        assert "x-a" not in answer.headers


KNOWN_TYPES = {"text/html; charset=utf-8", SIMPLE_JSON, "application/vnd.pypi.simple.v1+html"}


@pytest.mark.parametrize("value", [
    "text/html%0d%0aX-Injected:%201", "text/html%0aSet-Cookie:a=b", "text/javascript",
    "text/html;charset=utf-7", "text/html;%20charset=utf-7", "application/json",
    "application/vnd.pypi.simple.v1%2bjson;x=%22%3e%3cscript%3e", "*/*;q=0", "text/*;q=0.5",
    "image/svg%2Bxml", "application/vnd.pypi.simple.v1+json,%20text/html;q=0.1",
    "application/vnd.pypi.simple.v1+json;q=2", "%00", "%ff", "x" * 500,
    "application/vnd.pypi.simple.latest+json", "TEXT/HTML",
])
def test_format_never_puts_client_bytes_into_the_content_type(site: Site, value: str) -> None:
    for page in ("/simple/", "/simple/alpha/"):
        answer = get(site, f"{page}?format={value}")
        assert answer.status in {200, 406}, (value, answer.status)
        assert "x-injected" not in answer.headers and "set-cookie" not in answer.headers
        if answer.status == 200:
            assert answer.headers["content-type"] in KNOWN_TYPES, answer.headers["content-type"]
            assert b"<script>" not in answer.body
        for name, header in answer.raw_headers:
            assert "\r" not in header and "\n" not in header, (name, header)


# -- class: the Integrity API --------------------------------------------------------------------


def test_integrity_route_never_serves_another_files_provenance(site: Site) -> None:
    own = published(site, f"files/alpha/{A1}.provenance")
    other = published(site, f"files/alpha/{A2}.provenance")
    assert own != other
    for target, expected in (
            (f"/integrity/alpha/1.0/{A1}/provenance", own),
            (f"/integrity/alpha/2.0/{A2}/provenance", other),
            (f"/integrity/Alpha/1.0/{A1}/provenance", own),  # the project name normalized
            (f"/integrity/alpha/2.0/{A1}/provenance", None),  # another version's file
            (f"/integrity/alpha/1.0/{A2}/provenance", None),
            (f"/integrity/beta/1.0/{A1}/provenance", None),  # another project's file
            (f"/integrity/alpha/1.0/{B1}/provenance", None),
            (f"/integrity/alpha/1.0/{A1}.metadata/provenance", None),
            (f"/integrity/alpha/1.0/{A1}.provenance/provenance", None),
            ("/integrity/alpha/1.0/stray-1.0-py3-none-any.whl/provenance", None),
            (f"/integrity/alpha/1.0/{A1}/sbom", None),
            (f"/integrity/alpha/1.0/{A1}/provenance/", None),
            (f"/integrity/alpha/1.0/{A1}/provenance?format=text/html", own),
            (f"/integrity/alpha/1.0%2f..%2f2.0/{A1}/provenance", None),
            (f"/integrity/alpha/1.0/..%2f{A2}/provenance", None),
            (f"/integrity/alpha/1.0/%2e%2e/{A2}/provenance", None)):
        answer = get(site, target)
        if expected is None:
            assert answer.status == 404, (target, answer.status)
        else:
            assert answer.status == 200 and answer.body == expected, (target, answer.status)
            assert answer.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
        no_leak(site, answer.body, target)


# -- boundary 6: the index tree on disk ----------------------------------------------------------


def problems_about(settings: Settings, rel: str) -> list[str]:
    return [p for p in Index.of(settings).check() if p.startswith(rel)]


def record_of(site: Site, project: str = "alpha") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((site.index / "records" / f"{project}.json").read_text())
    return data


def write_record(site: Site, data: Any, project: str = "alpha") -> None:
    path = site.index / "records" / f"{project}.json"
    path.write_text(json.dumps(data))


def test_hard_links_to_secrets_are_never_served_and_are_reported(fresh: Site) -> None:
    key = fresh.settings.private_keys_dir / "owner.pem.key"
    secret = fresh.settings.state_dir / "secret.txt"
    unrecorded = fresh.index / "files" / "alpha" / "alpha-9.0-py3-none-any.whl"
    os.link(key, unrecorded)  # an unrecorded name that looks like a wheel of the project
    metadata = fresh.index / "files" / "alpha" / f"{A1}.metadata"
    metadata.unlink()
    os.link(secret, metadata)  # a recorded name, now the bytes of a secret
    trust = fresh.index / "trust" / "owner.pem.key"
    os.link(key, trust)  # in trust/, but the manifest does not name it
    for target in ("/files/alpha/alpha-9.0-py3-none-any.whl", f"/files/alpha/{A1}.metadata",
                   "/.well-known/factory/owner.pem.key", "/.well-known/factory/"):
        answer = get(fresh, target)
        assert answer.status in {200, 404, 500}, (target, answer.status)
        no_leak(fresh, answer.body, target)
    assert get(fresh, f"/files/alpha/{A1}.metadata").status == 500
    assert problems_about(fresh.settings, "files/alpha/alpha-9.0-py3-none-any.whl:")
    assert problems_about(fresh.settings, f"files/alpha/{A1}.metadata:")


def test_a_record_hard_linked_to_another_projects_record_is_refused(fresh: Site) -> None:
    path = fresh.index / "records" / "alpha.json"
    path.unlink()
    os.link(fresh.index / "records" / "beta.json", path)
    for target in ("/simple/alpha/", "/project/alpha/", f"/files/alpha/{A1}"):
        assert get(fresh, target).status in {404, 503}, target
    assert get(fresh, f"/files/beta/{B1}").status == 200
    assert problems_about(fresh.settings, "records/alpha.json:")


def _beta_file(site: Site, rel: str) -> dict[str, Any]:
    data = published(site, rel)
    return {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.mark.parametrize("where", ["metadata", "sbom", "in-toto", "source"])
def test_a_record_naming_another_projects_files_is_refused(fresh: Site, where: str) -> None:
    data = record_of(fresh)
    entry = next(e for e in data["files"] if e["filename"] == A1)
    if where == "metadata":
        entry["metadata"] = _beta_file(fresh, f"files/beta/{B1}.metadata")
    elif where == "sbom":
        entry["sidecars"]["sbom"] = [_beta_file(fresh, f"files/beta/{B1}.cdx.json")]
    elif where == "in-toto":
        entry["sidecars"]["in-toto"] = [_beta_file(fresh, f"files/beta/{B1}.in-toto/root.layout")]
    else:
        beta = record_of(fresh, "beta")["files"][0]["source"]
        entry["source"] = dict(beta)  # sources/beta/<beta's sdist>
    write_record(fresh, data)
    beta_bytes = {published(fresh, f"files/beta/{B1}.metadata"),
                  published(fresh, f"files/beta/{B1}.cdx.json")}
    for target in ("/simple/alpha/", "/project/alpha/", f"/files/alpha/{A1}.metadata",
                   f"/files/alpha/{A1}.cdx.json", f"/files/alpha/{A1}.in-toto/",
                   f"/files/beta/{B1}.metadata", "/sources/beta/" + (
                       record_of(fresh, "beta")["files"][0]["source"]["filename"])):
        answer = get(fresh, target)
        assert answer.status in {200, 404, 503}, (target, answer.status)
        if target.startswith("/files/alpha/") or target.startswith("/project/alpha"):
            assert answer.body not in beta_bytes, target
    assert get(fresh, "/simple/alpha/").status == 503
    assert problems_about(fresh.settings, "records/alpha.json:")


def test_a_catalog_naming_a_project_with_no_record_offers_no_project(fresh: Site) -> None:
    catalog = fresh.index / "records" / "_catalog.json"
    data = json.loads(catalog.read_text())
    data["ghost"] = {**data["alpha"], "name": "ghost", "display_name": "ghost"}
    catalog.write_text(json.dumps(data))
    for target in ("/simple/ghost/", "/project/ghost/", "/files/ghost/" + A1):
        assert get(fresh, target).status == 404, target
    assert problems_about(fresh.settings, "records/_catalog.json:")
    # The project list itself is the catalog record's (by design: the catalog is one of
    # the records, and records are not signed); nothing is served for the ghost.


def test_a_catalog_that_renames_a_project_is_refused(fresh: Site) -> None:
    catalog = fresh.index / "records" / "_catalog.json"
    data = json.loads(catalog.read_text())
    data["alpha"]["display_name"] = "requests"  # not a spelling of alpha
    catalog.write_text(json.dumps(data))
    answer = get(fresh, "/simple/", {"Accept": SIMPLE_JSON})
    if answer.status == 200:
        names = [p["name"] for p in json.loads(answer.body)["projects"]]
        assert "requests" not in names, names
    else:
        assert answer.status == 503
    home = get(fresh, "/")
    assert home.status == 503 or b">requests<" not in home.body
    assert problems_about(fresh.settings, "records/_catalog.json:")


INJECTIONS = ['<script>alert(1)</script>', '"><script>alert(2)</script>', "' onmouseover='x()",
              "</td></tr></table><iframe src=//evil.invalid>", "javascript:alert(3)",
              "{{ 7*7 }}", "{% raw %}x", "\u202e\x1b[2J", "<!--", "]]>"]


def test_status_record_injection_is_escaped_on_the_home_page(fresh: Site) -> None:
    rows = []
    for i, evil in enumerate(INJECTIONS):
        rows.append({"name": f"p{i}{evil}", "kind": evil, "allowed": evil, "newest_upstream": evil,
                     "locked": evil, "published": evil + "x", "advisories": [evil],
                     "waiting_days": 1.5, "alarm": evil, "refused": evil, "note": evil})
    Index.of(fresh.settings).write_status(rows)
    home = get(fresh, "/")
    assert home.status == 200, home.body[:300]
    body = home.body.decode()
    for tag in ("<script", "<iframe", "onmouseover='", "<!--", "\x1b"):
        assert tag not in body, tag
    assert "49" not in re.sub(r"[0-9a-f]{32,}", "", body.split("<table id=\"status\"")[1])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert body.count("<table") == 2 and body.count("</table>") == 2


def test_a_trust_manifest_naming_a_private_key_is_never_sent(fresh: Site) -> None:
    key = fresh.settings.private_keys_dir / "owner.pem.key"
    for how in ("hard link", "copy"):
        target = fresh.index / "trust" / "owner.pem.key"
        target.unlink(missing_ok=True)
        if how == "hard link":
            os.link(key, target)
        else:
            shutil.copyfile(key, target)
        manifest = fresh.index / "records" / "_trust.json"
        data = json.loads(manifest.read_text())
        data["files"]["owner.pem.key"] = {"path": "trust/owner.pem.key",
                                          "sha256": hashlib.sha256(key.read_bytes()).hexdigest(),
                                          "size": key.stat().st_size}
        manifest.write_text(json.dumps(data))
        answer = get(fresh, "/.well-known/factory/owner.pem.key")
        assert answer.status in {403, 404, 500, 503}, (how, answer.status)
        no_leak(fresh, answer.body, how)
        assert b"PRIVATE KEY" not in answer.body


def test_a_wheel_renamed_to_another_versions_name_is_refused(fresh: Site) -> None:
    older = fresh.index / "files" / "alpha" / A1
    newer = fresh.index / "files" / "alpha" / A2
    old_bytes = older.read_bytes()
    older.replace(newer)  # 1.0's bytes now under 2.0's name; 1.0 is gone
    answer = get(fresh, f"/files/alpha/{A2}")
    assert answer.status == 500 and old_bytes not in answer.body
    assert get(fresh, f"/files/alpha/{A1}").status == 500
    problems = Index.of(fresh.settings).check()
    assert any(p.startswith(f"files/alpha/{A2}:") for p in problems), problems
    assert any(p.startswith(f"files/alpha/{A1}:") for p in problems), problems


def test_metadata_swapped_between_two_versions_is_refused_and_reported(fresh: Site) -> None:
    one = fresh.index / "files" / "alpha" / f"{A1}.metadata"
    two = fresh.index / "files" / "alpha" / f"{A2}.metadata"
    first, second = one.read_bytes(), two.read_bytes()
    assert len(first) == len(second) and first != second  # same size: only a hash tells
    one.write_bytes(second)
    two.write_bytes(first)
    assert get(fresh, f"/files/alpha/{A1}.metadata").status == 500
    assert get(fresh, f"/files/alpha/{A2}.metadata").status == 500
    assert problems_about(fresh.settings, f"files/alpha/{A1}.metadata:")
    assert problems_about(fresh.settings, f"files/alpha/{A2}.metadata:")
    # the record rewritten to vouch for the swap (records are not signed): served as the
    # records say, but `index check` compares each .metadata with its own wheel
    data = record_of(fresh)
    by_name = {e["filename"]: e for e in data["files"]}
    by_name[A1]["metadata"]["sha256"], by_name[A2]["metadata"]["sha256"] = (
        by_name[A2]["metadata"]["sha256"], by_name[A1]["metadata"]["sha256"])
    write_record(fresh, data)
    problems = Index.of(fresh.settings).check()
    assert any(p.startswith(f"files/alpha/{A1}.metadata:") and "METADATA inside" in p
               for p in problems), problems


def test_a_recorded_file_replaced_by_a_directory_is_refused(fresh: Site) -> None:
    path = fresh.index / "files" / "alpha" / f"{A1}.provenance"
    path.unlink()
    path.mkdir()
    (path / "x").write_text("x")
    assert get(fresh, f"/files/alpha/{A1}.provenance").status == 500
    assert get(fresh, f"/integrity/alpha/1.0/{A1}/provenance").status == 500
    assert problems_about(fresh.settings, f"files/alpha/{A1}.provenance:")


# A record that `index check` and `verify` call corrupt must not be served as sound:
# serve's own reading of a record has to be at least as strict (threat model, section 6).
def _other_project_wheel(d: dict[str, Any]) -> None:
    d["files"][0]["filename"] = "requests-1.0-py3-none-any.whl"


def _lying_version(d: dict[str, Any]) -> None:
    d["files"][0]["version"] = "6.6.6"


def _renamed(d: dict[str, Any]) -> None:
    d["display_name"] = "requests"


def _status(d: dict[str, Any]) -> None:
    d["status"] = "hacked\"><script>x()</script>"


def _int_version(d: dict[str, Any]) -> None:
    d["files"][0]["version"] = 1


def _sub_directory(d: dict[str, Any]) -> None:
    d["files"][0]["filename"] = "sub/" + d["files"][0]["filename"]


def _metadata_of_the_other_version(d: dict[str, Any]) -> None:
    d["files"][0]["metadata"] = dict(d["files"][1]["metadata"])


def _twice(d: dict[str, Any]) -> None:
    d["files"].append(dict(d["files"][0], yanked=True))


def _unknown_field(d: dict[str, Any]) -> None:
    d["files"][0]["url"] = "https://evil.invalid/alpha-1.0-py3-none-any.whl"


SERVE_LAX = {f.__name__.strip("_"): f for f in (
    _other_project_wheel, _lying_version, _renamed, _status, _int_version, _sub_directory,
    _metadata_of_the_other_version, _twice, _unknown_field)}


@pytest.mark.parametrize("case", sorted(SERVE_LAX))
def test_serve_refuses_every_record_that_index_check_calls_corrupt(fresh: Site,
                                                                    case: str) -> None:
    data = record_of(fresh)
    SERVE_LAX[case](data)
    write_record(fresh, data)
    assert problems_about(fresh.settings, "records/alpha.json:"), case
    for target in ("/simple/alpha/", "/project/alpha/", f"/files/alpha/{A1}",
                   f"/integrity/alpha/1.0/{A1}/provenance"):
        answer = get(fresh, target, {"Accept": SIMPLE_JSON})
        assert answer.status in {404, 503}, (case, target, answer.status, answer.body[:200])
    assert get(fresh, f"/files/beta/{B1}").status == 200  # the rest still serves


# =====================================================================================
# Boundary 2: sdist -> unpack (archive tricks beyond tests/test_*_extract.py)
# =====================================================================================


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def unpack_refused_or_inside(tmp_path: Path, archive: Path,
                             words: str | None = None) -> Path | None:
    """Unpack ``archive`` into tmp_path/cache/out: a one-line UnsafeArchiveError (matching
    ``words`` when given) leaving nothing behind, or a tree entirely inside ``out``."""
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    sentinel = tmp_path / "outside" / "keep.txt"
    sentinel.parent.mkdir(exist_ok=True)
    sentinel.write_text("keep")
    before = snapshot(tmp_path)
    dest = cache / "out"
    try:
        root = extract(archive, dest)
    except UnsafeArchiveError as exc:
        assert "\n" not in exc.message
        if words is not None:
            assert re.search(words, exc.message), exc.message
        assert not dest.exists()
        assert list(cache.iterdir()) == []  # no staging directory left behind
        assert snapshot(tmp_path) == before
        return None
    assert words is None, f"expected a refusal ({words})"
    top = os.path.realpath(dest)
    for path in dest.rglob("*"):
        real = os.path.realpath(path)
        assert real == top or real.startswith(top + os.sep), path
    assert snapshot(tmp_path) - before <= {str(p.relative_to(tmp_path)) for p in
                                           [dest, *dest.rglob("*")]}
    assert sentinel.read_text() == "keep"
    return root


@pytest.mark.parametrize("mtime", ["1e300", "-1e300", "inf", "99999999999999999999", "nan"])
def test_a_pax_time_out_of_range_is_a_clean_refusal(tmp_path: Path, mtime: str) -> None:
    """Found here: tarfile's os.utime raised a raw OverflowError (a traceback)."""
    archive = factories.tar(tmp_path / "pkg-1.tar.gz", [(member("pkg-1/a.py", mtime=mtime), b"x")])
    unpack_refused_or_inside(tmp_path, archive, "not a readable archive")


def test_a_tree_nested_deeper_than_recursion_allows_is_a_clean_refusal(tmp_path: Path) -> None:
    """Found here: 1,200 explicit directory levels passed tarfile, then pathlib's rglob and
    shutil.rmtree (recursive in 3.11) raised RecursionError and left the staging dir."""
    depth = 1200
    members = [(member("pkg-1/" + "/".join(["a"] * k), tarfile.DIRTYPE, mode=0o755), b"")
               for k in range(1, depth + 1)]
    members.append((member("pkg-1/" + "a/" * depth + "f.py"), b"x"))
    archive = factories.tar(tmp_path / "pkg-1.tar.gz", members)
    try:
        unpack_refused_or_inside(tmp_path, archive, "nested more than")
    finally:  # a tree this deep breaks pytest's own (recursive) clean-up of tmp_path
        subprocess.run(["rm", "-rf", str(tmp_path / "cache")], check=False)


def test_a_deep_zip_is_a_clean_refusal(tmp_path: Path) -> None:
    archive = tmp_path / "pkg-1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg-1/" + "a/" * 1200 + "f.py", "x")
    unpack_refused_or_inside(tmp_path, archive, "")


def _zip_bytes(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_whose_local_header_names_another_path_is_refused(tmp_path: Path) -> None:
    good, evil = b"pkg-1/aaaaaaaaaaaaaaaaaaaaaaaa.py", b"../../../outside/pwned.py"
    assert len(good) >= len(evil)
    data = bytearray(_zip_bytes([(good.decode(), b"x = 1\n")]))
    local = data.find(b"PK\x03\x04")
    name_at = local + 30
    data[name_at:name_at + len(good)] = evil.ljust(len(good), b"/")  # the central dir says good
    archive = tmp_path / "pkg-1.zip"
    archive.write_bytes(bytes(data))
    unpack_refused_or_inside(tmp_path, archive)
    assert not (tmp_path / "outside" / "pwned.py").exists()


def test_a_zip_name_with_a_nul_or_a_unicode_path_field_stays_inside(tmp_path: Path) -> None:
    nul = tmp_path / "nul" / "pkg-1.zip"
    nul.parent.mkdir()
    info = zipfile.ZipInfo("pkg-1/a.py")
    with zipfile.ZipFile(nul, "w") as zf:
        zf.writestr(info, b"x")
    data = nul.read_bytes().replace(b"pkg-1/a.py", b"pkg-1/a.p\x00")  # "a.p\0": name ends at NUL
    nul.write_bytes(data)
    unpack_refused_or_inside(nul.parent, nul)
    # Info-ZIP Unicode Path extra field (0x7075) naming a path out of the tree
    upath = tmp_path / "upath" / "pkg-1.zip"
    upath.parent.mkdir()
    evil = b"../../outside/pwned.py"
    import zlib as _z
    extra = b"\x75\x70" + (5 + len(evil)).to_bytes(2, "little") + b"\x01" + (
        _z.crc32(b"pkg-1/a.py") & 0xFFFFFFFF).to_bytes(4, "little") + evil
    info = zipfile.ZipInfo("pkg-1/a.py")
    info.extra = extra
    with zipfile.ZipFile(upath, "w") as zf:
        zf.writestr(info, b"x")
    unpack_refused_or_inside(upath.parent, upath)
    assert not (tmp_path / "outside" / "pwned.py").exists()


def test_a_zip_of_overlapping_entries_is_refused_as_a_bomb(tmp_path: Path) -> None:
    """The "better zip bomb": many central entries share one compressed kernel."""
    kernel = _zip_bytes([("pkg-1/k000", bytes(4 << 20))], zipfile.ZIP_DEFLATED)
    central = kernel.find(b"PK\x01\x02")
    end = kernel.find(b"PK\x05\x06")
    entry = kernel[central:end]
    count = 200
    entries = b"".join(_renamed_entry(entry, b"pkg-1/k000", b"pkg-1/k%03d" % i)
                       for i in range(count))
    eocd = bytearray(kernel[end:])
    eocd[8:10] = count.to_bytes(2, "little")
    eocd[10:12] = count.to_bytes(2, "little")
    eocd[12:16] = len(entries).to_bytes(4, "little")
    eocd[16:20] = central.to_bytes(4, "little")
    archive = tmp_path / "pkg-1.zip"
    archive.write_bytes(kernel[:central] + entries + bytes(eocd))
    with zipfile.ZipFile(archive) as zf:
        assert len(zf.infolist()) == count  # what a reader sees: 800 MiB from ~4 KiB
    unpack_refused_or_inside(tmp_path, archive, "bomb|over the limit|not a readable zip")


def _renamed_entry(entry: bytes, old: bytes, new: bytes) -> bytes:
    """A central directory entry for the same local data under another (same length) name."""
    assert len(old) == len(new)
    name_at = 46
    return entry[:name_at] + new + entry[name_at + len(old):]


_DIR, _SYM, _LNK = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
# name -> an sdist's members that try to leave its tree through member types and links
LINK_TRICKS: dict[str, list[tuple[tarfile.TarInfo, bytes]]] = {
    "dir then symlink up": [(member("pkg-1/x", _DIR), b""), (member("pkg-1/x", _SYM, ".."), b""),
                            (member("pkg-1/x/escape.txt"), b"x")],
    "file then symlink out": [(member("pkg-1/a"), b"x"),
                              (member("pkg-1/a", _SYM, "../../a"), b"")],
    "link to a link to a dir": [(member("pkg-1/sub", _DIR), b""),
                                (member("pkg-1/l1", _SYM, "sub"), b""),
                                (member("pkg-1/l2", _SYM, "l1/.."), b""),
                                (member("pkg-1/l3", _SYM, "l2/.."), b""),
                                (member("pkg-1/l3/escape.txt"), b"x")],
    "hardlink to a directory": [(member("pkg-1/d", _DIR), b""),
                                (member("pkg-1/h", _LNK, "pkg-1/d"), b"")],
    "hardlink to a symlink": [(member("pkg-1/s", _SYM, "t"), b""),
                              (member("pkg-1/h", _LNK, "pkg-1/s"), b"")],
    "dotted hardlink target": [(member("pkg-1/a"), b"x"),
                               (member("pkg-1/h", _LNK, "./pkg-1/a"), b"")],
    "self-referencing symlink": [(member("pkg-1/s", _SYM, "s"), b"")],
    "symlink loop": [(member("pkg-1/a", _SYM, "b"), b""), (member("pkg-1/b", _SYM, "a"), b"")],
    "long link target": [(member("pkg-1/s", _SYM, "a/" * 3000), b"")],
    "long name": [(member("pkg-1/" + "n" * 300 + ".py"), b"x")],
    "mode 000 file": [(member("pkg-1/secret.py", mode=0o000), b"x = 1\n")],
    "global pax path": [],  # written below: a pax header for the whole archive
}


@pytest.mark.parametrize("case", LINK_TRICKS)
def test_member_type_and_link_tricks_stay_inside(tmp_path: Path, case: str) -> None:
    if case == "global pax path":
        archive = tmp_path / "pkg-1.tar"
        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT,
                          pax_headers={"path": "../../outside/pwned.py"}) as tar:
            info = member("pkg-1/a.py")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    else:
        archive = factories.tar(tmp_path / "pkg-1.tar.gz", LINK_TRICKS[case])
    root = unpack_refused_or_inside(tmp_path, archive)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "cache" / "escape.txt"
                                                             ).exists()
    assert not (tmp_path / "outside" / "pwned.py").exists()
    if case == "mode 000 file" and root is not None:
        assert (root / "secret.py").read_text() == "x = 1\n"  # the owner can read it


def test_concatenated_gzip_members_hide_no_second_archive(tmp_path: Path) -> None:
    """Two tar.gz streams back to back: what is checked is what is unpacked (tarfile stops
    at the first end-of-archive marker in both), and read_member sees the same."""
    first = factories.tar(tmp_path / "a.tar.gz", [(member("pkg-1/PKG-INFO"),
                                            b"Name: pkg\nVersion: 1\n")])
    second = factories.tar(tmp_path / "b.tar.gz", [(member("pkg-1/PKG-INFO"),
                                             b"Name: requests\nVersion: 1\n"),
                                            (member("../../outside/pwned.py"), b"x")])
    archive = tmp_path / "pkg-1.tar.gz"
    archive.write_bytes(first.read_bytes() + second.read_bytes())
    assert read_member(archive, "PKG-INFO") == b"Name: pkg\nVersion: 1\n"
    root = unpack_refused_or_inside(tmp_path, archive)
    assert not (tmp_path / "outside" / "pwned.py").exists()
    if root is not None:
        assert (root / "PKG-INFO").read_bytes() == b"Name: pkg\nVersion: 1\n"


# =====================================================================================
# Boundary 1: upstream -> lock/fetch
# =====================================================================================

@pytest.fixture
def evil(tmp_path: Path) -> Iterator[LocalUpstream]:
    """Another host (127.0.0.2): it records every request; none may ever reach it."""
    with local_upstream.serving(tmp_path / "evil", host="127.0.0.2") as server:
        yield server


def origin_of(server: LocalUpstream) -> str:
    return server.url.removesuffix("/simple/")


def raw_reply(data: bytes) -> Hook:
    def hook(h: BaseHTTPRequestHandler) -> None:
        try:
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            pass
        h.close_connection = True
    return hook


def chunked(body: bytes, ctype: str = SIMPLE_JSON, headers: list[tuple[str, str]] | None = None,
            piece: int = 1 << 16) -> Hook:
    def hook(h: BaseHTTPRequestHandler) -> None:
        head = [b"HTTP/1.1 200 OK", b"Content-Type: " + ctype.encode(),
                b"Transfer-Encoding: chunked", b"Connection: close"]
        head += [f"{k}: {v}".encode() for k, v in headers or []]
        try:
            h.wfile.write(b"\r\n".join(head) + b"\r\n\r\n")
            for start in range(0, len(body), piece):
                part = body[start:start + piece]
                h.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client stopped reading: what a bound should make it do
        h.close_connection = True
    return hook


def html_page(links: list[tuple[str, str, str]]) -> str:
    """(href, text, extra attributes) -> a PEP 503 page."""
    return "<html><body>" + "".join(f'<a href="{html.escape(h)}" {a}>{html.escape(t)}</a><br>'
                                    for h, t, a in links) + "</body></html>"


SHA = "ab" * 32
BASE = "http://127.0.0.1:9/simple/demo/"


def json_survivors(names: list[str], project: str = "demo") -> list[str]:
    files = [{"filename": n, "url": f"../../files/f{i}", "hashes": {"sha256": SHA}, "size": 1}
             for i, n in enumerate(names)]
    listing = parse_json(project, BASE, {"files": files})
    assert len(listing.files) + len(listing.rejected) <= len(names)
    assert all(r.filename.isprintable() and r.reason for r in listing.rejected)
    return [f.filename for f in listing.files]


def html_survivors(names: list[str], project: str = "demo") -> list[str]:
    links = [(f"../../files/f{i}#sha256={SHA}", n, "") for i, n in enumerate(names)]
    listing = parse_html(project, BASE, html_page(links))
    return [f.filename for f in listing.files]


# -- class: names in listings ------------------------------------------------------------------

CONFUSABLE = [
    "d\u0435mo-1.0.tar.gz",  # Cyrillic ie
    "\uff44emo-1.0.tar.gz",  # fullwidth d
    "demo\u200b-1.0.tar.gz",  # zero-width space
    "de\u0301mo-1.0.tar.gz",  # combining acute
    "demo-1.0.tar.gz\u200e",  # left-to-right mark
    "demo-\uff11.0.tar.gz",  # fullwidth digit one
    "demo-1\u20240.tar.gz",  # one-dot leader
    "demo-1.0\u2024tar.gz",
    "demo-1.0.tar.gz\n", " demo-1.0.tar.gz", "demo-1.0.tar.gz ",
    "demo-1.0.tar.gz\x00.whl", "demo\u2010-1.0.tar.gz",  # hyphen U+2010
    "DEMO-1.0.tar\u0130gz",  # dotted capital I
]
OTHER_PROJECTS = ["demo-extra-1.0.tar.gz", "demo_extra-1.0.tar.gz", "evil-demo-1.0.tar.gz",
                  "demo.evil-1.0.tar.gz", "demo-1.0-1.tar.gz", "demo--1.0.tar.gz",
                  "demo_extra-1.0-py3-none-any.whl", "demoo-1.0.tar.gz", "dem-1.0.tar.gz",
                  "demo-extra-1.0.zip", "requests-2.0.tar.gz", "demo1-1.0.tar.gz"]
AMBIGUOUS = ["x-1.0.tar.gz.whl", "demo-1.0.tar.gz.whl", "demo-1.0-py3-none-any.whl.tar.gz",
             "demo-1.0.zip.tar.gz", "demo-1.0.tar.gz.zip", "demo-1.0.TAR.GZ", "demo-1.0.tar.gz.",
             "demo-1.0.tar", "demo-1.0.whl", "demo-1.0-py3-none-any.tar.gz", "demo-1.0.tgz.whl",
             "demo-1.0-any.whl", "demo-1.0-py3-none-any-extra.whl", "demo-1.0.tar.gz;.whl",
             "demo-1.0.tar.gz%2f..%2fx.tar.gz", "demo-1.0.tar.gz#.whl", "demo-1.0.egg.tar.gz",
             "demo-1.0.tar.gz/.", "demo-1.0/../demo-1.0.tar.gz", "demo-.tar.gz", "-1.0.tar.gz",
             "demo-1.0..tar.gz", "demo-1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.tar.gz"]


@pytest.mark.parametrize("names", [CONFUSABLE, OTHER_PROJECTS, AMBIGUOUS],
                         ids=["confusable", "other projects", "wheel/sdist ambiguity"])
def test_odd_listing_names_never_survive_as_this_projects_files(names: list[str]) -> None:
    for kind, survivors in (("json", json_survivors(names)), ("html", html_survivors(names))):
        for name in survivors:
            if name.endswith(".whl"):
                from packaging.utils import parse_wheel_filename
                assert str(parse_wheel_filename(name)[0]) == "demo", name
            else:
                assert sdist_name_problem(name, "demo") is None, name
                assert name.isascii() and name.isprintable(), name
        # only the long-but-valid version name may survive (and, in HTML, a link text with
        # white space around it: stripped, it is exactly the plain name)
        assert set(survivors) <= {"demo-1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.tar.gz",
                                  *(["demo-1.0.tar.gz"] if kind == "html" else [])}, kind
    assert json_survivors(["x-1.0.tar.gz.whl"], project="x") == []


def test_normalized_spellings_of_the_project_are_kept() -> None:
    names = ["Demo-1.0.tar.gz", "DEMO-1.1.tar.gz", "demo-1.2.zip",
             "demo-1.3-py3-none-any.whl", "Demo-1.4-py3-none-any.whl"]
    assert json_survivors(names) == names
    assert json_survivors(["Foo_Bar-1.0.tar.gz", "foo.bar-1.1.tar.gz", "foo-bar-1.2.tar.gz"],
                          project="foo-bar") == ["Foo_Bar-1.0.tar.gz", "foo.bar-1.1.tar.gz",
                                                 "foo-bar-1.2.tar.gz"]


def test_a_huge_listing_is_read_within_its_bounds(upstream: LocalUpstream,
                                                  hooks: dict[str, Hook],
                                                  tmp_path: Path) -> None:
    real = factories.sdist(tmp_path / "files", "demo", "1.0")
    junk = [{"filename": f"evil{i}-1.0.tar.gz", "url": f"../../files/e{i}",
             "hashes": {"sha256": SHA}, "size": 1} for i in range(60_000)]
    body = project_page("demo", [*junk, entry(real)])
    assert len(body) > 6 << 20
    hooks["/simple/demo/"] = reply(body)
    started = time.monotonic()
    listing = Upstream(upstream.url, retries=0).project("demo")
    assert [f.filename for f in listing.files] == ["demo-1.0.tar.gz"]
    assert len(listing.rejected) == 60_000
    assert time.monotonic() - started < 120  # generous: bounded, not a timing claim
    small = Upstream(upstream.url, retries=0, max_listing_bytes=1 << 20)
    with pytest.raises(UpstreamError, match="over the limit"):
        small.project("demo")


@pytest.mark.parametrize("body", [
    b"[" * 200_000 + b"]" * 200_000,
    b'{"files": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    b'{"files": [{"filename": "demo-1.0.tar.gz", "url": "x", "hashes": ' + b'{"a":' * 100_000
    + b"1" + b"}" * 100_000 + b"}]}",
    b'{"files": [], "files": {"x": 1}}',  # a duplicate key: the last one counts
    b"\xef\xbb\xbf{}",  # a byte-order mark
    b'{"files": [{"filename": "demo-1.0.tar.gz", "url": 1e999}]}',
    b'{"files": [{"filename": "demo-1.0.tar.gz", "url": "x", "size": 1e999}]}',
    b'{"files": NaN}', b"\x00" * 1024, "{\"files\": [\"\ud800\"]}".encode("utf-8", "surrogatepass"),
])
def test_hostile_json_listings_are_an_upstream_error_or_empty(
        upstream: LocalUpstream, hooks: dict[str, Hook], body: bytes) -> None:
    hooks["/simple/demo/"] = reply(body)
    try:
        listing = Upstream(upstream.url, retries=0).project("demo")
    except UpstreamError as exc:
        assert "\n" not in exc.message
        return
    assert listing.files == ()


def test_duplicate_keys_in_a_file_entry_are_read_one_way_only() -> None:
    text = ('{"files": [{"filename": "demo-1.0.tar.gz", "url": "../../files/a", '
            f'"hashes": {{"sha256": "{"0" * 64}", "sha256": "{SHA}"}}, "size": 1, '
            '"filename": "../../../pwned/demo-1.0.tar.gz"}]}')
    listing = parse_json("demo", BASE, json.loads(text))
    assert listing.files == () and "pwned" in listing.rejected[0].filename
    text = text.replace('"filename": "../../../pwned/demo-1.0.tar.gz"', '"size": 2')
    (only,) = parse_json("demo", BASE, json.loads(text)).files
    assert only.sha256 == SHA and only.size == 2  # the last of each, as json reads them


@pytest.mark.parametrize("reason", [
    "\x1b]0;owned\x07\x1b[2J", "<script>alert(1)</script>", "a\r\nX-Injected: 1",
    "\u202eevil", "A" * 100_000, "\udcff", "",
])
def test_yank_reasons_are_printable_and_bounded(reason: str) -> None:
    item = {"filename": "demo-1.0.tar.gz", "url": "../../files/a", "hashes": {"sha256": SHA},
            "size": 1, "yanked": reason}
    (json_file,) = parse_json("demo", BASE, {"files": [item]}).files
    attr = f'data-yanked="{html.escape(reason)}"'
    (html_file,) = parse_html("demo", BASE, html_page([(f"a#sha256={SHA}", "demo-1.0.tar.gz",
                                                         attr)])).files
    assert html_file.yanked
    assert json_file.yanked == bool(reason)  # "" is not yanked in JSON (as pip reads it)
    for file in (json_file, html_file):
        shown = file.yanked_reason or ""
        assert len(shown) <= 200 and shown.isprintable(), repr(shown[:80])
        assert "\x1b" not in shown and "\r" not in shown and "\u202e" not in shown
    odd = [0, 1, [], {}, None, 1.5, [1]]
    for value in odd:
        (file,) = parse_json("demo", BASE, {"files": [dict(item, yanked=value)]}).files
        assert file.yanked == (value is not None and not (isinstance(value, bool)
                                                          and not value)), value


# -- class: URLs in listings and redirects -----------------------------------------------------


def weird_urls(index: str, evil: str) -> list[str]:
    """URLs for one file: none may lead anywhere but the index's own origin."""
    port = index.rsplit(":", 1)[1]
    evil_hostport = evil.removeprefix("http://")
    return [
        "file:///etc/passwd", "data:application/gzip;base64,H4sIAAAAAAAAAwMAAAAAAAAAAAA=",
        "javascript:alert(1)", "ftp://127.0.0.1/demo-1.0.tar.gz", "gopher://127.0.0.1:70/x",
        f"//{evil_hostport}/files/demo-1.0.tar.gz",  # scheme-relative
        f"http://user:pw@{evil_hostport}/files/demo-1.0.tar.gz",
        f"http://127.0.0.1:{port}@{evil_hostport}/files/demo-1.0.tar.gz",
        f"http://127.0.0.1:{port}\\@{evil_hostport}/files/demo-1.0.tar.gz",
        f"http://127.0.0.1:{port}#@{evil_hostport}/files/demo-1.0.tar.gz",
        f"http://[::1]:{port}/files/demo-1.0.tar.gz",
        f"http://[::ffff:127.0.0.1]:{port}/files/demo-1.0.tar.gz",
        f"http://0x7f000001:{port}/files/demo-1.0.tar.gz", f"http://127.1:{port}/files/x",
        f"http://2130706433:{port}/files/demo-1.0.tar.gz", f"http://127.0.0.1.:{port}/files/x",
        f"http://localhost:{port}/files/demo-1.0.tar.gz",
        f"https://127.0.0.1:{port}/files/demo-1.0.tar.gz",  # another origin (scheme)
        f"http://127.0.0.1:{int(port) + 1}/files/demo-1.0.tar.gz",  # another origin (port)
        f"http:{evil_hostport}/files/demo-1.0.tar.gz", f"http:/{evil_hostport}/x",
        f"\\\\{evil_hostport}\\files\\demo-1.0.tar.gz", f" {evil}/files/demo-1.0.tar.gz",
        f"{evil}/files/demo-1.0.tar.gz", f"HTTP://{evil_hostport}/files/demo-1.0.tar.gz",
        "http://[x", "http://" + "a" * 5000 + "/x", f"{index}/files/\x1b[2J",
    ]


def test_listed_urls_never_lead_off_the_index(upstream: LocalUpstream, hooks: dict[str, Hook],
                                              evil: LocalUpstream, tmp_path: Path) -> None:
    real = upstream.add("demo", "1.0").path
    evil.add_file("demo", real)
    index = origin_of(upstream)
    files = [entry(real, f"demo-1.{i + 1}.tar.gz", url)
             for i, url in enumerate(weird_urls(index, origin_of(evil)))]
    files.append(entry(real, "demo-1.0.tar.gz", f"{index}/files/../../../../files/{real.name}"))
    hooks["/simple/demo/"] = reply(project_page("demo", files))
    client = Upstream(upstream.url, retries=0)
    listing = client.project("demo")
    from factory.upstream.transport import origin
    for file in listing.files:  # what survived is on the index's origin, and is fetched there
        assert origin(file.url) == origin(index), file.url
        raised(lambda f=file: client.download(f.url, tmp_path / "dl" / f.filename,  # type: ignore[misc]
                                               sha256=f.sha256 or SHA, size=f.size))
    # survivors: the plain one; "http://INDEX#@EVIL/..." (Python and httpx agree it is the
    # index, the rest a fragment never sent); "http:EVIL/x" and "\\\\EVIL\\x", which are
    # paths relative to the listing, on the index
    assert (tmp_path / "dl" / "demo-1.0.tar.gz").read_bytes() == real.read_bytes()
    assert evil.requests == []
    html_links = [(u, f"demo-1.{i + 1}.tar.gz", "") for i, u in enumerate(
        weird_urls(index, origin_of(evil)))]
    listing = parse_html("demo", upstream.url + "demo/", html_page(html_links), client.policy)
    assert all(origin(f.url) == origin(index) for f in listing.files), listing.files
    assert len(listing.files) <= 4


@pytest.mark.parametrize("location", [
    "file:///etc/passwd", "data:text/html,<h1>x</h1>", "javascript:alert(1)",
    "//EVIL/simple/demo/", "http://user@EVIL/simple/demo/", "http://INDEX@EVIL/simple/demo/",
    "http://[::1]:PORT/simple/demo/", "https://INDEX/simple/demo/", "ftp://INDEX/simple/demo/",
    "http://INDEX\\@EVIL/simple/demo/",
])
def test_listing_redirects_off_the_origin_are_alarms_and_never_followed(
        upstream: LocalUpstream, hooks: dict[str, Hook], evil: LocalUpstream,
        location: str) -> None:
    upstream.add("demo", "1.0")
    evil.add("demo", "1.0")
    index = origin_of(upstream).removeprefix("http://")
    location = (location.replace("EVIL", origin_of(evil).removeprefix("http://"))
                .replace("INDEX", index).replace("PORT", index.rsplit(":", 1)[1]))
    hooks["/simple/demo/"] = redirect(location)
    error = raised(lambda: Upstream(upstream.url, retries=1).project("demo"))
    assert isinstance(error, AlarmError | UpstreamError), error
    assert evil.requests == []


def test_redirect_loops_end(upstream: LocalUpstream, hooks: dict[str, Hook],
                            tmp_path: Path) -> None:
    base = origin_of(upstream)
    hooks["/simple/demo/"] = redirect(f"{base}/simple/demo/")  # itself
    with pytest.raises(UpstreamError, match="more than 5 redirects"):
        Upstream(upstream.url, retries=3).project("demo")
    hooks["/simple/demo/"] = redirect("/a")
    hooks["/a"] = redirect("/simple/demo/", status=301)  # ping-pong, relative
    with pytest.raises(UpstreamError, match="more than 5 redirects"):
        Upstream(upstream.url, retries=3).project("demo")
    hooks["/files/demo-1.0.tar.gz"] = redirect(f"{base}/files/demo-1.0.tar.gz", 307)
    with pytest.raises(UpstreamError, match="more than 5 redirects"):
        Upstream(upstream.url, retries=3).download(
            f"{base}/files/demo-1.0.tar.gz", tmp_path / "d" / "demo-1.0.tar.gz", sha256=SHA,
            size=10)
    assert len(upstream.requests) <= 3 * 6  # each loop stops after its sixth hop
    assert not list((tmp_path / "d").iterdir())


# -- class: lock file rows ---------------------------------------------------------------------

GOOD_ROW: dict[str, Any] = {
    "name": "demo", "version": "1.0.0", "kind": "runtime", "reason": "approved",
    "recipe_digest": "sha256:00",
    "sdist": {"filename": "demo-1.0.0.tar.gz", "url": "https://files.example/demo-1.0.0.tar.gz",
              "sha256": SHA, "size": 10},
}


def lock_text(*rows: dict[str, Any]) -> str:
    return tomli_w.dumps({"lock-version": 1, "component": list(rows)})


def row(**changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(GOOD_ROW))
    for key, value in changes.items():
        if key.startswith("sdist_"):
            out["sdist"][key.removeprefix("sdist_")] = value
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("bad", [
    row(name="d\u0435mo"), row(name="demo\n"), row(name="demo/../x"), row(name=""),
    row(version="1.0.0\n"), row(version="1.0.0; rm -rf /"),
    row(sdist_url="javascript:alert(1)"), row(sdist_url="data:,demo"),
    row(sdist_url="ftp://files.example/demo-1.0.0.tar.gz"), row(version="1.0.0\x85"),
    row(version=" 1.0.0"), row(version="1.0.0\u2028"),
    row(sdist_url="https://"), row(sdist_url="https:///demo-1.0.0.tar.gz"),
    row(sdist_url="https://files.example/a b.tar.gz"), row(sdist_url=["https://x"]),
    row(sdist_size=1.0), row(sdist_size="10"), row(sdist_size=-1),
    row(sdist_filename="demo-1.0.0.tar.gz.whl"), row(sdist_filename="demo-1.0.0.whl"),
    row(sdist_filename="demo-1.0.0-py3-none-any.whl"), row(sdist_filename="Demo-1.0.0.TAR.GZ"),
    row(sdist_filename="demo-1.0.0.tar.gz\u200e"), row(sdist_path="/etc/passwd"),
    row(sdist=["demo-1.0.0.tar.gz"]), row(build_requires="setuptools"),
    row(skipped=[{"version": "1", "reason": "x", "extra": "y"}]),
], ids=lambda r: json.dumps(r, ensure_ascii=True)[:60])
def test_malformed_lock_rows_are_refused_naming_the_row(bad: dict[str, Any]) -> None:
    try:
        text = lock_text(bad)
    except (TypeError, ValueError):
        pytest.skip("not expressible in TOML")
    with pytest.raises(LockError, match=r"component #1") as info:
        Lock.from_toml(text)
    assert "\n" not in info.value.message


@pytest.mark.parametrize("url", ["http://evil.example/demo-1.0.0.tar.gz",
                                 "http://127.0.0.1@evil.example/demo-1.0.0.tar.gz"])
def test_a_plain_http_lock_url_off_the_index_is_refused_at_download(
        tmp_path: Path, url: str) -> None:
    """Plain http is let through by the lock (for the configured index); the download
    itself refuses it for any other host, before connecting."""
    (component,) = Lock.from_toml(lock_text(row(sdist_url=url))).components
    client = Upstream("https://pypi.org/simple/", retries=0)
    with pytest.raises(IntegrityError, match="plain http"):
        client.download(url, tmp_path / "demo-1.0.0.tar.gz", sha256=SHA, size=10)
    assert list(tmp_path.iterdir()) == []


def test_duplicated_or_conflicting_lock_rows_are_refused() -> None:
    """A badly merged lock: one (name, version) pinned twice to other bytes. Which pin is
    built, signed and served would depend on which reader takes which row (Lock.get, .find
    and .primary each take the first they meet)."""
    for rows in ((row(), row(sdist_sha256="cd" * 32, sdist_size=11)),
                 (row(), row(name="Demo", sdist_sha256="cd" * 32)),
                 (row(), row(version="1.0", sdist_filename="demo-1.0.tar.gz",
                             reason="runtime requirement of x 1 (demo)"))):
        with pytest.raises(LockError, match=r"component #2 .*pins the same version"):
            Lock.from_toml(lock_text(*rows))
    # several approved versions of one project (as the release fixtures write) stay legal
    assert len(Lock.from_toml(lock_text(row(), row(version="2.0.0",
                                                   sdist_filename="demo-2.0.0.tar.gz")))
               .components) == 2
    # a build requirement at another version beside the approved one is legitimate
    need = row(version="0.9.0", reason="build requirement of x 1 (demo<1)",
               sdist_filename="demo-0.9.0.tar.gz")
    assert len(Lock.from_toml(lock_text(row(), need)).components) == 2


# -- class: body bounds ------------------------------------------------------------------------


def test_a_chunked_listing_with_no_length_is_bounded(upstream: LocalUpstream,
                                                     hooks: dict[str, Hook]) -> None:
    body = b'{"files": [' + b" " * (3 << 20) + b"]}"
    hooks["/simple/demo/"] = chunked(body)
    with pytest.raises(UpstreamError, match="over the limit"):
        Upstream(upstream.url, retries=0, max_listing_bytes=1 << 20).project("demo")
    hooks["/simple/demo/"] = chunked(gzip.compress(body), headers=[("Content-Encoding", "gzip")])
    with pytest.raises(UpstreamError, match="after decompression"):
        Upstream(upstream.url, retries=0, max_listing_bytes=1 << 20).project("demo")


def test_gzip_inside_gzip_is_decoded_once_never_expanded(upstream: LocalUpstream,
                                                         hooks: dict[str, Hook]) -> None:
    bomb = b'{"files": [' + b" " * (200 << 20) + b"]}"  # 200 MiB
    inner = gzip.compress(bomb, 9)
    outer = gzip.compress(inner, 9)
    assert len(outer) < 1 << 20
    for ctype in (SIMPLE_JSON, "text/html"):
        hooks["/simple/demo/"] = reply(outer, ctype=ctype,
                                       headers=[("Content-Encoding", "gzip")])
        try:
            listing = Upstream(upstream.url, retries=0).project("demo")
        except UpstreamError as exc:
            assert "malformed" in exc.message or "limit" in exc.message, exc.message
        else:
            assert listing.files == ()


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip,deflate", "identity, gzip",
                                      "br, gzip", "compress", "x-bzip2", "gzip;q=1", "zstd",
                                      "gzip\x0b"])
def test_content_encoding_lists_and_unknowns_are_refused(upstream: LocalUpstream,
                                                         hooks: dict[str, Hook],
                                                         encoding: str) -> None:
    upstream.add("demo", "1.0")
    hooks["/simple/demo/"] = reply(gzip.compress(gzip.compress(upstream.json_page("demo"))),
                                   headers=[("Content-Encoding", encoding)])
    with pytest.raises(UpstreamError):
        Upstream(upstream.url, retries=0).project("demo")


def test_lying_lengths_on_a_listing_are_errors(upstream: LocalUpstream,
                                               hooks: dict[str, Hook]) -> None:
    upstream.add("demo", "1.0")
    body = upstream.json_page("demo")
    hooks["/simple/demo/"] = reply(body, headers=[("Content-Length", str(len(body) // 2))],
                                   length=False)  # shorter: a truncated page
    with pytest.raises(UpstreamError):
        Upstream(upstream.url, retries=0).project("demo")
    hooks["/simple/demo/"] = raw_reply(
        b"HTTP/1.1 200 OK\r\nContent-Type: " + SIMPLE_JSON.encode()
        + b"\r\nContent-Length: 99999\r\nConnection: close\r\n\r\n" + body)  # longer, then EOF
    with pytest.raises(UpstreamError):
        Upstream(upstream.url, retries=1, backoff=0.01).project("demo")
    hooks["/simple/demo/"] = raw_reply(
        b"HTTP/1.1 200 OK\r\nContent-Type: " + SIMPLE_JSON.encode()
        + b"\r\nContent-Length: 2\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    with pytest.raises(UpstreamError):
        Upstream(upstream.url, retries=1, backoff=0.01).project("demo")


def test_a_download_is_never_decoded_and_never_kept_when_it_lies(
        upstream: LocalUpstream, hooks: dict[str, Hook], tmp_path: Path) -> None:
    real = factories.sdist(tmp_path / "src", "demo", "1.0")
    data = real.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    url = origin_of(upstream) + "/files/demo-1.0.tar.gz"
    out = tmp_path / "dl"
    client = Upstream(upstream.url, retries=0)
    cases: list[tuple[Hook, type[FactoryError]]] = [
        # compressed although identity was asked: the pin is of the bytes on the wire
        (reply(gzip.compress(data), ctype="application/gzip",
               headers=[("Content-Encoding", "gzip")]), FactoryError),
        # a Content-Length shorter than the file: a truncated download, not the pin
        (reply(data, headers=[("Content-Length", str(len(data) - 10))], length=False),
         IntegrityError),
        # chunked, exactly the pinned size of other bytes
        (chunked(bytes(len(data))), AlarmError),
        # the pinned bytes and more, chunked: stopped at the pinned size
        (chunked(data + b"\0" * (1 << 20)), AlarmError),
    ]
    for hook, error in cases:
        hooks["/files/demo-1.0.tar.gz"] = hook
        with pytest.raises(error):
            client.download(url, out / "demo-1.0.tar.gz", sha256=sha, size=len(data))
        assert [p for p in out.iterdir() if p.stat().st_size > len(data)] == []
        assert not (out / "demo-1.0.tar.gz").exists()
    hooks["/files/demo-1.0.tar.gz"] = chunked(data)
    client.download(url, out / "demo-1.0.tar.gz", sha256=sha, size=len(data))
    assert (out / "demo-1.0.tar.gz").read_bytes() == data


# -- class: deadlines --------------------------------------------------------------------------


def slow(then: Hook, seconds: float) -> Hook:
    def hook(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        with contextlib.suppress(OSError):
            then(h)
    return hook


def test_the_deadline_covers_every_redirect_and_retry(upstream: LocalUpstream,
                                                      hooks: dict[str, Hook]) -> None:
    for i in range(5):  # five hops, each well inside the per-read timeout
        hooks[f"/hop{i}"] = slow(redirect(f"/hop{i + 1}"), 0.4)
    hooks["/simple/demo/"] = slow(redirect("/hop0"), 0.4)
    hooks["/hop5"] = slow(reply(b"{}"), 0.4)
    started = time.monotonic()
    with pytest.raises(UpstreamError, match="no complete answer within"):
        Upstream(upstream.url, retries=5, timeout=10, deadline=1.0).project("demo")
    assert time.monotonic() - started < 30
    hooks["/simple/demo/"] = slow(reply(b"busy", status=503,
                                        headers=[("Retry-After", "3600")]), 0.3)
    started = time.monotonic()
    with pytest.raises(UpstreamError):
        Upstream(upstream.url, retries=50, timeout=10, deadline=1.0, backoff=0.2).project("demo")
    assert time.monotonic() - started < 30


def test_a_dripping_head_request_hits_the_deadline(upstream: LocalUpstream,
                                                   hooks: dict[str, Hook]) -> None:
    stop = threading.Event()

    def drip(h: BaseHTTPRequestHandler) -> None:
        try:
            h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow:")
            while not stop.is_set():
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    hooks["/files/demo-1.0.tar.gz"] = drip
    try:
        with pytest.raises(UpstreamError, match="no complete answer within"):
            Upstream(upstream.url, retries=2, timeout=10, deadline=1.0).size_of(
                origin_of(upstream) + "/files/demo-1.0.tar.gz")
    finally:
        stop.set()


# -- class: changed pins -----------------------------------------------------------------------


def pinned(project: Settings) -> Any:
    return fetch.load_lock(project).primary("demo")


def test_a_size_only_change_never_repins(project: Settings, upstream: LocalUpstream,
                                         hooks: dict[str, Hook]) -> None:
    path = local_upstream.locked_demo(project, upstream)
    before = pinned(project)
    changed = entry(path, size=path.stat().st_size + 1000)
    hooks["/simple/demo/"] = reply(project_page("demo", [changed]))
    lock_stage(project, update=True)
    assert pinned(project) == before  # the size (and all) of the pin stay as verified
    for cached in project.sources_dir.rglob("*.tar.gz"):
        cached.unlink()
    (item,) = fetch.fetch_stage(project, {"demo"})
    assert item.path.read_bytes() == path.read_bytes()


def test_a_listing_that_drops_or_recases_the_hash_never_repins(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook]) -> None:
    path = local_upstream.locked_demo(project, upstream)
    before = pinned(project)
    bare = entry(path)
    bare["hashes"] = {}
    hooks["/simple/demo/"] = reply(project_page("demo", [bare]))
    error = raised(lambda: lock_stage(project, update=True))
    assert error is None or isinstance(error, UpstreamError), error  # refused, never re-pinned
    assert pinned(project) == before
    lock_stage(project)  # without --update the pin is simply kept
    assert pinned(project) == before
    upper = entry(path)
    upper["hashes"]["sha256"] = upper["hashes"]["sha256"].upper()
    hooks["/simple/demo/"] = reply(project_page("demo", [upper]))
    lock_stage(project, update=True)  # the same digest: no alarm
    assert pinned(project) == before


@pytest.mark.parametrize("order", ["yanked first", "reupload first"])
def test_yanked_then_reuploaded_under_the_same_name_is_an_alarm(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook], tmp_path: Path,
        order: str) -> None:
    path = local_upstream.locked_demo(project, upstream)
    before = pinned(project)
    other = factories.sdist(tmp_path / "other", "demo", "1.0.0", files={"evil.py": b"1"})
    yanked = entry(path, yanked="broken")
    again = entry(other, url=f"../../files/{path.name}")
    files = [yanked, again] if order == "yanked first" else [again, yanked]
    hooks["/simple/demo/"] = reply(project_page("demo", files))
    with pytest.raises(AlarmError, match="demo 1.0.0"):
        lock_stage(project, update=True)
    assert pinned(project) == before
    assert [d["action"] for d in ledger.decisions(project, "demo")] == ["alarm"]


# -- class: the sdist's own PKG-INFO -----------------------------------------------------------


def sdist_with(directory: Path, members: dict[str, bytes], name: str = "demo-pkg",
               version: str = "1.0.0") -> Path:
    """``name``'s sdist holding exactly ``members`` (full paths, in this order); a path
    ending in "#n" is a second member of the same name."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{factories.dist_name(name)}-{version}.tar.gz"
    return factories.tar(path, [(member(rel.split("#", 1)[0]), data)
                                for rel, data in members.items()])


ROOT = "demo_pkg-1.0.0"


@pytest.mark.parametrize("pkg_info", [
    "Metadata-Version: 2.1\nName: Demo_Pkg\nVersion: 1.0.0\n",
    "Metadata-Version: 2.1\nName: demo.pkg\nVersion: 1.0.0\n",
    "Metadata-Version: 2.1\nName: DEMO-PKG\nVersion: 1.0\n",
    "metadata-version: 2.1\nname: demo-pkg\nversion: 1.0.0.0\n",
    "Metadata-Version: 2.1\r\nName: demo_pkg\r\nVersion: v1.0.0\r\n",
])
def test_other_spellings_of_the_locked_name_and_version_pass(tmp_path: Path,
                                                             pkg_info: str) -> None:
    sdist = sdist_with(tmp_path, {f"{ROOT}/PKG-INFO": pkg_info.encode()})
    check_identity(sdist, "demo-pkg", "1.0.0")


@pytest.mark.parametrize("pkg_info", [
    "Metadata-Version: 2.1\nName: demo-pkg\nName: requests\nVersion: 1.0.0\n",
    "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0.0\nVersion: 6.6.6\n",
    "Metadata-Version: 2.1\nName: demo-pkg\n requests\nVersion: 1.0.0\n",  # continuation
    "Metadata-Version: 2.1\nName: demo-pkg\r\n\tVersion: 6.6.6\nVersion: 1.0.0\n",
    "Metadata-Version: 2.1\nName: =?utf-8?q?demo-pkg?=\nVersion: 1.0.0\n",  # encoded word
    "Metadata-Version: 2.1\nVersion: 1.0.0\n\nName: demo-pkg\n",  # Name in the body
    "Metadata-Version: 2.1\nName: demo-pkg\x00requests\nVersion: 1.0.0\n",
    "Metadata-Version: 2.1\nName : demo-pkg\nVersion: 1.0.0\n",
    "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0.0+evil\n",
    "\ufeffName: demo-pkg\nVersion: 1.0.0\n",  # a BOM before the first header
])
def test_ambiguous_or_injected_pkg_info_is_refused_at_lock(tmp_path: Path,
                                                           pkg_info: str) -> None:
    sdist = sdist_with(tmp_path, {f"{ROOT}/PKG-INFO": pkg_info.encode()})
    with pytest.raises(LockError) as info:
        check_identity(sdist, "demo-pkg", "1.0.0")
    assert "\n" not in info.value.message and "\x00" not in info.value.message


def test_two_pkg_info_members_in_the_root_are_refused_or_agree_with_unpacking(
        tmp_path: Path) -> None:
    sdist = sdist_with(tmp_path / "a", {
        f"{ROOT}/PKG-INFO": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0.0\n",
        f"{ROOT}/PKG-INFO#2": b"Metadata-Version: 2.1\nName: requests\nVersion: 6.6.6\n"})
    try:
        check_identity(sdist, "demo-pkg", "1.0.0")
    except (LockError, UnsafeArchiveError):
        return  # refused: fine
    root = extract(sdist, tmp_path / "a" / "out")
    assert b"requests" not in (root / "PKG-INFO").read_bytes(), (
        "the PKG-INFO checked at lock is not the one the build gets")


def test_pkg_info_in_another_top_directory_is_refused_or_agrees_with_unpacking(
        tmp_path: Path) -> None:
    sdist = sdist_with(tmp_path / "b", {
        "aaa-1.0.0/PKG-INFO": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0.0\n",
        f"{ROOT}/PKG-INFO": b"Metadata-Version: 2.1\nName: requests\nVersion: 6.6.6\n",
        f"{ROOT}/pyproject.toml": b"[project]\nname = 'requests'\nversion = '6.6.6'\n"})
    try:
        check_identity(sdist, "demo-pkg", "1.0.0")
    except (LockError, UnsafeArchiveError):
        return
    root = extract(sdist, tmp_path / "b" / "out")
    built = root / "PKG-INFO"
    assert not built.is_file() or b"requests" not in built.read_bytes()


def test_cli_lock_refuses_a_double_name_pkg_info_in_one_line(
        project: Settings, upstream: LocalUpstream, tmp_path: Path) -> None:
    import subprocess as sp
    import sys

    local_upstream.build_tool(upstream, project)
    factories.recipe(project.root, "demo")
    upstream.add_file("demo", sdist_with(tmp_path / "files", {
        "demo-1.0.0/PKG-INFO": b"Metadata-Version: 2.1\nName: demo\nName: requests\x1b[2J\n"
                               b"Version: 1.0.0\n",
        "demo-1.0.0/pyproject.toml": b'[build-system]\nrequires = ["setuptools>=61"]\n'},
        name="demo"))
    env = {**os.environ, "FACTORY_ROOT": str(project.root)}
    result = sp.run([sys.executable, "-m", "factory.cli", "lock"], env=env, capture_output=True,
                    text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "PKG-INFO" in lines[0] and "\x1b" not in result.stderr, \
        result.stderr
    # the rest is locked; demo is not
    assert "name = \"demo\"" not in project.lock_path.read_text()


def test_cli_lock_reports_a_javascript_redirect_in_one_line(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Hook]) -> None:
    """Found here: httpx builds the redirect request even when it will not follow it, and
    a Location like "javascript:alert(1)" raised a raw httpx.InvalidURL (a traceback)."""
    import subprocess as sp
    import sys

    local_upstream.build_tool(upstream, project)
    factories.recipe(project.root, "demo")
    upstream.add("demo", "1.0.0")
    hooks["/simple/demo/"] = redirect("javascript:alert(1)")
    env = {**os.environ, "FACTORY_ROOT": str(project.root)}
    result = sp.run([sys.executable, "-m", "factory.cli", "lock"], env=env, capture_output=True,
                    text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "redirects" in lines[0], result.stderr
    assert not project.lock_path.exists()


# -- boundary 6: text fields of a record reach pip's terminal through the Simple API -----------


def _controls_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [c for c in value if not c.isprintable() and c not in "\n"]
    if isinstance(value, dict):
        return [c for v in value.values() for c in _controls_in(v)] + [
            c for k in value for c in _controls_in(k)]
    if isinstance(value, list):
        return [c for v in value for c in _controls_in(v)]
    return []


@pytest.mark.parametrize("field", ["yanked_reason", "status_reason", "requires_python",
                                   "upload_time"])
def test_control_characters_in_a_record_never_reach_a_served_page(fresh: Site,
                                                                  field: str) -> None:
    """pip prints a yank reason (and Requires-Python in its messages) on the user's
    terminal: an ESC sequence in a record must never be served raw or JSON-escaped."""
    evil = "\x1b]0;owned\x07\x1b[2J\u202e\x9b"
    data = record_of(fresh)
    if field == "status_reason":
        data["status"], data["status_reason"] = "deprecated", evil
    else:
        data["files"][0][field] = evil if field != "requires_python" else ">=3" + evil
        data["files"][0]["yanked"] = True
    write_record(fresh, data)
    for target, accept in (("/simple/alpha/", "text/html"), ("/simple/alpha/", SIMPLE_JSON),
                           ("/project/alpha/", "text/html")):
        answer = get(fresh, target, {"Accept": accept})
        assert answer.status in {200, 503}, (target, answer.status)
        text = answer.body.decode("utf-8", "replace")
        assert not _controls_in(text), (target, accept, field)
        if accept == SIMPLE_JSON and answer.status == 200:
            assert not _controls_in(json.loads(answer.body)), (target, field)


def test_html_listing_tricks_never_move_a_link_off_the_index() -> None:
    """pip honours <base href>; the factory reads links against the listing's own URL, and
    entity-encoded or doubled attributes are read once, then checked like any other."""
    index = "http://127.0.0.1:9/simple/demo/"
    page_text = (
        '<html><head><base href="http://127.0.0.2:9/evil/"></head><body>'
        f'<a href="../../files/demo-1.0.tar.gz#sha256={SHA}">demo-1.0.tar.gz</a>'
        f'<a href="&#x68;ttp://127.0.0.2:9/demo-1.1.tar.gz#sha256={SHA}">demo-1.1.tar.gz</a>'
        f'<a href="../../files/demo-1.2.tar.gz#sha256={SHA}" '
        f'href="http://127.0.0.2:9/demo-1.2.tar.gz#sha256={SHA}">demo-1.2.tar.gz</a>'
        f'<A HREF="HTTP://127.0.0.2:9/demo-1.3.tar.gz#sha256={SHA}">demo-1.3.tar.gz</A>'
        f'<a href="../../files/demo-1.4.tar.gz#sha256={SHA}">demo-1.4.tar.gz<a href="http://'
        f'127.0.0.2:9/x#sha256={SHA}">demo-1.5.tar.gz</a></a>'
        f'<a href="../../files/x#md5=0&sha256={SHA}">demo-1.6.tar.gz</a>'
        "</body></html>")
    listing = parse_html("demo", index, page_text)
    from factory.upstream.transport import origin
    assert all(origin(f.url) == ("http", "127.0.0.1", 9) for f in listing.files), listing.files
    assert "demo-1.0.tar.gz" in [f.filename for f in listing.files]
    # a JSON listing that calls itself another project lists only this project's files
    other = parse_json("demo", index, {"name": "requests", "files": [
        {"filename": "requests-2.0.tar.gz", "url": "x", "hashes": {"sha256": SHA}, "size": 1}]})
    assert other.files == () and other.name == "demo"


@pytest.mark.parametrize("name", ["_catalog.json", "_status.json", "_trust.json"])
def test_shared_records_replaced_by_links_or_fifos_are_refused(fresh: Site, name: str) -> None:
    path = fresh.index / "records" / name
    outside = fresh.settings.state_dir / f"outside{name}"
    if path.exists():
        shutil.copyfile(path, outside)
    else:
        outside.write_text("[]")
    target = {"_catalog.json": "/simple/", "_status.json": "/",
              "_trust.json": "/.well-known/factory/trusted_root.json"}[name]
    for how in ("link", "fifo"):
        path.unlink(missing_ok=True)
        if how == "link":
            path.symlink_to(outside)
        else:
            os.mkfifo(path)
        answer = get(fresh, target)
        assert answer.status in {404, 503}, (name, how, answer.status)
        no_leak(fresh, answer.body, f"{name} {how}")
    assert get(fresh, f"/files/beta/{B1}").status == 200
