"""Attacks on the intake queue (issue 18): factory.intake, its ledger table, the policy
API's /api/v1/requests, the MCP tools request_component and request_status, and
`factory request` / `factory requests ...`.

The attacker is a requester (every byte of a requirement, requester, reason and
token, how often and from where it asks), a malicious upstream (what it answers to
the policy's dry run and to the real add), and time (a human deciding while policy
or a fulfilment runs, two runs at once, a crash). Each test is one class of attack,
parametrised; what held stays as a regression test, what broke was fixed in the
code as a class.

| class | cases | held/broke | fix commit |
| --- | --- | --- | --- |
| spellings of one project (-_., case, extras, ranges): one request | 2 | held | - |
| no name with a range (paths, marker, file:, confusables, options, 1,001) | 15 | held | - |
| odd ranges (empty, ===, .dev0, 170 specifiers): canonical, in column | 5 | held | - |
| hostile requester/reason (ANSI, bidi, CR, NUL, surrogate, markup, C1) | 10 | held | - |
| a field cut to its bound is 1 past its VARCHAR (the "…"; PostgreSQL) | 4 | broke 4 | d148d19 |
| the CLI (list, show, request, --json) printing hostile fields | 1 | held | - |
| distinct names from one origin past its share | 1 | held | - |
| policy's denials free the share: the ledger grew 2,400 rows/h/client | 1 | broke | d148d19 |
| IPv6: each address of one /64 its own origin | 1 | broke | d148d19 |
| X-Forwarded-For from 127.0.0.1 chose the origin (uvicorn default) | 2 | broke 2 | d148d19 |
| asks at once: one name x24 made 4 rows; a burst queued 24 of 20 | 2 | broke 2 | d148d19 |
| two passes at once; approving or denying while building | 2 | held | - |
| a human decides during policy's dry run: overridden, or pass crashed | 6 | broke 5 | d148d19 |
| a look-alike asked by name (typo, case, separators, rn/m) | 6 | held | - |
| a look-alike in the closure of an innocent name | 3 | broke 3 | d148d19 |
| a look-alike of a name policy approved earlier in the same pass | 1 | broke | d148d19 |
| look-alike of a quarantined name; a project quarantined since asked | 2 | broke 2 | d148d19 |
| upstream answers the real add otherwise (a look-alike; a licence) | 2 | broke 1 | d148d19 |
| the requester's range became the recipe's (pre-release, old line) | 5 | broke 5 | d148d19 |
| a range that holds what add takes: approved, with add's own range | 3 | held | - |
| a denied name asked again under another spelling | 1 | held | - |
| tokens near the real one (case, spaces, prefix, fullwidth, %, NUL) | 7 | held | - |
| a vote handed out the first requester's token, address and reason | 1 | broke | d148d19 |
| listing: new requests hidden past 500 rows; a pass saw only 500 | 2 | broke 2 | d148d19 |
| each pass walked upstream again for every request left to a human | 1 | broke | d148d19 |
| an unusable ledger (garbage, a directory): one CLI line, HTTP 503 | 3 | held | - |
| hostile JSON to /requests; other paths under /requests/ | 8 | held | - |
| a crash while building: the next pass completes it | 1 | held | - |

Broke, in words: text cut to its bound was one character longer than its column (the
"…"); the per-origin share counted only open requests, so policy's denials of
invented names freed it at once (the ledger grew without bound), every IPv6 address
was an origin, and uvicorn's default took X-Forwarded-For from 127.0.0.1 as the
client; submit read then wrote without a lock (duplicate rows, a share overrun);
policy wrote over whatever state the row had reached during its dry run (a human's
denial became policy's approval, a human's approval went back to pending, a refused
decide crashed the pass); policy checked only the name asked against approved,
offered names (not the closure, not quarantined names, not requests approved in the
pass), approved "since it was asked" a project quarantined since, walked the
requester's range (recipes held to "<1" or to a pre-release), and the fulfilment's
real add walked upstream again (an upstream answering it otherwise got an unjudged
look-alike approved); a vote answered the first requester's token, address and
reason; listing took the oldest 500 rows (new requests hidden, pending past 500
never judged); each pass walked upstream for every request left to a human.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from factory import intake, intake_policy, ledger
from factory.attest.keys import load_signer
from factory.config import Settings
from factory.errors import FactoryError
from factory.index import Index
from factory.index.serve import create_app
from factory.intake import (
    APPROVED,
    BUILDING,
    DENIED,
    FAILED,
    PENDING,
    POLICY,
    IntakeError,
    QueueFull,
    Ticket,
    decide,
    listing,
    status,
    submit,
)
from factory.intake_policy import process
from factory.ledger import RequestEntry
from factory.publish import trust_files
from factory.watch import publish_status
from tests import factories
from tests.factories import cli
from tests.index_fixtures import approve_requests, running
from tests.local_upstream import LocalUpstream, build_tools
from tests.test_intake import approved_one, ask, knows  # noqa: F401 (an autouse fixture)

BOUND = 2000  # characters of any error, whatever the input
HOSTILE = ["\x1b[2J\x1b]0;owned\x07", "\u202eevil\u202c", "line\nbreak\rcarriage", "nul\x00",
           "\ud800 lone surrogate", "emoji \U0001f600 4-byte", "[bold red]markup[/]",
           "\x9b31m C1 CSI", "tab\there", "\u2028sep\u2029"]


def token_of(done: intake.Submitted) -> str:
    assert done.ticket is not None
    return done.ticket.token


def _printable_everywhere(ticket: Ticket) -> None:
    for key, value in ticket.to_dict().items():
        if isinstance(value, str):
            assert value.isprintable(), (key, value)


class Fulfiller:
    def __init__(self, answer: tuple[str, str, str | None] = (FAILED, "not built here", None),
                 during: Callable[[], None] | None = None) -> None:
        self.answer, self.asked, self.during = answer, [], during
        self.running, self.most = 0, 0
        self.lock = threading.Lock()

    def __call__(self, settings: Settings,
                 todo: list[Ticket]) -> dict[str, tuple[str, str, str | None]]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.asked.append(sorted(t.name for t in todo))
            if self.during:
                self.during()
            return {t.token: self.answer for t in todo}
        finally:
            with self.lock:
                self.running -= 1


# -- names: one project however it is spelt; what is no name is refused ---------------
@pytest.mark.parametrize("spellings", [
    ("zope.interface", "zope_interface", "Zope-Interface", "ZOPE__interface"),
    ("attrs", "ATTRS", " attrs ", "attrs>=1", "attrs[tests]"),
])
def test_spellings_of_one_project_are_one_request_with_votes(project: Settings,
                                                             spellings: tuple[str, ...]) -> None:
    tokens = {token_of(ask(project, s, origin=f"api:10.0.0.{i}")) for i, s in
              enumerate(spellings)}
    assert len(tokens) == 1 and len(listing(project)) == 1
    assert status(project, tokens.pop()).votes == len(spellings)


@pytest.mark.parametrize("asked", [
    "attrs[../../x]", "attrs[a b]", "attrs; extra == 'x'", "attrs @ file:///etc/passwd",
    "attrs (>=1)\n--index-url http://evil", "attrs\u2028==1", "ａｔｔｒｓ",  # fullwidth
    "attr\u0455", "att\u200brs", "-r requirements.txt", "--index-url=http://x", "attrs#x",
    "\ud800", "a" * 1001, "attrs" + ">=1," * 300,
])
def test_what_is_no_name_with_a_range_is_refused_in_one_line(project: Settings,
                                                             asked: str) -> None:
    with pytest.raises(IntakeError) as caught:
        ask(project, asked)
    assert "\n" not in caught.value.message and len(caught.value.message) < BOUND
    assert caught.value.message.isprintable()
    assert listing(project) == []


@pytest.mark.parametrize("asked", [
    "attrs>=1,<0", "attrs===1.0", "attrs>=0.0.0.dev0", "attrs[a,b,c]>=1",
    "attrs!=" + ",!=".join(str(i) for i in range(170)),
])
def test_odd_ranges_are_kept_canonical_and_within_their_column(project: Settings,
                                                               asked: str) -> None:
    done = ask(project, asked)
    assert done.ticket is not None and done.ticket.name == "attrs"
    assert len(done.ticket.asked) <= RequestEntry.__table__.c.asked.type.length


# -- hostile text: stored printable, bounded to its column, never raw on a terminal -----
@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_requester_and_reason_are_stored_printable(project: Settings,
                                                           text: str) -> None:
    done = ask(project, "attrs", who=text, why=text)
    assert done.ticket is not None
    _printable_everywhere(status(project, done.ticket.token))
    for row in ledger.decisions(project, "attrs"):
        assert row["reason"].isprintable()


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_every_field_fits_its_column_whatever_is_sent(project: Settings, size: int) -> None:
    """PostgreSQL refuses a value longer than its VARCHAR (SQLite keeps it): a field cut
    to its bound and marked with "…" must still fit, escapes counted."""
    who = ("\x1b" * 30 + "é" * 200)[: intake.MAX_REQUESTER * size]
    why = "r" * (intake.MAX_REASON * size)
    origin = "api:" + "f" * 300
    done = submit(project, knows(project), "attrs", who, why, origin)
    assert done.ticket is not None
    decide(project, done.ticket.token, False, "d" * (intake.MAX_REQUESTER * size), why)
    with ledger.session(project) as db:
        row = db.get(RequestEntry, 1)
        assert row is not None
        for column in RequestEntry.__table__.c:
            length = getattr(column.type, "length", None)
            value = getattr(row, column.name)
            if length and isinstance(value, str):
                assert len(value) <= length, (column.name, len(value), length)


def test_the_cli_prints_hostile_fields_inert(project: Settings) -> None:
    for i, text in enumerate(HOSTILE):
        ask(project, f"p{i}", who=text, why=text, origin=f"api:{text}")
    token = listing(project)[0].token
    decide(project, token, False, "alice", HOSTILE[0])
    for args in (("requests", "list"), ("requests", "list", "--json"),
                 ("requests", "show", token), ("requests", "show", token, "--json"),
                 ("request", "p0", "--reason", HOSTILE[0]),
                 ("request", "\x1b[2Jbad", "--reason", "x")):
        run = cli(project, *args, COLUMNS="400")
        for stream in (run.stdout, run.stderr):
            assert "\x1b" not in stream and "\x9b" not in stream and "\u202e" not in stream
            assert "\x07" not in stream and "\x00" not in stream and "\r" not in stream
            assert "Traceback" not in stream
    listed = cli(project, "requests", "list", COLUMNS="400").stdout
    assert "[bold red]markup[/]" in listed  # shown as text, not applied as Rich markup


# -- floods: the open caps hold, per origin and in all; origins cannot be forged -------
def test_distinct_names_from_one_origin_stop_at_its_share(project: Settings) -> None:
    for i in range(intake.MAX_OPEN_PER_ORIGIN):
        ask(project, f"flood-{i}", origin="api:10.6.6.6")
    for name in ("flood-x", "flood-y"):
        with pytest.raises(QueueFull):
            ask(project, name, origin="api:10.6.6.6")
    assert len(listing(project)) == intake.MAX_OPEN_PER_ORIGIN


def test_names_policy_denies_do_not_grow_the_ledger_without_bound(
        project: Settings, upstream: LocalUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """With auto_approve, policy denies a name upstream does not know: that frees the
    origin's share at once, so one client asking 20 invented names every pass (30 s)
    grew the ledger by 2,400 rows an hour. (Smaller shares, same rule: a quarter of the
    asks.)"""
    monkeypatch.setattr(intake, "MAX_OPEN_PER_ORIGIN", 5)
    monkeypatch.setattr(intake, "MAX_NEW_PER_ORIGIN_DAY", 25)
    made = 0
    with pytest.raises(QueueFull):
        for round_ in range(20):
            for i in range(intake.MAX_OPEN_PER_ORIGIN):
                ask(project, f"ghost-{round_}-{i}", origin="api:10.6.6.6")
                made += 1
            process(project, lambda: knows(project), Fulfiller(), auto_approve=True)
    assert made <= intake.MAX_NEW_PER_ORIGIN_DAY
    assert ask(project, "honest", origin="api:10.0.0.9").queued  # others still ask


def test_ipv6_clients_of_one_network_share_one_origin() -> None:
    from factory.index.serve.api import origin_of

    assert origin_of("2001:db8:1:2::1") == origin_of("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert origin_of("2001:db8:1:2::1") != origin_of("2001:db8:1:3::1")
    assert origin_of("10.0.0.1") == "api:10.0.0.1"
    assert origin_of("::ffff:10.0.0.1") == "api:10.0.0.1"
    assert origin_of(None) == "api:unknown"
    assert len(origin_of("x" * 10_000)) <= intake.MAX_ORIGIN


@pytest.fixture
def approved(project: Settings, tmp_path: Path) -> Settings:
    index = approve_requests(project, tmp_path / "work")
    index.publish_trust(trust_files(project))
    publish_status(project, index)
    return project


@pytest.fixture
def client(approved: Settings) -> Iterator[httpx.Client]:
    app = create_app(Index.of(approved), load_signer(approved, "answers"), approved)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def test_forwarded_headers_are_not_an_origin(monkeypatch: pytest.MonkeyPatch,
                                             approved: Settings) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told not to: any local
    process (or a proxy passing the header on) chose its origin, and so its share."""
    import uvicorn

    from factory.index.serve import serve

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    serve(Index.of(approved), "127.0.0.1", 1)
    assert seen.get("proxy_headers") is False


