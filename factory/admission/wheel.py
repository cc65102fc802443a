"""Rule 4 of admission: the wheel's members are what pip would install, and nothing more.

Names, types, duplicates, the ``.dist-info``/``.data`` directories, RECORD against
the archive (with ``installer``), METADATA's single Name/Version, and the
interpreter start-up hooks (``.pth``, ``sitecustomize``) that need ``allow_pth``.
"""

from __future__ import annotations

import csv
import re
import stat
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path, PurePosixPath

from installer.exceptions import InstallerError
from installer.records import InvalidRecordEntry, RecordEntry, parse_record_file
from installer.sources import WheelFile
from packaging.metadata import RawMetadata, parse_email
from packaging.utils import InvalidWheelFilename

from factory.admission.layout import check_layout
from factory.admission.model import (
    ALLOW_PTH,
    DEFAULT_LIMITS,
    STRONG_HASHES,
    AdmissionError,
    Allowance,
    Limits,
    Member,
    binary_kind,
    hash_stream,
    is_dir,
)
from factory.recipes import Recipe


@dataclass
class WheelContents:
    dist_info: str
    data_dir: str | None
    metadata: RawMetadata
    requires_dist: list[str]
    files: dict[str, Member] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)  # the Tag lines of its WHEEL file

    def payload(self) -> dict[str, str]:
        """Name -> sha256 of every file outside ``.dist-info``."""
        return {n: m.sha256 for n, m in self.files.items()
                if PurePosixPath(n).parts[0] != self.dist_info}


def read_wheel(wheel: Path, limits: Limits = DEFAULT_LIMITS) -> WheelContents:
    """Every check of rule 4 except start-up hooks; the wheel's files with their digests."""
    try:
        with wheel.open("rb") as raw, zipfile.ZipFile(raw) as archive:
            check_layout(wheel.name, archive, raw)
            return _read_wheel(wheel.name, archive, limits)
    except AdmissionError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, InstallerError, InvalidWheelFilename,
            ValueError, KeyError, RuntimeError, NotImplementedError, EOFError, zlib.error,
            UnicodeError, OSError, csv.Error) as exc:
        raise AdmissionError(f"{wheel.name} is not a readable wheel "
                             f"({type(exc).__name__}: {exc})"[:300]) from None


def _read_wheel(filename: str, archive: zipfile.ZipFile, limits: Limits) -> WheelContents:
    infos = archive.infolist()
    check_totals(filename, infos, limits)
    _check_names(filename, infos)
    dist_info, data_dir = _special_dirs(filename, archive)
    files = {i.filename: _member(archive, i) for i in infos if not is_dir(i)}
    _check_record(filename, archive, dist_info, set(files))
    raw, unparsed = parse_email(archive.read(f"{dist_info}/METADATA"))
    for key in ("name", "version", "requires_dist"):
        if key in unparsed:
            raise AdmissionError(f"{filename}: METADATA has a duplicate or invalid "
                                 f"{key.replace('_', '-').title()} field")
    _check_foreign_metadata(filename, list(files), dist_info, data_dir)
    _check_scripts(filename, archive, dist_info, data_dir)
    return WheelContents(dist_info, data_dir, raw, list(raw.get("requires_dist", [])), files,
                         _wheel_tags(filename, archive, dist_info))


def check_totals(filename: str, infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_members:
        raise AdmissionError(f"{filename} has {len(infos)} members, more than the gate "
                             f"inspects ({limits.max_members})")
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        raise AdmissionError(f"{filename} unpacks to {total} bytes, more than the gate "
                             f"inspects ({limits.max_total_bytes})")


# Characters that make a name display as something it is not: bidi controls and marks.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def member_problem(name: str) -> str | None:
    """Why an archive member name is unsafe to install, or None (directories end in /)."""
    if not name.strip("/"):
        return "an empty name"
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI for c in name):
        return "control or invalid characters in its name"
    if "\\" in name:
        return "a backslash in its name"
    if name.startswith("/"):
        return "an absolute path"
    if ":" in name:
        return "a drive letter or colon in its name"
    parts = (name[:-1] if name.endswith("/") else name).split("/")
    if ".." in parts:
        return "a '..' component"
    if "." in parts or "" in parts:
        return "a '.' or empty path component"
    return None


