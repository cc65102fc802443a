"""Rule 5 of admission: what the wheel holds was built here, not copied from the sdist.

The sdist's prebuilt files (compiled objects, archives; by magic bytes and by
suffix) need a recipe allowance (``allow_prebuilt`` globs); a wheel file that is
a byte copy of one, or of a member of an archive the sdist ships, needs the
same allowance; a wheel that *is* a wheel the sdist ships is always refused.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from glob import escape as literal
from pathlib import Path, PurePosixPath
from typing import IO

from factory._internal.atomic import sha256_file
from factory.admission.model import (
    ALLOW_PREBUILT,
    DEFAULT_LIMITS,
    AdmissionError,
    Allowance,
    Limits,
    Member,
    binary_kind,
    hash_stream,
    is_dir,
)
from factory.admission.wheel import WheelContents, check_totals
from factory.recipes import Recipe


@dataclass
class SdistScan:
    """What the sdist ships: its files and the members of the archives in it."""

    files: dict[str, Member] = field(default_factory=dict)  # path below the top directory
    prebuilt: dict[str, str] = field(default_factory=dict)  # path -> why it is prebuilt
    # digest -> sdist path of the archive it came out of (zips: every member; tars: binaries)
    archived: dict[str, str] = field(default_factory=dict)
    wheels: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> wheel payload

    def source_digests(self) -> set[str]:
        return {m.sha256 for p, m in self.files.items() if p not in self.prebuilt}


def scan_sdist(sdist: Path, limits: Limits = DEFAULT_LIMITS) -> SdistScan:
    scan = SdistScan()
    try:
        for path, head, digest, size, read in _sdist_files(sdist, limits):
            scan.files[path] = Member(path, digest, size, binary_kind(head, path))
            _scan_archive(scan, path, head, size, read, limits)
            if scan.files[path].kind and path not in scan.prebuilt:
                scan.prebuilt[path] = str(scan.files[path].kind)
    except AdmissionError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError,
            RuntimeError, NotImplementedError) as exc:
        raise AdmissionError(f"{sdist.name}: cannot inspect it ({type(exc).__name__}: "
                             f"{exc})"[:300]) from None
    return scan


Reader = Callable[[], bytes]


def _sdist_files(sdist: Path, limits: Limits) -> Iterator[tuple[str, bytes, str, int, Reader]]:
    """(path below the top directory, head, sha256, size, re-reader) of each regular file."""
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            infos = [i for i in archive.infolist() if not is_dir(i)]
            check_totals(sdist.name, infos, limits)
            for info in infos:
                digest, head = hash_stream(archive.open(info))
                yield (_below_top(info.filename), head, digest, info.file_size,
                       functools.partial(archive.read, info))
        return
    with tarfile.open(sdist, "r:*") as tar:
        for member in _bounded(tar, limits, sdist.name):
            digest, head = hash_stream(_extract(tar, member))
            yield (_below_top(member.name), head, digest, member.size,
                   functools.partial(_read_all, tar, member))


def _bounded(tar: tarfile.TarFile, limits: Limits, what: str) -> Iterator[tarfile.TarInfo]:
    """The regular files of a tar, read lazily; a bomb of headers or sizes is refused."""
    total = 0
    for count, member in enumerate(tar, start=1):
        total += member.size if member.isfile() else 0
        if count > limits.max_members or total > limits.max_total_bytes:
            raise AdmissionError(f"{what} holds more than the gate inspects "
                                 f"({limits.max_members} members, {limits.max_total_bytes} bytes)")
        if member.isfile() and member.size:
            yield member


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    handle = tar.extractfile(member)
    if handle is None:
        raise AdmissionError(f"sdist member {member.name!r} cannot be read")
    return handle


def _read_all(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    with _extract(tar, member) as handle:
        return handle.read()


def _below_top(name: str) -> str:
    parts = PurePosixPath(name.lstrip("/")).parts
    return "/".join(parts[1:]) if len(parts) > 1 else "/".join(parts)


def _scan_archive(scan: SdistScan, path: str, head: bytes, size: int, read: Reader,
                  limits: Limits) -> None:
    """Look one level into a zip or tar the sdist ships (its members may be copied out)."""
    is_zip = head.startswith((b"PK\x03\x04", b"PK\x05\x06"))
    is_tar = re.search(r"\.(tar|tgz|tbz2?|txz|tar\.(gz|bz2|xz))$", path, re.IGNORECASE)
    if not (is_zip or is_tar):
        return
    if size > limits.max_inner_archive_bytes:
        raise AdmissionError(f"the sdist ships {path!r}, an archive too large to inspect "
                             f"({size} bytes)")
    data = read()
    try:
        members = list(_zip_members(data, path, limits) if is_zip
                       else _tar_members(data, path, limits))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, ValueError,
            RuntimeError, NotImplementedError, OSError, KeyError):
        if is_zip:
            raise AdmissionError(f"the sdist ships {path!r}, a zip archive that cannot be "
                                 "read") from None
        return  # named like a tar but not one: an ordinary (possibly prebuilt) file
    binaries = [name for name, _d, kind in members if kind]
    for _name, digest, kind in members:
        if is_zip or kind:
            scan.archived.setdefault(digest, path)
    if is_tar and binaries:
        scan.prebuilt[path] = f"tar archive holding prebuilt {binaries[0]!r}"
    tops = {PurePosixPath(n).parts[0] for n, _d, _k in members}
    if is_zip and any(t.endswith(".dist-info") for t in tops):
        scan.wheels[path] = {n: d for n, d, _k in members
                             if not PurePosixPath(n).parts[0].endswith(".dist-info")}


def _zip_members(data: bytes, path: str, limits: Limits) -> Iterator[tuple[str, str, str | None]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = [i for i in archive.infolist() if not is_dir(i) and i.file_size]
        check_totals(f"the sdist's {path}", infos, limits)
        for info in infos:
            digest, head = hash_stream(archive.open(info))
            yield info.filename, digest, binary_kind(head, info.filename)


def _tar_members(data: bytes, path: str, limits: Limits) -> Iterator[tuple[str, str, str | None]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in _bounded(tar, limits, f"the sdist's {path}"):
            digest, head = hash_stream(_extract(tar, member))
            yield member.name, digest, binary_kind(head, member.name)


def prebuilt_files(scan: SdistScan, contents: WheelContents, recipe: Recipe,
                   wheel: Path) -> list[Allowance]:
    """Rule 5: prebuilt files in the sdist need an allowance; copies into the wheel too."""
    found = sdist_allowances(scan, recipe)
    _refuse_returned_wheel(scan, contents, recipe, wheel)
    return found + _copies(scan, contents, {a.path: a.allowed_by for a in found})


def _globs(paths: list[str], limit: int = 8) -> list[str]:
    """Paths to allow, as few globs as cover every one of them: a directory's files as
    ``dir/*`` when it holds several; past ``limit`` entries, directories nearer the top
    (fnmatch's ``*`` spans ``/``), so that following the hint admits the whole sdist
    rather than the first few (a file at the top level stays a name of its own)."""
    globs = _grouped(paths, depth=None)
    for depth in (3, 2, 1):
        if len(globs) <= limit:
            break
        globs = _grouped(paths, depth)
    return globs


def _grouped(paths: list[str], depth: int | None) -> list[str]:
    """One entry per directory (its first ``depth`` parts; None: the whole directory)."""
    by_dir: dict[str, list[str]] = {}
    for path in paths:
        parts = path.split("/")[:-1]
        by_dir.setdefault("/".join(parts if depth is None else parts[:depth]), []).append(path)
    globs = []
    for directory, found in sorted(by_dir.items()):  # names with * ? [ stay literal
        coarse = depth is not None and any(f.count("/") > directory.count("/") + 1
                                           for f in found)
        globs += ([f"{literal(directory)}/*"] if directory and (len(found) > 2 or coarse)
                  else [literal(f) for f in found])
    return globs


def sdist_allowances(scan: SdistScan, recipe: Recipe) -> list[Allowance]:
    """The sdist half of rule 5 (needs no wheel: it can run before a build is spent)."""
    found: list[Allowance] = []
    refused, paths = [], []
    for path, what in sorted(scan.prebuilt.items()):
        glob = next((g for g in recipe.allow_prebuilt if fnmatch.fnmatchcase(path, g)), None)
        if glob is None:
            refused.append(f"{path} ({what})")
            paths.append(path)
            continue
        found.append(Allowance(ALLOW_PREBUILT, glob, "sdist", path, scan.files[path].sha256,
                               what))
    if refused:
        more = f" and {len(refused) - 1} more" if len(refused) > 1 else ""
        # what the recipe allows already stays in the line: another version of it (an
        # older row the lock keeps for one interpreter's users) ships other files
        added = [g for g in _globs(paths) if g not in recipe.allow_prebuilt]
        raise AdmissionError(
            f"{recipe.key}: the sdist ships prebuilt {refused[0]}{more}, not built from source",
            _paste_hint(recipe, added))
    return found


HINT_LIMIT = 600  # FactoryError.reason's room for a hint: a longer one loses its middle


def _paste_hint(recipe: Recipe, added: list[str]) -> str:
    """The hint with a line to paste, whole or not at all: a line cut in its middle (a
    recipe allowing hundreds of globs already) or one TOML reads otherwise than meant
    would admit other files than these, or none."""
    review = "review them; if the build does not use them, "
    count = len(added)
    if any(0xD800 <= ord(c) <= 0xDFFF for glob in added for c in glob):
        added = []  # a name TOML cannot hold (an undecodable byte): no line admits it
    for hint in (f"{review}allow them in {recipe.path.name}: allow_prebuilt = "
                 f"{_toml_list([*recipe.allow_prebuilt, *added])}",
                 f"{review}add to allow_prebuilt in {recipe.path.name}: {_toml_list(added)}"):
        if len(hint) <= HINT_LIMIT and added:
            return hint
    return (f"{review}allow them in {recipe.path.name}'s allow_prebuilt ({count} globs: "
            "the line cannot be shown whole here)")


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(_toml_string(item) for item in items) + "]"


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string of printable ASCII (json.dumps is not one: a
    character past U+FFFF becomes a surrogate pair TOML refuses, DEL stays raw), with
    no two spaces in a row (a hint's whitespace runs become one space when shown)."""
    out, previous = [], ""
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 < code < 0x7F or (char == " " and previous != " "):
            out.append(char)
        elif code > 0xFFFF:
            out.append(f"\\U{code:08X}")
        else:  # a lone surrogate shows as \ud8xx: _paste_hint then gives no line
            out.append(f"\\u{code:04x}")
        previous = char
    return '"' + "".join(out) + '"'


def _refuse_returned_wheel(scan: SdistScan, contents: WheelContents, recipe: Recipe,
                           wheel: Path) -> None:
    digest = sha256_file(wheel)
    copied = next((p for p, m in scan.files.items() if m.sha256 == digest), None) \
        or scan.archived.get(digest)
    payload = contents.payload()
    shipped = next((p for p, files in scan.wheels.items() if payload and files == payload), None)
    if copied or shipped:
        raise AdmissionError(
            f"{recipe.key}: the built wheel is the wheel the sdist ships as {copied or shipped}: "
            "the backend returned a prebuilt artifact instead of building the source",
            "this is a build failure; no recipe allowance admits it")


def _copies(scan: SdistScan, contents: WheelContents, allowed: dict[str, str]) -> list[Allowance]:
    """Wheel files that are byte copies of allowed prebuilt sdist files or archive members."""
    by_digest = {scan.files[p].sha256: p for p in sorted(allowed, reverse=True)}
    source = scan.source_digests()
    found = []
    for name, member in sorted(contents.files.items()):
        if not member.size or PurePosixPath(name).parts[0] == contents.dist_info:
            continue
        origin = by_digest.get(member.sha256)
        what = f"copy of prebuilt sdist file {origin}"
        if origin is None and member.sha256 not in source:
            origin = scan.archived.get(member.sha256)
            what = f"extracted from prebuilt sdist archive {origin}"
        if origin is None:
            continue
        glob = allowed.get(origin)
        if glob is None:  # every prebuilt file was allowed or refused above
            raise AdmissionError(f"wheel file {name!r} is a copy of prebuilt sdist file "
                                 f"{origin!r}, which the recipe does not allow")
        found.append(Allowance(ALLOW_PREBUILT, glob, "wheel", name, member.sha256, what))
    return found
