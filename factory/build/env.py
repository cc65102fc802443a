"""What a build environment is made of, decided on the host.

- the front-end kit: pyproject-hooks, packaging and installer, pure-Python
  build tools that the in-container driver runs from their verified source
  trees (so no binary wheel and no pip is needed to start the first build);
- the wheelhouse: a per-build directory holding exactly the build-tool wheels
  this build may install (factory-built, or recipe-allowed pinned upstream ones);
- the environment variables: fixed locale, time zone, hash seed and
  SOURCE_DATE_EPOCH, and nothing else from the host (no tokens, no proxies);
- the build system: ``[build-system]`` of the source tree, read here on the host
  (never from what the build reports about itself) and handed to the driver.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from factory._internal.atomic import sha256_file
from factory.build.confined import Confined
from factory.build.record import InstalledTool
from factory.errors import BuildError, one_line

KIT_TOOLS = ("pyproject-hooks", "packaging", "installer")
BUILD_PATH = "/build/src"  # fixed, so paths baked into wheels never vary
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYPROJECT_LIMIT = 1 << 20  # bytes of pyproject.toml the host parses
# PEP 517: a tree without [build-system].build-backend is built the legacy setuptools way.
DEFAULT_BACKEND = "setuptools.build_meta:__legacy__"
DEFAULT_REQUIRES = ("setuptools>=40.8.0",)
MAX_REQUIREMENTS = 256  # requirement strings in one list
MAX_STRING = 1000  # characters in one requirement, backend name or path


@dataclass(frozen=True)
class KitPart:
    """One front-end library, run from source: ``root`` goes on sys.path."""

    name: str
    version: str
    filename: str  # the sdist it was unpacked from
    sha256: str
    root: Path

    def as_tool(self) -> InstalledTool:
        return InstalledTool(self.name, self.version, self.filename, self.sha256)


@dataclass(frozen=True)
class Kit:
    parts: tuple[KitPart, ...]

    def describe(self) -> list[dict[str, str]]:
        return [
            {"name": p.name, "version": p.version, "sdist": p.filename, "sha256": p.sha256,
             "used_as": "source tree on sys.path of the front end"}
            for p in self.parts
        ]


def import_root(tree: Path) -> Path:
    """The directory of a source tree that holds its importable package (src layout aware)."""
    src = tree / "src"
    return src if src.is_dir() else tree


def source_date_epoch(sdist: Path) -> int:
    """The newest member mtime of the sdist: stable for one sdist, meaningful to humans."""
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            stamps = [int(datetime(*i.date_time).timestamp()) for i in archive.infolist()]
    else:
        with tarfile.open(sdist) as archive:
            stamps = [int(m.mtime) for m in archive]
    # zip cannot store times before 1980; clamp so every backend accepts it.
    return max([315532800, *stamps])


def container_environment(epoch: int) -> dict[str, str]:
    """The complete environment of a build: nothing is inherited from the host."""
    return {
        "PATH": _PATH,
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "USER": "builder",
        "LOGNAME": "builder",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "SOURCE_DATE_EPOCH": str(epoch),
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def make_wheelhouse(directory: Path, wheels: list[Path]) -> list[InstalledTool]:
    """Fill ``directory`` with exactly ``wheels`` (hard links when possible)."""
    directory.mkdir(parents=True, exist_ok=True)
    tools = []
    seen: set[str] = set()
    for wheel in sorted(wheels, key=lambda p: p.name):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        if name in seen:
            raise ValueError(f"two wheels of {name} in one build environment")
        seen.add(name)
        target = directory / wheel.name
        try:
            os.link(wheel, target)
        except OSError:
            shutil.copyfile(wheel, target)
        tools.append(InstalledTool(str(name), str(version), wheel.name, sha256_file(wheel)))
    return tools


def expected_inventory(tools: list[InstalledTool]) -> set[tuple[str, str]]:
    return {(canonicalize_name(t.name), t.version) for t in tools}


def inventory_difference(held: set[tuple[str, str]], wanted: set[tuple[str, str]],
                         shown: int = 5) -> str:
    """How an environment's inventory differs from what was mounted, in a few words
    (a report may list thousands of made-up names: only ``shown`` of each are named)."""
    def names(pairs: set[tuple[str, str]]) -> str:
        listed = [one_line(f"{n}=={v}", 80) for n, v in sorted(pairs)[:shown]]
        more = f" and {len(pairs) - shown} more" if len(pairs) > shown else ""
        return ", ".join(listed) + more
    parts = [f"{label} {names(pairs)}" for label, pairs in
             (("also", held - wanted), ("lacking", wanted - held)) if pairs]
    return "; ".join(parts) or "the same"


@dataclass(frozen=True)
class BuildSystem:
    """The PEP 517 build system of a source tree, as the host read it."""

    backend: str
    requires: tuple[str, ...]
    backend_path: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The driver's input, and the form the record keeps."""
        return {"build-backend": self.backend, "requires": list(self.requires),
                "backend-path": list(self.backend_path) if self.backend_path is not None
                else None}


def build_system(tree: Path, what: str) -> BuildSystem:
    """``[build-system]`` of the source tree at ``tree`` (PEP 517/518 defaults applied).

    Read on the host, bounded, without following links: it is what the driver is
    told to run and what provenance says was run.
    """
    source = Confined(tree, what)
    raw = source.read("pyproject.toml", PYPROJECT_LIMIT)
    try:
        data = tomllib.loads(raw.decode("utf-8")) if raw is not None else {}
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"{what}: its pyproject.toml is not valid TOML ({exc})",
                         "the sdist cannot be built by any PEP 517 front end; report it "
                         "upstream or pin another version") from None
    system = data.get("build-system", {})
    if not isinstance(system, dict):
        raise _invalid(what, "[build-system] is not a table")
    backend = system.get("build-backend")
    if backend is None:  # PEP 517: fall back to setuptools' legacy backend
        requires = system.get("requires", list(DEFAULT_REQUIRES))
        return BuildSystem(DEFAULT_BACKEND, _strings(what, "requires", requires, True))
    if not isinstance(backend, str) or not backend or len(backend) > MAX_STRING:
        raise _invalid(what, "build-backend is not a backend name")
    path = system.get("backend-path")
    return BuildSystem(backend, _strings(what, "requires", system.get("requires", []), True),
                       None if path is None else _strings(what, "backend-path", path, False))


def _strings(what: str, key: str, value: object, requirements: bool) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_REQUIREMENTS or not all(
            isinstance(v, str) and len(v) <= MAX_STRING for v in value):
        raise _invalid(what, f"{key} is not a list of at most {MAX_REQUIREMENTS} strings")
    for text in value if requirements else ():
        try:
            Requirement(text)
        except InvalidRequirement:
            raise _invalid(what, f"{key} holds an invalid requirement "
                                 f"{one_line(repr(text), 120)}") from None
    return tuple(value)


def _invalid(what: str, why: str) -> BuildError:
    return BuildError(f"{what}: [build-system] in its pyproject.toml is invalid: {why}",
                      "the sdist cannot be built as it is; report it upstream or pin another "
                      "version")