def _check_names(filename: str, infos: list[zipfile.ZipInfo]) -> None:
    seen: dict[str, str] = {}
    files: set[str] = set()
    for info in infos:
        name = info.filename
        problem = member_problem(name) or _type_problem(info)
        if problem:
            raise AdmissionError(f"{filename}: member {name!r} has {problem}",
                                 "pip refuses such wheels; the build produced it")
        folded = unicodedata.normalize("NFC", name.rstrip("/")).casefold()
        if folded in seen:
            raise AdmissionError(f"{filename}: member {name!r} duplicates {seen[folded]!r}",
                                 "an installer would overwrite one with the other")
        seen[folded] = name
        if not is_dir(info):
            files.add(folded)
    for name in files:  # a file used as a directory: "a" and "a/b"
        for parent in PurePosixPath(name).parents:
            if str(parent) in files:
                raise AdmissionError(f"{filename}: {seen[str(parent)]!r} is a file and a "
                                     "directory at once")


def _type_problem(info: zipfile.ZipInfo) -> str | None:
    if info.flag_bits & 0x1:
        return "encryption"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "a symbolic link type"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "a special file type (device, FIFO or socket)"
    if kind == stat.S_IFDIR and not is_dir(info):
        return "a directory type but no trailing '/'"
    if is_dir(info) and info.file_size:
        return "a directory name but content"
    return None


def _special_dirs(filename: str, archive: zipfile.ZipFile) -> tuple[str, str | None]:
    try:  # installer: exactly one .dist-info, named for the wheel's project
        dist_info = WheelFile(archive).dist_info_dir
    except InstallerError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise AdmissionError(f"{filename}: {reason}") from None
    tops = {PurePosixPath(n).parts[0] for n in archive.namelist()}
    data = [t for t in tops if t.endswith(".data")]
    expected = dist_info.removesuffix(".dist-info") + ".data"
    if any(d != expected for d in data):
        raise AdmissionError(f"{filename}: a .data directory {sorted(data)[0]!r} that is not "
                             f"this wheel's ({expected!r})")
    if f"{dist_info}/METADATA" not in archive.namelist():
        raise AdmissionError(f"{filename} has no {dist_info}/METADATA")
    return dist_info, (expected if data else None)


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    digest, head = hash_stream(archive.open(info))
    return Member(info.filename, digest, info.file_size, binary_kind(head, info.filename))


def _check_record(filename: str, archive: zipfile.ZipFile, dist_info: str,
                  files: set[str]) -> None:
    source = WheelFile(archive)
    try:
        source.validate_record(validate_contents=True)
    except InstallerError as exc:
        issues = getattr(exc, "issues", None) or [str(exc)]
        raise AdmissionError(f"{filename}: RECORD disagrees with the archive: {issues[0]}"
                             + (f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""),
                             "pip refuses such wheels; the build produced it") from None
    record = f"{dist_info}/RECORD"
    rows = list(parse_record_file(archive.read(record).decode("utf-8").splitlines()))
    named: set[str] = set()
    for path, hash_, size in rows:
        if path in named:
            raise AdmissionError(f"{filename}: RECORD lists {path!r} twice")
        named.add(path)
        if path not in files:
            raise AdmissionError(f"{filename}: RECORD lists {path!r}, which the archive lacks")
        entry = _record_entry(filename, path, hash_, size)
        if path != record and entry.hash_ is not None and entry.hash_.name not in STRONG_HASHES:
            raise AdmissionError(f"{filename}: RECORD hashes {path!r} with {entry.hash_.name}",
                                 "the wheel format requires sha256 or stronger")


def _record_entry(filename: str, path: str, hash_: str, size: str) -> RecordEntry:
    try:
        return RecordEntry.from_elements(path, hash_, size)
    except InvalidRecordEntry as exc:
        raise AdmissionError(f"{filename}: RECORD row for {path!r} is invalid: "
                             f"{'; '.join(exc.issues)}") from None


# -- start-up hooks ------------------------------------------------------------------------
# Any prefix: the data scheme is a venv, ~/.local, /usr/local (Debian: dist-packages) ...
_SITE = re.compile(r"(?:.*/)?(?:lib(?:64)?/(?:python|pypy)[^/]*|Lib)"
                   r"/(?:site|dist)-packages/(.+)")
_HOOK_MODULES = ("sitecustomize", "usercustomize")


