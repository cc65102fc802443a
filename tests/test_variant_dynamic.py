"""Issue 21: a variant's build learns its own interpreter's build requirements, and its
repair tools are planned with its own interpreter's markers.

A backend's ``get_requires_for_build_wheel`` may answer otherwise under 3.13 (``cffi``
there only): the variant's answer is recorded for its interpreter beside the first
build's record (which keeps its path and bytes), what it names is added to the plan,
built, and the variant built again; the next plan knows it up front. The builds are
stand-ins (the ``build`` hook of run_plan, for first builds and variants alike); the
container side is tests/test_interpreters_docker.py.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from factory.build import executor, job
from factory.build.interpreters import Interpreter, InterpreterPin
from factory.config import Settings
from factory.lock import Lock, LockedComponent, lock_stage, save_lock
from factory.lock.resolve import dynamic_requires_path, every_recorded_dynamic
from factory.plan import PlanError, make_plan, remember_dynamic
from factory.upstream.cache import Sdist
from tests import factories
from tests.factories import locked
from tests.local_upstream import LocalUpstream

BOTH = ("3.11", "3.13")
NATIVE = "{name}-1.0-{tag}-{tag}-manylinux_2_17_x86_64.whl"
# what demo's backend asks for under each interpreter (helper always, extra under 3.13)
ASKS = {"cp311": ["helper"], "cp313": ["helper", "extra"]}


def _row(name: str, build: tuple[str, ...] = (), run: tuple[str, ...] = (),
         kind: str = "build-tool") -> LockedComponent:
    """A lock row with a sdist of its own (the dynamic records are keyed by its sha256)."""
    sha = (name.encode().hex() * 64)[:64]
    return locked(name, "1.0", build, run, kind=kind,
                  sdist=Sdist(name, "1.0", f"{name}-1.0.tar.gz",
                              f"https://files.invalid/{name}-1.0.tar.gz", sha, 1))


def _python(version: str) -> Interpreter:
    tag = "cp" + "".join(version.split(".")[:2])
    return Interpreter(version, tag, f"/opt/python/{tag}-{tag}", Path("/nonexistent"),
                       tag[2:].ljust(64, "0"), {}, {"kind": "none"}, "sha256:" + "c" * 64,
                       "f" * 64, 0.0)


@dataclass
class Backend:
    """The stand-in builds: what each was given, and the records of what it built (a
    build of the very same inputs is up to date)."""

    settings: Settings
    builds: list[tuple[str, str, list[str]]] = field(default_factory=list)
    repair: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    built: dict[tuple[str, str, tuple[str, ...]], Any] = field(default_factory=dict)

    def __call__(self, settings: Settings, inputs: Any) -> Any:
        tools = [w.name for w in inputs.tools]
        self.builds.append((inputs.name, inputs.python_tag, tools))
        asked = ASKS[inputs.python_tag] if inputs.name == "demo" else []
        have = {name.split("-")[0] for name in tools}
        missing = [a for a in asked if a not in have]
        if missing:
            raise job.MissingRequirementsError(inputs, job.Requires([], asked, missing, "b"))
        filename = (NATIVE.format(name=inputs.name, tag=inputs.python_tag)
                    if inputs.name in ("demo", "app") else f"{inputs.name}-1.0-py3-none-any.whl")
        settings.wheels_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(settings.wheels_dir / filename, "w") as archive:
            archive.writestr(f"{inputs.name}-1.0.dist-info/METADATA",
                             f"Metadata-Version: 2.1\nName: {inputs.name}\nVersion: 1.0\n")
        record = SimpleNamespace(wheel_filename=filename, component=inputs.name,
                                 builder_settings={"build_requires": {"dynamic": asked}})
        self.built[(inputs.name, inputs.python_tag, tuple(sorted(tools)))] = record
        return record


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    state = Backend(factories.settings(tmp_path / "p", build_interpreters=BOTH,
                                       build_repair="none"))

    def inputs(self: executor.Session, node: Any, wheels: list[Path],
               repair_wheels: list[Path] | None = None, python: Interpreter | None = None,
               variant: bool = False) -> Any:
        tag = python.tag if python else "cp311"
        state.repair[(node.name, tag)] = sorted(w.name for w in repair_wheels or ())
        return SimpleNamespace(name=node.name, version=node.version, tools=wheels,
                               repair_tools=(), interpreter=python, python_tag=tag,
                               variant=variant, image=SimpleNamespace(id="sha256:image"))

    def up_to_date(session: executor.Session, inputs: Any) -> Any:
        return state.built.get((inputs.name, inputs.python_tag,
                                tuple(sorted(w.name for w in inputs.tools))))

    def interpreter(self: executor.Session, pin: InterpreterPin) -> Interpreter:
        return _python("3.13.5")

    monkeypatch.setattr(executor.Session, "inputs", inputs)
    monkeypatch.setattr(executor.Session, "requires_python", lambda self, locked: None)
    monkeypatch.setattr(executor.Session, "interpreter", interpreter)
    monkeypatch.setattr(executor, "_up_to_date", up_to_date)
    return state


def _project(settings: Settings, *rows: LockedComponent) -> Settings:
    factories.recipe(settings.root, "anything")
    save_lock(settings, Lock(list(rows or (_row("demo", kind="runtime"), _row("helper"),
                                            _row("extra")))))
    return settings


def _run(backend: Backend, name: str = "demo") -> executor.Outcome:
    return executor.run_plan(backend.settings, make_plan(backend.settings, [name]),
                             concurrency=1, build=backend)


def _demo(settings: Settings) -> LockedComponent:
    return make_plan(settings, ["demo"]).nodes["demo==1.0"].locked


# -- a variant's backend asks for more under its interpreter --------------------------------

def test_a_variant_whose_backend_asks_for_more_is_grown_and_built(backend: Backend) -> None:
    settings = _project(backend.settings)
    outcome = _run(backend)
    assert outcome.failed == {}
    assert backend.builds == [
        ("demo", "cp311", []),  # its backend asks for helper: the plan grows
        ("helper", "cp311", []),
        ("demo", "cp311", ["helper-1.0-py3-none-any.whl"]),
        ("demo", "cp313", ["helper-1.0-py3-none-any.whl"]),  # under 3.13 it asks for extra
        ("extra", "cp311", []),
        ("demo", "cp313", ["extra-1.0-py3-none-any.whl", "helper-1.0-py3-none-any.whl"])]
    assert [r.wheel_filename for r in outcome.records][-1] == NATIVE.format(name="demo",
                                                                             tag="cp313")
    # each interpreter's answer in its own record: extra is 3.13's, not the first build's
    demo = _demo(settings)
    first = json.loads(dynamic_requires_path(settings, demo).read_text())
    assert first == {"builder_image_id": "sha256:image", "component": "demo==1.0",
                     "dynamic": ["helper"]}
    cp313 = json.loads(dynamic_requires_path(settings, demo, "cp313").read_text())
    assert cp313["dynamic"] == ["helper", "extra"] and cp313["interpreter"] == "cp313"
    # a tool only 3.13's build asked for: not in 3.11's environment
    node = make_plan(settings, ["demo"]).nodes["demo==1.0"]
    assert node.env == ["helper==1.0"]
    assert node.env_for("cp313") == ["extra==1.0", "helper==1.0"]


def test_the_next_run_plans_it_up_front_and_builds_nothing(backend: Backend) -> None:
    settings = _project(backend.settings)
    _run(backend)
    builds = len(backend.builds)
    plan = make_plan(settings, ["demo"])
    assert plan.order == ["extra==1.0", "helper==1.0", "demo==1.0"]
    assert "dynamic requires for cp313: helper, extra" in plan.explain()
    assert "build env for cp313: extra==1.0, helper==1.0" in plan.explain()
    outcome = executor.run_plan(settings, plan, concurrency=1, build=backend)
    assert outcome.failed == {} and len(backend.builds) == builds
    assert sorted(r.wheel_filename for r in outcome.records) == sorted([
        NATIVE.format(name="demo", tag="cp311"), NATIVE.format(name="demo", tag="cp313"),
        "extra-1.0-py3-none-any.whl", "helper-1.0-py3-none-any.whl"])


def test_the_first_builds_record_is_as_with_one_interpreter(backend: Backend,
                                                            tmp_path: Path) -> None:
    """The first build's record keeps its path and its bytes: a project with one
    interpreter (every default project) has the same state as before."""
    settings = _project(backend.settings)
    _run(backend)
    alone = _project(factories.settings(tmp_path / "alone", build_repair="none"))
    backend.settings, backend.built = alone, {}
    assert _run(backend).failed == {}
    mine, theirs = _demo(settings), _demo(alone)
    assert dynamic_requires_path(settings, mine).read_bytes() == \
        dynamic_requires_path(alone, theirs).read_bytes()
    # beside it 3.13's own answer (extra's first build recorded its own, none); nothing
    # of it with one interpreter
    both = {p.name for p in dynamic_requires_path(settings, mine).parent.iterdir()}
    one = {p.name for p in dynamic_requires_path(alone, theirs).parent.iterdir()}
    assert both - one == {dynamic_requires_path(settings, mine, "cp313").name,
                          dynamic_requires_path(settings, _row("extra")).name}
    assert one <= both and not any(".cp" in name for name in one)


def test_an_unlocked_requirement_of_a_variant_fails_it_alone_in_one_line(
        backend: Backend) -> None:
    _project(backend.settings, _row("demo", kind="runtime"), _row("helper"))
    outcome = _run(backend)
    assert list(outcome.failed) == ["demo==1.0 [cp313]"]
    why = outcome.failed["demo==1.0 [cp313]"]
    assert why.startswith("demo 1.0 needs extra to build for cp313, and no locked version "
                          "satisfies it") and "\n" not in why
    assert 'factory add \\"extra\\"' in why or 'factory add "extra"' in why
    assert [r.wheel_filename for r in outcome.records] == [
        "helper-1.0-py3-none-any.whl", NATIVE.format(name="demo", tag="cp311")]


def test_a_variant_that_still_lacks_what_it_was_given_fails_in_one_line(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend that says extra is missing with extra installed: no endless regrowth."""
    _project(backend.settings)
    real = Backend.__call__

    def lying(self: Backend, settings: Settings, inputs: Any) -> Any:
        if inputs.python_tag == "cp313":
            self.builds.append((inputs.name, "cp313", [w.name for w in inputs.tools]))
            raise job.MissingRequirementsError(inputs, job.Requires(
                [], ["helper", "extra"], ["extra"], "b"))
        return real(self, settings, inputs)

    monkeypatch.setattr(Backend, "__call__", lying)
    outcome = _run(backend)
    assert list(outcome.failed) == ["demo==1.0 [cp313]"]
    assert "are locked but still not met" in outcome.failed["demo==1.0 [cp313]"]
    assert [t for n, t, _ in backend.builds if n == "demo"].count("cp313") == 2


