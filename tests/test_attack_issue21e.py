"""Attack pass on issue 21's per-interpreter dynamic build requirements and repair
tools (0192ead), and on the embedded signing authority's HTTP server (aeec5f2).

A. Variants (stand-in builds, as tests/test_variant_dynamic.py)     outcome
  TestHostileBackend
    cp313's answer flips between two locked tools each call         BROKE: rebuilt for ever
                                                                    -> fails alone (executor,
                                                                    plan.regrow: tried envs)
    a first build's answer flips the same way                       BROKE: same, same fix
    one more tool each call                                         held: stops at the lock
    names itself under cp313 only                                   BROKE (message): "its
                                                                    build requirements [] are
                                                                    locked but still not met"
                                                                    named 3.11's answer ->
                                                                    cp313's (plan.regrow)
    a cycle through another native's variant                        held: fails, no hang
    URL / file:// / 100,000-char / newline / empty lines, a marker
      that raises, extras, a name spelled otherwise                 held
    a variant's failure leaves its first build and cp314's          held
    cp313 and cp314 learning at once (two builds at a time)         held: each its own record,
                                                                    rebuilt once, then nothing
  TestRecords
    .cp39 / .cp313.json.tmp / ..cp313 / .. / cp314 not configured  held: not read
    a record written, then a crash before the build                 held: planned up front,
                                                                    built once
    a variant answering as its first build: no record of its own    held
    a second run after a failed variant builds nothing              held
    a record naming another component or interpreter                BROKE: read as this one's
                                                                    fixed: both are checked
    a record of 60,000 lines (make_plan combined them for minutes)  BROKE: over 256 not read
  TestRepairTools
    a native tool in auditwheel's closure: its own cp313 variant    held
    a repair tool's marker that raises                              held: one-line PlanError

B. The authority's HTTP server (raw sockets on loopback; server.py)
  TestAuthorityHttp
    Content-Length of superscript digits (isdigit, int() refuses)  BROKE: no answer, an
                                                                    error logged -> 400
    a JSON nesting bomb (100,000 '[')                               BROKE: RecursionError, no
                                                                    answer, logged -> 400
    300,000 '{},' in one body                                       BROKE: parsed (a dict
                                                                    each) -> 400 unparsed
    two Content-Lengths; Transfer-Encoding with or without one     BROKE: the first believed,
                                                                    the rest answered as a
                                                                    request of its own -> 400
                                                                    and closed
    a body refused unread (too large, '1e3'); a GET with a body    BROKE: the body answered
                                                                    as the next request ->
                                                                    closed after the answer
    a body or a request line dripped a byte every 0.05 s            BROKE: held its thread
                                                                    past the idle limit ->
                                                                    the request as a whole
                                                                    is held to it
    connections past MAX_CONNECTIONS                                BROKE: a thread each, no
                                                                    cap -> closed at once
    pipelined requests                                              held: each answered
    a 70,000-byte header, 200 headers                               held: 431
    a body of exactly MAX_BODY / one byte more                      held: read / 400 unread
    invalid UTF-8; logIndex, firstSize, lastSize extremes           held: 400 / 404
    a bearer token in a refused request                             held: in no log line
"""

from __future__ import annotations

import json
import logging
import re
import select
import socket
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from factory.build import executor, job
from factory.config import Settings
from factory.errors import BuildError
from factory.lock import Lock, LockedComponent, save_lock
from factory.lock.resolve import dynamic_requires_path, every_recorded_dynamic
from factory.plan import PlanError, make_plan, remember_dynamic
from factory.sign._authority import Authority, serve, server
from tests import factories
from tests.signing_fixtures import authority_fixture  # noqa: F401 - fixture
from tests.test_variant_dynamic import (  # noqa: F401 (backend: the fixture)
    NATIVE,
    Backend,
    _python,
    _row,
    backend,
)

Asks = Callable[[str, str, int], list[str]]
RUNAWAY = 40  # builds in one run past which the stand-in refuses: an endless loop ends


def _never(name: str, tag: str, call: int) -> list[str]:
    return []


