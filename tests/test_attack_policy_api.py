"""Attacks on the policy API (`factory serve` /api/v1/), `factory mcp` and the signed
answers behind both (factory.advice), issue 18.

The attacker is whoever sends a request or a tool call: every text, number and byte
of it. Each test is one class of attack, parametrised; a case that held stays as a
regression test, a case that broke was fixed in the code (the class, not the example).

| class | cases | held/broke | fix commit |
| --- | --- | --- | --- |
| two asks, one signed subject (cut at 200/400, escapes, "(empty)") | 6 | broke 5 | 31f4a82 |
| list parsing superlinear (whitespace run before `--`: 64 KiB, 50 s) | 5 | broke 1 | 31f4a82 |
| hostile requirement text (surrogates, NUL, bidi, 10^6 chars, ...) | 22 | held | - |
| non-text where text goes (numbers, null, bool, list, dict) | 6 | held | - |
| verify_answer: other key/type/predicate, extra or junk signatures | 10 | held | - |
| replay of an answer for another requirement | 4 | held | - |
| fuzzy search, 200-char queries against 10,000 names | 4 | held | - |
| HTTP bodies (nesting, NaN, UTF-16, bad UTF-8, duplicates, lengths) | 17 | broke 1 | 31f4a82 |
| HTTP query strings (repeats, NUL, bad %, surrogates, limits) | 9 | broke 1 | 31f4a82 |
| oversize headers on /api/v1/ (431 as the API's JSON error) | 2 | broke 1 | 31f4a82 |
| leaks (state dir, key, traceback) in every answer and error above | all | held | - |
| MCP HTTP: foreign Host/Origin, loopback only, hostile JSON | 4 | held | - |
| MCP HTTP: 200 slowloris connections, then a real request | 1 | held | - |
| MCP stdio: escape sequences in lines, arguments, tool/method names | 5 | held | - |
| verify_answer: a 64 MiB payload decoded before its bound (112 MiB peak) | 1 | broke | 2142be1 |
| a server without the answers key: envelope null never verifies | 1 | held | - |
| 40 slow check-lists at once (24 ran at once in the shared pool) | 1 | broke | 2142be1 |
| a wrong method (PUT, DELETE, PATCH, OPTIONS; GET check-list): plain 405 | 6 | broke 6 | 8821a3c |
| 6,000 distinct names through the API: the shared answer cache stays bounded | 1 | held | - |
| an unknown path under /api/v1/: the index's plain-text 404 | 3 | broke 3 | 8821a3c |
| MCP tool arguments out of bounds (limit 10^30, -1, 1.5; 10^6 chars; types) | 10 | held | - |
| options smuggled into a list (continuation, U+2028, -r, -e, --index-url) | 8 | held | - |

Broke, in words: a statement's subject digest was of the text cut at 400 (200 for a
list line, escaped for control characters), so `requests!=1.0.0,...,>=3` (refused)
and `...,<3` (served) were signed with one subject; requirement_lines' split before `--`
rescanned every whitespace run from each blank; a JSON body nested 60,000 deep was a
500 with a traceback in the log; an over-long query or headers under /api/v1/ were a
plain-text 414/431, not the JSON error the OpenAPI description promises;
verify_answer base64-decoded (and copied) a payload of any size before refusing it;
check-lists ran in Starlette's thread pool without a limit of their own (24 of 40 at
once), the pool the index hashes files in; a wrong method was Starlette's plain-text
405 (check-list's own JSON 405 could not be reached), an unknown API path the
index's plain-text 404.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

from factory.advice import (
    PAYLOAD_TYPE,
    SUBJECT_NAME,
    Advisor,
    RequestError,
    requirement_lines,
    sign,
    statement,
    subject_matches,
    verify_answer,
)
from factory.attest.keys import load_signer
from factory.config import Settings
from factory.errors import VerificationError
from factory.index import Index
from factory.index.serve import create_app
from factory.publish import trust_files
from factory.similar import Matcher, Pattern
from factory.watch import publish_status
from factory.why import Component, Knowledge, Release
from tests.index_fixtures import approve_requests, request, running
from tests.test_mcp import http_server  # noqa: F401  (the fixture)

BOUND = 2000  # bytes of any error body, whatever the input
PAD = ",".join(f"!=1.0.{i}" for i in range(60))  # 60 clauses that exclude nothing served


# -- helpers -------------------------------------------------------------------------


def _knowledge(extra: int = 0) -> Knowledge:
    releases = {"requests": [Release("2.32.3"), Release("2.31.0", True, "advisory")]}
    names = [Component("requests", published="2.32.3"), Component("six"),
             Component("flask")]
    names += [Component(f"pkg-{i:05d}-{'abcdefgh'[i % 8] * (i % 13)}") for i in range(extra)]
    return Knowledge(names, releases=releases.get)


_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def signer() -> CryptoSigner:
    return CryptoSigner(_KEY)


@pytest.fixture(scope="module")
def pem() -> bytes:
    return _KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def advisor(signer: CryptoSigner) -> Advisor:
    known = _knowledge()
    return Advisor(lambda: known, signer, "http://factory.test/api/v1/")


def _subjects(signed: Any) -> list[str]:
    return [s["digest"]["sha256"] for s in signed.statement["subject"]]


def _sane(signed: Any, pem: bytes) -> dict[str, Any]:
    """The answer of ``signed``: JSON in UTF-8, its envelope verifies, every shown text
    printable and bounded."""
    body = json.dumps(signed.to_dict(), ensure_ascii=False).encode("utf-8")
    assert len(body) < 200_000
    found = verify_answer(signed.envelope, pem)
    for subject in found["subject"]:
        assert subject["name"].isprintable() and len(subject["name"]) <= 401
    return signed.answer  # type: ignore[no-any-return]


# -- signing: what a statement's subject says ---------------------------------------

# Two asks the factory answers differently (or could): never one subject.
SUBJECT_PAIRS = {
    "spec past 400 chars": ("check", "requests" + PAD + ",>=3", "requests" + PAD + ",<3"),
    "name past 200 chars": ("check", "é" * 250 + "a", "é" * 250 + "b"),
    "escape vs control": ("check", "a\x01", "a\\x01"),
    "list line past 200": ("list", ["requests" + PAD + ",>=3"], ["requests" + PAD + ",<3"]),
    "empty search vs '(empty)'": ("search", "", "(empty)"),
    "search folded apart": ("search", "requests", "requests>=0"),
}


@pytest.mark.parametrize("case", SUBJECT_PAIRS, ids=list(SUBJECT_PAIRS))
def test_two_asks_never_share_a_signed_subject(advisor: Advisor, pem: bytes,
                                                case: str) -> None:
    kind, first, second = SUBJECT_PAIRS[case]
    call = {"check": advisor.check, "list": advisor.check_list, "search": advisor.search}[kind]
    one, two = call(first), call(second)  # type: ignore[operator]
    _sane(one, pem), _sane(two, pem)
    assert set(_subjects(one)).isdisjoint(_subjects(two))
    if kind == "check":  # and each is found by what was asked, not by the other
        assert subject_matches(one.statement, first) and subject_matches(two.statement, second)
        assert not subject_matches(one.statement, second)


def test_a_long_range_is_answered_for_its_last_clause_too(advisor: Advisor) -> None:
    """The case that made the subject collision matter: two different verdicts."""
    assert advisor.check("requests" + PAD + ",>=3").answer["verdict"] == "version-blocked"
    assert advisor.check("requests" + PAD + ",<3").answer["verdict"] == "served"


REPLAYS = [("requests", "requests==2.31.0"), ("reqests", "requests"),
           ("requests==2.32.3", "requests===2.32.3"), ("six", "six; python_version<'3'")]


@pytest.mark.parametrize(("asked", "other"), REPLAYS)
def test_an_answer_is_no_answer_for_another_requirement(advisor: Advisor, pem: bytes,
                                                        asked: str, other: str) -> None:
    found = verify_answer(advisor.check(asked).envelope, pem)  # type: ignore[arg-type]
    assert subject_matches(found, asked)
    assert not subject_matches(found, other)


# -- hostile requirement text -------------------------------------------------------

HOSTILE = {
    "lone surrogate": "\ud800",
    "surrogate in name": "requ\udcffests",
    "surrogate in marker": "requests; python_version == '\ud800'",
    "NUL": "requests\x00",
    "bidi override": "requ\u202eests",
    "zero width": "requ\u200bests",
    "cyrillic confusable": "rеquеsts",  # two U+0435
    "fullwidth": "ｒｅｑｕｅｓｔｓ",
    "ESC sequence": "\x1b[31mrequests\x1b[0m",
    "1000 chars": "a" * 1000,
    "extras bomb": "a[" + ",".join("x" * 3 for _ in range(240)) + "]",
    "unclosed extras": "a[" + "x," * 400,
    "110 clauses": "requests" + ",".join(f"!=0.{i}" for i in range(110)),
    "arbitrary equality": "requests===2.32.3",
    "arbitrary equality junk": "requests===ñ\u202e",
    "url": "requests @ https://evil.example/requests-2.32.3-py3-none-any.whl",
    "file url": "requests @ file:///etc/passwd",
    "include": "-r /etc/shadow",
    "unevaluable marker": "requests; os_name == 'nt' and extra == 'x' or platform_release >= '"
                          + "9" * 300 + "'",
    "marker undefined name": "requests; python_version >= sys.platform",
    "wildcard pin": "requests==2.*",
    "prerelease range": "requests>=3.0.0a1,<3.0.0b1",
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_requirement_text_is_answered_signed_and_printable(
        advisor: Advisor, pem: bytes, text: str) -> None:
    for call in (advisor.check, advisor.explain):
        found = _sane(call(text), pem)
        for key in ("name", "reason"):
            assert isinstance(found[key], str) and found[key].isprintable()
            assert len(found[key]) <= 1000
        assert "\x1b" not in json.dumps(found, ensure_ascii=False)
    listed = _sane(advisor.check_list([text]), pem)
    for row in listed["answers"]:
        # shown as a single answer's subject is: cut at SUBJECT_NAME, "…" marking the cut
        assert row["requirement"].isprintable() and \
            len(row["requirement"]) <= SUBJECT_NAME + 1


def test_a_million_characters_are_one_bounded_refusal(advisor: Advisor) -> None:
    for call in (advisor.check, advisor.explain):
        with pytest.raises(RequestError) as caught:
            call("a" * 1_000_000)
        assert len(caught.value.message) < 200
    with pytest.raises(RequestError):
        advisor.search("a" * 1_000_000)
    with pytest.raises(RequestError):
        advisor.check_list("a" * 1_000_000)


@pytest.mark.parametrize("value", [42, 4.2, None, True, ["requests"], {"name": "requests"}])
def test_non_text_where_text_goes_is_a_request_error(advisor: Advisor, value: Any) -> None:
    with pytest.raises(RequestError):
        advisor.check(value)
    with pytest.raises(RequestError):
        advisor.search(value)
    if not isinstance(value, list):
        with pytest.raises(RequestError):
            advisor.check_list(value)


# -- resource use -------------------------------------------------------------------

LISTS = {
    "whitespace run then b": "a" + " " * 65_000 + "b",
    "whitespace run then --": "a" + " " * 65_000 + "--hash=sha256:00",
    "spaced dashes": "a" + " -" * 32_000,
    "tab hashes": "a" + "\t#" * 32_000,
    "continuations": "\\\n" * 499 + "six",
}


@pytest.mark.parametrize("text", LISTS.values(), ids=list(LISTS))
def test_parsing_a_64k_list_is_linear(advisor: Advisor, text: str) -> None:
    assert len(text.encode()) <= 64 * 1024
    # The quadratic case was a regular expression backtracking over a whitespace run
    # (50 s for this 64 KiB); no count reaches inside the re engine, so this bounds the
    # CPU time of this thread, which other processes' load does not add to (seen: under
    # 10 ms), not the wall clock.
    started = time.thread_time()
    requirement_lines(text)
    advisor.check_list(text)
    assert time.thread_time() - started < 2.0


@pytest.mark.parametrize("query", ["a" * 200, "pkg-" * 50, "?" * 200, "pkg-00001-" + "b" * 190])
def test_fuzzy_search_of_a_long_query_over_10000_names_is_bounded(
        signer: CryptoSigner, query: str, monkeypatch: pytest.MonkeyPatch) -> None:
    known = _knowledge(10_000)
    advisor = Advisor(lambda: known, signer, "http://factory.test/api/v1/")
    # Counted, not timed: the fuzzy work is the approved names the matcher's index
    # offers as candidates and the exact distances it measures with the long query
    # (seen: none of 10,000; a scan of the names offers every one).
    work = {"candidates": 0, "distances": 0}
    real_candidates, real_distance = Matcher._candidates, Pattern.distance

    def candidates(self: Matcher, key: str, bound: int) -> set[str]:
        found = real_candidates(self, key, bound)
        work["candidates"] += len(found)
        return found

    def distance(self: Pattern, other: str) -> int:
        work["distances"] += 1
        return real_distance(self, other)

    monkeypatch.setattr(Matcher, "_candidates", candidates)
    monkeypatch.setattr(Pattern, "distance", distance)
    advisor.search(query, 50)
    advisor.check(query)
    assert work["candidates"] <= 20 and work["distances"] <= 20, work


# -- verify_answer ------------------------------------------------------------------


def _envelope(payload: dict[str, Any] | bytes, signer: CryptoSigner,
              payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    envelope = Envelope(raw, payload_type, {})
    envelope.sign(signer)
    return envelope.to_dict()  # type: ignore[no-any-return]


def _good(signer: CryptoSigner) -> dict[str, Any]:
    return sign(statement(["requests"], "v", [], {"answer": {"verdict": "served"}}), signer)


def _bad_envelopes(signer: CryptoSigner) -> dict[str, Any]:
    other = CryptoSigner.generate_ecdsa()
    good = _good(signer)
    made = statement(["requests"], "v", [], {})
    junk_only = dict(good, signatures=[{"keyid": good["signatures"][0]["keyid"],
                                        "sig": base64.b64encode(b"\0" * 64).decode()}])
    return {
        "another key": _good(other),
        "wrong payload type": _envelope(made, signer, "application/json"),
        "another predicate": _envelope(dict(made, predicateType="https://slsa.dev/provenance/v1"),
                                       signer),
        "not a statement": _envelope({"verdict": "served"}, signer),
        "payload not JSON": _envelope(b"\xff\xfe", signer),
        "junk signature, right keyid": junk_only,
        "no signatures": dict(good, signatures=[]),
        "signatures not a list": dict(good, signatures="x"),
        "not an object": ["payload"],
    }


@pytest.mark.parametrize("case", list(_bad_envelopes(CryptoSigner.generate_ecdsa())))
def test_verify_answer_refuses_what_the_answers_key_did_not_sign_as_an_answer(
        signer: CryptoSigner, pem: bytes, case: str) -> None:
    with pytest.raises(VerificationError) as caught:
        verify_answer(_bad_envelopes(signer)[case], pem)
    assert len(str(caught.value)) < 300


def test_extra_signatures_do_not_change_what_verifies(signer: CryptoSigner, pem: bytes) -> None:
    """DSSE with threshold 1: a foreign or junk signature beside the factory's is
    ignored; the statement returned is the one the factory signed, unchanged."""
    good = _good(signer)
    other = _good(CryptoSigner.generate_ecdsa())
    doubled = dict(good, signatures=[*other["signatures"], {"keyid": "x", "sig": "AA=="},
                                     *good["signatures"]])
    assert verify_answer(doubled, pem) == verify_answer(good, pem)
    swapped = dict(other, signatures=[*good["signatures"]])  # its signature, their payload
    with pytest.raises(VerificationError):
        verify_answer(swapped, pem)


# -- over HTTP: factory serve /api/v1/ ------------------------------------------------


@pytest.fixture
def approved(project: Settings, tmp_path: Path) -> Settings:
    index = approve_requests(project, tmp_path / "work", ["2.32.3"], yanked=None)
    index.publish_trust(trust_files(project))
    publish_status(project, index)
    return project


@pytest.fixture
def served(approved: Settings) -> Iterator[tuple[str, Settings]]:
    app = create_app(Index.of(approved), load_signer(approved, "answers"))
    with running(app) as url:
        yield url, approved


def _no_leak(body: bytes, settings: Settings) -> None:
    text = body.decode("utf-8")
    assert "Traceback" not in text and "PRIVATE KEY" not in text
    assert str(settings.root) not in text and str(Path.home()) not in text.replace("\\", "")


BODIES: dict[str, bytes] = {
    "nested lists": b"[" * 65_000 + b"]" * 65_000,
    "nested objects": b'{"a":' * 21_000 + b"1" + b"}" * 21_000,
    "nested inside requirement": b'{"requirement":' + b"[" * 60_000 + b"]" * 60_000 + b"}",
    "NaN": b'{"requirement": NaN}',
    "Infinity limit": b'{"query": "a", "limit": Infinity}',
    "huge integer": b'{"query": "a", "limit": ' + b"9" * 5000 + b"}",
    "float limit": b'{"query": "a", "limit": 5.0}',
    "UTF-16": '{"requirement": "requests"}'.encode("utf-16"),
    "invalid UTF-8": b'{"requirement": "\xff\xfe"}',
    "lone surrogate escape": b'{"requirement": "\\ud800"}',
    "duplicate keys": b'{"requirement": 1, "requirement": "requests"}',
    "number as requirement": b'{"requirement": 12345}',
    "not an object": b'"requests"',
}


@pytest.mark.parametrize("body", BODIES.values(), ids=list(BODIES))
def test_hostile_json_bodies_are_one_json_answer(served: tuple[str, Settings],
                                                 body: bytes) -> None:
    url, settings = served
    with httpx.Client(base_url=url, timeout=30) as client:
        for route in ("check", "why", "search", "check-list"):
            response = client.post(f"/api/v1/{route}", content=body,
                                   headers={"content-type": "application/json"})
            assert response.status_code in (200, 400, 413), (route, response.status_code)
            assert response.headers["content-type"] == "application/json"
            data = response.json()
            if response.status_code != 200:
                assert set(data) == {"error", "hint"} and len(response.content) <= BOUND
            _no_leak(response.content, settings)
        assert client.get("/api/v1/check", params={"requirement": "six"}).status_code == 200


@pytest.mark.parametrize("declared", ["999999999999999999999", "-1", "12abc", "10"])
def test_a_lying_content_length_is_refused_or_bounded(served: tuple[str, Settings],
                                                      declared: str) -> None:
    url, settings = served
    host, port = url.removeprefix("http://").split(":")
    try:
        answer = request(host, int(port), "/api/v1/check", method="POST", timeout=10,
                         headers={"Content-Type": "application/json",
                                  "Content-Length": declared})
    except (OSError, ConnectionError):
        return  # the connection closed: nothing answered, nothing leaked
    assert answer.status in (400, 413), answer.status
    _no_leak(answer.body, settings)


QUERIES = [
    "requirement=six&requirement=" + "a" * 5000,
    "requirement=a%00b",
    "requirement=%ff%fe",
    "requirement=%ed%a0%80",  # a surrogate, UTF-8 encoded
    "requirement=%1b%5b31mrequests",
    "query=a&limit=0",
    "query=a&limit=999",
    "query=a&limit=-1&limit=5",
    "query=" + "%e2%80%ae" * 100,
]


@pytest.mark.parametrize("headers", [[("X-Pad", "a" * 9000)] * 4, [("X-N", "1")] * 500],
                         ids=["large headers", "many headers"])
def test_oversize_headers_on_the_api_are_a_json_error(served: tuple[str, Settings],
                                                      headers: list[tuple[str, str]]) -> None:
    url, settings = served
    host, port = url.removeprefix("http://").split(":")
    try:
        answer = request(host, int(port), "/api/v1/check?requirement=six", headers=headers)
    except (OSError, ConnectionError):
        return  # refused by the HTTP server itself, before the app: nothing leaked
    assert answer.status in (400, 431), answer.status
    if answer.status == 431:
        assert set(json.loads(answer.body)) == {"error", "hint"}
    _no_leak(answer.body, settings)


@pytest.mark.parametrize("query", QUERIES)
def test_hostile_query_strings_are_one_json_answer(served: tuple[str, Settings],
                                                   query: str) -> None:
    url, settings = served
    host, port = url.removeprefix("http://").split(":")
    for route in ("check", "why", "search"):
        answer = request(host, int(port), f"/api/v1/{route}?{query}")
        assert answer.status in (200, 400, 414), (route, answer.status)
        data = json.loads(answer.body)
        assert "\x1b" not in json.dumps(data, ensure_ascii=False)
        _no_leak(answer.body, settings)


# -- factory mcp over streamable HTTP ------------------------------------------------


@pytest.fixture
def mcp_http(fixture_request: pytest.FixtureRequest) -> str:
    """`factory mcp --http --offline` in a fresh process (tests/test_mcp.py)."""
    return str(fixture_request.getfixturevalue("http_server"))


@pytest.fixture
def fixture_request(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    return request


_INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "attacker", "version": "0"}}}
_ACCEPT = {"Accept": "application/json, text/event-stream",
           "Content-Type": "application/json"}


def test_mcp_http_refuses_foreign_host_and_origin_and_binds_loopback_only(
        mcp_http: str) -> None:
    import socket
    port = int(mcp_http.rsplit(":", 1)[1].split("/")[0])
    with httpx.Client(timeout=30) as client:
        ok = client.post(mcp_http, json=_INIT, headers=_ACCEPT)
        assert ok.status_code == 200, ok.text
        for extra in ({"Host": "evil.example"}, {"Host": f"evil.example:{port}"},
                      {"Origin": "http://evil.example"}):
            refused = client.post(mcp_http, json=_INIT, headers={**_ACCEPT, **extra})
            assert refused.status_code in (403, 421), (extra, refused.status_code)
            assert "Traceback" not in refused.text
    # Not on another address of this machine (0.0.0.0 would answer on all of them).
    hostname_ips = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None,
                                                         socket.AF_INET)} - {"127.0.0.1"}
    for ip in list(hostname_ips)[:2]:
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((ip, port)) != 0


@pytest.mark.parametrize("body", [b"[" * 100_000, b"\xff\xfe{", b'{"jsonrpc": NaN}'],
                         ids=["nested", "bad utf-8", "NaN"])
def test_mcp_http_hostile_json_is_refused_and_the_server_goes_on(mcp_http: str,
                                                                 body: bytes) -> None:
    with httpx.Client(timeout=30) as client:
        response = client.post(mcp_http, content=body, headers=_ACCEPT)
        assert 400 <= response.status_code < 500, response.status_code
        # The SDK's own error: pydantic's, each echoed input truncated (about 2 KiB here).
        assert "Traceback" not in response.text and len(response.content) <= 8 * BOUND
        assert client.post(mcp_http, json=_INIT, headers=_ACCEPT).status_code == 200


# -- factory mcp over stdio: what reaches a terminal ----------------------------------

_ESC = "\x1b]0;pwned\x07\x1b[31m"


def test_mcp_stdio_never_writes_escape_sequences_from_input(approved: Settings) -> None:
    """Hostile lines on stdin (not JSON, a tool argument, a tool and a method name with
    escape sequences): stdout stays JSON-RPC (controls escaped by JSON), stderr (the
    assistant's log, often a terminal) carries no escape byte, and the server answers
    the calls after them."""
    import os
    import subprocess
    import sys
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": _INIT["params"]}
    call = {"jsonrpc": "2.0", "method": "tools/call"}
    lines = [json.dumps(init), json.dumps({"jsonrpc": "2.0",
                                           "method": "notifications/initialized"}),
             _ESC + " not json",
             json.dumps({**call, "id": 2, "params": {"name": "check_requirement",
                                                     "arguments": {"requirement": _ESC}}}),
             json.dumps({**call, "id": 3, "params": {"name": "check_requirement",
                                                     "arguments": {"requirement": [_ESC]}}}),
             json.dumps({**call, "id": 4, "params": {"name": _ESC, "arguments": {}}}),
             json.dumps({"jsonrpc": "2.0", "id": 5, "method": _ESC}),
             json.dumps({**call, "id": 6, "params": {"name": "check_requirement",
                                                     "arguments": {"requirement": "requests"}}})]
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "mcp", "--offline"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=approved.root,
                            env={**os.environ, "FACTORY_ROOT": str(approved.root)})
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    replies: dict[Any, dict[str, Any]] = {}
    out = b""
    try:
        proc.stdin.write(("\n".join(lines) + "\n").encode())
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while 6 not in replies and time.monotonic() < deadline:  # answered in any order
            line = proc.stdout.readline()
            if not line:
                break
            out += line
            message = json.loads(line)
            replies[message.get("id")] = message
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    out += proc.stdout.read()
    err = proc.stderr.read()
    for raw in (out, err):
        assert b"\x1b" not in raw and b"\x07" not in raw
    assert b"Traceback" not in err and str(approved.root).encode() not in err
    assert "result" in replies[6] and not replies[6]["result"].get("isError")
    assert replies[6]["result"]["structuredContent"]["answer"]["verdict"] == "served"


def _still_open(sock: Any) -> bool:
    """Has the server neither closed ``sock`` nor answered on it?"""
    sock.setblocking(False)
    try:
        sock.recv(1)  # b"": closed; any byte: answered (a 408, say)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_slow_clients_do_not_stop_mcp_http(mcp_http: str) -> None:
    """200 connections that send half a request head and wait (slowloris): the
    server still answers a whole request at once."""
    import socket
    port = int(mcp_http.rsplit(":", 1)[1].split("/")[0])
    held = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n")
            held.append(s)
        # No clock: the client's 30 s timeout is the hang guard, and the mechanism is
        # that the whole request was answered while all 200 were still held open (a
        # server that had to drop them first would have closed them).
        with httpx.Client(timeout=30) as client:
            assert client.post(mcp_http, json=_INIT, headers=_ACCEPT).status_code == 200
        assert sum(_still_open(s) for s in held) == 200
    finally:
        for s in held:
            s.close()


def test_an_oversize_envelope_is_refused_before_it_is_decoded(signer: CryptoSigner,
                                                              pem: bytes) -> None:
    good = _good(signer)
    huge = dict(good, payload="A" * (64 * 1024 * 1024))
    tracemalloc = pytest.importorskip("tracemalloc")
    tracemalloc.start()
    try:
        with pytest.raises(VerificationError):
            verify_answer(huge, pem)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # no copy, no 48 MiB decode of the 64 MiB text


def test_without_the_answers_key_no_answer_verifies(approved: Settings, pem: bytes) -> None:
    """A server started without the answers key answers with envelope null: a client
    that verifies refuses it (nothing unsigned passes for signed)."""
    app = create_app(Index.of(approved), None)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        data = client.get("/api/v1/check", params={"requirement": "requests"}).json()
    assert data["envelope"] is None and data["answer"]["verdict"] == "served"
    with pytest.raises(VerificationError):
        verify_answer(data["envelope"], pem)


def test_a_flood_of_lists_never_takes_the_shared_thread_pool(approved: Settings) -> None:
    """40 check-lists at once, each slow (a second of matching, here held until the
    other routes have answered): at most MAX_LISTS_AT_ONCE run at a time, so the thread
    pool the index hashes files in (Starlette's, 40 threads) always has room, and other
    routes answer meanwhile."""
    import threading

    from factory.index.serve.api import MAX_LISTS_AT_ONCE

    app = create_app(Index.of(approved), None)
    api = next(r.endpoint for r in app.routes if getattr(r, "path", "") == "/api/v1/check-list")
    advisor = api.__self__.advisor  # type: ignore[attr-defined]
    running_now, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()  # the lists end only once the other routes answered
    real = advisor.check_list

    def slow(text: Any) -> Any:
        with lock:
            running_now[0] += 1
            peak[0] = max(peak[0], running_now[0])
        try:
            release.wait(120)
            return real(text)
        finally:
            with lock:
                running_now[0] -= 1

    advisor.check_list = slow
    with running(app) as url:
        def post() -> int:
            with httpx.Client(base_url=url, timeout=60) as client:
                return client.post("/api/v1/check-list",
                                   json={"requirements": "six"}).status_code

        threads = [threading.Thread(target=post, daemon=True) for _ in range(40)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 60  # a generous wait for the lists to start
            while running_now[0] < MAX_LISTS_AT_ONCE and time.monotonic() < deadline:
                time.sleep(0.02)
            assert running_now[0] == MAX_LISTS_AT_ONCE  # every slot held, none ending
            # No clock: these answer while the lists are held (had the lists taken the
            # pool, they would wait for a release that comes only after them: the 30 s
            # timeout fails the test).
            with httpx.Client(base_url=url, timeout=30) as client:
                assert client.get("/simple/requests/").status_code == 200
                assert client.get("/api/v1/check",
                                  params={"requirement": "six"}).status_code == 200
            assert running_now[0] == MAX_LISTS_AT_ONCE  # answered while they were held
        finally:
            release.set()
        for thread in threads:
            thread.join(60)
    assert peak[0] == MAX_LISTS_AT_ONCE


@pytest.mark.parametrize(("method", "route"), [
    ("PUT", "check"), ("DELETE", "why"), ("PATCH", "search"), ("OPTIONS", "check"),
    ("GET", "check-list"), ("PUT", "check-list")])
def test_a_wrong_method_is_the_apis_json_405(served: tuple[str, Settings], method: str,
                                            route: str) -> None:
    url, settings = served
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.request(method, f"/api/v1/{route}?requirement=six&query=six",
                                  json={"requirement": "six"})
    assert response.status_code == 405, response.status_code
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error", "hint"}
    _no_leak(response.content, settings)


def test_distinct_names_never_grow_the_answer_cache_past_its_bound(
        approved: Settings) -> None:
    """6,000 distinct plausible names asked through the policy API's advisor: the
    cache of answers it shares with the 404 keeps at most ANSWERS of them."""
    from factory.index.serve.explain import ANSWERS

    app = create_app(Index.of(approved), None)
    api = next(r.endpoint for r in app.routes if getattr(r, "path", "") == "/api/v1/check")
    advisor = api.__self__.advisor  # type: ignore[attr-defined]
    for i in range(ANSWERS + 2000):
        advisor.check(f"name-{i:05d}")
    cached = app.state.index.explain._current()[1]
    assert 0 < cached.cache_info().currsize <= ANSWERS


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/check/extra", "/api/v1/"])
def test_an_unknown_api_path_is_the_apis_json_404(served: tuple[str, Settings],
                                                  path: str) -> None:
    url, settings = served
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.get(path)
    assert response.status_code == 404 and set(response.json()) == {"error", "hint"}
    _no_leak(response.content, settings)


MCP_ARGS = [
    ("search_catalogue", {"query": "req", "limit": 10**30}),
    ("search_catalogue", {"query": "req", "limit": -1}),
    ("search_catalogue", {"query": "req", "limit": 1.5}),
    ("search_catalogue", {"query": "a" * 100_000}),
    ("check_requirement", {"requirement": 7}),
    ("check_requirement", {"requirement": "x" * 1_000_000}),
    ("check_requirements", {"requirements": ["six"] * 100_000}),
    ("check_requirements", {"requirements": {"six": 1}}),
    ("explain_refusal", {"requirement": None}),
    ("explain_refusal", {}),
]


@pytest.mark.parametrize(("tool", "arguments"), MCP_ARGS,
                         ids=[f"{t}-{i}" for i, (t, _) in enumerate(MCP_ARGS)])
def test_mcp_tool_arguments_out_of_bounds_are_one_bounded_tool_error(
        advisor: Advisor, tool: str, arguments: dict[str, Any]) -> None:
    import anyio
    from mcp import Client

    from factory.assistants import build_server

    async def run() -> Any:
        async with Client(build_server(advisor)) as client:
            found = await client.call_tool(tool, arguments)
            ok = await client.call_tool("check_requirement", {"requirement": "requests"})
            return found, ok

    found, ok = anyio.run(run)
    assert found.is_error and not ok.is_error
    text = "".join(getattr(c, "text", "") for c in found.content)
    assert 0 < len(text) <= 4 * BOUND and "Traceback" not in text


SMUGGLED = [
    "requests \\\n--index-url https://evil.example/simple",
    "requests --hash=sha256:00 --extra-index-url=https://evil.example",
    "requests\u2028--index-url https://evil.example/simple",
    "requests\r--find-links /tmp",
    "-r other.txt",
    "--requirement=other.txt",
    "-e git+https://evil.example/requests#egg=requests",
    "requests @ file:///tmp/requests-2.32.3-py3-none-any.whl",
]


@pytest.mark.parametrize("text", SMUGGLED)
def test_an_option_smuggled_into_a_list_is_never_served(advisor: Advisor, pem: bytes,
                                                        text: str) -> None:
    """An index, a find-links, an include or an editable riding on a requirement (by a
    continuation, a Unicode line break, a --hash beside it) is answered as malformed
    or refused; the list is never all served."""
    found = _sane(advisor.check_list(text), pem)
    assert found["answers"] and found["refused"] >= 1
    assert "FACTORY_ALL_SERVED" not in verify_answer(
        advisor.check_list(text).envelope, pem)["predicate"]["properties"]  # type: ignore[arg-type]
