"""What a build environment is made of, decided on the host.

- the front-end kit: pyproject-hooks, packaging and installer, pure-Python
  build tools that the in-container driver runs from their verified source
  trees (so no binary wheel and no pip is needed to start the first build);
- the wheelhouse: a per-build directory holding exactly the build-tool wheels
  this build may install (factory-built, or recipe-allowed pinned upstream ones);
- the environment variables: fixed locale, time zone, hash seed and
  SOURCE_DATE_EPOCH, and nothing else from the host (no tokens, no proxies).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from factory.atomic import sha256_file
from factory.builders.record import InstalledTool

KIT_TOOLS = ("pyproject-hooks", "packaging", "installer")
BUILD_PATH = "/build/src"  # fixed, so paths baked into wheels never vary
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