@dataclass
class Hostile(Backend):
    """The stand-in builds of tests/test_variant_dynamic.py with a backend that answers
    ``asks(name, tag, call)`` (call: 1 for its first build of that name for that tag)."""

    asks: Asks = _never
    native: tuple[str, ...] = ("demo", "app")
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __call__(self, settings: Settings, inputs: Any) -> Any:
        if len(self.builds) >= RUNAWAY:
            raise BuildError("runaway: the stand-in refuses to build again")
        key = (inputs.name, inputs.python_tag)
        self.calls[key] += 1
        tools = [w.name for w in inputs.tools]
        self.builds.append((inputs.name, inputs.python_tag, tools))
        asked = self.asks(inputs.name, inputs.python_tag, self.calls[key])
        have = {canonicalize_name(name.split("-")[0]) for name in tools}
        missing = [a for a in asked if _name(a) not in have]
        if missing:
            raise job.MissingRequirementsError(inputs, job.Requires([], asked, missing, "b"))
        filename = (NATIVE.format(name=inputs.name, tag=inputs.python_tag)
                    if inputs.name in self.native else f"{inputs.name}-1.0-py3-none-any.whl")
        settings.wheels_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(settings.wheels_dir / filename, "w") as archive:
            archive.writestr(f"{inputs.name}-1.0.dist-info/METADATA",
                             f"Metadata-Version: 2.1\nName: {inputs.name}\nVersion: 1.0\n")
        record = SimpleNamespace(wheel_filename=filename, component=inputs.name,
                                 builder_settings={"build_requires": {"dynamic": asked}})
        self.built[(inputs.name, inputs.python_tag, tuple(sorted(tools)))] = record
        return record


def _name(line: str) -> str:
    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return line


