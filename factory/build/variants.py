"""Builds per interpreter: which wheels are bound to one CPython, which CPythons a
Requires-Python admits, and the variants of a native node the executor schedules.

A node's first wheel is built with the builder image's 3.11. When that wheel is bound
to its interpreter's ABI (``cp311-cp311``: native, not abi3), the node is built again
for each other configured interpreter its Requires-Python admits: a ``Variant``. A
variant is ready once every build tool of its environment stands built for that
interpreter too: the shared wheel of a pure or abi3 tool, a native tool's own variant.

    variants = Variants(settings, interpreters.select(settings), session.interpreter,
                        done, taken, failed, reason)
    variants.plan(node, record)         # after the node's first wheel
    for variant in variants.ready(running): ...
"""

from __future__ import annotations

import email.parser
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
from factory.errors import FactoryError, one_line
from factory.plan import Node


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


class Variants:
    """The variants of one run. ``done``, ``taken`` and ``failed`` are the executor's own
    (first wheels built, upstream wheels taken, node or variant id -> why it failed):
    read to decide what a variant installs, and ``failed`` written for a variant that
    cannot be built (``reason`` makes an error that one line)."""

    def __init__(self, settings: Settings, pins: list[InterpreterPin],
                 interpreter: Callable[[InterpreterPin], Interpreter],
                 done: Mapping[str, BuildRecord], taken: Mapping[str, Path],
                 failed: dict[str, str], reason: Callable[[FactoryError], str]) -> None:
        self.settings, self.pins, self.interpreter = settings, pins, interpreter
        self.done, self.taken, self.failed, self.reason = done, taken, failed, reason
        self.planned: dict[str, Variant] = {}  # variant id -> it
        self.built: dict[str, BuildRecord] = {}
        self.skipped: dict[str, str] = {}  # variant id -> why it is not built

    def plan(self, node: Node, record: BuildRecord) -> None:
        """After ``node``'s first wheel: its variants, when that wheel is native."""
        if not self.pins or not interpreter_bound(record.wheel_filename):
            return
        requires = requires_python(self.settings.wheels_dir / record.wheel_filename)
        for pin in self.pins:
            vid = variant_id(node.id, pin.tag)
            try:
                python = self.interpreter(pin)
            except FactoryError as exc:
                self.failed[vid] = f"CPython {pin.version} cannot be had: {self.reason(exc)}"
                continue
            why = admits(requires, python.version)
            if why is not None:
                self.skipped[vid] = why
            else:
                self.planned[vid] = Variant(node, python)

    def wheel(self, nid: str, tag: str) -> Path | str | None:
        """The wheel of ``nid`` a variant for ``tag`` installs: the shared one (pure,
        abi3), its own variant's; None while that one is not built; a str: why none."""
        if nid in self.taken:
            wheel = self.taken[nid]
            return (f"the pinned upstream wheel {wheel.name} is not for {tag}"
                    if interpreter_bound(wheel.name) else wheel)
        if nid not in self.done:
            return None
        record = self.done[nid]
        if not interpreter_bound(record.wheel_filename):
            return self.settings.wheels_dir / record.wheel_filename
        vid = variant_id(nid, tag)
        if vid in self.built:
            return self.settings.wheels_dir / self.built[vid].wheel_filename
        if vid in self.failed or vid in self.skipped:
            return f"{vid} was not built"
        return None if vid in self.planned else f"{vid} is not planned"

    def ready(self, running: set[str]) -> list[Variant]:
        """The variants whose tools all stand built for their interpreter; a variant whose
        tool's variant failed fails."""
        out = []
        for vid, variant in sorted(self.planned.items()):
            if vid in self.built or vid in self.failed or vid in running:
                continue
            found = [self.wheel(d, variant.python.tag) for d in variant.node.deps]
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