def test_a_forged_forwarded_header_is_not_an_origin_over_http(approved: Settings) -> None:
    import socket
    import threading as th

    import uvicorn

    app = create_app(Index.of(approved), load_signer(approved, "answers"), approved)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           **intake_serve_options()))
    thread = th.Thread(target=lambda: __import__("asyncio").run(server.serve(sockets=[sock])),
                       daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        codes = [httpx.post(f"{base}/api/v1/requests", json={"requirement": f"p{i}"},
                            headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                 for i in range(intake.MAX_OPEN_PER_ORIGIN + 3)]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert codes.count(200) == intake.MAX_OPEN_PER_ORIGIN and codes[-1] == 429
    assert {t.origin for t in listing(approved)} == {"api:127.0.0.1"}


def intake_serve_options() -> dict[str, Any]:
    from factory.index.serve import SERVER_OPTIONS

    return dict(SERVER_OPTIONS)


# -- concurrency: submits at once, runs at once, humans deciding meanwhile -------------
def test_one_name_asked_at_once_from_many_clients_is_one_row(project: Settings) -> None:
    seen = knows(project)

    def one(i: int) -> str:
        done = submit(project, seen, "attrs", f"u{i}", "x", f"api:10.0.1.{i}")
        return token_of(done)

    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(one, range(24)))
    assert len(tokens) == 1 and len(listing(project)) == 1
    assert status(project, tokens.pop()).votes == 24


def test_many_names_at_once_from_one_origin_stay_within_its_share(project: Settings) -> None:
    seen = knows(project)

    def one(i: int) -> str:
        try:
            submit(project, seen, f"burst-{i}", "u", "x", "api:10.6.6.6")
            return "queued"
        except QueueFull:
            return "full"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(40)))
    assert results.count("queued") == intake.MAX_OPEN_PER_ORIGIN
    assert len(listing(project)) == intake.MAX_OPEN_PER_ORIGIN


