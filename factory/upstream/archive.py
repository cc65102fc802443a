"""Safe unpacking and reading of an sdist.

Unpacking refuses absolute paths, ``..``, links that leave the tree, device
files, setuid/setgid bits, control characters in names, and members or totals
above limits; it unpacks into a temp directory and renames it into place, so a
half-unpacked tree is never visible. Whatever modes the archive gives its members,
the tree is left readable by the build user (another uid than the one that
unpacked it): directories 0755, files 0644, or 0755 when any exec bit was set.
Reading one root member (PKG-INFO, pyproject.toml) needs no unpacking, and refuses
an archive that holds two.
Where verified sdists are kept, and what is remembered of them: ``cache``.
"""

from __future__ import annotations

import email.parser
import errno
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import tomllib
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from factory.errors import RecipeError, UnsafeArchiveError


@dataclass(frozen=True)
class Limits:
    max_members: int = 20_000
    max_member_bytes: int = 256 << 20
    max_total_bytes: int = 1 << 30
    max_ratio: int = 200  # uncompressed / compressed, beyond which we call it a bomb
    max_depth: int = 256  # path components: far below what recursive walks (rglob, rmtree) hit


DEFAULT_LIMITS = Limits()
MAX_MEMBER_READ = 4 << 20  # one root member read whole (PKG-INFO, pyproject.toml)
# The modes every unpacked tree has, whatever the archive said (0600, 0000, 0700 dirs
# ...): the build runs as another uid (factory.build.image.BUILD_UID) and must read
# every file and enter every directory; no special bit and no write bit for others.
DIR_MODE = 0o755
FILE_MODE = 0o644
EXEC_MODE = 0o755


# -- safe unpacking -------------------------------------------------------------

# Characters that make a name display as something it is not (a reviewer reads
# "evil\u202egnp.py" as "evilyp.png"): bidirectional overrides, isolates and marks.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _check_name(archive: str, name: str) -> PurePosixPath:
    if not name.strip("/"):
        raise UnsafeArchiveError(f"{archive}: a member has an empty name")
    if any(unicodedata.category(c) == "Cc" or c in _BIDI for c in name):  # C0, DEL, C1
        raise UnsafeArchiveError(f"{archive}: member {name!r} has control characters in its name")
    if any(unicodedata.category(c) == "Cs" for c in name):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is not valid UTF-8")
    if "\\" in name:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has a backslash in its name")
    if any(part == "." for part in name.rstrip("/").split("/")[1:]):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has '.' components")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out with '..'")
    return path


def _link_stays_inside(member: PurePosixPath, target: str) -> bool:
    if target.startswith("/"):
        return False
    depth = len(member.parent.parts)
    for part in PurePosixPath(target).parts:
        depth = depth - 1 if part == ".." else depth + (part != ".")
        if depth < 0:
            return False
    return True


def _check_tar_member(archive: str, info: tarfile.TarInfo, seen: set[str],
                      setid_ok: bool = False) -> None:
    path = _check_name(archive, info.name)
    if info.isdev() or info.isfifo() or not (info.isfile() or info.isdir() or info.issym()
                                             or info.islnk()):
        raise UnsafeArchiveError(f"{archive}: member {info.name!r} is a device or special file")
    # A setgid directory is how many hosts pack (protobuf's sdist has one) and its mode
    # is normalised away on unpack; a setuid/setgid file has no business in a source.
    if info.mode & (stat.S_ISUID | stat.S_ISGID) and not info.isdir() and not setid_ok:
        raise UnsafeArchiveError(f"{archive}: member {info.name!r} has a setuid/setgid bit")
    if (info.issym() or info.islnk()) and not info.linkname:
        raise UnsafeArchiveError(f"{archive}: link {info.name!r} has no target")
    if info.issym() and not _link_stays_inside(path, info.linkname):
        raise UnsafeArchiveError(
            f"{archive}: symlink {info.name!r} -> {info.linkname!r} points outside the tree")
    if info.islnk():
        _check_name(archive, info.linkname)
        if info.linkname not in seen:
            raise UnsafeArchiveError(
                f"{archive}: hardlink {info.name!r} -> {info.linkname!r} has no target in the tree")