def site_path(name: str, dist_info: str, data_dir: str | None) -> str | None:
    """Where ``name`` lands relative to site-packages, or None when it lands elsewhere."""
    parts = name.split("/")
    if parts[0] == dist_info:
        return None
    if parts[0] != data_dir:
        return name  # the wheel's root is purelib or platlib
    if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
        return "/".join(parts[2:])
    if len(parts) > 2 and parts[1] == "data":
        found = _SITE.fullmatch("/".join(parts[2:]))
        return found.group(1) if found else None
    return None


def _windows(name: str) -> str:
    """The name a case-insensitive filesystem that drops trailing dots and spaces
    (Windows) gives a file: ``X.PTH. `` is ``x.pth`` there."""
    return name.rstrip(". ").lower()


def _check_foreign_metadata(filename: str, names: list[str], dist_info: str,
                            data_dir: str | None) -> None:
    """No metadata of another distribution at the site-packages root (a second
    .dist-info in any case, an .egg-info, through any scheme): importlib.metadata and
    pip would list it as installed. Vendored copies below a package are not found."""
    for name in names:
        where = site_path(name, dist_info, data_dir)
        top = _windows(where.split("/")[0]) if where else ""
        if top.endswith((".dist-info", ".egg-info")):
            raise AdmissionError(f"{filename}: member {name!r} installs the metadata of "
                                 "another distribution into site-packages",
                                 "one wheel declares one distribution; the build produced it")


# Scripts an installer would put over the interpreter, pip or a venv's activation.
_TOOLS = re.compile(r"(?:python|pythonw|pypy|pip)(?:\d+(?:\.\d+)*)?w?(?:-config)?(?:\.exe)?"
                    r"|activate(?:_this\.py|\.\w+)?|deactivate(?:\.\w+)?")


def _check_scripts(filename: str, archive: zipfile.ZipFile, dist_info: str,
                   data_dir: str | None) -> None:
    project = dist_info.removesuffix(".dist-info").rsplit("-", 1)[0].lower()
    scripts = [n.split("/")[2] for n in archive.namelist()
               if data_dir and n.startswith(f"{data_dir}/scripts/") and n.count("/") == 2]
    entry_points = f"{dist_info}/entry_points.txt"
    if entry_points in archive.namelist():
        section = ""
        for line in archive.read(entry_points).decode("utf-8", "replace").splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
            elif "=" in line and section in ("console_scripts", "gui_scripts"):
                scripts.append(line.split("=", 1)[0].strip())
    for script in scripts:
        if _TOOLS.fullmatch(_windows(script)) and not (
                project == "pip" and _windows(script).startswith("pip")):
            raise AdmissionError(f"{filename}: its script {script!r} replaces the "
                                 "interpreter, pip or the activation script of the "
                                 "environment it is installed in",
                                 "no approved wheel may replace those; the build produced it")


def _wheel_tags(filename: str, archive: zipfile.ZipFile, dist_info: str) -> list[str]:
    try:
        text = archive.read(f"{dist_info}/WHEEL")
    except KeyError:
        raise AdmissionError(f"{filename} has no {dist_info}/WHEEL") from None
    return [str(t).strip() for t in BytesHeaderParser().parsebytes(text).get_all("Tag") or []]


def startup_hook(name: str, dist_info: str, data_dir: str | None) -> str | None:
    """What runs ``name`` at every interpreter start, or None."""
    if _windows(name).endswith(".pth"):
        return "start-up hook (.pth)"
    where = site_path(name, dist_info, data_dir)
    top = _windows(where.split("/")[0]) if where else ""
    if top.split(".")[0] in _HOOK_MODULES:
        return f"start-up hook ({top.split('.')[0]} module)"
    return None


def startup_hooks(contents: WheelContents, recipe: Recipe) -> list[Allowance]:
    found = []
    for name, member in sorted(contents.files.items()):
        what = startup_hook(name, contents.dist_info, contents.data_dir)
        if what is None:
            continue
        if not recipe.allow_pth:
            raise AdmissionError(
                f"{recipe.key}: the wheel installs {name!r}, a {what} that runs at every "
                "interpreter start", f"if legitimate, set allow_pth = true in {recipe.path.name}")
        found.append(Allowance(ALLOW_PTH, "true", "wheel", name, member.sha256, what))
    return found