@pytest.fixture
def hostile(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Hostile:  # noqa: F811
    """The stand-in sharing the fixture's records; each pin its own interpreter."""
    monkeypatch.setattr(executor.Session, "interpreter",
                        lambda self, pin: _python(pin.version + ".1"))
    return Hostile(backend.settings, backend.builds, backend.repair, backend.built)


def _lock(settings: Settings, *rows: LockedComponent) -> Settings:
    factories.recipe(settings.root, "anything")
    save_lock(settings, Lock([_row("demo", kind="runtime"), _row("helper"), _row("extra"),
                              *rows]))
    return settings


def _go(state: Hostile, asks: Asks, name: str = "demo") -> executor.Outcome:
    state.asks = asks
    return executor.run_plan(state.settings, make_plan(state.settings, [name]),
                             concurrency=1, build=state)


def _one_line(why: str) -> None:
    assert "\n" not in why and len(why) < 2000 and "Traceback" not in why, why[:300]


# -- A: a variant's backend, hostile ---------------------------------------------------------

class TestHostileBackend:
    def test_answers_that_flip_every_call_end_in_one_line(self, hostile: Hostile) -> None:
        """cp313's backend asks for extra, then (given extra) for helper only, then (given
        helper) for extra only...: each answer differs from the environment it was built
        in, so every regrowth looked like progress and it was built again for ever."""
        _lock(hostile.settings)

        def flip(name: str, tag: str, call: int) -> list[str]:
            if name != "demo" or tag != "cp313":
                return []
            return ["extra"] if call % 2 else ["helper"]

        outcome = _go(hostile, flip)
        demo313 = [b for b in hostile.builds if b[:2] == ("demo", "cp313")]
        assert len(demo313) <= 4, hostile.builds
        assert list(outcome.failed) == ["demo==1.0 [cp313]"]
        why = outcome.failed["demo==1.0 [cp313]"]
        _one_line(why)
        assert "runaway" not in why and "answer" in why, why
        assert NATIVE.format(name="demo", tag="cp311") in [r.wheel_filename
                                                           for r in outcome.records]

    def test_a_first_build_whose_answers_flip_ends_in_one_line(self, hostile: Hostile) -> None:
        _lock(hostile.settings)

        def flip(name: str, tag: str, call: int) -> list[str]:
            return (["extra"] if call % 2 else ["helper"]) if name == "demo" else []

        outcome = _go(hostile, flip)
        assert len([b for b in hostile.builds if b[0] == "demo"]) <= 4, hostile.builds
        assert list(outcome.failed) == ["demo==1.0"]
        why = outcome.failed["demo==1.0"]
        _one_line(why)
        assert "runaway" not in why and "answer" in why, why

    def test_an_answer_that_grows_each_call_ends_at_the_lock(self, hostile: Hostile) -> None:
        _lock(hostile.settings, _row("grow1"), _row("grow2"))

        def grow(name: str, tag: str, call: int) -> list[str]:
            return [f"grow{n}" for n in range(1, call + 1)] if (name, tag) == (
                "demo", "cp313") else []

        outcome = _go(hostile, grow)
        assert list(outcome.failed) == ["demo==1.0 [cp313]"]
        assert outcome.failed["demo==1.0 [cp313]"].startswith(
            "demo 1.0 needs grow3 to build for cp313")
        assert len(hostile.builds) < RUNAWAY

    def test_a_backend_naming_itself_under_cp313_fails_that_variant_alone(
            self, hostile: Hostile) -> None:
        settings = _lock(hostile.settings)
        outcome = _go(hostile, lambda n, t, c: ["Demo"] if (n, t) == ("demo", "cp313") else [])
        assert list(outcome.failed) == ["demo==1.0 [cp313]"]
        why = outcome.failed["demo==1.0 [cp313]"]
        _one_line(why)
        # what it asked for under cp313, not what its first build asked for (nothing)
        assert "['Demo']" in why or "Demo" in why, why
        assert [r.wheel_filename for r in outcome.records] == [
            NATIVE.format(name="demo", tag="cp311")]
        # the next run: that variant fails up front or as before, and nothing else builds
        before = len(hostile.builds)
        again = _go(hostile, hostile.asks)
        assert list(again.failed) == ["demo==1.0 [cp313]"]
        assert [b for b in hostile.builds[before:] if b[1] == "cp311"] == []
        assert make_plan(settings, ["demo"]).nodes["demo==1.0"].env == []

    def test_a_cycle_through_another_natives_variant_ends(self, hostile: Hostile) -> None:
        """demo's backend asks for cyc under cp313; cyc (native) needs demo to build:
        cyc's cp313 variant waits for demo's, and demo's for cyc's."""
        _lock(hostile.settings, _row("cyc", build=("demo",)))
        hostile.native = ("demo", "cyc")
        outcome = _go(hostile, lambda n, t, c: ["cyc"] if (n, t) == ("demo", "cp313") else [])
        assert "demo==1.0 [cp313]" in outcome.failed
        for why in outcome.failed.values():
            _one_line(why)
        assert "demo==1.0" not in outcome.failed
        assert len(hostile.builds) < RUNAWAY

    @pytest.mark.parametrize("line", [
        "extra @ file:///etc/passwd",
        "extra @ https://evil.invalid/extra-1.0.tar.gz",
        "EXTRA",
        "extra[a,b]",
        "extra; python_version ~= 'x'",
        "x" * 100_000,
        "extra\nerror: injected",
        "",
    ])
    def test_hostile_requirement_lines(self, hostile: Hostile, line: str) -> None:
        settings = _lock(hostile.settings)
        outcome = _go(hostile, lambda n, t, c: [line] if (n, t) == ("demo", "cp313") else [])
        assert "demo==1.0" not in outcome.failed
        for why in outcome.failed.values():
            _one_line(why)
        assert set(outcome.failed) <= {"demo==1.0 [cp313]"}
        built = {r.wheel_filename for r in outcome.records}
        assert NATIVE.format(name="demo", tag="cp311") in built
        # nothing fetched or built from the URL: only the locked rows stand built
        assert {b[0] for b in hostile.builds} <= {"demo", "extra"}
        make_plan(settings, ["demo"])  # the next plan reads the record without a traceback

    def test_two_variants_learning_at_once(self, hostile: Hostile) -> None:
        """cp313 and cp314 each ask for more, built two at a time: each learns its own
        answer, each is built again once, and a second run builds nothing."""
        hostile.settings = factories.settings(hostile.settings.root,
                                              build_interpreters=("3.11", "3.13", "3.14"),
                                              build_repair="none")
        settings = _lock(hostile.settings)
        wants = {"cp311": [], "cp313": ["extra"], "cp314": ["helper", "extra"]}
        hostile.asks = lambda n, t, c: wants[t] if n == "demo" else []
        outcome = executor.run_plan(settings, make_plan(settings, ["demo"]), concurrency=2,
                                    build=hostile)
        assert outcome.failed == {}
        assert Counter(b[1] for b in hostile.builds if b[0] == "demo") == {
            "cp311": 1, "cp313": 2, "cp314": 2}
        demo = _demo_row(settings)
        for tag in ("cp313", "cp314"):
            record = json.loads(dynamic_requires_path(settings, demo, tag).read_text())
            assert record["dynamic"] == wants[tag] and record["interpreter"] == tag
        before = len(hostile.builds)
        again = executor.run_plan(settings, make_plan(settings, ["demo"]), concurrency=2,
                                  build=hostile)
        assert again.failed == {} and hostile.builds[before:] == []

    def test_a_failed_variant_leaves_the_others(self, hostile: Hostile) -> None:
        hostile.settings = factories.settings(hostile.settings.root,
                                              build_interpreters=("3.11", "3.13", "3.14"),
                                              build_repair="none")
        _lock(hostile.settings)
        outcome = _go(hostile, lambda n, t, c: ["nowhere"] if (n, t) == ("demo", "cp313")
                      else [])
        assert list(outcome.failed) == ["demo==1.0 [cp313]"]
        assert sorted(r.wheel_filename for r in outcome.records) == sorted(
            NATIVE.format(name="demo", tag=t) for t in ("cp311", "cp314"))


# -- A: the records --------------------------------------------------------------------------

def _demo_row(settings: Settings) -> LockedComponent:
    return make_plan(settings, ["demo"]).nodes["demo==1.0"].locked


class TestRecords:
    def test_records_of_no_configured_interpreter_are_not_read(self, tmp_path: Path) -> None:
        settings = _lock(factories.settings(tmp_path, build_interpreters=("3.11", "3.13"),
                                            build_repair="none"))
        demo = _demo_row(settings)
        remember_dynamic(settings, demo, ["helper"], "sha256:image")
        first = dynamic_requires_path(settings, demo)
        stray = {"cp39": "extra", "cp313.json.tmp": "extra", ".cp313": "extra",
                 "cp314": "extra", "cp313.json": "extra", "cp313.": "extra"}
        for tag, line in stray.items():
            (first.parent / f"{demo.sdist.sha256}.{tag}.json").write_text(
                json.dumps({"dynamic": [line]}))
        (first.parent / f"{demo.sdist.sha256}..json").write_text('{"dynamic": ["extra"]}')
        node = make_plan(settings, ["demo"]).nodes["demo==1.0"]
        assert node.dynamics == {} and node.env_for("cp313") == ["helper==1.0"]
        assert every_recorded_dynamic(settings, demo) == ["helper"]

    def test_a_crash_after_the_record_plans_it_up_front_and_builds_once(
            self, hostile: Hostile) -> None:
        """A run that wrote cp313's record and died before it built: the next run plans
        extra for cp313 up front and builds the variant once."""
        settings = _lock(hostile.settings)
        remember_dynamic(settings, _demo_row(settings), ["extra"], "sha256:image", "cp313")
        outcome = _go(hostile, lambda n, t, c: ["extra"] if (n, t) == ("demo", "cp313") else [])
        assert outcome.failed == {}
        assert [b for b in hostile.builds if b[0] == "demo"] == [
            ("demo", "cp311", []), ("demo", "cp313", ["extra-1.0-py3-none-any.whl"])]

    def test_a_variant_answering_as_its_first_build_writes_no_record(
            self, hostile: Hostile) -> None:
        settings = _lock(hostile.settings)
        outcome = _go(hostile, lambda n, t, c: ["helper"] if n == "demo" else [])
        assert outcome.failed == {}
        demo = _demo_row(settings)
        assert dynamic_requires_path(settings, demo).is_file()
        assert not dynamic_requires_path(settings, demo, "cp313").exists()
        assert not any(".cp" in p.name for p in dynamic_requires_path(settings, demo).parent
                       .iterdir())

    def test_a_second_run_after_a_failed_variant_builds_nothing(
            self, hostile: Hostile) -> None:
        _lock(hostile.settings)
        asks: Asks = lambda n, t, c: ["nowhere"] if (n, t) == ("demo", "cp313") else []  # noqa: E731
        first = _go(hostile, asks)
        assert list(first.failed) == ["demo==1.0 [cp313]"]
        before = len(hostile.builds)
        again = _go(hostile, asks)
        assert again.failed == first.failed
        assert hostile.builds[before:] == []

    def test_a_record_naming_another_component_is_not_read(self, tmp_path: Path) -> None:
        settings = _lock(factories.settings(tmp_path, build_interpreters=("3.11", "3.13"),
                                            build_repair="none"))
        demo = _demo_row(settings)
        path = dynamic_requires_path(settings, demo, "cp313")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"component": "helper==1.0", "dynamic": ["extra"],
                                    "builder_image_id": "sha256:image",
                                    "interpreter": "cp312"}))
        assert every_recorded_dynamic(settings, demo) == []


