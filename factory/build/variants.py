"""Builds per interpreter: which wheels are bound to one CPython, which CPythons a
Requires-Python admits, and the variants of a native node the executor schedules.

A node's first wheel is built with the builder image's 3.11, or, when its sdist's
Requires-Python excludes 3.11 (or a build requirement is not built for 3.11, its own
Requires-Python excluding it), with the first configured interpreter that admits it
(``Variants.first``; 3.11 is then skipped, and said). When that wheel is bound to its
interpreter's ABI (``cp311-cp311``: native, not abi3), the node is built again for
each other configured interpreter its Requires-Python admits: a ``Variant``. A build
is ready once every build tool of its environment stands built for its interpreter
too: the shared wheel of a pure or abi3 tool, a native tool's own build for it.

    variants = Variants(settings, interpreters.select(settings), session.interpreter,
                        done, taken, failed, reason)
    python = variants.first(node, sdist_requires_python(sdist))  # None: the image's
    variants.plan(node, record)         # after the node's first wheel
    for variant in variants.ready(running): ...
"""

from __future__ import annotations

import email.parser
import tomllib
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from factory.build import interpreters
from factory.build.interpreters import Interpreter, InterpreterPin
from factory.build.job import BuildInputs
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.errors import BuildError, FactoryError, one_line
from factory.plan import Node
from factory.upstream import cache


def interpreter_bound(filename: str) -> bool:
    """True when a wheel is bound to one interpreter's ABI (cp311-cp311): built again per
    interpreter. Pure (py3-none-any), abi3 and ``none`` wheels fit them all: built once."""
    return any(tag.abi not in ("none", "abi3") for tag in parse_wheel_filename(filename)[3])


MAX_METADATA = 1 << 20  # bytes of a wheel's METADATA read for its Requires-Python


def requires_python(wheel: Path) -> str | None:
    """The wheel's Requires-Python (None when it says none or cannot be read): from its
    own ``<name>-<version>.dist-info/METADATA`` (the file name's), not another
    dist-info a build put first to steer which interpreters get a build."""
    try:
        project, version = parse_wheel_filename(wheel.name)[:2]
        with zipfile.ZipFile(wheel) as archive:
            name = next((i for i in archive.infolist()
                         if _own_metadata(i.filename, project, version)), None)
            if name is None or name.file_size > MAX_METADATA:
                return None
            text = archive.read(name).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return None
    found = email.parser.HeaderParser().parsestr(text).get("Requires-Python")
    return str(found).strip() if found else None


def sdist_requires_python(sdist: Path) -> str | None:
    """A cached sdist's Requires-Python: its PKG-INFO's, or (a git archive has none) its
    pyproject's ``[project] requires-python``; None when it says none or cannot be read
    (every interpreter is then taken to admit it, the image's python3 first)."""
    raw = cache.read_member(sdist, "PKG-INFO")
    if raw is not None:
        found = email.parser.HeaderParser().parsestr(raw.decode("utf-8", "replace")).get(
            "Requires-Python")
        return str(found).strip() if found else None
    raw = cache.read_member(sdist, "pyproject.toml")
    try:
        project = tomllib.loads(raw.decode("utf-8")).get("project") if raw else None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    found = project.get("requires-python") if isinstance(project, dict) else None
    return found.strip() if isinstance(found, str) and found.strip() else None


def _own_metadata(member: str, project: str, version: Version) -> bool:
    """Whether ``member`` is ``<project>-<version>.dist-info/METADATA`` (either spelled as
    its backend wrote it: MarkupSafe-3.0.3 for markupsafe 3.0.3)."""
    directory, slash, leaf = member.partition("/")
    if leaf != "METADATA" or not slash or not directory.endswith(".dist-info"):
        return False
    name, _, text = directory.removesuffix(".dist-info").rpartition("-")
    try:
        return canonicalize_name(name) == project and Version(text) == version
    except InvalidVersion:
        return False


def admits(requires: str | None, version: str) -> str | None:
    """Why ``requires`` (a Requires-Python) excludes CPython ``version``; None: admitted."""
    if not requires:
        return None
    try:
        if SpecifierSet(requires).contains(version, prereleases=True):
            return None
    except InvalidSpecifier:
        return f"its Requires-Python {one_line(requires, 80)!r} cannot be read"
    return f"Requires-Python {one_line(requires, 80)} excludes CPython {version}"


@dataclass(frozen=True)
class Variant:
    """A native node built again for another interpreter."""

    node: Node
    python: Interpreter

    @property
    def id(self) -> str:
        return variant_id(self.node.id, self.python.tag)


def variant_id(nid: str, tag: str) -> str:
    """``markupsafe==3.0.3 [cp313]``: how outcomes, failures and skips name a variant."""
    return f"{nid} [{tag}]"