def _check_layout(archive: str, members: list[tarfile.TarInfo]) -> None:
    """Nothing is unpacked through a link, whatever tarfile's filter concludes.

    tarfile's "data" filter judges each member by ``os.path.realpath`` of where it
    would land; before Python 3.11.13 (CVE-2025-4517, -4138, -4330) a chain of links
    whose resolved path passes PATH_MAX makes realpath stop resolving, and a member
    named through the chain was written anywhere on the host. So, on the names alone
    (normalised as the kernel reads them): no member lies under a link or a file of
    the archive, no name is both a directory and something else (a directory member
    over a link would chmod the link's target), and a hard link names a regular file
    of the archive (``os.link`` follows a symbolic link)."""
    kinds: dict[tuple[str, ...], tarfile.TarInfo] = {}
    for info in members:
        key = PurePosixPath(info.name).parts
        former = kinds.get(key)
        if former is not None and not (former.isdir() and info.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {info.name!r} appears twice")
        kinds[key] = info
    for info in members:
        key = PurePosixPath(info.name).parts
        for end in range(1, len(key)):
            above = kinds.get(key[:end])
            if above is not None and not above.isdir():
                raise UnsafeArchiveError(
                    f"{archive}: member {info.name[:200]!r} lies under the "
                    f"{'link' if above.issym() or above.islnk() else 'file'} "
                    f"{'/'.join(key[:end])[:200]!r}")
        if info.islnk():
            target = kinds.get(PurePosixPath(info.linkname).parts)
            if target is None or not target.isreg() or target is info:
                raise UnsafeArchiveError(f"{archive}: hardlink {info.name[:200]!r} -> "
                                         f"{info.linkname[:200]!r} names no regular file")


def _check_depth(archive: str, name: str, limits: Limits) -> None:
    if name.strip("/").count("/") >= limits.max_depth:
        raise UnsafeArchiveError(f"{archive}: member {name[:100]!r}... is nested more than "
                                 f"{limits.max_depth} levels deep")


def _check_totals(archive: str, count: int, total: int, compressed: int, limits: Limits) -> None:
    if count > limits.max_members:
        raise UnsafeArchiveError(f"{archive}: {count} members, over the limit of "
                                 f"{limits.max_members}")
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(f"{archive}: unpacks to {total} bytes, over the limit of "
                                 f"{limits.max_total_bytes}")
    if compressed > 0 and total > 1 << 20 and total / compressed > limits.max_ratio:
        raise UnsafeArchiveError(f"{archive}: expands {total // compressed}x; a decompression bomb")


def _extract_tar(archive: Path, into: Path, limits: Limits, setid_ok: bool = False) -> None:
    name = archive.name
    try:
        with tarfile.open(archive) as tar:
            members: list[tarfile.TarInfo] = []
            seen: set[str] = set()
            files: set[str] = set()
            total = 0
            for info in tar:  # streaming: a huge member count is caught before it is all read
                _check_tar_member(name, info, seen, setid_ok)
                _check_depth(name, info.name, limits)
                _check_unique(name, info.name, info.isdir(), files)
                if info.size > limits.max_member_bytes:
                    raise UnsafeArchiveError(f"{name}: member {info.name!r} is {info.size} bytes, "
                                             f"over the limit of {limits.max_member_bytes}")
                total += info.size
                seen.add(info.name)
                members.append(info)
                _check_totals(name, len(members), total, archive.stat().st_size, limits)
            _check_layout(name, members)
            tar.extractall(into, members=members, filter=_tar_filter)
    except tarfile.FilterError as exc:
        raise UnsafeArchiveError(f"{name}: {exc}") from None
    except RecursionError:  # tarfile's link fallback can chase a link into itself
        raise UnsafeArchiveError(f"{name}: a link in it refers to itself") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError,
            OverflowError) as exc:  # OverflowError: a PAX time os.utime cannot set
        if isinstance(exc, UnsafeArchiveError):
            raise
        raise UnsafeArchiveError(f"{name}: not a readable archive ({exc})") from None