def test_two_process_runs_at_once_fulfil_each_request_once(project: Settings) -> None:
    for name in ("attrs", "six", "idna"):
        decide(project, token_of(ask(project, name)), True, "alice")
    run = Fulfiller(during=lambda: time.sleep(0.3))
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: process(project, lambda: knows(project), run,
                                        auto_approve=False), range(2)))
    assert run.most == 1 and run.asked == [["attrs", "idna", "six"]]


def test_approving_or_denying_while_building_is_refused(project: Settings) -> None:
    token = token_of(ask(project, "attrs"))
    decide(project, token, True, "alice")
    errors: list[str] = []

    def meanwhile() -> None:
        for approve in (True, False):
            try:
                decide(project, token, approve, "bob", "changed my mind")
            except IntakeError as exc:
                errors.append(exc.message)

    process(project, lambda: knows(project), Fulfiller(during=meanwhile), auto_approve=False)
    assert len(errors) == 2 and all("is building" in e for e in errors)


@pytest.fixture
def human_meanwhile(project: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A human decides a request while policy's dry run of it is under way."""
    from factory import approve

    real = approve.add
    told: dict[str, Any] = {}

    def add(settings: Settings, items: Any, dry_run: bool = False, **kw: Any) -> Any:
        if dry_run and "token" in told:
            decide(settings, told["token"], told["approve"], "alice", "a human said so")
        return real(settings, items, dry_run=dry_run, **kw)

    monkeypatch.setattr(approve, "add", add)
    return told


@pytest.mark.parametrize("name", ["fine", "copyleft", "no-such-project"])
@pytest.mark.parametrize("human_approves", [False, True])
def test_policy_never_overrides_a_human_who_decided_meanwhile(
        project: Settings, upstream: LocalUpstream, human_meanwhile: dict[str, Any],
        name: str, human_approves: bool) -> None:
    build_tools(upstream, project)
    upstream.add("fine", "1.0.0")
    upstream.add("copyleft", "1.0.0", license="GPL-3.0-only")
    token = token_of(ask(project, name))
    human_meanwhile.update(token=token, approve=human_approves)
    run = Fulfiller()
    process(project, lambda: knows(project), run, auto_approve=True)
    ticket = status(project, token)
    assert ticket.decided_by == "alice"
    if human_approves:  # fulfilled as the human approved
        assert run.asked == [[name]] and ticket.state == FAILED
    else:
        assert ticket.state == DENIED and "a human said so" in ticket.detail
        assert run.asked == []


# -- policy: never a look-alike, whatever route it comes by ------------------------------
@pytest.fixture
def policy_upstream(project: Settings, upstream: LocalUpstream) -> LocalUpstream:
    build_tools(upstream, project)
    factories.recipe(project.root, "requests", "")
    upstream.add("helper", "1.0.0")
    return upstream


@pytest.mark.parametrize("name", ["reqests", "Reqests", "re-quests", "requests2", "reqeusts",
                                  "rnequests"])
def test_policy_leaves_a_look_alike_asked_by_name_to_a_human(
        project: Settings, policy_upstream: LocalUpstream, name: str) -> None:
    policy_upstream.add(name, "1.0.0")
    token = token_of(ask(project, name))
    process(project, lambda: knows(project), Fulfiller(), auto_approve=True)
    assert status(project, token).state == PENDING


@pytest.mark.parametrize("squat", ["reqests", "request", "requestss"])
def test_policy_leaves_a_look_alike_in_the_closure_to_a_human(
        project: Settings, policy_upstream: LocalUpstream, squat: str) -> None:
    """The name asked is fine; what it needs is a look-alike of an approved name."""
    policy_upstream.add(squat, "1.0.0")
    policy_upstream.add("innocent", "1.0.0", requires=[squat])
    token = token_of(ask(project, "innocent"))
    run = Fulfiller()
    process(project, lambda: knows(project), run, auto_approve=True)
    ticket = status(project, token)
    assert ticket.state == PENDING and squat in ticket.detail and run.asked == []


def test_policy_leaves_a_look_alike_of_a_name_approved_in_the_same_pass(
        project: Settings, policy_upstream: LocalUpstream) -> None:
    policy_upstream.add("cryptolib", "1.0.0")
    policy_upstream.add("cryptolb", "1.0.0")
    first = token_of(ask(project, "cryptolib"))
    second = token_of(ask(project, "cryptolb", origin="api:10.0.0.2"))
    process(project, lambda: knows(project), Fulfiller(), auto_approve=True)
    assert status(project, first).decided_by == POLICY
    assert status(project, second).state == PENDING
    assert "cryptolib" in status(project, second).detail


def test_policy_leaves_a_look_alike_of_a_quarantined_name_to_a_human(
        project: Settings, policy_upstream: LocalUpstream) -> None:
    factories.recipe(project.root, "pillowz", 'status = "quarantined"\nstatus_reason = "x"\n')
    policy_upstream.add("pillows", "1.0.0")
    token = token_of(ask(project, "pillows"))
    process(project, lambda: knows(project), Fulfiller(), auto_approve=True)
    assert status(project, token).state == PENDING


def test_policy_does_not_fulfil_a_request_for_a_project_quarantined_since(
        project: Settings, policy_upstream: LocalUpstream) -> None:
    policy_upstream.add("later", "1.0.0")
    token = token_of(ask(project, "later"))
    factories.recipe(project.root, "later", 'status = "quarantined"\nstatus_reason = "bad"\n')
    run = Fulfiller()
    process(project, lambda: knows(project), run, auto_approve=True)
    assert status(project, token).state == PENDING and run.asked == []


@pytest.fixture
def no_building(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The real add of a fulfilment, without Docker: what it would build is recorded."""
    built: list[list[str]] = []

    def build(settings: Settings, names: list[str]) -> dict[str, tuple[str, str, None]]:
        built.append(sorted(names))
        return {n: (FAILED, "not built in this test", None) for n in names}

    monkeypatch.setattr(intake_policy, "_build_and_publish", build)
    return built


@pytest.mark.parametrize("change", ["look-alike", "licence"])
def test_an_upstream_that_answers_the_real_add_differently_gets_no_approval_from_policy(
        project: Settings, policy_upstream: LocalUpstream, no_building: list[list[str]],
        change: str) -> None:
    """Policy judged fine 1.0.0; by the time it is fulfilled upstream offers fine 1.1.0,
    which needs what policy never judged."""
    policy_upstream.add("fine", "1.0.0", requires=["helper"])
    token = token_of(ask(project, "fine"))
    extra = "reqests" if change == "look-alike" else "gpl-thing"

    def upstream_changes_then_fulfil(settings: Settings, todo: list[Ticket]) -> Any:
        assert status(settings, token).decided_by == POLICY
        policy_upstream.add(extra, "1.0.0",
                            **({"license": "GPL-3.0-only"} if change == "licence" else {}))
        policy_upstream.add("fine", "1.1.0", requires=["helper", extra])
        return intake_policy.fulfil_by_building(settings, todo)

    process(project, lambda: knows(project), upstream_changes_then_fulfil, auto_approve=True)
    assert not (project.recipes_dir / f"{extra}.toml").exists()
    assert all(extra not in names for names in no_building)
    ticket = status(project, token)
    assert ticket.state in (PENDING, FAILED) and extra in ticket.detail


def test_a_denied_name_asked_again_under_another_spelling_answers_the_denial(
        project: Settings) -> None:
    token = token_of(ask(project, "left-pad"))
    decide(project, token, False, "alice", "use str.rjust")
    for spelling in ("left_pad", "Left.Pad", "LEFT--PAD"):
        again = ask(project, spelling, origin="api:10.0.0.7")
        assert not again.queued and again.ticket is not None
        assert again.ticket.state == DENIED and "str.rjust" in again.ticket.detail
    assert len(listing(project)) == 1


# -- status and tokens -------------------------------------------------------------------
@pytest.mark.parametrize("token", ["A" * 24, " " + "0" * 23, "0" * 23 + "\n", "0x" + "0" * 22,
                                   "０" * 24, "%30" * 8, "0" * 24 + "\x00"])
def test_a_token_is_exactly_as_answered(project: Settings, token: str) -> None:
    real = token_of(ask(project, "attrs"))
    for near in (token, real.upper(), real + " ", real[:-1]):
        with pytest.raises(IntakeError, match="no such request"):
            status(project, near)


def test_a_vote_does_not_hand_out_another_requesters_request(project: Settings) -> None:
    """The token is the capability to read a request (who asked, from which address,
    why); asking for the same name must not give it to anyone who asks."""
    first = ask(project, "attrs", "ada", "for the secret project", "api:10.0.0.1")
    again = submit(project, knows(project), "attrs", "mallory", "x", "api:10.9.9.9")
    shown = json.dumps(again.to_dict()) + again.message()
    assert token_of(first) not in shown
    for private in ("ada", "secret project", "10.0.0.1"):
        assert private not in shown
    assert again.to_dict()["request"]["votes"] == 2


# -- the listing the operator reads ------------------------------------------------------
def test_the_operator_sees_new_requests_however_long_the_history(project: Settings) -> None:
    with ledger.session(project) as db:
        for i in range(intake.MAX_LISTED + 5):
            db.add(RequestEntry(token=f"{i:024x}", component=f"old-{i}", asked=f"old-{i}",
                                requester="x", origin="cli:old", reason="",
                                state=DENIED, detail="no"))
    token = token_of(ask(project, "brand-new"))
    assert token in {t.token for t in listing(project)}
    assert token in cli(project, "requests", "list", "--json").stdout


def test_policy_sees_every_open_request_however_many_wait_for_a_human(
        project: Settings, policy_upstream: LocalUpstream) -> None:
    with ledger.session(project) as db:
        for i in range(intake.MAX_LISTED + 5):
            db.add(RequestEntry(token=f"{i:024x}", component=f"waits-{i}", asked=f"waits-{i}",
                                requester="x", origin=f"api:10.0.{i // 200}.{i % 200}",
                                reason="", state=PENDING, detail="needs a human: x"))
    token = token_of(ask(project, "no-such-project", origin="api:10.1.1.1"))
    done = process(project, lambda: knows(project), Fulfiller(), auto_approve=True)
    assert status(project, token).state == DENIED
    assert len(done.left) == intake.MAX_LISTED + 5


# -- a ledger that cannot be used --------------------------------------------------------
def _damage(settings: Settings, how: str) -> None:
    ledger._engine.cache_clear()
    path = Path(str(make_url(settings.ledger).database))
    path.parent.mkdir(parents=True, exist_ok=True)
    for journal in ("-wal", "-shm"):  # SQLite would read the pages back from its WAL
        Path(f"{path}{journal}").unlink(missing_ok=True)
    if how == "garbage":
        # A new file, not the old one overwritten: a connection of the dropped engine,
        # closed when it is collected, checkpoints its WAL into the file it has open and
        # wrote a valid database back over the garbage (the CI runs that answered 200).
        garbage = path.with_name(path.name + ".garbage")
        garbage.write_bytes(b"this is not a database\x00" * 100)
        os.replace(garbage, path)
    elif how == "directory":
        path.mkdir()


@pytest.mark.parametrize("how", ["garbage", "directory"])
def test_a_ledger_that_cannot_be_used_is_one_line(project: Settings, how: str) -> None:
    _damage(project, how)
    for args in (("request", "attrs"), ("requests", "list"), ("requests", "show", "0" * 24),
                 ("requests", "process")):
        run = cli(project, *args)
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.strip().count("\n") <= 1 and "ledger" in run.stderr
    with pytest.raises(FactoryError):
        ask(project, "attrs")
    ledger._engine.cache_clear()


def test_a_ledger_that_cannot_be_used_is_a_503_over_http(approved: Settings) -> None:
    # damaged before the server starts: a connection it opened before would go on reading
    # SQLite's cached pages for a while (the CI run where it answered 200)
    _damage(approved, "garbage")
    app = create_app(Index.of(approved), load_signer(approved, "answers"), approved)
    with running(app) as url:
        asked = httpx.post(f"{url}/api/v1/requests", json={"requirement": "attrs"})
        polled = httpx.get(f"{url}/api/v1/requests/{'0' * 24}")
    ledger._engine.cache_clear()
    for response in (asked, polled):
        assert response.status_code == 503 and len(response.text) < BOUND
        assert str(approved.state_dir) not in response.text


# -- over HTTP: hostile JSON text ---------------------------------------------------------
@pytest.mark.parametrize("body", [
    b'{"requirement": "attrs", "reason": "\\ud800\\udfff\\ud800"}',
    b'{"requirement": "attrs", "requester": "\\u001b[2J\\u202e"}',
    b'{"requirement": "\\ud800attrs"}',
    b'{"requirement": "attrs", "reason": null, "requester": null}',
    b'{"requirement": "attrs", "reason": 5}',
    b'{"requirement": ["attrs"]}',
    b'{"requirement": "attrs", "requirement": "six"}',
])
def test_hostile_json_to_requests_is_queued_printable_or_one_error(
        approved: Settings, client: httpx.Client, body: bytes) -> None:
    response = client.post("/api/v1/requests", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code in (200, 400), response.text
    assert len(response.text) < 20_000 and "\x1b" not in response.text
    for ticket in listing(approved):
        _printable_everywhere(ticket)


def test_the_request_status_route_does_not_take_other_paths(client: httpx.Client) -> None:
    for target in ("/api/v1/requests/" + "0" * 24 + "/x", "/api/v1/requests/%00",
                   "/api/v1/requests/" + "0" * 10_000):
        response = client.get(target)
        assert response.status_code in (400, 404, 414), (target, response.status_code)
        assert len(response.text) < BOUND


def test_crash_in_building_completes_on_the_next_run_with_one_outcome(
        project: Settings) -> None:
    token = token_of(ask(project, "attrs"))
    decide(project, token, True, "alice")

    def crash(settings: Settings, todo: list[Ticket]) -> dict[str, Any]:
        raise KeyboardInterrupt  # a kill in the middle of add/build

    with pytest.raises(KeyboardInterrupt):
        process(project, lambda: knows(project), crash, auto_approve=False)
    assert status(project, token).state == BUILDING
    run = Fulfiller((FAILED, "built nothing", None))
    process(project, lambda: knows(project), run, auto_approve=False)
    assert run.asked == [["attrs"]] and status(project, token).state == FAILED


def test_policy_walks_upstream_once_for_a_request_it_leaves_to_a_human(
        project: Settings, policy_upstream: LocalUpstream) -> None:
    """Every pass (30 s) walked the closure of every pending request again: 1,000 open
    requests that need a human were 1,000 walks of upstream every pass."""
    policy_upstream.add("copyleft", "1.0.0", license="GPL-3.0-only")
    token = token_of(ask(project, "copyleft"))
    process(project, lambda: knows(project), Fulfiller(), auto_approve=True)
    assert "GPL" in status(project, token).detail
    policy_upstream.requests.clear()
    done = process(project, lambda: knows(project), Fulfiller(), auto_approve=True)
    assert [t.token for t in done.left] == [token] and policy_upstream.requests == []
    decide(project, token, True, "alice", "we accept the GPL here")  # a human still can
    assert status(project, token).state == APPROVED


@pytest.mark.parametrize("asked", ["fine>=2.0.0a1", "fine===2.0.0a1", "fine==2.0.0a1", "fine<1",
                                   "fine==0.1.0"])
def test_policy_does_not_let_the_requester_choose_the_recipes_range(
        project: Settings, policy_upstream: LocalUpstream, asked: str) -> None:
    """add writes the range asked into the recipe: a requester chose a pre-release, or an
    old line held for good, and policy approved it as add's own judgement."""
    policy_upstream.add("fine", "0.1.0", age_days=3000)
    policy_upstream.add("fine", "1.0.0")
    policy_upstream.add("fine", "2.0.0a1")
    token = token_of(ask(project, asked))
    run = Fulfiller()
    process(project, lambda: knows(project), run, auto_approve=True)
    ticket = status(project, token)
    assert ticket.state == PENDING and "does not hold 1.0.0" in ticket.detail
    assert run.asked == []


@pytest.mark.parametrize("asked", ["fine", "fine>=1", "fine[extra]>=0.5,<2"])
def test_policy_approves_a_range_that_holds_what_add_takes(
        project: Settings, policy_upstream: LocalUpstream, no_building: list[list[str]],
        asked: str) -> None:
    policy_upstream.add("fine", "1.0.0")
    token = token_of(ask(project, asked))
    process(project, lambda: knows(project), auto_approve=True)
    assert status(project, token).decided_by == POLICY
    recipe = (project.recipes_dir / "fine.toml").read_text()
    assert 'versions = "<1"' not in recipe and "a1" not in recipe
    assert no_building and "fine" in no_building[0]