# -- A: the repair tools per interpreter -----------------------------------------------------

def _repair_lock(settings: Settings, marker: str, *rows: LockedComponent) -> Settings:
    factories.recipe(settings.root, "anything")
    save_lock(settings, Lock([_row("app", kind="runtime"),
                              _row("auditwheel", run=("packaging", f"newelf; {marker}")),
                              _row("packaging"), *rows]))
    return settings


class TestRepairTools:
    def test_a_native_repair_tool_gets_its_own_variant(self, hostile: Hostile) -> None:
        settings = factories.settings(hostile.settings.root / "r",
                                      build_interpreters=("3.11", "3.13"))
        hostile.settings = _repair_lock(settings, "python_version >= '3.12'", _row("newelf"))
        hostile.native = ("app", "newelf")
        outcome = _go(hostile, _never, "app")
        assert outcome.failed == {}
        assert hostile.repair[("app", "cp313")] == [
            "auditwheel-1.0-py3-none-any.whl", NATIVE.format(name="newelf", tag="cp313"),
            "packaging-1.0-py3-none-any.whl"]
        assert hostile.repair[("app", "cp311")] == ["auditwheel-1.0-py3-none-any.whl",
                                                    "packaging-1.0-py3-none-any.whl"]
        assert ("newelf", "cp313", []) in hostile.builds

    def test_a_repair_tools_marker_that_raises_for_one_interpreter(
            self, tmp_path: Path) -> None:
        """``and`` does not spare 3.11 the comparison that raises: the plan says so in
        one line naming the line (as before the per-interpreter closure), no traceback."""
        settings = _repair_lock(factories.settings(tmp_path, build_interpreters=(
            "3.11", "3.13")), "python_version >= '3.12' and python_version ~= 'x'",
            _row("newelf"))
        with pytest.raises(PlanError, match="newelf.*has a marker that cannot be evaluated"
                           ) as caught:
            make_plan(settings, ["app"])
        _one_line(str(caught.value))