def _tar_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's "data" filter, then the tree's fixed modes (``file_mode``, DIR_MODE)."""
    executable = member.mode & 0o111  # read first: the data filter drops what the owner lacks
    member = tarfile.data_filter(member, dest)
    if member.isdir():
        return member.replace(mode=DIR_MODE, deep=False)
    if member.isreg() or member.islnk():
        return member.replace(mode=EXEC_MODE if executable else FILE_MODE, deep=False)
    return member


def file_mode(mode: int) -> int:
    """The mode a regular file gets in an unpacked tree: executable or not, nothing else."""
    return EXEC_MODE if mode & 0o111 else FILE_MODE


def normalise_modes(tree: Path) -> None:
    """Give every directory under ``tree`` (itself included) DIR_MODE and every regular
    file ``file_mode``; links are left alone (their mode means nothing, and chmod would
    follow them). A directory is made enterable before it is walked, so this works
    as any user on a tree whose directories were 0000. Idempotent; raises OSError."""
    if not stat.S_ISDIR(os.lstat(tree).st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(tree))
    _set_mode(str(tree), os.lstat(tree).st_mode)
    pending = [str(tree)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if _set_mode(entry.path, entry.stat(follow_symlinks=False).st_mode):
                    pending.append(entry.path)


def _set_mode(path: str, mode: int) -> bool:
    """Fix one entry's mode; True when it is a directory (to be walked)."""
    is_dir = stat.S_ISDIR(mode)
    if not is_dir and not stat.S_ISREG(mode):
        return False
    wanted = DIR_MODE if is_dir else file_mode(mode)
    if stat.S_IMODE(mode) != wanted:
        os.chmod(path, wanted)
    return is_dir


def _check_unique(archive: str, member: str, is_dir: bool, files: set[str]) -> None:
    """A second member of one name: what a reader of the archive finds first is not
    what unpacking leaves (the last one wins), so the archive says two things."""
    if is_dir:
        return
    if member in files:
        raise UnsafeArchiveError(f"{archive}: member {member!r} appears twice")
    files.add(member)


def _extract_zip(archive: Path, into: Path, limits: Limits) -> None:
    name = archive.name
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            total = 0
            files: set[str] = set()
            for info in infos:
                _check_name(name, info.filename)
                _check_depth(name, info.filename, limits)
                _check_unique(name, info.filename, info.is_dir(), files)
                kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip says nothing
                if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                    raise UnsafeArchiveError(f"{name}: member {info.filename!r} is a link or "
                                             "special file")
                if info.file_size > limits.max_member_bytes:
                    raise UnsafeArchiveError(f"{name}: member {info.filename!r} is too large")
                total += info.file_size
            _check_totals(name, len(infos), total, archive.stat().st_size, limits)
            for info in infos:
                target = into / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as dst:
                    # The header's size may lie: copy at most what it declared.
                    shutil.copyfileobj(_Bounded(src, info.file_size), dst)  # type: ignore[misc]
                target.chmod(file_mode(info.external_attr >> 16))  # its exec bit, nothing else
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError,
            NotImplementedError) as exc:  # what a corrupt, encrypted or exotic zip raises
        raise UnsafeArchiveError(f"{name}: not a readable zip ({exc})") from None


class _Bounded:
    def __init__(self, raw: object, limit: int) -> None:
        self.raw, self.left = raw, limit

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(65536 if size < 0 else size)  # type: ignore[attr-defined]
        self.left -= len(data)
        if self.left < 0:
            raise UnsafeArchiveError("a zip member is larger than its header says")
        return data


