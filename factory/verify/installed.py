"""An installed distribution against the wheel the index published.

An installer copies the wheel's files and writes its own RECORD (the wheel's
entries plus INSTALLER, REQUESTED, byte code and entry-point scripts). The
distribution is the published one when every file the wheel's RECORD hashes is
installed with that hash, both in the installed RECORD and on disk, and the
installed RECORD names no other file outside what installers add.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import stat
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name, parse_wheel_filename

from factory._internal.atomic import sha256_file
from factory.verify.view import Published

# Files an installer adds to a dist-info directory (PEP 376, PEP 610, PEP 627).
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD", "uv_cache.json",
                    "uv_build.json"}


@dataclass(frozen=True)
class InstalledDist:
    name: str  # normalized
    version: str
    dist_info: Path
    site: Path  # the directory RECORD paths are relative to
    problem: str | None = None

    @property
    def tags(self) -> set[str]:
        text = read_small(self.dist_info / "WHEEL", MAX_METADATA)
        if text is None:
            return set()
        parsed = HeaderParser().parsestr(text)
        return set(parsed.get_all("Tag") or [])


def site_packages(venv: Path) -> list[Path]:
    found = sorted(venv.glob("lib/python*/site-packages")) + sorted(
        venv.glob("lib64/python*/site-packages"))
    found += [p for p in (venv / "Lib" / "site-packages", venv) if p.is_dir()]
    unique: list[Path] = []
    for path in found:
        if path.resolve() not in [u.resolve() for u in unique]:
            unique.append(path)
    return unique


def find_distributions(venv: Path) -> list[InstalledDist]:
    dists: dict[str, InstalledDist] = {}
    for site in site_packages(venv):
        for info in sorted(site.glob("*.dist-info")) + sorted(site.glob("*.egg-info")):
            dist = _read(info, site)
            if dist is not None:
                dists.setdefault(f"{dist.name}=={dist.version}", dist)
    return sorted(dists.values(), key=lambda d: d.name)


MAX_METADATA = 1 << 20  # METADATA/PKG-INFO: its headers are at the top
MAX_RECORD = 64 << 20


def read_small(path: Path, limit: int) -> str | None:
    """A dist-info file's text: a regular file (opened without blocking: a FIFO or
    device is not read), at most ``limit`` bytes read; None when it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit).decode("utf-8", errors="replace")


def _read(info: Path, site: Path) -> InstalledDist | None:
    meta = info / ("METADATA" if info.suffix == ".dist-info" else "PKG-INFO")
    text = read_small(meta, MAX_METADATA)
    name, version = None, None
    if text is not None:
        headers = HeaderParser().parsestr(text)
        name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        if info.suffix != ".dist-info":
            return None
        # A dist-info without readable metadata is not skipped (its files would go
        # unchecked): named from its directory, it fails.
        stem = info.name[:-len(".dist-info")]
        name, _, version = stem.partition("-")
        return InstalledDist(str(canonicalize_name(name or stem)), version or "?", info, site,
                             f"{info.name} has no readable METADATA (Name and Version): "
                             "what it installed cannot be checked")
    problem = None
    if info.suffix == ".egg-info":
        problem = f"{name} {version} is installed as an egg, not from a wheel of the index"
    elif not (info / "RECORD").is_file():
        problem = f"{name} {version} has no RECORD: what it installed cannot be checked"
    return InstalledDist(str(canonicalize_name(name)), version, info, site, problem)


def pick_wheel(dist: InstalledDist, candidates: list[Published]) -> Published | None:
    """The published wheel this distribution was installed from (by its tags)."""
    if not candidates:
        return None
    tags = dist.tags
    for item in candidates:
        wheel_tags = {str(t) for t in parse_wheel_filename(item.filename)[3]}
        if tags & wheel_tags:
            return item
    return candidates[0]


# -- comparing RECORDs -----------------------------------------------------------------
def parse_record(text: str) -> dict[str, str]:
    """path -> "sha256=<urlsafe b64>" (empty when the entry has no hash)."""
    rows = csv.reader(io.StringIO(text))
    return {row[0]: (row[1] if len(row) > 1 else "") for row in rows if row}


def wheel_record(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")
                 and n.count("/") == 1]
        if len(names) != 1:
            raise ValueError(f"{wheel.name} has {len(names)} .dist-info/RECORD files")
        return parse_record(archive.read(names[0]).decode("utf-8"))


def _installed_path(wheel_path: str) -> str | None:
    """Where an installer puts a wheel member, relative to site-packages; None if elsewhere."""
    parts = PurePosixPath(wheel_path).parts
    if parts and parts[0].endswith(".data") and len(parts) > 2:
        if parts[1] in ("purelib", "platlib"):
            return "/".join(parts[2:])
        return None  # scripts (rewritten shebangs), headers, data: outside site-packages
    return wheel_path


def _inside(path: Path, site: Path) -> bool:
    """``path`` is a file of ``site`` itself: no link (of it or a folder on the way)
    leads out. An installer writes files, never links (a wheel holds none)."""
    return not path.is_symlink() and path.resolve().is_relative_to(site)


def _file_hash(path: Path) -> str:
    digest = bytes.fromhex(sha256_file(path))
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _installer_added(path: str, dist_info: str) -> bool:
    pure = PurePosixPath(path)
    if pure.parts and pure.parts[0] == "..":
        return True  # entry-point scripts, in the venv's bin/
    if "__pycache__" in pure.parts and pure.suffix == ".pyc":
        return True
    return pure.parent.name == dist_info and pure.name in _INSTALLER_FILES


def compare(dist: InstalledDist, wheel: Path) -> list[str]:
    """Differences between the installed files and the wheel; empty when it is the wheel."""
    expected = wheel_record(wheel)
    text = read_small(dist.dist_info / "RECORD", MAX_RECORD + 1)
    if text is None or len(text) > MAX_RECORD:
        return [f"{dist.dist_info.name}/RECORD is not a regular file of at most "
                f"{MAX_RECORD} bytes"]
    installed = parse_record(text)
    dist_info = dist.dist_info.name
    site = dist.site.resolve()
    problems: list[str] = []
    wanted: set[str] = set()
    for wheel_path, digest in sorted(expected.items()):
        target = _installed_path(wheel_path)
        if target is None or not digest or target.endswith(".dist-info/RECORD"):
            continue
        wanted.add(target)
        if installed.get(target) != digest:
            problems.append(f"{target}: not installed as published"
                            if target not in installed else f"{target}: RECORD hash differs")
            continue
        on_disk = dist.site / target
        if not on_disk.is_file():
            problems.append(f"{target}: missing on disk")
        elif not _inside(on_disk, site):  # a link out: its bytes can change after the check
            problems.append(f"{target}: a symbolic link out of site-packages, not an installed "
                            "file")
        elif _file_hash(on_disk) != digest:
            problems.append(f"{target}: changed after installation")
    for path in sorted(set(installed) - wanted):
        if not _installer_added(path, dist_info) and path not in expected:
            problems.append(f"{path}: installed but not in the published wheel")
    return problems
