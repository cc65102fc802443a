"""Upstream's build backend: which backend version generated upstream's own wheel.

A pure wheel we build from the same sdist matches upstream's file for file only
when the same backend version wrote it: the backend names itself in
``*.dist-info/WHEEL`` (``Generator: hatchling 1.27.0``) and its version decides
the layout of licence files and METADATA. At lock time the resolver reads that
line from upstream's wheel of the pinned version (downloaded bounded by the
listing's size and sha256, into the content-addressed cache) and, when policy
allows that version of the backend, pins it for this one build
(``LockedComponent.backend``).

Upstream's wheel is upstream-controlled bytes: only one member is read, at most
``MAX_WHEEL_FILE`` bytes of it, and only its first ``Generator:`` line, cut at
``MAX_GENERATOR`` characters; a version that is not PEP 440 is no match.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from factory._internal.zipcount import too_large

MAX_WHEEL_BYTES = 64 << 20  # an upstream wheel larger than this is not read for its WHEEL
MAX_WHEEL_FILE = 16 << 10  # a WHEEL file is a few lines
MAX_MEMBERS = 100_000  # members of upstream's wheel (its end record, before zipfile parses)
MAX_GENERATOR = 200
MAX_REASON = 500
# Why a version locked before upstream's backend was matched keeps its build environment.
LOCKED_BEFORE = ("not matched: locked before upstream's backend was matched; it keeps the "
                 "build environment it was locked with (a published wheel keeps its bytes)")

# Generator text -> the project that must be pinned (a pure wheel's backends).
_GENERATORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"hatchling ([0-9][0-9A-Za-z.+!-]{0,60})"), "hatchling"),
    (re.compile(r"flit ([0-9][0-9A-Za-z.+!-]{0,60})"), "flit-core"),
    (re.compile(r"poetry-core ([0-9][0-9A-Za-z.+!-]{0,60})"), "poetry-core"),
    (re.compile(r"setuptools \(([0-9][0-9A-Za-z.+!-]{0,60})\)"), "setuptools"),
    (re.compile(r"bdist_wheel \(([0-9][0-9A-Za-z.+!-]{0,60})\)"), "wheel"),
    (re.compile(r"pdm-backend \(([0-9][0-9A-Za-z.+!-]{0,60})\)"), "pdm-backend"),
)
_NATIVE = re.compile(r"(maturin|scikit-build|meson|setuptools-rust)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Backend:
    """What upstream's wheel says generated it, and what this build does about it.

    ``generator``: the Generator value as read (cut, printable); ``pin``: the exact
    requirement added to this build (``hatchling==1.27.0``), None when not matched;
    ``reason``: why, in one line (goes into the divergence statement).
    """

    generator: str | None
    pin: str | None
    reason: str
    # upstream's pure wheel of the version (filename, url, sha256, size): what a published
    # wheel is compared with (factory.verify.equivalence); None when it has no digest
    wheel: dict[str, Any] | None = field(default=None, compare=True)

    def to_table(self) -> dict[str, Any]:
        table: dict[str, Any] = {"reason": self.reason}
        if self.generator is not None:
            table["generator"] = self.generator
        if self.pin is not None:
            table["pin"] = self.pin
        if self.wheel is not None:
            table["wheel"] = dict(self.wheel)
        return table


def clean(text: str, limit: int) -> str:
    """``text`` as one printable line of at most ``limit`` characters."""
    line = "".join(c if c.isprintable() else "?" for c in text.strip())
    return line[:limit]


def read_generator(data: bytes) -> str | None:
    """The first ``Generator:`` value of a WHEEL file's bytes, cleaned, or None."""
    text = data[:MAX_WHEEL_FILE].decode("utf-8", "replace")
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "generator":
            return clean(value, MAX_GENERATOR) or None
    return None


def wheel_generator(wheel: Path, project: str, version: str) -> str | None:
    """The Generator of ``wheel``'s own ``<name>-<version>.dist-info/WHEEL``: the member
    whose top directory is a dist-info of ``project`` (one level deep), at most
    MAX_WHEEL_FILE bytes of it. None when there is none or the file is not a zip."""
    key = canonicalize_name(project)
    try:
        with wheel.open("rb") as handle:
            if too_large(handle, MAX_MEMBERS) is not None:
                return None
            return _generator_in(handle, key)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError,
            NotImplementedError):
        return None


def _generator_in(handle: BinaryIO, key: str) -> str | None:
    with zipfile.ZipFile(handle) as archive:
        found = [i for i in archive.infolist() if i.filename.count("/") == 1
                 and i.filename.endswith(".dist-info/WHEEL")
                 and canonicalize_name(i.filename.split("-", 1)[0]) == key]
        if not found:
            return None
        info = sorted(found, key=lambda i: i.filename)[0]
        with archive.open(info) as member:
            return read_generator(member.read(MAX_WHEEL_FILE + 1))


def backend_of(generator: str) -> tuple[str, str] | str:
    """(project, version) of the backend a Generator names, or why there is none."""
    text = generator.strip()
    for pattern, project in _GENERATORS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        try:
            version = Version(match.group(1))
        except InvalidVersion:
            return f"the generator {text!r} names no PEP 440 version"
        return project, str(version)
    if _NATIVE.match(text):
        return f"the generator {text!r} is a native-extension backend"
    return f"unknown generator {text!r}"
