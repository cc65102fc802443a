"""Native wheels for every configured CPython, without containers: which nodes get a build
per interpreter, what each such build installs, what is skipped or fails alone, the tag
check on what a build gives back, and two interpreters' records side by side.

The builds are stand-ins (the executor's ``build`` for the first wheels, the ``build``
hook of run_plan for the other interpreters' builds): the container side is
tests/test_interpreters_docker.py.
"""

from __future__ import annotations

import json
import threading
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from factory.attest.provenance import interpreter_dependencies
from factory.attest.sbom import PROP, platform_components
from factory.build import executor, interpreters, job, variants
from factory.build import ticket as tickets
from factory.build.debian_source import SourceUnavailable
from factory.build.interpreters import Interpreter, InterpreterPin
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.errors import BuildError
from factory.lock import Lock, save_lock
from factory.plan import Node, Plan
from factory.upstream.cache import Sdist
from tests import factories
from tests.factories import locked

NATIVE = "{name}-1.0-{tag}-{tag}-manylinux_2_17_x86_64.whl"
SOURCE = {"package": "python3.13", "version": "3.13.5-2+deb13u5", "suite": "trixie",
          "filename": "python3.13_3.13.5.orig.tar.xz", "sha256": "9" * 64, "size": 1,
          "upstream_version": "3.13.5"}


def python(version: str) -> Interpreter:
    tag = "cp" + "".join(version.split(".")[:2])
    return Interpreter(version, tag, f"/opt/python/{tag}-{tag}", Path("/nonexistent"),
                       tag[2:].ljust(64, "0"), dict(SOURCE), {"kind": "none"},
                       "sha256:" + "c" * 64, "f" * 64, 0.0)


@dataclass
class Fake:
    """What each stand-in build was given, and how each first build's wheel is tagged."""

    settings: Settings
    kinds: dict[str, str]  # name -> "native", "pure", "abi3", "fail-cp313" ...
    requires_python: dict[str, str] = field(default_factory=dict)  # the wheels' METADATA
    sdist_requires: dict[str, str] = field(default_factory=dict)  # the sdists' PKG-INFO
    first: list[str] = field(default_factory=list)
    first_tools: dict[str, list[str]] = field(default_factory=dict)  # name -> wheels it had
    variants: list[tuple[str, str, list[str]]] = field(default_factory=list)


