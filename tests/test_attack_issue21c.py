"""Attack pass on issue 21's "whole interpreter set" (third pass): the lock and the
builds judging Requires-Python and markers for every configured CPython, a first build
moved off the image's 3.11, the background preparation of interpreters, the ticket's
``variant`` and the per-host lock. A hostile upstream (Requires-Python in the JSON API,
PKG-INFO and the built wheel; markers), a lying worker and a careless operator. No
containers. Each test's docstring says what broke (and was fixed) or held.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from factory._internal import hostlock
from factory.build import executor, interpreters, variants
from factory.build.interpreters import Interpreter, InterpreterPin
from factory.errors import BuildError, FileSystemError, LockError, one_line
from factory.lock import Lock, lock_stage, marker_environments, parse_requirements
from factory.lock.policy import _python_refusal
from factory.plan import Node
from tests import factories
from tests import test_interpreter_variants as _variant_fixtures
from tests.factories import locked
from tests.local_upstream import LocalUpstream
from tests.test_attack_issue19 import Honest
from tests.test_attack_issue21b import _for_cp313, _placed
from tests.test_interpreter_variants import NATIVE, Fake, _run, python
from tests.test_lock import tool

fake = _variant_fixtures.fake  # the stand-in executor those tests use

# -- the lock: an upstream's Requires-Python text ------------------------------------------


@pytest.mark.parametrize("requires", [">=3.99\r", "\x0c>=3.99", ">=3.99\u2028",
                                      ">=3.99,\x1c", ">=3.99\x85",
                                      ",".join(f"!=3.{n}.*" for n in range(20, 900))])
def test_a_requires_python_with_controls_or_huge_stays_one_short_line_in_the_lock(
        project: Any, upstream: LocalUpstream, requires: str) -> None:
    """Held: packaging reads a specifier with whitespace controls around it (CR, form
    feed, U+2028, NEL, the file separators) as valid, and _python_refusal quotes its text;
    but the upstream listing escapes and bounds requires-python before any policy sees it
    (MAX_TEXT), so the skipped row of recipes.lock is one printable line (an escaped value
    no longer parses: 'invalid requires-python'), with one Python and with several."""
    tool(upstream, project)
    upstream.add("demo", "1.0.0")
    upstream.add("demo", "2.0.0", requires_python=requires)
    factories.recipe(project.root, "demo")
    for settings in (project, replace(project, build_interpreters=("3.11", "3.13"))):
        if settings.lock_path.exists():
            settings.lock_path.unlink()
        lock, _ = lock_stage(settings)
        demo = lock.primary("demo")
        assert demo is not None and demo.version == "1.0.0"
        (skip,) = demo.skipped
        assert skip.reason.isprintable() and len(skip.reason) < 300
        assert "requires-python" in skip.reason


@pytest.mark.parametrize("requires", ["===3.13", ">=3.13,<3.13.1", "==3.13.0"])
def test_a_requires_python_only_3_13_0_admits_fails_its_build_in_one_line(
        requires: str, tmp_path: Path) -> None:
    """Held (with a note): the lock judges each interpreter as X.Y (3.13.0), so a version
    whose Requires-Python admits 3.13.0 alone is taken; the build judges the pinned
    interpreter (3.13.5), which it excludes, and that node fails in one line saying so
    (nothing is built with an interpreter its metadata excludes)."""
    assert _python_refusal(requires, ("3.11", "3.13")) is None
    settings = factories.settings(tmp_path, build_interpreters=("3.11", "3.13"))
    found = _variants(settings, {"3.13": python("3.13.5")})
    node = Node("odd", "1.0", "runtime", locked("odd", "1.0"), static=[])
    with pytest.raises(BuildError) as caught:
        found.first(node, requires)
    assert "no configured interpreter that can be had admits" in caught.value.message
    assert found.skipped["odd==1.0 [cp313]"].endswith("excludes CPython 3.13.5")


@pytest.mark.parametrize("requires", ["!=3.13.*", "<3.12", ">=3.11,<3.11", "===3.11"])
def test_a_build_tool_must_admit_every_configured_interpreter(requires: str) -> None:
    """Held: a build tool version one configured interpreter is left out of is passed over
    (its one locked version serves every interpreter's builds)."""
    why = _python_refusal(requires, ("3.11", "3.13"), every="a build tool")
    assert why is not None and "a build tool serves every configured interpreter" in why


# -- markers under the interpreter set ------------------------------------------------------


def test_markers_under_the_interpreter_set(tmp_path: Path) -> None:
    """Held: a requirement is followed when its marker holds under one configured
    interpreter, and not when it holds under none (PyPy, Windows, Python 2, a full
    version past X.Y.0); a marker no environment can evaluate is a one-line LockError,
    not a traceback, under the set as under 3.11 alone."""
    both = marker_environments(factories.settings(tmp_path, build_interpreters=("3.11",
                                                                                 "3.13")))
    lines = ["a; python_version >= '3.13'", "b; implementation_name == 'pypy'",
             "c; platform_python_implementation == 'PyPy'",
             "d; sys_platform == 'win32' and python_version >= '3.13'",
             "e; python_version < '3'", "f; python_full_version >= '3.13.1'",
             "g; extra == 'x' and python_version >= '3.13'"]
    assert [r.name for r in parse_requirements(lines, both, "app 1.0")] == ["a"]
    assert [r.name for r in parse_requirements(lines, both, "app 1.0", ["x"])] == ["a", "g"]
    assert parse_requirements(lines, both[:1], "app 1.0") == []
    for bad in ("h; python_version ~= '3'", "i; platform_machine ~= 'x86'"):
        with pytest.raises(LockError, match="cannot be evaluated") as caught:
            parse_requirements([bad], both, "app 1.0")
        assert "\n" not in caught.value.message


# -- which interpreter builds, and what the index is then told ------------------------------


def _variants(settings: Any, pythons: dict[str, Interpreter]) -> variants.Variants:
    def interpreter(pin: InterpreterPin) -> Interpreter:
        if pin.version not in pythons:
            raise BuildError(f"CPython {pin.version} cannot be had here")
        return pythons[pin.version]

    return variants.Variants(settings, interpreters.select(settings), interpreter, {}, {},
                             {}, lambda exc: exc.message)


def test_a_pure_wheel_that_claims_3_11_after_3_11_was_skipped_is_refused(
        fake: Fake) -> None:
    """Broke: the first build moves to 3.13 because the sdist's PKG-INFO excludes 3.11;
    its backend writes a wheel that says no Requires-Python (or one admitting 3.11), the
    pure wheel was collected and published, and the index (which reads the wheel's
    METADATA) offered 3.11 users a wheel no 3.11 build made while the run said 3.11 did
    not build it. Fixed: a shared (pure/abi3) first wheel whose Requires-Python admits a
    configured interpreter its sdist's excludes fails that node in one line; it is not a
    record, and what needs it fails (not built with it)."""
    fake.kinds = {"liar": "pure", "app": "pure"}
    fake.sdist_requires = {"liar": ">=3.12"}
    fake.requires_python = {"liar": ">=3.8"}
    outcome = _run(fake, {"liar": [], "app": ["liar"]})
    assert "liar-1.0-py3-none-any.whl" not in [r.wheel_filename for r in outcome.records]
    why = outcome.failed["liar==1.0"]
    assert "admits CPython 3.11" in why and ">=3.12" in why and "\n" not in why
    assert "app==1.0" in outcome.failed and "app" not in fake.first


def test_a_pure_wheel_saying_nothing_is_refused_as_well(fake: Fake) -> None:
    """Broke (the same class): a wheel with no Requires-Python at all."""
    fake.kinds = {"liar": "abi3"}
    fake.sdist_requires = {"liar": ">=3.12"}
    outcome = _run(fake, {"liar": []})
    assert outcome.records == []
    assert "says Requires-Python nothing" in outcome.failed["liar==1.0"]


def test_a_3_11_pure_wheel_that_claims_3_13_its_sdist_excludes_is_refused(
        fake: Fake) -> None:
    """Broke (the same class, the other way): the sdist says <3.13, 3.11 builds it, its
    pure wheel says nothing; the index would serve it to 3.13. Refused."""
    fake.kinds = {"old": "pure"}
    fake.sdist_requires = {"old": "<3.13"}
    outcome = _run(fake, {"old": []})
    assert outcome.records == [] and "admits CPython 3.13" in outcome.failed["old==1.0"]


def test_an_honest_wheel_built_that_way_is_collected(fake: Fake) -> None:
    """Held: the same wheel saying what its sdist says is collected and shared."""
    fake.kinds = {"honest": "pure"}
    fake.sdist_requires = {"honest": ">=3.12"}
    fake.requires_python = {"honest": ">= 3.12"}  # spelled otherwise: the same set
    outcome = _run(fake, {"honest": []})
    assert [r.wheel_filename for r in outcome.records] == ["honest-1.0-py3-none-any.whl"]
    assert outcome.failed == {}


def test_a_native_wheel_gets_no_variant_its_sdist_excludes(
        fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: variants were judged by the first wheel's Requires-Python alone, so a
    native wheel saying nothing got a 3.14 variant although its sdist says <3.14 (the
    interpreters a component is built for came from whichever metadata said more).
    Fixed: both must admit an interpreter; 3.14 is skipped and said."""
    monkeypatch.setattr(executor.Session, "interpreter",
                        lambda self, pin: python("3.14.0" if pin.version == "3.14"
                                                 else "3.13.5"))
    fake.kinds = {"ext": "native"}
    fake.sdist_requires = {"ext": "<3.14"}
    outcome = _run(fake, {"ext": []})
    assert [r.wheel_filename for r in outcome.records] == [
        NATIVE.format(name="ext", tag="cp311"), NATIVE.format(name="ext", tag="cp313")]
    assert outcome.skipped == {"ext==1.0 [cp314]": "Requires-Python <3.14 excludes "
                                                   "CPython 3.14.0"}


def test_odd_sdist_requires_python_text(tmp_path: Path) -> None:
    """Held: two Requires-Python headers (the first is read), a PKG-INFO that differs from
    pyproject (PKG-INFO is read), a folded or CR-split value, an unreadable one and control
    characters: the first build's choice is one of the configured interpreters or a
    one-line failure, and every reason said is one printable line."""
    two = factories.sdist(tmp_path / "a", "m", "1.0", files={
        "PKG-INFO": "Metadata-Version: 2.1\nName: m\nVersion: 1.0\nRequires-Python: >=3.12\n"
                    "Requires-Python: <3.0\n",
        "pyproject.toml": '[project]\nname = "m"\nrequires-python = "<3.0"\n'})
    assert variants.sdist_requires_python(two) == ">=3.12"
    settings = factories.settings(tmp_path, build_interpreters=("3.11", "3.13"))
    for requires in (">=3.12\n\t,<3.14", "garbage\x1b[2J", "<3.0", ">=3.12\r\x1b]0;x\x07"):
        found = _variants(settings, {"3.13": python("3.13.5")})
        node = Node("m", "1.0", "runtime", locked("m", "1.0"), static=[])
        try:
            chosen = found.first(node, requires)
        except BuildError as exc:
            assert exc.message == one_line(exc.message, 1000)
        else:
            assert chosen is not None and chosen.tag == "cp313"
        assert all(why.isprintable() for why in [*found.skipped.values(),
                                                 *found.failed.values()])


# -- the background preparation ----------------------------------------------------------


def test_an_interpreter_preparation_that_crashes_fails_its_builds_in_one_line(
        fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: a bug in making an interpreter (a RuntimeError, not a FactoryError) fails the
    builds that need it, each in one line; the image's builds stand; the run ends. Broke:
    a component whose sdist excludes 3.11 then failed with 'no configured interpreter
    that can be had admits its Requires-Python >=3.12; hint: add one it admits', hiding
    that 3.13 (which admits it) could not be prepared, and why. Said now."""
    def crash(self: executor.Session, pin: InterpreterPin) -> Interpreter:
        raise RuntimeError("boom\nTraceback (most recent call last):")

    monkeypatch.setattr(executor.Session, "interpreter", crash)
    fake.kinds = {"ext": "native", "new": "pure"}
    fake.sdist_requires = {"new": ">=3.12"}
    outcome = _run(fake, {"ext": [], "new": []})
    assert [r.wheel_filename for r in outcome.records] == [NATIVE.format(name="ext",
                                                                         tag="cp311")]
    assert set(outcome.failed) == {"ext==1.0 [cp313]", "ext==1.0 [cp314]", "new==1.0",
                                   "new==1.0 [cp313]", "new==1.0 [cp314]"}
    assert all("\n" not in why for why in outcome.failed.values())
    # the node no interpreter could build says why (not only "add one it admits")
    assert "CPython 3.13 could not be prepared: RuntimeError" in outcome.failed["new==1.0"]
    assert "make that interpreter available" in outcome.failed["new==1.0"]


# -- the ticket's variant flag -----------------------------------------------------------


@pytest.mark.parametrize("flag", ["true", 1, None, [True], {"variant": True}])
def test_a_variant_flag_other_than_json_true_or_false_is_refused(
        honest: Honest, flag: Any) -> None:
    """Held: only JSON true/false is a flag (1, "true", null ... refused as malformed)."""
    import json

    _for_cp313(honest)
    raw = json.loads(honest.ticket.to_bytes())
    raw["variant"] = flag
    with pytest.raises(Exception, match="malformed"):
        type(honest.ticket).from_bytes(json.dumps(raw).encode())


def test_a_first_build_ticket_answered_with_another_interpreters_native_wheel(
        honest: Honest) -> None:
    """Held: a first build on cp313 (variant false) may give pure or abi3 wheels, but a
    native wheel of cp314 or cp311 (what a variant-style answer for another interpreter
    gives) is refused before anything is placed; a variant answered with a pure wheel
    (a first-build-style answer) is refused too."""
    from tests.test_attack_issue21b import CP313

    for variant, name in ((False, "alpha-1.0-cp314-cp314-manylinux_2_17_x86_64.whl"),
                          (False, "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
                          (True, "alpha-1.0-py3-none-any.whl"),
                          (True, "alpha-1.0-cp39-abi3-manylinux_2_17_x86_64.whl")):
        _for_cp313(honest, variant=variant)
        with pytest.raises(Exception):  # noqa: B017,PT011 - TicketRefused or IntegrityError
            honest.collect(honest.result(wheel_name=name,
                                         builder_settings={"interpreter": CP313.describe()}))
        assert name not in _placed(honest)


@pytest.fixture
def honest(tmp_path: Path) -> Honest:
    return Honest(tmp_path)


# -- the per-host lock ---------------------------------------------------------------------


def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "factory" / "locks"


def test_a_locks_directory_that_is_a_link_is_refused(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: O_NOFOLLOW guarded the lock file only; a locks directory replaced by a link
    (to a directory another user holds) was followed. Refused in one line."""
    locks = _cache(tmp_path, monkeypatch)
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir(mode=0o700)
    locks.parent.mkdir(parents=True)
    locks.symlink_to(elsewhere)
    with pytest.raises(FileSystemError, match="is a symbolic link"), hostlock.host_lock("x"):
        pass
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_locks_directory_others_may_write_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int) -> None:
    """Broke: a locks directory another user could write (made before, or an XDG_CACHE_HOME
    on a shared path) was used: they could hold every lock or swap its file. Refused."""
    locks = _cache(tmp_path, monkeypatch)
    locks.mkdir(parents=True)
    locks.chmod(mode)
    with pytest.raises(FileSystemError, match="writable by others"), hostlock.host_lock("x"):
        pass


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory away")
def test_a_locks_directory_of_another_user_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: a locks directory (or its parent) owned by another user was used. Refused."""
    locks = _cache(tmp_path, monkeypatch)
    locks.mkdir(parents=True, mode=0o700)
    os.chown(locks.parent, 4242, 4242)
    with pytest.raises(FileSystemError, match="belongs to uid 4242"), hostlock.host_lock("x"):
        pass
    os.chown(locks.parent, 0, 0)
    os.chown(locks, 4242, 4242)
    with pytest.raises(FileSystemError, match="belongs to uid 4242"), hostlock.host_lock("x"):
        pass


@pytest.mark.parametrize("kind", ["directory", "fifo", "dangling link"])
def test_a_lock_path_that_is_not_a_file_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Broke: a directory at the lock's path raised IsADirectoryError (a traceback), a
    dangling link ELOOP; a FIFO was opened and locked. Each is a one-line refusal now."""
    locks = _cache(tmp_path, monkeypatch)
    locks.mkdir(parents=True, mode=0o700)
    path = locks / "x.lock"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileSystemError) as caught, hostlock.host_lock("x"):
        pass
    assert "\n" not in caught.value.message
    assert not (tmp_path / "nowhere").exists()


def test_a_relative_xdg_cache_home_is_ignored(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: a relative XDG_CACHE_HOME put the locks under wherever the run started (two
    runs from two directories did not see each other's lock). The XDG spec has it
    ignored: ~/.cache is used."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "cache")
    with hostlock.host_lock("x"):
        pass
    assert not (tmp_path / "cache").exists()
    made = tmp_path / "home" / ".cache" / "factory" / "locks" / "x.lock"
    assert made.is_file() and stat.S_IMODE(made.stat().st_mode) == 0o600


def test_a_private_cache_behind_a_link_still_works(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: ~/.cache that is a link to a private directory (common) is fine, and a lock
    name with slashes stays one file in the locks directory."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "cache").symlink_to(real)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with hostlock.host_lock("../../evil/x"):
        pass
    assert [p.name for p in (real / "factory" / "locks").iterdir()] == [".._.._evil_x.lock"]


def test_an_interpreter_ready_just_after_the_loop_looked_leaves_nothing_unbuilt(
        fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: the loop asked what is ready (a component only 3.13 admits waited: its
    interpreter was still being made), then whether the preparation was done; when it
    finished in between, nothing was running and it was done, so the run ended with that
    component neither built nor failed (a green run missing a component, and the
    variants of native wheels never judged). Forced here without timing: the stand-in
    preparation is released by the first ready() that finds nothing to do, which then
    waits for it to finish. Fixed: whether it is done is read before what is ready, and
    whatever is left unbuilt at the end fails in one line."""
    release = threading.Event()

    def interpreter(self: executor.Session, pin: InterpreterPin) -> Interpreter:
        release.wait(60)
        return python({"3.13": "3.13.5"}.get(pin.version, pin.version + ".0"))

    original = executor._Executor.ready

    def ready(self: executor._Executor, running: set[str]) -> list[Node]:
        found = original(self, running)
        if not found and not running and not release.is_set():
            release.set()
            preparing = self.session._preparing
            assert preparing is not None
            preparing.result(60)  # it finishes before the loop looks at it
        return found

    monkeypatch.setattr(executor.Session, "interpreter", interpreter)
    monkeypatch.setattr(executor._Executor, "ready", ready)
    fake.kinds = {"new": "native"}
    fake.sdist_requires = {"new": ">=3.12,<3.14"}
    fake.requires_python = {"new": ">=3.12,<3.14"}
    outcome = _run(fake, {"new": []})
    assert release.is_set()
    built = {r.wheel_filename for r in outcome.records}
    assert NATIVE.format(name="new", tag="cp313") in built or "new==1.0" in outcome.failed
    assert NATIVE.format(name="new", tag="cp313") in built


def test_whatever_a_run_ends_without_building_fails_in_one_line(
        fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke (the class of the above): a node or variant left waiting when the loop ends
    (whatever kept it waiting) was in neither the records nor the failures, so the run
    looked complete. Now each such one fails, saying what it waited for."""
    original = executor._Executor._tools_for_first

    def stuck(self: executor._Executor, node: Node) -> bool:
        return False if node.name == "stuck" else original(self, node)

    monkeypatch.setattr(executor._Executor, "_tools_for_first", stuck)
    fake.kinds = {"stuck": "pure", "app": "pure"}
    outcome = _run(fake, {"stuck": [], "app": ["stuck"], "free": []})
    assert [r.wheel_filename for r in outcome.records] == ["free-1.0-py3-none-any.whl"]
    assert outcome.failed == {
        "app==1.0": "not built: the run ended while it waited for stuck==1.0",
        "stuck==1.0": "not built: the run ended while it waited for an interpreter or a "
                      "build requirement"}


def test_the_first_builds_interpreter_is_read_from_a_sdist_not_cached_yet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: a sdist the fetch stage had not put in the cache (a build tool a named
    build lacks, a cache cleared meanwhile) was taken to admit every interpreter: 3.11
    built a version whose PKG-INFO excludes it, and its wheel was held to no sdist
    Requires-Python. Now the verified sdist is fetched (as the build fetches it) and
    read."""
    settings = factories.settings(tmp_path, build_interpreters=("3.11", "3.13"))
    made = factories.sdist(tmp_path / "upstream", "late", "1.0", files={
        "PKG-INFO": "Metadata-Version: 2.1\nName: late\nVersion: 1.0\n"
                    "Requires-Python: >=3.12\n"})
    fetched: list[str] = []

    def fetch(settings: Any, sdist: Any, *args: Any, **kwargs: Any) -> Path:
        fetched.append(sdist.filename)
        return made

    monkeypatch.setattr(executor.cache, "fetch", fetch)
    factories.recipe(settings.root, "late")
    session = executor.Session(settings, Lock([]))
    assert session.requires_python(locked("late", "1.0")) == ">=3.12"
    assert fetched == ["late-1.0.tar.gz"]


def test_a_build_tools_own_dependency_keeps_a_version_every_interpreter_admits(
        project: Any, upstream: LocalUpstream) -> None:
    """Broke, fixed since (factory.lock.resolve.serve_every_interpreter): a build tool
    must admit every configured interpreter (its one version serves every interpreter's
    builds), but a runtime recipe it requires is installed into those builds too, and took
    the newest version any interpreter admits: helper 2.0 (>=3.12) alone was locked, so
    with 3.13 configured 3.11 no longer built anything whose backend needs helper (with
    3.11 alone, helper 1.0 is locked). A hostile helper release took 3.11's wheels away.
    Now helper 1.0 is locked beside it for the build environments."""
    upstream.add("backend", "1.0.0", build_requires=[], backend="x", requires=["helper"])
    factories.recipe(project.root, "backend", 'kind = "build-tool"\n')
    upstream.add("helper", "1.0.0", build_requires=[], backend="x")
    upstream.add("helper", "2.0.0", build_requires=[], backend="x", requires_python=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    upstream.add("demo", "1.0.0", build_requires=["backend"], backend="backend")
    factories.recipe(project.root, "demo")
    lock, _ = lock_stage(replace(project, build_interpreters=("3.11", "3.13")))
    assert "1.0.0" in [c.version for c in lock.components if c.key == "helper"]


def test_a_variant_ticket_for_the_image_python_is_refused_by_the_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: a ticket that says variant for cp311 (the image's own python3, which no pin
    carries, with some tree's digest) is refused in one line; the worker never builds
    with a tree the ticket names for an interpreter it has no pin of."""
    from types import SimpleNamespace

    from factory.build import ticket as tickets
    from tests.test_attack_issue21b import CP313, TREE

    settings = factories.settings(tmp_path)
    monkeypatch.setattr(tickets, "held_image", lambda *a: SimpleNamespace(id="sha256:x"))
    monkeypatch.setattr(interpreters, "usable", lambda *a: CP313)
    base = Honest(tmp_path / "w").ticket
    with pytest.raises(tickets.TicketRefused) as caught:
        tickets.ticket_interpreter(settings, replace(base, interpreter_tag="cp311",
                                                     interpreter_tree_sha256=TREE,
                                                     variant=True))
    assert "\n" not in caught.value.message