def same_interpreter(record: BuildRecord, inputs: BuildInputs) -> bool:
    """The record's build ran the interpreter ``inputs`` names (a record that names none
    was made before interpreters were recorded: the image's own python3)."""
    recorded = record.builder_settings.get("interpreter")
    if not isinstance(recorded, dict):
        return inputs.interpreter is None
    if inputs.interpreter is None:
        return recorded.get("tag") == interpreters.SYSTEM_TAG and "tree_sha256" not in recorded
    return (recorded.get("tag") == inputs.interpreter.tag
            and recorded.get("tree_sha256") == inputs.interpreter.tree_sha256)


class NotReady(Exception):
    """The interpreter is still being prepared (built in the background): what needs it
    waits, and is looked at again once it is ready."""


class Variants:
    """The variants of one run. ``done``, ``taken`` and ``failed`` are the executor's own
    (first wheels built, upstream wheels taken, node or variant id -> why it failed):
    read to decide what a variant installs, and ``failed`` written for a variant that
    cannot be built (``reason`` makes an error that one line). ``interpreter`` gives a
    pin's interpreter, raises the FactoryError of one that cannot be had, or NotReady
    while it is being prepared."""

    def __init__(self, settings: Settings, pins: list[InterpreterPin],
                 interpreter: Callable[[InterpreterPin], Interpreter],
                 done: Mapping[str, BuildRecord], taken: Mapping[str, Path],
                 failed: dict[str, str], reason: Callable[[FactoryError], str]) -> None:
        self.settings, self.pins, self.interpreter = settings, pins, interpreter
        self.done, self.taken, self.failed, self.reason = done, taken, failed, reason
        self.firsts: dict[str, Interpreter | None] = {}  # node id -> its first build's
        # node id -> its sdist's Requires-Python (what first() judged): its wheels are held
        # to it too, so a wheel that claims more cannot reach an interpreter it excludes
        self.sdist_requires: dict[str, str | None] = {}
        # node id -> why the image's python3 cannot build it although its Requires-Python
        # admits it (a build requirement that is not built for it)
        self.off_system: dict[str, str] = {}
        # native first wheels whose variants are still to be judged (an interpreter was
        # not ready): node id -> (it, its wheel's and its sdist's Requires-Python)
        self.pending: dict[str, tuple[Node, tuple[str | None, ...]]] = {}
        self.planned: dict[str, Variant] = {}  # variant id -> it
        self.built: dict[str, BuildRecord] = {}
        self.skipped: dict[str, str] = {}  # variant id -> why it is not built

    def first(self, node: Node, requires: str | None) -> Interpreter | None:
        """The interpreter of ``node``'s first build: the image's python3 (None) when its
        sdist's Requires-Python admits the image's python_version, else the first
        configured one that admits it (3.11 and those before it are skipped or failed, as
        variants are). BuildError when none that can be had admits it; NotReady while
        one it must judge is being prepared (asked again later)."""
        if node.id in self.firsts:
            return self.firsts[node.id]
        self.sdist_requires[node.id] = requires
        found = None
        why = self.off_system.get(node.id) or (
            admits(requires, self.settings.python_version) if self.pins else None)
        if why is not None:
            self.skipped[variant_id(node.id, interpreters.SYSTEM_TAG)] = why
            found = next((p for p in (self._judge(node, pin, requires) for pin in self.pins)
                          if p is not None), None)
            if found is None:
                # one that could not be had is the likelier cause: said, not guessed at
                lost = next((self.failed[v] for v in (variant_id(node.id, p.tag)
                                                      for p in self.pins)
                             if v in self.failed), None)
                raise BuildError(f"{node.name} {node.version}: no configured interpreter that "
                                 f"can be had admits its Requires-Python "
                                 f"{one_line(str(requires), 80)}"
                                 + (f" ({one_line(lost, 200)})" if lost else ""),
                                 "make that interpreter available, or add one it admits to "
                                 "[build] interpreters" if lost else
                                 "add one it admits to [build] interpreters")
        self.firsts[node.id] = found
        return found

    def move_off_system(self, node: Node, why: str) -> None:
        """The image's python3 cannot build ``node`` after all (``why``): its first
        build is decided again (``first``), among the other interpreters."""
        self.off_system[node.id] = why
        self.firsts.pop(node.id, None)

    def _judge(self, node: Node, pin: InterpreterPin, *requires: str | None,
               ) -> Interpreter | None:
        """``pin``'s interpreter when every one of ``requires`` admits it; else None, and
        why said."""
        vid = variant_id(node.id, pin.tag)
        if vid in self.skipped or vid in self.failed:  # judged before it waited
            return None
        try:
            python = self.interpreter(pin)
        except FactoryError as exc:
            self.failed[vid] = f"CPython {pin.version} cannot be had: {self.reason(exc)}"
            return None
        why = next((w for w in (admits(r, python.version) for r in requires) if w), None)
        if why is not None:
            self.skipped[vid] = why
            return None
        return python

    def tag(self, nid: str) -> str:
        """The interpreter tag of ``nid``'s first build (cp311: the image's python3)."""
        python = self.firsts.get(nid)
        return python.tag if python is not None else interpreters.SYSTEM_TAG

    def plan(self, node: Node, record: BuildRecord) -> None:
        """After ``node``'s first wheel: its variants, when that wheel is native (for
        the interpreters its first build did not already judge, and that both its
        wheel's and its sdist's Requires-Python admit). BuildError when a shared (pure
        or abi3) wheel claims an interpreter its sdist excludes."""
        if not self.pins:
            return
        wheel = requires_python(self.settings.wheels_dir / record.wheel_filename)
        sdist = self.sdist_requires.get(node.id)
        if not interpreter_bound(record.wheel_filename):
            self._check_shared(node, record.wheel_filename, wheel, sdist)
            return
        self.pending[node.id] = (node, (wheel, sdist))
        self._plan_pending()

    def _check_shared(self, node: Node, filename: str, wheel: str | None,
                      sdist: str | None) -> None:
        """A pure or abi3 wheel is offered to every interpreter its own Requires-Python
        admits: one its sdist's excludes (3.11 skipped, a wheel that says nothing) would
        be served a wheel no build of it made, so the wheel is refused (the index reads
        the wheel's, the lock and the build the sdist's)."""
        claimed = [p for p in self.settings.pythons
                   if admits(sdist, p) is not None and admits(wheel, p) is None]
        if claimed:
            raise BuildError(
                f"{node.name} {node.version}: its wheel {one_line(filename, 120)} says "
                f"Requires-Python {one_line(wheel or 'nothing', 80)}, which admits CPython "
                f"{', '.join(claimed)}; its sdist's {one_line(str(sdist), 80)} excludes it",
                "the index would offer that wheel to an interpreter no build of it ran; "
                "report the mismatched metadata upstream or pin another version")

    def _plan_pending(self) -> None:
        """Judge the variants still pending, up to an interpreter not ready yet."""
        for nid, (node, requires) in list(self.pending.items()):
            try:
                for pin in self.pins:
                    vid = variant_id(nid, pin.tag)
                    if pin.tag == self.tag(nid) or vid in self.planned:
                        continue
                    python = self._judge(node, pin, *requires)
                    if python is not None:
                        self.planned[vid] = Variant(node, python)
            except NotReady:
                continue
            del self.pending[nid]

    def wheel(self, nid: str, tag: str) -> Path | str | None:
        """The wheel of ``nid`` a variant for ``tag`` installs: the shared one (pure,
        abi3), its own variant's; None while that one is not built; a str: why none."""
        if nid in self.taken:
            wheel = self.taken[nid]
            fits = {t.interpreter for t in parse_wheel_filename(wheel.name)[3]}
            return (f"the pinned upstream wheel {wheel.name} is not for {tag}"
                    if interpreter_bound(wheel.name) and tag not in fits else wheel)
        if nid in self.failed:
            return f"{nid} failed"
        if nid not in self.done:
            return None
        vid = variant_id(nid, tag)
        if vid in self.skipped:  # its Requires-Python excludes that interpreter, shared or not
            return f"{vid} was not built ({self.skipped[vid]})"
        record = self.done[nid]
        if not interpreter_bound(record.wheel_filename) or self.tag(nid) == tag:
            return self.settings.wheels_dir / record.wheel_filename
        if vid in self.built:
            return self.settings.wheels_dir / self.built[vid].wheel_filename
        if vid in self.failed:
            return f"{vid} was not built"
        return None if vid in self.planned else f"{vid} is not planned"

    def ready(self, running: set[str]) -> list[Variant]:
        """The variants whose tools all stand built for their interpreter; a variant whose
        tool's variant failed fails."""
        self._plan_pending()
        out = []
        for vid, variant in sorted(self.planned.items()):
            if vid in self.built or vid in self.failed or vid in running:
                continue
            try:
                deps = variant.node.deps_for(variant.python.tag)
            except FactoryError as exc:  # this interpreter's environment cannot be planned
                self.failed[vid] = self.reason(exc)
                continue
            found = [self.wheel(d, variant.python.tag) for d in deps]
            bad = [w for w in found if isinstance(w, str)]
            if bad:
                self.failed[vid] = "a build requirement for this interpreter: " + bad[0]
            elif all(w is not None for w in found):
                out.append(variant)
        return out

    def records(self, order: list[str]) -> list[BuildRecord]:
        """The variants built, in plan order, each node's in the order of the pins."""
        return [self.built[v] for n in order for v in
                (variant_id(n, pin.tag) for pin in self.pins) if v in self.built]