# -- the records, read by the plan and the lock ----------------------------------------------

def test_a_bad_interpreter_record_reads_as_none(tmp_path: Path) -> None:
    """A per-interpreter record that is not one (not JSON, not lines, a link, huge) is
    no answer: the plan takes the first build's, not a traceback."""
    settings = _project(factories.settings(tmp_path, build_interpreters=BOTH,
                                           build_repair="none"))
    demo = _demo(settings)
    remember_dynamic(settings, demo, ["helper"], "sha256:image")
    path = dynamic_requires_path(settings, demo, "cp313")
    for bad in ("{", "[]", '{"dynamic": "extra"}', '{"dynamic": [1]}', "null"):
        path.write_text(bad)
        node = make_plan(settings, ["demo"]).nodes["demo==1.0"]
        assert node.dynamics == {} and node.env_for("cp313") == ["helper==1.0"]
        assert every_recorded_dynamic(settings, demo) == ["helper"]
    path.unlink()
    target = tmp_path / "elsewhere.json"
    target.write_text('{"dynamic": ["extra"]}')
    os.symlink(target, path)
    assert make_plan(settings, ["demo"]).nodes["demo==1.0"].dynamics == {}
    path.unlink()
    path.write_text('{"dynamic": ["extra"]}' + " " * (1 << 20))
    assert make_plan(settings, ["demo"]).nodes["demo==1.0"].dynamics == {}


