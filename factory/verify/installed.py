"""An installed distribution against the wheel the index published.

An installer copies the wheel's files and writes its own RECORD (the wheel's
entries plus INSTALLER, REQUESTED, byte code and entry-point scripts). The
distribution is the published one when every file the wheel's RECORD hashes is
installed with that hash, both in the installed RECORD and on disk, and the
installed RECORD names no other file outside what installers add.

What python runs must be what was checked: every dist-info is read (a name installed
twice fails, and, in a venv, one outside the site-packages its python imports from);
byte code beside a checked source must be a compile of it, and no extension module or
package of the source's name may be imported in its place.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import os
import posixpath
import re
import stat
import zipfile
from collections import Counter
from dataclasses import dataclass, replace
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
    """Every dist-info (and egg-info) found, none skipped: checking one copy of a name
    says nothing of another, and python imports only one. A name installed twice, or
    a dist-info outside the site-packages a venv's python imports from, carries a
    problem: the copy checked may not be the copy that runs."""
    found = [dist for site in site_packages(venv)
             for info in sorted(site.glob("*.dist-info")) + sorted(site.glob("*.egg-info"))
             if (dist := _read(info, site)) is not None]
    imported = imported_sites(venv)
    copies = Counter(d.name for d in found)
    placed = []
    for dist in found:
        problem = _outside(dist, venv, imported) if imported is not None else None
        if problem is None and copies[dist.name] > 1:
            problem = _twice(dist, venv, [d for d in found if d.name == dist.name])
        placed.append(replace(dist, problem=problem) if problem else dist)
    return sorted(placed, key=lambda d: (d.name, d.version, str(d.dist_info)))


_VERSION = re.compile(r"\s*(\d+)\.(\d+)")  # pyvenv.cfg's version(_info): X.Y of X.Y.Z


def imported_sites(venv: Path) -> tuple[list[Path], str] | None:
    """The site-packages a venv's python imports from, and what says so; None without
    a pyvenv.cfg (not a venv: every site-packages found counts). Told from the layout
    (lib/pythonX.Y[t]/site-packages, X.Y from pyvenv.cfg), never by running the venv's
    python: that would run the venv's own code (.pth files, sitecustomize) first."""
    text = read_small(venv / "pyvenv.cfg", MAX_METADATA)
    if text is None:
        return None
    if (venv / "Scripts").is_dir() and not (venv / "bin").is_dir():
        return [venv / "Lib" / "site-packages"], "Lib/site-packages (a Windows venv)"
    config = {key.strip().lower(): value.strip()
              for key, sep, value in (line.partition("=") for line in text.splitlines()) if sep}
    found = _VERSION.match(config.get("version_info") or config.get("version") or "")
    if found is None:
        return [], "a site-packages pyvenv.cfg settles (it names no Python version)"
    short = f"python{found[1]}.{found[2]}"
    said = f"pyvenv.cfg: Python {found[1]}.{found[2]}"
    # lib64 too (a platlibdir of lib64); "t": a free-threaded build's (abiflags unknown)
    plain, threaded = ([venv / lib / name / "site-packages" for lib in ("lib", "lib64")
                        if (venv / lib / name / "site-packages").is_dir()]
                       for name in (short, f"{short}t"))
    if plain and threaded:
        return [], (f"a site-packages pyvenv.cfg settles ({said}, but lib/{short} and "
                    f"lib/{short}t both hold one)")
    return plain or threaded, f"lib/{short}[t]/site-packages ({said})"


def _shown(path: Path, venv: Path) -> str:
    return str(path.relative_to(venv)) if path.is_relative_to(venv) else str(path)


def _outside(dist: InstalledDist, venv: Path, imported: tuple[list[Path], str]) -> str | None:
    sites, where = imported
    if dist.site.resolve() in {site.resolve() for site in sites}:
        return None
    return (f"{dist.name} {dist.version}: {_shown(dist.dist_info, venv)} is not in {where}, "
            "where the venv's python imports from: what it runs is another copy")


def _twice(dist: InstalledDist, venv: Path, copies: list[InstalledDist]) -> str:
    return (f"{dist.name} is installed {len(copies)} times ("
            + ", ".join(_shown(d.dist_info, venv) for d in copies[:5])
            + "): the copy python imports may not be the one checked")


MAX_METADATA = 1 << 20  # METADATA/PKG-INFO: its headers are at the top
MAX_RECORD = 64 << 20


def read_small(path: Path, limit: int) -> str | None:
    """A dist-info file's text: a regular file (opened without blocking: a FIFO or
    device is not read), at most ``limit`` bytes read; None when it is not one."""
    data = _read_bytes(path, limit)
    return None if data is None else data.decode("utf-8", errors="replace")