# -- B: the authority's HTTP server ----------------------------------------------------------

def _connect(url: str, wait: float = 30.0) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=wait)


def _exchange(url: str, data: bytes) -> bytes:
    """Send ``data``, say nothing more, and read until the server closes (30 s guard)."""
    with _connect(url) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
        return out


def _statuses(answer: bytes) -> list[int]:
    """The status of each response in ``answer``, read by its framing (Content-Length):
    a body that mentions HTTP/1.1 is not taken for a response."""
    found = []
    while answer:
        head, _, rest = answer.partition(b"\r\n\r\n")
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
        assert match, answer[:200]
        found.append(int(match.group(1)))
        length = re.search(rb"\r\nContent-Length: (\d+)", head, re.IGNORECASE)
        answer = rest[int(length.group(1)) if length else len(rest):]
    return found


SMUGGLED = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n\r\n"
ENTRIES = b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture
def url(authority: Settings, capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> Iterator[str]:
    """The authority served; afterwards nothing on stderr, no error logged."""
    caplog.set_level(logging.INFO, logger="factory.sign._authority")
    with serve(Authority(authority.authority_dir)) as found:
        yield found
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err[:400]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


class TestAuthorityHttp:
    @pytest.mark.parametrize("length", ["\u00b2", "\u00b9\u00b2", "\u00b3"])
    def test_a_content_length_of_other_digits_is_a_400(self, url: str, length: str) -> None:
        """'²'.isdigit() is True and int('²') a ValueError: no answer, an error logged."""
        answer = _exchange(url, ENTRIES + f"Content-Length: {length}\r\n\r\n{{}}".encode(
            "latin-1"))
        assert _statuses(answer) == [400], answer[:200]

    def test_a_json_nesting_bomb_is_a_400(self, url: str) -> None:
        bomb = b"[" * 100_000
        answer = _exchange(url, ENTRIES + b"Content-Length: %d\r\n\r\n" % len(bomb) + bomb)
        assert _statuses(answer) == [400] and b"not JSON" in answer, answer[:200]

    def test_a_body_of_too_many_values_is_refused_unparsed(self, url: str) -> None:
        width = b"[" + b"{}," * 300_000 + b"{}]"
        answer = _exchange(url, ENTRIES + b"Content-Length: %d\r\n\r\n" % len(width) + width)
        assert _statuses(answer) == [400] and b"too many" in answer, answer[:200]

    @pytest.mark.parametrize("framing", [
        b"Content-Length: 2\r\nContent-Length: %d\r\n\r\n{}" % (len(SMUGGLED) + 2),
        b"Content-Length: %d\r\nContent-Length: 2\r\n\r\n{}" % (len(SMUGGLED) + 2),
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        b"Content-Length: 99999999999\r\n\r\n",
        b"Content-Length: 1e3\r\n\r\n",
    ])
    def test_a_body_framed_two_ways_is_refused_and_the_rest_not_read(
            self, url: str, framing: bytes) -> None:
        """What follows a request whose body is framed ambiguously, or refused unread,
        is not taken for a request of its own: one answer, then the connection closes."""
        answer = _exchange(url, ENTRIES + framing + SMUGGLED)
        assert _statuses(answer) == [400], answer[:400]

    def test_a_get_with_a_body_is_answered_once(self, url: str) -> None:
        get = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(
            SMUGGLED)
        assert _statuses(_exchange(url, get + SMUGGLED)) == [200]

    def test_pipelined_requests_are_each_answered(self, url: str) -> None:
        body = b"{}"
        post = ENTRIES + b"Content-Length: 2\r\n\r\n" + body
        answer = _exchange(url, SMUGGLED + post + SMUGGLED + SMUGGLED)
        assert _statuses(answer) == [200, 400, 200, 200], answer[:400]

    @pytest.mark.parametrize("headers", [
        b"X-Big: " + b"a" * 70_000 + b"\r\n",
        b"".join(b"X-%d: 1\r\n" % n for n in range(200)),
    ])
    def test_huge_headers_get_an_answer(self, url: str, headers: bytes) -> None:
        answer = _exchange(url, b"GET /api/v1/log HTTP/1.1\r\n" + headers + b"\r\n")
        assert _statuses(answer) == [431], answer[:200]

    def test_a_body_of_exactly_max_body_is_read_and_one_more_byte_refused(
            self, url: str) -> None:
        body = b" " * (server.MAX_BODY - 2) + b"{}"
        answer = _exchange(url, ENTRIES + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert _statuses(answer) == [400] and b"too large" not in answer, answer[:300]
        # refused before a byte of it is read (the connection closes: not sent here)
        answer = _exchange(url, ENTRIES + b"Content-Length: %d\r\n\r\n" % (len(body) + 1))
        assert _statuses(answer) == [400] and b"too large" in answer, answer[:300]

    @pytest.mark.parametrize(("query", "status"), [
        ("entries?logIndex=-1", 404), ("entries?logIndex=0", 404),
        ("entries?logIndex=" + "9" * 5000, 400), ("entries?logIndex=1_0", 404),
        ("entries?logIndex=%00", 400), ("entries?logIndex=nan", 400),
        ("proof?firstSize=0&lastSize=0", 400), ("proof?firstSize=1&lastSize=-1", 400),
        ("proof?firstSize=" + "9" * 30 + "&lastSize=" + "9" * 31, 400),
        ("proof?firstSize=-5&lastSize=0", 400), ("entries/%ff", 400),
        ("entries/" + "0" * 10_000, 404),
    ])
    def test_index_and_size_extremes(self, url: str, query: str, status: int) -> None:
        answer = _exchange(url, f"GET /api/v1/log/{query} HTTP/1.1\r\nHost: x\r\n\r\n"
                           .encode())
        assert _statuses(answer) == [status], answer[:300]

    def test_invalid_utf8_is_a_400(self, url: str) -> None:
        body = b'{"a": "\xff\xfe"}'
        answer = _exchange(url, ENTRIES + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert _statuses(answer) == [400], answer[:300]

    def test_a_bearer_token_reaches_no_log_line(self, url: str,
                                                caplog: pytest.LogCaptureFixture,
                                                capfd: pytest.CaptureFixture[str]) -> None:
        token = "SECRET-TOKEN-4f1e"
        for body in (b"[" * 100_000, b"{}", b'{"certificateSigningRequest": "x"}', b"\xff"):
            head = (b"POST /api/v2/signingCert HTTP/1.1\r\nAuthorization: Bearer "
                    + token.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
            assert _statuses(_exchange(url, head + body)) in ([400], [401])
        logged = caplog.text + capfd.readouterr().err
        assert token not in logged

    def test_a_dripping_body_is_cut_at_the_idle_limit(
            self, authority: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        """A byte every 0.05 s never leaves the connection silent for the 1 s idle
        limit: the request as a whole is held to it, not each read."""
        monkeypatch.setattr(server, "IDLE_SECONDS", 1)
        with serve(Authority(authority.authority_dir)) as found:
            for head in (ENTRIES + b"Content-Length: 400\r\n\r\n", b"GET /api/v1/log HT"):
                with _connect(found) as conn:
                    conn.sendall(head)
                    sent = 0
                    for _ in range(400):  # 20 s of dripping at most
                        if select.select([conn], [], [], 0.05)[0]:
                            break  # answered or closed
                        try:
                            conn.sendall(b" ")
                        except OSError:
                            break
                        sent += 1
                    assert sent < 400, "the connection was held for the whole drip"

    def test_connections_past_the_cap_are_closed_at_once(
            self, authority: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(server, "MAX_CONNECTIONS", 4)
        with serve(Authority(authority.authority_dir)) as found:
            held = [_connect(found) for _ in range(4)]
            for conn in held:  # each is being handled (a thread each) once it answers
                conn.sendall(SMUGGLED)
                assert _statuses(conn.recv(65536)) == [200]
            with _connect(found) as extra:
                assert extra.recv(1) == b""  # closed, no thread for it
            for conn in held:
                conn.close()
            # their threads see the close and give their slots back (a 60 s hang guard:
            # a loaded CI machine may take seconds to run them)
            deadline = time.monotonic() + 60
            while True:
                with _connect(found) as conn:
                    try:
                        conn.sendall(SMUGGLED)
                        conn.shutdown(socket.SHUT_WR)
                        answer = conn.recv(65536)
                    except OSError:  # closed at once: no slot yet
                        answer = b""
                    if _statuses(answer) == [200]:
                        break
                if time.monotonic() > deadline:
                    pytest.fail("no slot came back after the held connections closed")
                select.select([], [], [], 0.05)  # a moment for their threads to end


def test_a_record_of_more_lines_than_a_build_reports_is_not_read(tmp_path: Path) -> None:
    """60,000 hand-written lines under 1 MiB made make_plan combine every specifier for
    minutes; a build reports at most 256 (factory.build.env.MAX_REQUIREMENTS)."""
    settings = _lock(factories.settings(tmp_path, build_interpreters=("3.11", "3.13"),
                                        build_repair="none"))
    demo = _demo_row(settings)
    path = dynamic_requires_path(settings, demo, "cp313")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"component": f"{demo.key}=={demo.version}", "dynamic": ["extra"] * 257,
              "builder_image_id": "sha256:image", "interpreter": "cp313"}
    path.write_text(json.dumps(record))
    assert every_recorded_dynamic(settings, demo) == []
    record["dynamic"] = [f"extra{i}" for i in range(256)]
    path.write_text(json.dumps(record))
    assert len(every_recorded_dynamic(settings, demo)) == 256