def test_the_lock_reads_every_interpreters_record(tmp_path: Path) -> None:
    settings = _project(factories.settings(tmp_path, build_interpreters=BOTH))
    demo = _demo(settings)
    assert every_recorded_dynamic(settings, demo) == []
    remember_dynamic(settings, demo, ["helper"], "sha256:image")
    remember_dynamic(settings, demo, ["helper", "extra"], "sha256:image", "cp313")
    assert every_recorded_dynamic(settings, demo) == ["helper", "extra"]
    # an interpreter no longer configured: its record is not read
    alone = factories.settings(tmp_path, build_interpreters=("3.11",))
    assert every_recorded_dynamic(alone, demo) == ["helper"]


def test_a_requirement_only_3_13s_build_recorded_is_in_the_lock_build_closure(
        project: Settings, upstream: LocalUpstream) -> None:
    """As for the first build's record: what 3.13's build recorded its backend asked for
    is walked by the lock's build-closure pass, so the next lock knows it up front."""
    upstream.add("helper", "1.0.0", build_requires=[], backend="x")
    upstream.add("helper", "2.0.0", build_requires=[], backend="x", requires_python=">=3.12",
                 files={"PKG-INFO": "Metadata-Version: 2.4\nName: helper\nVersion: 2.0.0\n"
                                    "License-Expression: MIT\nRequires-Python: >=3.12\n"})
    factories.recipe(project.root, "helper", 'track = "any"\n')
    upstream.add("dyn", "1.0.0", build_requires=[], backend="x")
    factories.recipe(project.root, "dyn")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    # 1.0 is locked for 3.11's users (helper is approved), not for a build environment
    old = lock.get("helper", "1.0.0")
    assert old is not None and "build environment" not in old.reason
    dyn = lock.primary("dyn")
    assert dyn is not None
    remember_dynamic(settings, dyn, [], "sha256:image")  # the first build asked for nothing
    remember_dynamic(settings, dyn, ["helper"], "sha256:image", "cp313")
    lock, _ = lock_stage(settings)
    assert sorted(c.version for c in lock.components if c.key == "helper") == ["1.0.0", "2.0.0"]
    old = lock.get("helper", "1.0.0")
    assert old is not None and "build environment" in old.reason
    node = make_plan(settings, ["dyn"]).nodes["dyn==1.0.0"]
    assert node.env == [] and node.env_for("cp313") == ["helper==2.0.0"]