def _read_bytes(path: Path, limit: int) -> bytes | None:
    """At most ``limit`` bytes of a regular file; None when ``path`` is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit)


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
class RecordError(ValueError):
    """A RECORD that is not CSV (a field past csv's limit, a NUL before Python 3.11)."""


def parse_record(text: str) -> dict[str, str]:
    """path -> "sha256=<urlsafe b64>" (empty when the entry has no hash); RecordError
    when ``text`` is not CSV."""
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:  # a hostile installed RECORD: a problem, not a traceback
        raise RecordError(f"not CSV ({exc})") from None
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
    return pure.parent.name == dist_info and pure.name in _INSTALLER_FILES


def compare(dist: InstalledDist, wheel: Path) -> list[str]:
    """Differences between the installed files and the wheel; empty when it is the wheel."""
    expected = wheel_record(wheel)
    text = read_small(dist.dist_info / "RECORD", MAX_RECORD + 1)
    if text is None or len(text) > MAX_RECORD:
        return [f"{dist.dist_info.name}/RECORD is not a regular file of at most "
                f"{MAX_RECORD} bytes"]
    try:
        installed = parse_record(text)
    except RecordError as exc:
        return [f"{dist.dist_info.name}/RECORD is {exc}"]
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
        if _is_byte_code(path):
            continue  # read below, with the byte code on disk that no RECORD lists
        if not _installer_added(path, dist_info) and path not in expected:
            problems.append(f"{path}: installed but not in the published wheel")
    sources = {path for path in wanted if path.endswith(".py")}
    listed = {path for path in installed if _is_byte_code(path)}
    return (problems + byte_code_problems(dist.site, sources, listed)
            + _shadow_problems(dist.site, sources, wanted))


# -- what python runs in place of a checked source ------------------------------------------
_EXTENSIONS = (".so", ".pyd")  # extension modules: imported before a .py of their name


def _is_byte_code(path: str) -> bool:
    pure = PurePosixPath(path)
    return (pure.suffix == ".pyc" and pure.parent.name == "__pycache__"
            and ".." not in pure.parts and not pure.is_absolute())


def _source_of(pyc: str) -> str | None:
    """The source a __pycache__ file caches (any interpreter's tag); None if none."""
    try:
        return importlib.util.source_from_cache(pyc)
    except ValueError:
        return None


def _names_in(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries]
    except OSError:
        return []


def byte_code_problems(site: Path, sources: set[str], listed: set[str]) -> list[str]:
    """Byte code python may run for the checked ``sources``: each .pyc the installed
    RECORD lists (``listed``), and each in a __pycache__ beside a checked source (planted
    ones are listed nowhere). Each must be a compile of its checked source."""
    pycs, root = set(listed), site.resolve()
    for folder in {posixpath.dirname(source) for source in sources}:
        cached = (posixpath.join(folder, "__pycache__", name)
                  for name in _names_in(site / folder / "__pycache__") if name.endswith(".pyc"))
        pycs.update(pyc for pyc in cached if _source_of(pyc) in sources)
    problems = []
    for pyc in sorted(pycs):
        problem = _byte_code_problem(site, root, pyc, sources)
        if problem:
            problems.append(f"{pyc}: {problem}")
    return problems


def _byte_code_problem(site: Path, root: Path, pyc: str, sources: set[str]) -> str | None:
    source = _source_of(pyc)
    if source is None or source not in sources:
        return "byte code of no source the published wheel installs"
    path = site / pyc
    if not os.path.lexists(path):
        return None  # listed, then removed (a cleaned __pycache__): nothing to run
    if not _inside(path, root):
        return "a symbolic link, or reached through one: not byte code an installer wrote"
    header = _read_bytes(path, 16)
    if header is None or len(header) < 16:
        return "not a regular file with a byte code header"
    if not (site / source).is_file():
        return f"no source beside it ({source} is listed but missing)"
    return _header_problem(header, site / source)


def _header_problem(header: bytes, source: Path) -> str | None:
    """The PEP 552 header, as python's import reads it: byte code python runs without
    looking at the source (unchecked hash-based, or flags it does not know) is flagged.
    A header that does not match the source (another size or mtime, another source
    hash) is not: python compiles the source again and never runs that byte code (a
    venv copied without its mtimes would otherwise fail). What this leaves: byte code
    whose header matches the source (its size and mtime, or its hash) but holds other
    code runs unnoticed; comparing code would mean compiling every source with the
    venv's own Python (byte code differs between versions; marshal's output is not
    deterministic; unmarshalling hostile data is unsafe), so it is left out."""
    flags = int.from_bytes(header[4:8], "little")
    if flags & ~0b11:
        return "a byte code header with unknown flags"
    if flags & 0b01 and not flags & 0b10:
        return "unchecked hash-based byte code: python runs it whatever the source holds"
    return None


def _shadow_problems(site: Path, sources: set[str], wanted: set[str]) -> list[str]:
    """A module the wheel does not hold, named as a checked source, that python imports
    before it: an extension module beside it, or a package (with __init__) of its name."""
    stems_in: dict[str, set[str]] = {}
    for source in sources:
        stems_in.setdefault(posixpath.dirname(source), set()).add(posixpath.basename(source)[:-3])
    problems = []
    for folder, stems in sorted(stems_in.items()):
        for name in sorted(_names_in(site / folder)):
            path = posixpath.join(folder, name)
            stem = name.partition(".")[0]
            if stem in stems and name.endswith(_EXTENSIONS) and path not in wanted:
                problems.append(f"{path}: an extension module the wheel does not hold, "
                                f"imported instead of {stem}.py")
            elif (name in stems and name != "__init__" and (site / path).is_dir()
                  and any(n.startswith("__init__.") for n in _names_in(site / path))
                  and not any(w.startswith(f"{path}/__init__.") for w in wanted)):
                problems.append(f"{path}/: a package the wheel does not hold, imported "
                                f"instead of {name}.py")
    return problems
