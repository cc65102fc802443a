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
  TestRecords
    .cp39 / .cp313.json.tmp / ..cp313 / .. / cp314 not configured  held: not read
    a record written, then a crash before the build                 held: planned up front,
                                                                    built once
    a variant answering as its first build: no record of its own    held
    a second run after a failed variant builds nothing              held
    a record naming another component or interpreter                BROKE: read as this one's
                                                                    (xfail: lock/resolve.py)
  TestRepairTools
    a native tool in auditwheel's closure: its own cp313 variant    held
    a repair tool's marker that raises                              held: one-line PlanError
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from collections.abc import Callable
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
from tests import factories
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

    @pytest.mark.xfail(strict=True, reason=(
        "factory/lock/resolve.py recorded_dynamic reads only the record's 'dynamic' lines: "
        "a record whose 'component' or 'interpreter' names another (swapped, copied) is "
        "taken as this one's; out of this pass's files (another helper edits resolve.py)"))
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