# -- the repair tools per interpreter ---------------------------------------------------------

def _repaired(tmp_path: Path, *extra: LockedComponent) -> Settings:
    settings = factories.settings(tmp_path, build_interpreters=BOTH)
    factories.recipe(settings.root, "anything")
    save_lock(settings, Lock([
        _row("app", kind="runtime"),
        _row("auditwheel", run=("packaging", "newelf; python_version >= '3.12'")),
        _row("packaging"), *extra]))
    return settings


def test_the_repair_tools_are_planned_with_each_interpreters_markers(tmp_path: Path) -> None:
    plan = make_plan(_repaired(tmp_path, _row("newelf")), ["app"])
    app = plan.nodes["app==1.0"]
    assert app.repair == ["auditwheel==1.0", "packaging==1.0"]
    assert app.repair_for("cp311") == app.repair
    assert app.repair_for("cp313") == ["auditwheel==1.0", "newelf==1.0", "packaging==1.0"]
    assert app.deps_for("cp313") == ["auditwheel==1.0", "newelf==1.0", "packaging==1.0"]
    assert plan.order.index("newelf==1.0") < plan.order.index("app==1.0")
    assert "built before auditwheel" in plan.nodes["newelf==1.0"].repair_note
    assert "  for cp313 with auditwheel==1.0, newelf==1.0, packaging==1.0" in plan.explain()
    # one interpreter: as before, nothing of 3.13's
    alone = factories.settings(tmp_path / "alone")
    factories.recipe(alone.root, "anything")
    save_lock(alone, Lock([_row("app", kind="runtime"),
                           _row("auditwheel", run=("packaging",
                                                   "newelf; python_version >= '3.12'")),
                           _row("packaging"), _row("newelf")]))
    plan = make_plan(alone, ["app"])
    assert plan.nodes["app==1.0"].repairs == {} and "newelf==1.0" not in plan.nodes
    assert "for cp313" not in plan.explain()


def test_a_repair_tool_one_interpreter_cannot_have_fails_its_builds_alone(
        tmp_path: Path) -> None:
    plan = make_plan(_repaired(tmp_path), ["app"])  # newelf is not locked
    app = plan.nodes["app==1.0"]
    assert app.problem is None and app.deps == ["auditwheel==1.0", "packaging==1.0"]
    with pytest.raises(PlanError, match="needs newelf"):
        app.deps_for("cp313")
    assert "  not repaired for cp313: auditwheel 1.0 needs newelf" in plan.explain()


def test_a_variant_installs_its_own_interpreters_repair_tools(backend: Backend) -> None:
    settings = _repaired(backend.settings.root, _row("newelf"))
    backend.settings = settings
    outcome = _run(backend, "app")
    assert outcome.failed == {}
    assert backend.repair[("app", "cp311")] == ["auditwheel-1.0-py3-none-any.whl",
                                                "packaging-1.0-py3-none-any.whl"]
    assert backend.repair[("app", "cp313")] == ["auditwheel-1.0-py3-none-any.whl",
                                                "newelf-1.0-py3-none-any.whl",
                                                "packaging-1.0-py3-none-any.whl"]