def _wheel(directory: Path, filename: str, requires_python: str | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    name = filename.split("-")[0]
    with zipfile.ZipFile(directory / filename, "w") as archive:
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
        if requires_python:
            meta += f"Requires-Python: {requires_python}\n"
        archive.writestr(f"{name}-1.0.dist-info/METADATA", meta)


def _record(filename: str, interpreter: dict[str, Any] | None = None) -> Any:
    return SimpleNamespace(wheel_filename=filename, component=filename.split("-")[0],
                           builder_settings={"interpreter": interpreter} if interpreter else {})


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    settings = factories.settings(tmp_path, build_interpreters=("3.11", "3.13", "3.14"))
    state = Fake(settings, {})

    def first(self: executor._Executor, node: Node) -> Any:
        state.first.append(node.name)
        python = self.variants.firsts.get(node.id)
        tag = python.tag if python else "cp311"
        state.first_tools[node.name] = [
            (self._wheel(d) if python is None else self._wheel_for(d, tag)).name
            for d in node.env]
        kind = state.kinds.get(node.name, "pure")
        if kind == "fail":
            raise BuildError(f"{node.name}: build failed")
        filename = {"pure": f"{node.name}-1.0-py3-none-any.whl",
                    "abi3": f"{node.name}-1.0-cp39-abi3-manylinux_2_17_x86_64.whl"}.get(
            kind, NATIVE.format(name=node.name, tag=tag))
        _wheel(settings.wheels_dir, filename, state.requires_python.get(node.name))
        return _record(filename)

    def interpreter(self: executor.Session, pin: InterpreterPin) -> Interpreter:
        if pin.version == "3.14":
            raise SourceUnavailable("python3.14 3.14.8-1: HTTPStatusError: 404 Not Found")
        return python("3.13.5")

    def inputs(self: executor.Session, node: Node, wheels: list[Path],
               repair_wheels: list[Path] | None = None,
               python: Interpreter | None = None, variant: bool = False) -> Any:
        return SimpleNamespace(name=node.name, tools=wheels, repair_tools=(),
                               interpreter=python, python_tag=python.tag if python else "cp311",
                               variant=variant)

    def sdist_requires(self: executor.Session, locked: Any) -> str | None:
        return state.sdist_requires.get(locked.key)

    monkeypatch.setattr(executor._Executor, "build", first)
    monkeypatch.setattr(executor.Session, "requires_python", sdist_requires)
    monkeypatch.setattr(executor.Session, "interpreter", interpreter)
    monkeypatch.setattr(executor.Session, "inputs", inputs)
    monkeypatch.setattr(executor, "_up_to_date", lambda session, inputs: None)
    return state


def _run(fake: Fake, edges: dict[str, list[str]]) -> executor.Outcome:
    factories.recipe(fake.settings.root, "anything")
    save_lock(fake.settings, Lock([locked(name, "1.0") for name in edges]))
    nodes = {}
    for name, needs in edges.items():
        node = Node(name, "1.0", "runtime", locked(name, "1.0"), static=[])
        node.env = [f"{n}==1.0" for n in needs]
        nodes[f"{name}==1.0"] = node

    def variant(settings: Settings, inputs: Any) -> Any:
        fake.variants.append((inputs.name, inputs.python_tag, [w.name for w in inputs.tools]))
        if fake.kinds.get(inputs.name) == f"fail-{inputs.python_tag}":
            raise BuildError(f"{inputs.name}: build failed")
        filename = NATIVE.format(name=inputs.name, tag=inputs.python_tag)
        _wheel(settings.wheels_dir, filename, None)
        return _record(filename)

    return executor.run_plan(fake.settings, Plan(nodes, sorted(nodes)), concurrency=1,
                             build=variant)


def test_only_native_wheels_are_built_again_per_interpreter(fake: Fake) -> None:
    fake.kinds = {"ext": "native", "lib": "pure", "stable": "abi3"}
    outcome = _run(fake, {"ext": [], "lib": [], "stable": []})
    assert sorted(fake.first) == ["ext", "lib", "stable"]
    assert [(name, tag) for name, tag, _ in fake.variants] == [("ext", "cp313")]
    assert [r.wheel_filename for r in outcome.records] == [
        "ext-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "lib-1.0-py3-none-any.whl", "stable-1.0-cp39-abi3-manylinux_2_17_x86_64.whl",
        "ext-1.0-cp313-cp313-manylinux_2_17_x86_64.whl"]
    # 3.14 cannot be had here: that variant alone fails, in one line that says why
    assert list(outcome.failed) == ["ext==1.0 [cp314]"]
    assert "CPython 3.14 cannot be had" in outcome.failed["ext==1.0 [cp314]"]
    assert "404" in outcome.failed["ext==1.0 [cp314]"]


def test_an_interpreter_requires_python_excludes_is_skipped_and_said(fake: Fake) -> None:
    fake.kinds = {"old": "native", "new": "native"}
    fake.requires_python = {"old": ">=3.8,<3.13", "new": ">=3.9"}
    outcome = _run(fake, {"old": [], "new": []})
    assert [(name, tag) for name, tag, _ in fake.variants] == [("new", "cp313")]
    assert outcome.skipped == {
        "old==1.0 [cp313]": "Requires-Python >=3.8,<3.13 excludes CPython 3.13.5"}


def test_a_variant_installs_shared_wheels_and_its_native_tools_own_variants(
        fake: Fake) -> None:
    fake.kinds = {"app": "native", "cythonish": "native", "backend": "pure"}
    outcome = _run(fake, {"app": ["backend", "cythonish"], "backend": [], "cythonish": []})
    assert outcome.failed == {"app==1.0 [cp314]": outcome.failed["app==1.0 [cp314]"],
                              "cythonish==1.0 [cp314]":
                                  outcome.failed["cythonish==1.0 [cp314]"]}
    # the native tool's variant first (topological), then app's with it and the shared one
    assert fake.variants == [
        ("cythonish", "cp313", []),
        ("app", "cp313", ["backend-1.0-py3-none-any.whl",
                          "cythonish-1.0-cp313-cp313-manylinux_2_17_x86_64.whl"])]


def test_a_failed_variant_fails_what_needs_it_for_that_interpreter_only(fake: Fake) -> None:
    fake.kinds = {"app": "native", "tool": "fail-cp313"}
    outcome = _run(fake, {"app": ["tool"], "tool": []})
    assert [(n, t) for n, t, _ in fake.variants] == [("tool", "cp313")]
    assert outcome.failed["tool==1.0 [cp313]"] == "tool: build failed"
    assert "tool==1.0 [cp313] was not built" in outcome.failed["app==1.0 [cp313]"]
    # every first wheel stands (and publishes): the cp311 builds never waited on them
    assert [r.wheel_filename for r in outcome.records] == [
        NATIVE.format(name="app", tag="cp311"), NATIVE.format(name="tool", tag="cp311")]


def test_a_failed_first_build_plans_no_variant(fake: Fake) -> None:
    fake.kinds = {"broken": "fail"}
    outcome = _run(fake, {"broken": []})
    assert fake.variants == [] and list(outcome.failed) == ["broken==1.0"]


def test_the_system_interpreter_alone_plans_nothing_more(fake: Fake) -> None:
    fake.settings = replace(fake.settings, build_interpreters=("3.11",))
    fake.kinds = {"ext": "native"}
    outcome = _run(fake, {"ext": []})
    assert fake.variants == [] and outcome.failed == {} and outcome.skipped == {}


# -- what a build gives back ---------------------------------------------------------

def _inputs(interpreter: Interpreter | None, variant: bool = True) -> Any:
    return SimpleNamespace(name="markupsafe", version="3.0.3", interpreter=interpreter,
                           python_tag=interpreter.tag if interpreter else "cp311",
                           variant=interpreter is not None and variant)


@pytest.mark.parametrize(("interpreter", "filename", "ok"), [
    (None, "m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", True),
    (None, "m-1.0-py3-none-any.whl", True),
    (None, "m-1.0-cp39-abi3-manylinux_2_17_x86_64.whl", True),
    (None, "m-1.0-cp313-cp313-manylinux_2_17_x86_64.whl", False),
    ("3.13.5", "m-1.0-cp313-cp313-manylinux_2_17_x86_64.whl", True),
    ("3.13.5", "m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", False),  # the wrong python ran
    ("3.13.5", "m-1.0-cp313-cp311-linux_x86_64.whl", False),
    ("3.13.5", "m-1.0-py3-none-any.whl", False),  # a variant exists for native wheels only
])
def test_a_wheel_of_another_interpreter_than_the_build_is_refused(
        interpreter: str | None, filename: str, ok: bool) -> None:
    inputs = _inputs(python(interpreter) if interpreter else None)
    if ok:
        job._check_tags(inputs, filename)
    else:
        with pytest.raises(BuildError, match="are not cp31"):
            job._check_tags(inputs, filename)


def test_two_interpreters_records_stand_side_by_side(tmp_path: Path) -> None:
    cp313 = python("3.13.5")
    records = {}
    for tag, described in (("cp311", interpreters.system_description(_image())),
                           ("cp313", cp313.describe())):
        record = _build_record(f"markupsafe-3.0.3-{tag}-{tag}-manylinux_2_17_x86_64.whl",
                               described)
        record.save(tmp_path)
        records[tag] = BuildRecord.load(
            tmp_path / f"markupsafe-3.0.3-{tag}-{tag}-manylinux_2_17_x86_64.whl.build.json")
    assert len(list(tmp_path.glob("*.build.json"))) == 2
    system, built = records["cp311"], records["cp313"]
    assert system.builder_settings["interpreter"]["version"] == "3.11.2"
    assert system.builder_settings["interpreter"]["debian_package"] == "python3.11=3.11.2-6"
    assert built.builder_settings["interpreter"]["tree_sha256"] == cp313.tree_sha256
    # each is up to date only for its own interpreter
    as_system = SimpleNamespace(interpreter=None)
    as_built = SimpleNamespace(interpreter=cp313)
    assert variants.same_interpreter(system, as_system)  # type: ignore[arg-type]
    assert not variants.same_interpreter(system, as_built)  # type: ignore[arg-type]
    assert variants.same_interpreter(built, as_built)  # type: ignore[arg-type]
    assert not variants.same_interpreter(built, as_system)  # type: ignore[arg-type]
    other = SimpleNamespace(interpreter=replace(cp313, tree_sha256="e" * 64))
    assert not variants.same_interpreter(built, other)  # type: ignore[arg-type]
    # a record made before interpreters were recorded was the image's python3
    old = replace(system, builder_settings={})
    assert variants.same_interpreter(old, as_system)  # type: ignore[arg-type]
    # the provenance and the SBOM name the built interpreter and its source
    roles = [d["annotations"]["role"] for d in interpreter_dependencies(built)]
    assert roles == ["interpreter-source", "interpreter"]
    assert interpreter_dependencies(system) == []
    [component] = [c for c in platform_components(built) if c["bom-ref"] == "interpreter:cp313"]
    assert component["version"] == "3.13.5"
    assert {"name": f"{PROP}:tree-sha256", "value": cp313.tree_sha256} in \
        component["properties"]


def _build_record(filename: str, interpreter: dict[str, Any]) -> BuildRecord:
    source = Sdist("markupsafe", "3.0.3", "markupsafe-3.0.3.tar.gz",
                   "https://files.invalid/markupsafe-3.0.3.tar.gz", "a" * 64, 1)
    return BuildRecord("0" * 32, "markupsafe", "3.0.3", filename, "b" * 64, source,
                       "markupsafe.toml", "sha256:" + "c" * 64, "factory-builder:bookworm",
                       "sha256:" + "d" * 64, {"interpreter": interpreter}, [],
                       "2026-01-02T03:04:05Z", "2026-01-02T03:04:12Z", "x.log", "e" * 64)


def _image() -> Any:
    return SimpleNamespace(packages=["libc6=2.36-9", "python3.11=3.11.2-6"])


def test_requires_python_is_read_from_the_wheel(tmp_path: Path) -> None:
    _wheel(tmp_path, "m-1.0-cp311-cp311-linux_x86_64.whl", ">=3.9, <3.14")
    assert variants.requires_python(tmp_path / "m-1.0-cp311-cp311-linux_x86_64.whl") == \
        ">=3.9, <3.14"
    assert variants.admits(">=3.9, <3.14", "3.13.5") is None
    assert variants.admits(">=3.9, <3.13", "3.13.5") is not None
    assert "cannot be read" in str(variants.admits("~=banana", "3.13.5"))
    assert variants.requires_python(tmp_path / "absent.whl") is None


def _ticket(**fields: Any) -> tickets.BuildTicket:
    blob = tickets.Input("m-1.0.tar.gz", "a" * 64, 1)
    return tickets.BuildTicket("m", "1.0", "b" * 64, "m.toml", "sha256:" + "c" * 64, blob, (),
                               (), "factory-builder:bookworm", "sha256:" + "d" * 64, **fields)


def test_a_ticket_names_its_interpreter_and_a_worker_without_it_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _ticket()
    assert b"interpreter" not in plain.to_bytes()  # a 3.11 ticket is what it was
    assert tickets.BuildTicket.from_bytes(plain.to_bytes()) == plain
    cp313 = python("3.13.5")
    named = _ticket(interpreter_tag="cp313", interpreter_tree_sha256=cp313.tree_sha256)
    assert tickets.BuildTicket.from_bytes(named.to_bytes()) == named
    assert b"variant" not in named.to_bytes()  # a first build on 3.13
    variant = replace(named, variant=True)
    assert tickets.BuildTicket.from_bytes(variant.to_bytes()) == variant
    for forged in ({"interpreter_tag": "cp313;rm"}, {"interpreter_tree_sha256": None},
                   {"variant": 1}, {"variant": "yes"}, {"variant": None}):
        raw = json.loads(variant.to_bytes())
        raw.update(forged)
        with pytest.raises(tickets.TicketRefused, match="malformed"):
            tickets.BuildTicket.from_bytes(json.dumps(raw).encode())
    with pytest.raises(tickets.TicketRefused, match="a variant without the interpreter"):
        tickets.BuildTicket.from_bytes(
            json.dumps({**json.loads(plain.to_bytes()), "variant": True}).encode())
    settings = factories.settings(tmp_path)
    monkeypatch.setattr(tickets, "held_image", lambda *a: SimpleNamespace(id="sha256:x"))
    assert tickets.ticket_interpreter(settings, plain) is None
    for kept, held in ((None, "keeps none"), (replace(cp313, tree_sha256="e" * 64),
                                              "keeps tree eeeeeeeeeeee")):
        monkeypatch.setattr(interpreters, "usable", lambda *a, kept=kept: kept)
        with pytest.raises(tickets.TicketRefused) as caught:
            tickets.ticket_interpreter(settings, named)
        assert "\n" not in caught.value.message and held in caught.value.message
        assert caught.value.message.startswith("m 1.0 [cp313]: refused: the ticket pins")
    monkeypatch.setattr(interpreters, "usable", lambda *a: cp313)
    assert tickets.ticket_interpreter(settings, named) is cp313
    # the publisher compares the worker's record with the ticket's interpreter
    record = _build_record("m-1.0-cp313-cp313-linux_x86_64.whl", cp313.describe())
    assert tickets._recorded_tree(record) == cp313.tree_sha256
    assert tickets._recorded_tree(replace(record, builder_settings={})) is None


def test_the_admission_gate_checks_tags_against_the_recorded_interpreter(
        tmp_path: Path) -> None:
    from factory.admission import built_for

    settings = factories.settings(tmp_path, build_interpreters=("3.11", "3.13"))
    approvals = SimpleNamespace(env={"python_version": "3.11"})
    built = _build_record("m-1.0-cp313-cp313-linux_x86_64.whl", python("3.13.5").describe())
    system = _build_record("m-1.0-cp311-cp311-linux_x86_64.whl",
                           interpreters.system_description(_image()))
    assert built_for(settings, built, approvals) == "3.13"  # type: ignore[arg-type]
    assert built_for(settings, system, approvals) == "3.11"  # type: ignore[arg-type]
    # an interpreter the settings do not configure, or a tag that is not its version's
    alone = replace(settings, build_interpreters=("3.11",))
    assert built_for(alone, built, approvals) == "3.11"  # type: ignore[arg-type]
    forged = replace(built, builder_settings={"interpreter": {"version": "3.13.5",
                                                              "tag": "cp311"}})
    assert built_for(settings, forged, approvals) == "3.11"  # type: ignore[arg-type]


def test_publishing_one_interpreters_wheel_closes_only_its_own_refusal(tmp_path: Path) -> None:
    from factory import ledger

    settings = factories.settings(tmp_path)
    cp311, cp313 = (NATIVE.format(name="m", tag=tag) for tag in ("cp311", "cp313"))
    ledger.record_decision(settings, "m", ledger.REFUSED, f"{cp313}: unsigned (hint: x)",
                           version="1.0")
    ledger.record_decision(settings, "m", ledger.PUBLISHED, cp311, version="1.0")
    assert list(ledger.open_refusals(settings)) == [("m", "1.0")]  # still refused
    ledger.record_decision(settings, "m", ledger.PUBLISHED, cp313, version="1.0")
    assert ledger.open_refusals(settings) == {}


def test_verify_rebuild_takes_one_published_wheel_by_its_file_name(tmp_path: Path) -> None:
    from factory.verify import rebuild_and_compare
    from factory.verify.targets import TargetError

    settings = factories.settings(tmp_path)
    with pytest.raises(TargetError, match="publishes no file m-1.0-cp313"):
        rebuild_and_compare(settings, NATIVE.format(name="m", tag="cp313"))
    with pytest.raises(TargetError, match="is not a wheel file name"):
        rebuild_and_compare(settings, "m.whl")
    with pytest.raises(TargetError, match="NAME==VERSION or a published wheel"):
        rebuild_and_compare(settings, "m")


# -- a version only some interpreters admit --------------------------------------------------

def test_a_version_3_11_cannot_build_is_built_first_by_one_that_admits_it(fake: Fake) -> None:
    fake.kinds = {"new": "native", "ext": "native"}
    fake.sdist_requires = {"new": ">=3.12"}
    outcome = _run(fake, {"new": [], "ext": []})
    # its first (and only) wheel is cp313's; 3.11 is said not to build it, and why
    assert [r.wheel_filename for r in outcome.records] == [
        NATIVE.format(name="ext", tag="cp311"), NATIVE.format(name="new", tag="cp313"),
        NATIVE.format(name="ext", tag="cp313")]
    assert outcome.skipped == {"new==1.0 [cp311]": "Requires-Python >=3.12 excludes CPython 3.11"}
    assert [(n, t) for n, t, _ in fake.variants] == [("ext", "cp313")]
    # 3.14, which it also admits, cannot be had here: that alone fails, as for ext
    assert sorted(outcome.failed) == ["ext==1.0 [cp314]", "new==1.0 [cp314]"]


def test_a_pure_wheel_built_that_way_is_shared_but_not_with_3_11(fake: Fake) -> None:
    fake.kinds = {"backend": "pure", "app": "native", "lib": "pure"}
    fake.sdist_requires = {"backend": ">=3.12"}
    fake.requires_python = {"backend": ">=3.12"}  # its wheel says what its sdist says
    outcome = _run(fake, {"backend": [], "app": ["backend"], "lib": ["backend"]})
    # what needs it to build is built by the interpreters that have it, not by 3.11
    why = ("its build requirement backend==1.0 is not built for cp311 (Requires-Python "
           ">=3.12 excludes CPython 3.11)")
    assert outcome.skipped == {
        "backend==1.0 [cp311]": "Requires-Python >=3.12 excludes CPython 3.11",
        "app==1.0 [cp311]": why, "lib==1.0 [cp311]": why}
    assert [r.wheel_filename for r in outcome.records] == [
        NATIVE.format(name="app", tag="cp313"), "backend-1.0-py3-none-any.whl",
        "lib-1.0-py3-none-any.whl"]
    assert fake.first_tools["app"] == fake.first_tools["lib"] == [
        "backend-1.0-py3-none-any.whl"]
    # only app's variants are judged past 3.13 (3.14 cannot be had here); pure ones stop
    assert list(outcome.failed) == ["app==1.0 [cp314]"]


def test_a_native_tool_built_only_for_another_interpreter_fails_what_needs_it(
        fake: Fake) -> None:
    """Its own interpreter's build failed: 3.11 was not skipped, so a 3.11 build that needs
    it fails, saying so (it is not moved)."""
    fake.kinds = {"tool": "fail-cp313", "app": "native"}
    fake.sdist_requires = {"app": ">=3.12"}
    outcome = _run(fake, {"tool": [], "app": ["tool"]})
    assert outcome.failed["app==1.0"] == ("a build requirement for cp313: tool==1.0 [cp313] "
                                          "was not built")


def test_a_first_build_for_3_13_installs_its_tools_wheels_for_3_13(fake: Fake) -> None:
    fake.kinds = {"app": "native", "cythonish": "native", "backend": "pure"}
    fake.sdist_requires = {"app": ">=3.12"}
    outcome = _run(fake, {"app": ["backend", "cythonish"], "backend": [], "cythonish": []})
    # app waited for cythonish's cp313 variant, not its cp311 first wheel
    assert fake.first_tools["app"] == ["backend-1.0-py3-none-any.whl",
                                       NATIVE.format(name="cythonish", tag="cp313")]
    assert NATIVE.format(name="app", tag="cp313") in [r.wheel_filename for r in outcome.records]
    assert "app==1.0" not in outcome.failed


def test_no_interpreter_that_can_be_had_admits_it(fake: Fake) -> None:
    fake.kinds = {"future": "native"}
    fake.sdist_requires = {"future": ">=3.14"}
    outcome = _run(fake, {"future": []})
    assert fake.first == [] and outcome.records == []
    assert "CPython 3.14 cannot be had" in outcome.failed["future==1.0 [cp314]"]
    assert outcome.failed["future==1.0"].startswith(
        "future 1.0: no configured interpreter that can be had admits its Requires-Python "
        ">=3.14")
    assert set(outcome.skipped) == {"future==1.0 [cp311]", "future==1.0 [cp313]"}


def test_the_image_python_alone_reads_no_requires_python(fake: Fake) -> None:
    fake.settings = replace(fake.settings, build_interpreters=("3.11",))
    fake.kinds = {"new": "native"}
    fake.sdist_requires = {"new": ">=3.12"}  # the lock would not have taken it; as before
    outcome = _run(fake, {"new": []})
    assert [r.wheel_filename for r in outcome.records] == [NATIVE.format(name="new",
                                                                         tag="cp311")]
    assert outcome.skipped == {}


@pytest.mark.parametrize(("filename", "ok"), [
    ("m-1.0-cp313-cp313-manylinux_2_17_x86_64.whl", True),
    ("m-1.0-py3-none-any.whl", True),  # a first build may give a pure or abi3 wheel
    ("m-1.0-cp39-abi3-manylinux_2_17_x86_64.whl", True),
    ("m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", False),
])
def test_a_first_build_with_a_built_interpreter_may_give_any_wheel_of_it(
        filename: str, ok: bool) -> None:
    inputs = _inputs(python("3.13.5"), variant=False)
    if ok:
        job._check_tags(inputs, filename)
    else:
        with pytest.raises(BuildError, match="are not cp313"):
            job._check_tags(inputs, filename)


def test_the_sdist_requires_python_is_read_from_pkg_info_or_pyproject(tmp_path: Path) -> None:
    with_pkg_info = factories.sdist(tmp_path / "a", "m", "1.0", files={
        "PKG-INFO": "Metadata-Version: 2.1\nName: m\nVersion: 1.0\nRequires-Python: >=3.12\n"})
    assert variants.sdist_requires_python(with_pkg_info) == ">=3.12"
    archive = factories.sdist(tmp_path / "b", "m", "1.0", files={
        "PKG-INFO": None, "pyproject.toml": '[project]\nname = "m"\nrequires-python = ">=3.13"\n'})
    assert variants.sdist_requires_python(archive) == ">=3.13"
    plain = factories.sdist(tmp_path / "c", "m", "1.0")
    assert variants.sdist_requires_python(plain) is None


# -- each interpreter's build environment, resolved with its markers -----------------------

def _marker_lock(tmp_path: Path, *versions: str) -> Settings:
    settings = factories.settings(tmp_path, build_interpreters=versions)
    save_lock(settings, Lock([
        locked("app", "1.0", ["flit_core", "setuptools; python_version >= '3.12'"],
               kind="runtime"),
        locked("flit_core", "3.12.0"), locked("setuptools", "80.0.0"),
        locked("wheel", "0.45.0")]))
    return settings


def test_a_build_environment_is_resolved_with_each_interpreters_markers(
        tmp_path: Path) -> None:
    from factory.plan import make_plan

    plan = make_plan(_marker_lock(tmp_path, "3.11", "3.13"), ["app"])
    app = plan.nodes["app==1.0"]
    assert app.env == ["flit-core==3.12.0"]  # the image's 3.11
    assert app.env_for("cp313") == ["flit-core==3.12.0", "setuptools==80.0.0"]
    assert app.deps_for("cp313") == ["flit-core==3.12.0", "setuptools==80.0.0"]
    # the tool only 3.13 needs is in the plan, built like any other, and said why
    assert "setuptools==80.0.0" in plan.order
    assert "build env for cp313: flit-core==3.12.0, setuptools==80.0.0" in plan.explain()
    # the image's 3.11 alone: as before, nothing of it
    alone = make_plan(_marker_lock(tmp_path / "alone", "3.11"), ["app"])
    assert alone.order == ["flit-core==3.12.0", "app==1.0"]
    assert alone.nodes["app==1.0"].envs == {}


def test_an_environment_one_interpreter_cannot_have_fails_that_build_alone(
        tmp_path: Path) -> None:
    from factory.plan import PlanError, make_plan

    settings = factories.settings(tmp_path, build_interpreters=("3.11", "3.13"))
    save_lock(settings, Lock([locked("app", "1.0", ["flit_core", "newtool; python_version "
                                                    ">= '3.12'"], kind="runtime"),
                              locked("flit_core", "3.12.0")]))
    plan = make_plan(settings, ["app"])
    app = plan.nodes["app==1.0"]
    assert app.problem is None and plan.problems == {}  # its 3.11 build stands
    with pytest.raises(PlanError, match="needs newtool"):
        app.env_for("cp313")
    assert ("cannot be built for cp313: app 1.0 needs newtool; python_version >= \"3.12\" "
            "to build for cp313, and no locked version satisfies it") in plan.explain()


def test_a_variant_installs_its_own_interpreters_environment(fake: Fake) -> None:
    fake.kinds = {"app": "native", "extra": "pure", "tool": "pure"}
    factories.recipe(fake.settings.root, "anything")
    save_lock(fake.settings, Lock([locked(n, "1.0") for n in ("app", "extra", "tool")]))
    nodes = {f"{n}==1.0": Node(n, "1.0", "runtime", locked(n, "1.0"), static=[])
             for n in ("app", "extra", "tool")}
    nodes["app==1.0"].env = ["tool==1.0"]
    nodes["app==1.0"].envs = {"cp313": ["extra==1.0", "tool==1.0"]}

    def variant(settings: Settings, inputs: Any) -> Any:
        fake.variants.append((inputs.name, inputs.python_tag, [w.name for w in inputs.tools]))
        filename = NATIVE.format(name=inputs.name, tag=inputs.python_tag)
        _wheel(settings.wheels_dir, filename, None)
        return _record(filename)

    executor.run_plan(fake.settings, Plan(nodes, sorted(nodes)), concurrency=1,
                      build=variant)
    assert fake.first_tools["app"] == ["tool-1.0-py3-none-any.whl"]
    assert fake.variants == [("app", "cp313", ["extra-1.0-py3-none-any.whl",
                                               "tool-1.0-py3-none-any.whl"])]


def test_a_variant_whose_environment_cannot_be_planned_fails_alone(fake: Fake) -> None:
    from factory.plan import PlanError

    fake.kinds = {"app": "native"}
    factories.recipe(fake.settings.root, "anything")
    save_lock(fake.settings, Lock([locked("app", "1.0")]))
    app = Node("app", "1.0", "runtime", locked("app", "1.0"), static=[])
    app.env_problems = {"cp313": PlanError("app 1.0 needs newtool to build for cp313")}
    outcome = executor.run_plan(fake.settings, Plan({"app==1.0": app}, ["app==1.0"]),
                                concurrency=1, build=lambda *a: pytest.fail("built"))
    assert [r.wheel_filename for r in outcome.records] == [NATIVE.format(name="app",
                                                                         tag="cp311")]
    assert outcome.failed["app==1.0 [cp313]"].startswith("app 1.0 needs newtool")


# -- interpreters made in the background ---------------------------------------------------

def test_interpreters_are_made_while_the_first_wheels_build(
        fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 3.13 tree is made in a thread of its own from the run's start: the first
    wheels are built meanwhile (the last of them lets the making end), and the variant
    waits for it. A loop that made it inline, after the first native wheel, would wait
    for a release only a later first build gives."""
    events: list[str] = []
    release = threading.Event()

    def slow(self: executor.Session, pin: InterpreterPin) -> Interpreter:
        if pin.version == "3.14":
            raise SourceUnavailable("python3.14 3.14.8-1: HTTPStatusError: 404 Not Found")
        events.append("making cp313")
        if not release.wait(60):  # a guard against a hang, not a measure
            raise BuildError("never released")
        events.append("made cp313")
        return python("3.13.5")

    built_first = executor._Executor.build  # the fixture's stand-in

    def first(self: executor._Executor, node: Node) -> Any:
        events.append(f"first {node.name}")
        record = built_first(self, node)
        if node.name == "lib":
            release.set()
        return record

    monkeypatch.setattr(executor.Session, "interpreter", slow)
    monkeypatch.setattr(executor._Executor, "build", first)
    fake.kinds = {"ext": "native", "lib": "pure"}
    outcome = _run(fake, {"ext": [], "lib": []})
    assert events.index("first ext") < events.index("first lib") < events.index("made cp313")
    assert events.count("making cp313") == 1  # once per run
    assert [(n, t) for n, t, _ in fake.variants] == [("ext", "cp313")]
    assert NATIVE.format(name="ext", tag="cp313") in [r.wheel_filename for r in outcome.records]
    assert list(outcome.failed) == ["ext==1.0 [cp314]"]


def test_a_first_build_that_needs_an_interpreter_waits_for_it(
        fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    release = threading.Event()

    def slow(self: executor.Session, pin: InterpreterPin) -> Interpreter:
        if pin.version == "3.14":
            raise SourceUnavailable("python3.14 3.14.8-1: HTTPStatusError: 404 Not Found")
        if not release.wait(60):
            raise BuildError("never released")
        events.append("made cp313")
        return python("3.13.5")

    built_first = executor._Executor.build

    def first(self: executor._Executor, node: Node) -> Any:
        events.append(f"first {node.name}")
        if node.name == "old":
            release.set()
        return built_first(self, node)

    monkeypatch.setattr(executor.Session, "interpreter", slow)
    monkeypatch.setattr(executor._Executor, "build", first)
    fake.kinds = {"new": "native", "old": "pure"}
    fake.sdist_requires = {"new": ">=3.12"}
    outcome = _run(fake, {"new": [], "old": []})
    # new, first in name order, waited; old was built meanwhile
    assert events == ["first old", "made cp313", "first new"]
    assert NATIVE.format(name="new", tag="cp313") in [r.wheel_filename for r in outcome.records]


def test_a_pinned_native_upstream_wheel_serves_its_own_interpreter_only(
        fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = NATIVE.format(name="tool", tag="cp311")
    _wheel(fake.settings.wheels_dir, pinned, None)
    monkeypatch.setattr(executor.Session, "upstream_wheel",
                        lambda self, node: fake.settings.wheels_dir / pinned)
    fake.kinds = {"app": "native"}
    factories.recipe(fake.settings.root, "anything")
    save_lock(fake.settings, Lock([locked(n, "1.0") for n in ("app", "tool")]))
    tool = Node("tool", "1.0", "build-tool", locked("tool", "1.0"), static=[])
    tool.upstream_wheel = (pinned, "0" * 64)
    app = Node("app", "1.0", "runtime", locked("app", "1.0"), static=[])
    app.env = ["tool==1.0"]
    outcome = executor.run_plan(fake.settings, Plan({"app==1.0": app, "tool==1.0": tool},
                                                    ["tool==1.0", "app==1.0"]),
                                concurrency=1, build=lambda *a: pytest.fail("built"))
    assert fake.first_tools["app"] == [pinned]  # 3.11's build takes it
    assert outcome.failed["app==1.0 [cp313]"] == (
        f"a build requirement for this interpreter: the pinned upstream wheel {pinned} is "
        "not for cp313")