def extract(sdist: Path, dest: Path, limits: Limits = DEFAULT_LIMITS) -> Path:
    """Unpack ``sdist`` safely as ``dest``; return the source tree root inside it."""
    if dest.exists():
        return _tree_root(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-unpack-", dir=dest.parent))
    try:
        if sdist.name.endswith(".zip"):
            _extract_zip(sdist, staging, limits)
        else:
            _extract_tar(sdist, staging, limits)
        _check_links_resolve_inside(sdist.name, staging)
        normalise_modes(staging)  # also the directories no member named, made under umask
        try:
            staging.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another process unpacked it first
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _tree_root(dest)


def unpack_tar(archive: Path, into: Path, limits: Limits) -> None:
    """An uncompressed or compressed tar that a build made (not an sdist: no top
    directory is expected) unpacked into ``into`` (made here) with every check an sdist
    gets: names, kinds, links, layout, bounds, links resolved, modes normalised (a
    set-id bit is cleared rather than refused). UnsafeArchiveError otherwise (``into``
    may then hold part of it)."""
    into.mkdir()
    _extract_tar(archive, into, limits, setid_ok=True)
    try:
        _check_links_resolve_inside(archive.name, into)
        normalise_modes(into)
    except OSError as exc:
        raise UnsafeArchiveError(f"{archive.name}: {type(exc).__name__}: "
                                 f"{str(exc)[:200]}") from None


def _check_links_resolve_inside(archive: str, tree: Path) -> None:
    """Each link was checked alone; a chain of them (``x -> y/..``, ``y -> .``) can
    still leave the tree, so check where every link really ends up."""
    top = os.path.realpath(tree)
    for path in tree.rglob("*"):
        if path.is_symlink():
            real = os.path.realpath(path)
            if real != top and not real.startswith(top + os.sep):
                raise UnsafeArchiveError(f"{archive}: symlink {path.relative_to(tree)} "
                                         "points outside the tree through other links")


def _tree_root(dest: Path) -> Path:
    entries = [p for p in dest.iterdir()]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest


def read_member(sdist: Path, relative: str, max_bytes: int = MAX_MEMBER_READ) -> bytes | None:
    """One file from the sdist's root directory (e.g. pyproject.toml), without unpacking;
    None when absent or over ``max_bytes``. Two of them (under one or two top
    directories) are refused: which one a reader sees must not be a matter of order."""
    found = _members(sdist, lambda parts: len(parts) == 2 and parts[1] == relative, max_bytes)
    if len(found) > 1:
        raise UnsafeArchiveError(f"{sdist.name}: {len(found)} root members named {relative}",
                                 "the sdist says two things about itself; it is refused")
    return found[0] if found else None


def _members(sdist: Path, wanted: Callable[[tuple[str, ...]], bool],
             max_bytes: int) -> list[bytes | None]:
    """The bytes of every member (not a directory) whose path parts ``wanted`` accepts,
    without unpacking: None for one over ``max_bytes`` or that is not a regular file."""
    found: list[bytes | None] = []
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as zf:
            for zinfo in zf.infolist():
                if wanted(PurePosixPath(zinfo.filename).parts) and not zinfo.is_dir():
                    found.append(zf.read(zinfo) if zinfo.file_size <= max_bytes else None)
    else:
        with tarfile.open(sdist) as tar:
            for tinfo in tar:
                if wanted(PurePosixPath(tinfo.name).parts) and not tinfo.isdir():
                    handle = tar.extractfile(tinfo) if tinfo.isfile() else None
                    found.append(handle.read() if handle and tinfo.size <= max_bytes else None)
    return found


@dataclass(frozen=True)
class SdistMetadata:
    name: str
    version: str
    license_expression: str | None
    license: str | None
    classifiers: tuple[str, ...]
    requires_dist: tuple[str, ...]
    summary: str = ""
    # Fields the sdist leaves to the build (PEP 643 ``Dynamic``): its Requires-Dist is
    # then not the wheel's.
    dynamic: tuple[str, ...] = ()


MemberReader = Callable[[Path, str], bytes | None]


def read_metadata(sdist: Path, read: MemberReader = read_member) -> SdistMetadata | None:
    """Core metadata from PKG-INFO, or from pyproject's [project] (a git archive has no
    PKG-INFO); None when neither says anything. ``read`` reads a root member (the
    cache passes one that remembers)."""
    raw = read(sdist, "PKG-INFO")
    if raw is None:
        return parse_pyproject(read(sdist, "pyproject.toml"))
    meta = parse_pkg_info(raw)
    if not meta.requires_dist and "requires-dist" not in meta.dynamic:
        # setuptools before 36.7 (2017) kept them in egg-info's requires.txt only
        egg = read_egg_requires(sdist, meta.name)
        if egg is not None:
            meta = replace(meta, requires_dist=requires_txt(egg))
    return meta


def read_egg_requires(sdist: Path, project: str,
                      max_bytes: int = MAX_MEMBER_READ) -> bytes | None:
    """An old setuptools sdist's ``<project>.egg-info/requires.txt``, at its root or under
    ``src/``; None when absent, over ``max_bytes``, or when more than one claims the
    project (which one a reader sees must not be a matter of order)."""
    key = canonicalize_name(project) if project else ""

    def wanted(parts: tuple[str, ...]) -> bool:
        egg = parts[-2] if len(parts) >= 3 else ""
        return (parts[-1:] == ("requires.txt",) and len(parts) in (3, 4)
                and (len(parts) == 3 or parts[1] == "src") and egg.endswith(".egg-info")
                and canonicalize_name(egg.removesuffix(".egg-info")) == key)

    found = _members(sdist, wanted, max_bytes)
    return found[0] if len(found) == 1 else None


def requires_txt(raw: bytes) -> tuple[str, ...]:
    """egg-info requires.txt as Requires-Dist lines: a ``[extra]``, ``[extra:marker]`` or
    ``[:marker]`` section puts its condition on each line under it. A line or section that
    does not parse is left out (the wheel's own is then checked against less, never more)."""
    lines: list[str] = []
    condition: str | None = ""
    for text in raw.decode("utf-8", "replace").splitlines()[:MAX_REQUIRES_LINES]:
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("[") and text.endswith("]"):
            condition = _section_marker(text[1:-1])
            continue
        if condition is None:
            continue  # under a section that did not parse
        line = text if not condition else _with_marker(text, condition)
        try:
            Requirement(line)
        except InvalidRequirement:
            continue
        lines.append(line)
    return tuple(dict.fromkeys(lines))


MAX_REQUIRES_LINES = 2000


def _section_marker(section: str) -> str | None:
    """A requires.txt section as a marker ("" for none), or None when it does not parse."""
    extra, _, marker = section.partition(":")
    parts = []
    if extra.strip():
        try:
            parts.append(f'extra == "{canonicalize_name(extra.strip())}"')
            Marker(parts[-1])
        except InvalidMarker:
            return None
    if marker.strip():
        try:
            Marker(marker.strip())
        except InvalidMarker:
            return None
        parts.append(f"({marker.strip()})")
    return " and ".join(parts)


def _with_marker(line: str, condition: str) -> str:
    requirement, sep, own = line.partition(";")
    return f"{requirement.strip()}; ({own.strip()}) and {condition}" if sep and own.strip() \
        else f"{requirement.strip()}; {condition}"


def parse_pkg_info(raw: bytes) -> SdistMetadata:
    msg = email.parser.BytesHeaderParser().parsebytes(raw)
    return SdistMetadata(
        name=str(msg.get("Name", "")),
        version=str(msg.get("Version", "")),
        license_expression=msg.get("License-Expression"),
        license=msg.get("License"),
        classifiers=tuple(msg.get_all("Classifier") or ()),
        requires_dist=tuple(msg.get_all("Requires-Dist") or ()),
        summary=str(msg.get("Summary", "")),
        dynamic=tuple(str(d).lower() for d in msg.get_all("Dynamic") or ()),
    )


def parse_pyproject(raw: bytes | None) -> SdistMetadata | None:
    """Core metadata from a pyproject.toml's [project] table; None when it has none."""
    try:
        project = tomllib.loads(raw.decode("utf-8")).get("project") if raw else None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(project, dict):
        return None
    licence = project.get("license")
    expression = licence if isinstance(licence, str) else None  # PEP 639
    text = licence.get("text") if isinstance(licence, dict) else None
    dynamic = project.get("dependencies") is None and "dependencies" in project.get("dynamic", [])
    return SdistMetadata(
        name=str(project.get("name", "")), version=str(project.get("version", "")),
        license_expression=expression, license=text,
        classifiers=tuple(project.get("classifiers", ())),
        requires_dist=() if dynamic else tuple(project.get("dependencies", ())),
        summary=str(project.get("description", "")),
        dynamic=("requires-dist",) if dynamic else ())


def apply_patches(tree: Path, patches: list[Path]) -> None:
    """Apply recipe patches (``-p1``) to an unpacked tree; any failure is an error."""
    for patch in patches:
        result = subprocess.run(["patch", "-p1", "--batch", "--forward", "-i", str(patch)],
                                cwd=tree, capture_output=True, text=True)
        if result.returncode != 0:
            raise RecipeError(f"patch {patch.name} does not apply: "
                                     f"{(result.stdout + result.stderr).strip().splitlines()[-1:]}",
                                     "refresh the patch against the locked version")
