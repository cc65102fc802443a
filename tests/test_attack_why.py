"""Attacks on the explained 404 (`factory serve`) and on `factory why`.

Three attackers: a hostile HTTP client (names, paths, queries, Accept headers, floods
of distinct typos), a hostile or damaged index directory on disk (the catalog and
status records: links, FIFOs, nesting, wrong types, hostile text, changes under
load), and a hostile argument on the command line. Each test states the safe
behaviour it holds; the ones that broke are regression tests for their fix.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import string
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from factory import why as why_module
from factory.config import Settings, load_settings
from factory.index import Index
from factory.index.serve import create_app
from factory.index.serve import files as serve_files
from factory.index.serve.app import IndexApp
from factory.index.serve.explain import ANSWERS
from factory.similar import LONGEST, Matcher, Pattern, fold
from factory.why import Knowledge, Release, answer, clip, parse_request
from tests import factories
from tests.index_fixtures import publish_wheel, request, running

JSON = "application/vnd.pypi.simple.v1+json"
CANARY = "CANARY-7f3c-not-public"


# -- helpers -------------------------------------------------------------------------


def _write_json(path: Path, value: Any) -> None:
    """Replaced atomically, as the factory writes records (a new inode: a new stat key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _catalog(*names: str, **extra: dict[str, Any]) -> dict[str, Any]:
    return {n: {"name": n, "display_name": n, "latest": "1.0", **extra.get(n, {})}
            for n in names}


class Server:
    """A running `factory serve` over an index directory the test may damage."""

    def __init__(self, index: Index, url: str) -> None:
        self.index, self.url = index, url
        self.records = index.layout.records
        self.host, self.port = "127.0.0.1", int(url.rsplit(":", 1)[1])

    def get(self, target: str, accept: str | None = JSON, method: str = "GET",
            headers: list[tuple[str, str]] | None = None) -> Any:
        items = [("Accept", accept)] if accept is not None else []
        return request(self.host, self.port, target, items + (headers or []), method=method,
                       timeout=30)

    def status(self, rows: Any) -> None:
        _write_json(self.records / "_status.json", rows)

    def catalog(self, value: Any) -> None:
        _write_json(self.records / "_catalog.json", value)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """An empty index (no wheel: the 404 reads only the two records) being served."""
    index = Index.of(load_settings(root=tmp_path / "root"))
    index.layout.records.mkdir(parents=True)
    (tmp_path / "root" / ".factory" / "secret.txt").write_text(CANARY)
    with running(create_app(index)) as url:
        yield Server(index, url)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """requests 2.32.3 published; flask approved and refused; served for the whole module."""
    root = tmp_path_factory.mktemp("attack-why")
    settings = load_settings(root=root)
    publish_wheel(settings, root / "work", "requests", "2.32.3")
    index = Index.of(settings)
    _write_json(index.layout.records / "_status.json", [
        {"name": "requests", "locked": "2.32.3", "published": "2.32.3"},
        {"name": "flask", "refused": "3.1.0: <b>refused</b>\r\nSet-Cookie: a=1"}])
    with running(create_app(index)) as url:
        yield Server(index, url)


def _printable_body(body: bytes) -> bool:
    text = body.decode("utf-8")
    return all(line.isprintable() for line in text.split("\n"))


def _random_names(count: int, seed: int = 18) -> list[str]:
    rng = random.Random(seed)
    names = {"requests"}
    while len(names) < count:
        names.add("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 16))))
    return sorted(names)


# -- a hostile HTTP client ---------------------------------------------------------------


def test_html_in_the_name_is_never_sniffed_as_a_page(published: Server) -> None:
    # Broke: the 404 quoted "<script>" with no nosniff, for a browser that sniffs.
    for accept in (None, "text/html", JSON):
        found = published.get("/simple/%3Cscript%3Ealert(1)%3C%2Fscript%3E/", accept)
        assert found.status == 404
        found = published.get("/simple/%3Cimg%20src=x%20onerror=alert(1)%3E/", accept)
        assert found.status == 404 and "location" not in found.headers
        assert found.headers["x-content-type-options"] == "nosniff"
        assert found.headers["content-type"].startswith(
            "application/json" if accept == JSON else "text/plain")
        assert "text/html" not in found.headers["content-type"]


def test_crlf_never_splits_the_response_nor_sets_a_header(published: Server) -> None:
    for target in ("/simple/req%0d%0aSet-Cookie:%20a=1/", "/simple/req%0aests/",
                   "/simple/req%E2%80%A8ests/", "/simple/flask/"):
        found = published.get(target, None)
        assert found.status == 404
        assert "set-cookie" not in found.headers
        assert [k.lower() for k, _ in found.raw_headers].count("content-type") == 1
        assert b"\r" not in found.body and _printable_body(found.body)
    flask = published.get("/simple/flask/", "text/plain").body.decode()
    assert "\\x0d\\x0aSet-Cookie" in flask  # the reason from disk, escaped in the body


@pytest.mark.parametrize("segment", [
    "%252e%252e", "%25252F", "%2525252e%2525252e%25252F", "..%252f..%252fetc",
    "%25%32%65%25%32%65", "req%2575ests", "%25" * 300])
def test_deeply_percent_encoded_names_are_decoded_once_and_answered_literally(
        published: Server, segment: str) -> None:
    found = published.get(f"/simple/{segment}/")
    assert found.status == 404 and "location" not in found.headers
    if found.headers["content-type"] == "application/json":  # else refused before routing
        body = json.loads(found.body)
        assert body["verdict"] == "not-approved" and body["suggestions"] == []
        assert body["name"] == clip(unquote(segment), 200)  # decoded once, never twice


@pytest.mark.parametrize("target", [
    "/simple/../records/_status.json", "/simple/..%2Frecords%2F_status.json/",
    "/simple/%2e%2e/", "/simple/a%2Fb/", "/simple/a%5Cb/", "/simple/a%00b/",
    "/simple/records/", "/simple/_status.json/", "/project/..%2F..%2F/"])
def test_separators_and_dot_dot_never_reach_a_file(server: Server, target: str) -> None:
    server.status([{"name": "requests", "refused": CANARY + " private?"}])
    found = server.get(target)
    assert found.status == 404 and "location" not in found.headers
    assert CANARY.encode() not in found.body


def test_queries_choose_the_format_and_are_never_echoed(published: Server) -> None:
    as_json = published.get("/simple/reqests/?format=application/vnd.pypi.simple.v1%2Bjson",
                            "text/html")
    assert as_json.headers["content-type"] == "application/json"
    assert json.loads(as_json.body)["suggestions"] == ["requests"]
    as_text = published.get("/simple/reqests/?format=text/html", JSON)
    assert as_text.headers["content-type"].startswith("text/plain")
    zero = published.get("/simple/reqests/?format=application/json;q=0", JSON)
    assert zero.headers["content-type"].startswith("text/plain")
    echoed = published.get("/simple/reqests/?x=%3Cscript%3E" + CANARY + "&format=" + "a" * 1500)
    assert echoed.status == 404 and CANARY.encode() not in echoed.body
    assert b"<script>" not in echoed.body
    long = published.get("/simple/reqests/?" + "a=b&" * 1000)
    assert long.status == 414


@pytest.mark.parametrize(("accept", "json_"), [
    ("application/json;q=0", False), ("application/json;q=-1", False),
    ("application/json;q=nan", False), ("application/json;q=1e-400", False),
    ("application/json;q=junk", False), ("application/json;q=inf", True),
    ("APPLICATION/JSON", True), ("*/*", False), ("application/*", False),
    ("text/html;q=1, application/json;q=0.001", True), (",,,;;;==", False),
    ("application/json" + ";q=1" * 2000, True), ("x/y, " * 3000 + "application/json", True),
    ("\tapplication/json\t", True), ("application/json;q", True), ("", False),
])
def test_odd_and_huge_accept_headers_never_500(published: Server, accept: str,
                                               json_: bool) -> None:
    # A hang guard, not a timing claim: the request's own 30 s socket timeout fails the
    # test if the server never answers (media_ranges is one split per header).
    found = published.get("/simple/reqests/", accept)
    assert found.status in (404, 431), found.status
    if found.status == 404:
        assert found.headers["content-type"].startswith(
            "application/json" if json_ else "text/plain")
        assert found.headers["vary"] == "Accept"


@pytest.mark.parametrize("name", [
    "Reqests", "reqests", "r%D0%B5quests", "REQUESTS.", "requests-", "_requests",
    "%EF%BD%92%EF%BD%85%EF%BD%91", "flask", "invented"])
def test_an_unknown_name_never_redirects_whatever_the_host(published: Server,
                                                           name: str) -> None:
    for path in (f"/simple/{name}/", f"/project/{name}/"):
        found = published.get(path, JSON, headers=[("Host", "evil.example"),
                                                   ("X-Forwarded-Host", "evil.example")])
        assert found.status == 404, (path, found.status)
        assert "location" not in found.headers
        assert b"evil.example" not in found.body and b"http" not in found.body


@pytest.mark.parametrize("name", [
    "%00", "re%01quests", "%1B%5B2J", "%7F", "%C2%9B31m", "%E2%80%AE" * 3 + "stseuqer",
    "%E2%80%8B" * 150, "%E2%81%A6x%E2%81%A9", "%ED%A0%80%ED%B0%80", "%FF%FE", "%C0%AF",
    "%F0%9F%90%8D" * 60, "%EF%BF%BF", "%F4%8F%BF%BF", "%E3%80%80", "%CD%8F" * 100,
    "a%CC%81" * 100, "%EF%B7%BA" * 150, "%F0%9D%90%9A" * 200])
def test_any_hostile_name_gets_a_short_printable_404(published: Server, name: str) -> None:
    for accept in (JSON, "text/plain"):
        found = published.get(f"/simple/{name}/", accept)
        assert found.status in (404, 414), (name, found.status)
        if found.status == 414:
            continue
        assert "location" not in found.headers and _printable_body(found.body)
        if accept == JSON and found.headers["content-type"] == "application/json":
            body = json.loads(found.body)
            assert len(body["name"]) <= 201, len(body["name"])  # escapes count
            assert len(body["message"]) <= 400 and body["message"].isprintable()
            assert body["suggestions"] in ([], ["requests"])
        else:
            assert len(found.body) <= 2048, len(found.body)


def test_two_hundred_format_characters_are_not_twelve_hundred_shown() -> None:
    # Broke: a name of 200 U+202E was "cut to 200" before escaping, then shown as 1,200.
    for text in ("\u202e" * 200, "\x00" * 5000, "\U000e0001" * 300, "a\u200b" * 150):
        for limit in (200, 300, 80, 1):
            shown = clip(text, limit)
            assert len(shown) <= limit + 1 and shown.isprintable()
    assert clip("requests") == "requests" and clip("a" * 10, 5) == "aaaaa…"
    assert clip("ab\u202ecd", 8) == "ab\\u202e…"  # never half an escape
    found = answer(Knowledge.from_rows([{"name": "requests"}]), "\u202e" * 200)
    assert len(found.name) <= 201 and len(found.to_json()) < 1024


def test_head_and_other_methods_on_an_unknown_name(published: Server) -> None:
    head = published.get("/simple/reqests/", JSON, method="HEAD")
    assert head.status == 404 and head.body == b"" and "location" not in head.headers
    for method in ("POST", "PUT", "DELETE", "TRACE", "PROPFIND"):
        found = published.get("/simple/reqests/", JSON, method=method)
        assert found.status in (404, 405, 501), (method, found.status)
        assert "location" not in found.headers


def test_the_log_line_cannot_be_forged(published: Server,
                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="factory.index.serve"):
        published.get("/simple/x%E2%80%A8WARNING%20forged%C2%85line/")
        published.get("/simple/" + "a" * 1800 + "/")
    lines = [r.getMessage() for r in caplog.records if "unknown project" in r.getMessage()]
    assert lines and all("\n" not in line and "\u2028" not in line and "\x85" not in line
                         for line in lines)
    assert all(len(line) < 600 for line in lines)


# -- floods: many distinct names ---------------------------------------------------------


def _hostile_names(approved: list[str], count: int) -> list[str]:
    """Typos of approved names (the most matching work a client can ask), look-alikes,
    separators, NFKC bombs, format characters and astral letters, all distinct."""
    rng = random.Random(99)
    makers = [
        lambda i, b: b[:1] + rng.choice(string.ascii_lowercase) + b[1:],
        lambda i, b: b[:-1] + rng.choice(string.ascii_lowercase) + str(i % 10),
        lambda i, b: "-".join(b) + str(i),
        lambda i, b: b.replace("e", "\u0435") + str(i),
        lambda i, b: "\ufdfa" * 190 + str(i),
        lambda i, b: "\u202e" * 190 + str(i),
        lambda i, b: "\U0001d41a" * 190 + str(i),
        lambda i, b: "rn" * 99 + str(i),
    ]
    names: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(names) < count:
        made = makers[i % len(makers)](i, approved[(i * 37) % len(approved)])
        i += 1
        if made not in seen and made not in approved:
            seen.add(made)
            names.append(made)
    return names


def test_a_flood_of_distinct_names_against_10000_approved_is_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    approved = _random_names(10_000)
    index = Index.of(load_settings(root=tmp_path))
    _write_json(index.layout.records / "_status.json",
                [{"name": n, "published": "1.0"} for n in approved])
    explain = IndexApp(index).explain
    explain.knowledge()
    hostile = _hostile_names(approved, 2000)
    # The work of each answer, counted rather than timed: the approved names the index
    # offers as candidates and the exact distances measured. A scan of the names (or an
    # index that offers too much) shows here as thousands per name; seen: at most 3.
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
    most = {"candidates": 0, "distances": 0}
    for name in hostile:
        work.update(candidates=0, distances=0)
        found = explain.answer(name)
        most = {k: max(most[k], work[k]) for k in most}
        assert set(found.suggestions) <= set(approved)
        assert len(found.name) <= 201 and found.message().isprintable()
    print(f"\n2,000 distinct hostile names against 10,000 approved: at most "
          f"{most['candidates']} candidates and {most['distances']} distances a name")
    assert most["candidates"] <= 20 and most["distances"] <= 20, most
    cached = explain._current()[1]
    assert cached.cache_info().currsize <= ANSWERS  # type: ignore[attr-defined]


def test_the_answer_cache_holds_at_most_4096_bounded_answers(tmp_path: Path) -> None:
    approved = _random_names(2000)
    index = Index.of(load_settings(root=tmp_path))
    _write_json(index.layout.records / "_status.json", [{"name": n} for n in approved])
    explain = IndexApp(index).explain
    explain.knowledge()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        # The largest a cached answer can be: 200 astral letters (4 bytes each), longer
        # than any approved name (so cheap to ask in bulk).
        for i in range(3 * ANSWERS):
            explain.answer("\U0001d41a" * 194 + f"{i:06d}")
        for i in range(ANSWERS):  # not plausible: answered at once, never kept
            explain.answer("\u202e" * 199 + chr(0x4e00 + i))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    info = explain._current()[1].cache_info()  # type: ignore[attr-defined]
    print(f"\nanswer cache: {info.currsize} answers, {grown / 1e6:.1f} MB")
    assert info.currsize == ANSWERS
    assert grown < 8e6, grown  # measured: about 4.8 MB at worst, 2.3 MB for ASCII typos


def test_nfkc_bombs_and_unmatchable_names_do_no_distance_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Broke (slow): 190 x U+FDFA is "plausible" and NFKC makes 3,400 characters, all
    # folded, masked and put in a 3,400-bit pattern on every request (~5 ms each).
    assert fold("\ufdfa" * 190) == "?" and len(fold("\ufdfa" * 40)) <= LONGEST
    calls = []
    real = Pattern.distance
    monkeypatch.setattr(Pattern, "distance",
                        lambda self, other: calls.append(other) or real(self, other))
    matcher = Matcher(_random_names(3000))
    for key in (fold("\ufdfa" * 190), fold("re\u4e00\u4e01\u4e02sts"), "???", "a?b?c?d?"):
        assert matcher.suggest(key) == []
    assert calls == []
    assert matcher.suggest(fold("reqests"))[0].name == "requests"
    assert answer(Knowledge.from_rows([{"name": "requests"}]), "req\u4e00ests").suggestions \
        == ("requests",)  # one unmatchable character is still one edit


def test_concurrent_flood_over_http_stays_404_and_ends(server: Server) -> None:
    approved = _random_names(10_000)
    server.status([{"name": n} for n in approved])
    hostile = _hostile_names(approved, 300)
    failures: list[str] = []

    def client(names: list[str]) -> None:
        for name in names:
            found = server.get(f"/simple/{quote(name, safe='')}/")
            if found.status not in (404, 414) or "location" in found.headers:
                failures.append(f"{name!r}: {found.status}")

    threads = [threading.Thread(target=client, args=(hostile[i::4],), daemon=True)
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:  # a hang guard (the cost per name is counted in the test above)
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "the flood did not end in 300 s"
    assert not failures, failures[:5]


# -- a hostile or damaged index directory ------------------------------------------------


def test_suggestions_name_only_approved_usable_projects(server: Server) -> None:
    # Broke: a project in the catalog with no status row (no longer approved) or
    # quarantined was offered as "did you mean".
    server.status([{"name": "requests", "published": "1.0"}])
    server.catalog(_catalog("requests", "requestz", "reqests-evil", "flask",
                            flask={"status": "quarantined", "status_reason": "malware"}))
    for name in ("requestx", "reqests-evi", "flaks"):
        body = json.loads(server.get(f"/simple/{name}/").body)
        assert set(body["suggestions"]) <= {"requests"}, body
        assert "requestz" not in body["message"] and "evil" not in body["message"]
    server.status([])  # no status rows: the catalog is what is approved
    server.catalog(_catalog("flask", "click", flask={"status": "quarantined"},
                            click={"status": "\u202eactive"}))
    assert json.loads(server.get("/simple/flaks/").body)["suggestions"] == []
    assert json.loads(server.get("/simple/clik/").body)["suggestions"] == []
    k = Knowledge.from_rows([], [{"name": "six", "latest": "1.0", "status": "archived"}])
    assert answer(k, "sux").suggestions == ("six",)  # archived files are still served


def test_a_catalog_entry_without_record_or_approval_is_not_called_approved(
        server: Server) -> None:
    # Broke: a project published but no longer approved, its record gone, was
    # "approved, but not published on this server now".
    server.status([{"name": "requests"}])
    server.catalog(_catalog("oldthing", "requests"))
    old = json.loads(server.get("/simple/oldthing/").body)
    assert old["verdict"] == "not-approved" and "approved," not in old["reason"]
    assert json.loads(server.get("/simple/requests/").body)["verdict"] == \
        "approved-not-published"


def test_a_version_instead_is_only_of_an_approved_project_and_never_the_one_asked() -> None:
    # Broke: `factory why old==0.9` for a published but no longer approved project said
    # "use old==1.0 instead"; a status row's version with no release said "use X" of X.
    releases = {"old": [Release("0.8", True, "bad"), Release("1.0")], "new": None}
    knowledge = Knowledge.from_rows(
        [{"name": "new", "published": "2.0", "allowed": ">=1"}],
        [{"name": "old", "latest": "1.0"}], releases=lambda p: releases.get(p))
    for version in ("0.8", "0.9"):
        old = answer(knowledge, "old", version)
        assert old.verdict == "version-blocked" and old.instead is None
        assert "instead" not in old.message()
    assert "no longer approved" in answer(knowledge, "old", "0.9").reason
    same = answer(knowledge, "new", "2.0")
    assert same.instead is None and "use new==2.0" not in same.message()
    assert answer(knowledge, "new", "1.5").instead == "2.0"


@pytest.mark.parametrize("which", ["_status.json", "_catalog.json"])
def test_a_link_in_place_of_a_record_is_not_followed(server: Server, tmp_path: Path,
                                                     which: str) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(
        [{"name": "secretproj", "refused": CANARY}] if which == "_status.json"
        else _catalog("secretproj")))
    (server.records / which).symlink_to(outside)
    for name in ("secretproj", "secretproi"):
        found = server.get(f"/simple/{name}/")
        assert found.status == 404 and CANARY.encode() not in found.body
        body = json.loads(found.body)
        assert body["verdict"] == "not-approved" and body["suggestions"] == []


@pytest.mark.parametrize("which", ["_status.json", "_catalog.json"])
def test_a_fifo_or_directory_in_place_of_a_record_never_hangs(server: Server,
                                                              which: str) -> None:
    os.mkfifo(server.records / which)
    # A hang guard: a FIFO opened for reading blocks for ever, and the request's 30 s
    # socket timeout fails the test if the server waits on it.
    found = server.get("/simple/reqests/")
    assert found.status == 404
    assert server.get("/").status in (200, 503)  # the server is still answering
    (server.records / which).unlink()
    (server.records / which).mkdir()
    assert server.get("/simple/reqests/").status == 404


@pytest.mark.parametrize("content", [
    b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b"\xff\xfe\x00", b"", b"null", b'"requests"', b"42", b'{"requests": 1}',
    b'[{"name": "requests"}, 1, "x"]', b"[" + b'{"name": "a"},' * 10 + b"",
])
def test_malformed_records_still_answer_the_404(server: Server, content: bytes) -> None:
    for which in ("_status.json", "_catalog.json"):
        path = server.records / which
        path.write_bytes(content)
        found = server.get("/simple/reqests/")
        assert found.status == 404, (which, content[:20])
        json.loads(found.body)
        path.unlink()


def test_wrong_types_in_rows_are_skipped_not_fatal(server: Server) -> None:
    server.status([
        {"name": 5}, {"name": ["requests"]}, {"name": {"x": 1}}, {"name": None}, {},
        {"name": "requests", "refused": {"html": "<b>"}, "locked": ["1"], "alarm": 7,
         "published": True, "allowed": None, "failed": 1e308},
        {"name": "Requests"}, {"name": "requests "}, {"name": "a" * 201},
        {"name": "\u0440equests"}, {"name": "../etc"}, {"name": "six", "allowed": "\x00>=1"},
    ])
    server.catalog({"requests": {"name": "requests", "display_name": "Requests",
                                 "latest": 3, "status": ["quarantined"],
                                 "status_reason": {"a": 1}}})
    found = json.loads(server.get("/simple/requests/").body)
    assert found["verdict"] == "approved-not-published" and found["reason"].isprintable()
    typo = json.loads(server.get("/simple/reqests/").body)
    assert typo["suggestions"] == ["requests"]
    six = json.loads(server.get("/simple/siz/").body)
    assert six["suggestions"] == ["six"]


def test_hostile_text_in_reasons_is_escaped_cut_and_keeps_the_json_whole(
        server: Server) -> None:
    hostile = ('"}, "verdict": "served", "x": {"' + "</script><script>alert(1)</script>"
               + "\x1b]8;;http://evil/\x07link\x1b]8;;\x07" + "\u202e\u2066\r\n\x00\ud800"
               + "y" * 100_000)
    server.status([{"name": "flask", "refused": hostile, "alarm": hostile, "locked": hostile}])
    for accept in (JSON, "text/plain"):
        found = server.get("/simple/flask/", accept)
        assert found.status == 404 and _printable_body(found.body)
        assert len(found.body) < 2048, len(found.body)
    body = json.loads(server.get("/simple/flask/").body)
    assert body["verdict"] == "approved-not-published"
    assert len(body["reason"]) <= 400 and body["reason"].isprintable()
    assert "\x1b" not in body["message"] and "\\x1b" in body["reason"]


def test_duplicate_names_and_keys_give_one_answer(server: Server) -> None:
    (server.records / "_status.json").write_text(
        '[{"name": "flask", "refused": "first"}, {"name": "flask", "name": "flask",'
        ' "refused": "second", "refused": "third"}, {"name": "six"}, {"name": "six"}]')
    (server.records / "_catalog.json").write_text(
        '{"six": {"name": "six", "display_name": "six", "latest": "1"},'
        ' "six": {"name": "six", "display_name": "SIX", "latest": "2"}}')
    body = json.loads(server.get("/simple/flask/").body)
    assert body["verdict"] == "approved-not-published" and body["reason"].endswith("third")
    assert json.loads(server.get("/simple/sux/").body)["suggestions"] == ["six"]


def test_a_huge_status_record_is_refused_unread(server: Server,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    path = server.records / "_status.json"
    with path.open("wb") as handle:  # sparse: 65 MiB of nothing, over the 64 MiB bound
        handle.truncate(65 << 20)
    # "Unread" is counted, not timed: every byte the server reads from the records (it
    # runs in this process) goes through the handles counted here.
    read: list[int] = []

    class Counted:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __enter__(self) -> Counted:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def read(self, size: int = -1) -> bytes:
            data = self.handle.read(size)
            read.append(len(data))
            return data

    class CountingOs:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        def fdopen(self, fd: int, *args: Any, **kwargs: Any) -> Counted:
            return Counted(os.fdopen(fd, *args, **kwargs))

    monkeypatch.setattr(serve_files, "os", CountingOs())
    with caplog.at_level(logging.ERROR, logger="factory.index.serve"):
        found = server.get("/simple/reqests/")
    assert found.status == 404
    assert json.loads(found.body)["suggestions"] == []
    assert sum(read) == 0, sum(read)
    assert "REFUSED record _status.json: larger than" in caplog.text


def test_the_404_reveals_nothing_the_records_do_not_say(server: Server) -> None:
    state = server.index.root.parent
    (state / "ledger.json").write_text(json.dumps({"secret": CANARY}))
    (server.index.root / "private.json").write_text(CANARY)
    server.status([{"name": "flask", "refused": "1.0: refused", "secret": CANARY,
                    "note": CANARY, "kind": CANARY}])
    server.catalog(_catalog("six", six={"secret": CANARY, "files": [CANARY]}))
    for name in ("flask", "flaks", "six", "sux", "private", "ledger", "secret"):
        for accept in (JSON, "text/plain"):
            found = server.get(f"/simple/{name}/", accept)
            assert CANARY.encode() not in found.body, name
            assert str(state).encode() not in found.body


def test_records_changing_under_load_never_give_a_500(server: Server) -> None:
    server.status([{"name": "requests"}])
    stop = threading.Event()
    path = server.records / "_status.json"

    def churn() -> None:
        shapes = [b'[{"name": "requests"}]', b'[{"name": "requ', b"", b"{}",
                  b'[{"name": "requests", "refused": "x"}]', b"[" * 5000]
        i = 0
        while not stop.is_set():
            data = shapes[i % len(shapes)]
            if i % 2:
                path.write_bytes(data)  # in place: a reader may see it half written
            else:
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
            i += 1

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        statuses = set()
        for _ in range(300):
            found = server.get("/simple/reqests/")
            statuses.add(found.status)
            json.loads(found.body)
    finally:
        stop.set()
        writer.join()
    assert statuses == {404}


# -- a hostile argument to `factory why` -------------------------------------------------


@pytest.fixture
def cli_project(tmp_path: Path) -> Settings:
    root = tmp_path / "project"
    (root / "recipes").mkdir(parents=True)
    # No upstream answers here: asking it would say "unreachable".
    (root / "factory.toml").write_text(
        '[factory]\nupstream = "http://127.0.0.1:9/simple/"\nstate_dir = "state"\n'
        '[http]\nretries = 0\ntimeout = 2.0\n')
    settings = load_settings(root)
    for name in ("requests", "flask"):
        factories.recipe(root, name)
    publish_wheel(settings, tmp_path / "work", "requests", "2.32.3")
    return settings


def _why_process(settings: Settings, *args: str | bytes,
                 timeout: float = 60) -> tuple[int, str, str]:
    """`factory why ARGS` in a process of its own (raw bytes in argv; a hang is a timeout)."""
    env = {**os.environ, "FACTORY_ROOT": str(settings.root), "COLUMNS": "80"}
    env.pop("FACTORY_DEBUG", None)
    result = subprocess.run([sys.executable, "-m", "factory.cli", "why", *args], env=env,
                            capture_output=True, timeout=timeout)
    return (result.returncode, result.stdout.decode("utf-8", "replace"),
            result.stderr.decode("utf-8", "replace"))


@pytest.fixture
def why(cli_project: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Any:
    """`factory why ARGS` through the command's own entry point (``factory.cli.main``),
    in this process: fast, the same error handling, the same consoles."""
    from factory.cli import _app, main

    monkeypatch.setenv("FACTORY_ROOT", str(cli_project.root))
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("FACTORY_DEBUG", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(_app._State, "settings", None)
        monkeypatch.setattr(_app._State, "debug", False)
        monkeypatch.setattr(sys, "argv", ["factory", "why", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _inert(text: str) -> bool:
    """No raw control, format or bidi character reaches the terminal."""
    return all(line.isprintable() for line in text.split("\n"))


def test_hostile_arguments_print_one_inert_line_and_exit_1_or_2(why: Any,
                                                                cli_project: Settings) -> None:
    # Broke: a bad NAME[==VERSION] printed Typer's framed usage box (a dozen lines).
    cases = [
        ("==", 2), ("requests==", 2), (" ", 2), ("requests==1.0\x1b[2J", 2),
        ("requests==" + "1" * 100_000, 2), ("requests==1.0==2", 2), ("requests===1", 2),
        ("requests==\u0661.0\u202e", 2), ("x" * 100_000, 1), ("\udcff\udcfe\udcc0", 1),
        ("evil\x1b]0;owned\x07\x9b31m", 1), ("re\u202equests\u2066", 1),
        ("[bold red]x[/]:smile:", 1), ("../../etc/passwd", 1), ("requests\ud800", 1),
        ("requests>=1", 1), ("requests[security]", 1), ("requests==1.0\n\r", 1),
    ]
    for argument, code in cases:
        status, out, err = why("--offline", argument)
        text = out + err
        assert status == code, (argument, status, text[-500:])
        assert "Traceback" not in text and _inert(text), (argument, text[-500:])
        assert len(text.strip().splitlines()) == 1, (argument, text[-800:])
        assert len(text) < 1200, (argument, len(text))
        assert "\u256d" not in text  # no Rich frame
    assert "x" * 500 not in why("--offline", "x" * 100_000)[1]
    # Raw bytes as a shell passes them (not UTF-8): the same, in a process of its own.
    status, out, err = _why_process(cli_project, "--offline", b"\xff\xfe\x1b[2J")
    assert status == 1 and _inert(out + err) and len((out + err).strip().splitlines()) == 1


def test_the_json_answer_is_inert_too(why: Any) -> None:
    for argument in ("re\u202equests", "evil\x1b[31m", "a\u0085b", ":smile:[bold]"):
        status, out, err = why("--offline", "--json", argument)
        assert status == 1 and _inert(out) and not err
        found = json.loads(out)
        assert found["verdict"] == "not-approved" and found["name"].isprintable()
        assert ":smile:" not in argument or ":smile:" in found["name"]


def test_a_hostile_name_is_never_sent_upstream(why: Any) -> None:
    status, out, _ = why("--json", "evil/../../x?y#z")
    assert status == 1 and json.loads(out)["upstream"] == "unknown"  # asked: "unreachable"


@pytest.mark.parametrize(("content", "kind"), [
    (b"[1, 2]", "list"), (b'{"a": "b"}', "strings"), (b"[" * 200_000, "deep"),
    (b'{"../x": {"name": "../x", "display_name": "../x"}}', "bad name"), (None, "fifo"),
    (b"{}", "link"), (b"\xff", "bytes")])
def test_a_damaged_catalog_gives_one_line_never_a_traceback_or_a_hang(
        cli_project: Settings, why: Any, tmp_path: Path, content: bytes | None,
        kind: str) -> None:
    # Broke: a catalog that was a list, held strings or was nested deep was a traceback;
    # a FIFO in its place hung `factory why` for ever.
    catalog = Index.of(cli_project).layout.catalog
    catalog.unlink()
    if kind == "fifo":
        os.mkfifo(catalog)
    elif kind == "link":
        (tmp_path / "elsewhere.json").write_bytes(content or b"")
        catalog.symlink_to(tmp_path / "elsewhere.json")
    else:
        catalog.write_bytes(content or b"")
    status, out, err = (_why_process(cli_project, "--offline", "reqests", timeout=30)
                        if kind == "fifo" else why("--offline", "reqests"))
    assert status == 1 and "Traceback" not in err, err[-600:]
    assert len((out + err).strip().splitlines()) == 1 and _inert(out + err)
    assert "_catalog.json" in err and "factory index check" in err


def test_parse_request_bounds_the_work_before_parsing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Broke: a 100,000-digit version reached Version() first and failed on Python's
    # integer-digit limit ("Exceeds the limit (4300 digits)...").
    parsed: list[str] = []  # the versions that reach Version(), counted, not timed
    real = why_module.Version
    monkeypatch.setattr(why_module, "Version", lambda text: parsed.append(text) or real(text))
    for text in ("requests==" + "1" * 100_000, "requests==" + "1." * 50_000,
                 "requests==1" + "0" * 64):
        with pytest.raises(ValueError, match="longer than 64"):
            parse_request(text)
    assert parsed == []
    assert parse_request("requests==1!2.0.post1.dev2+local.7") == (
        "requests", "1!2.0.post1.dev2+local.7")
