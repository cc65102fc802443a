"""The per-project published record: the single source of truth of the index.

Every page (Simple API HTML/JSON, human pages) is derived from these records,
and the server refuses to serve any file the records do not name, or whose
bytes no longer match the digest recorded for it. A record is replaced
atomically; replacing it is the commit point of a publish.

Layout of the index directory (``settings.index_dir``)::

    simple/index.html, simple/index.json        project list (PEP 503/691)
    simple/<project>/index.html, index.json     project detail
    files/<project>/<wheel> and its sidecars    immutable once recorded
    sources/<project>/<sdist>                   verified upstream sdists (not in the Simple API)
    project/<project>/index.html, index.html    human pages
    trust/                                      public trust material (/.well-known/factory/)
    records/<project>.json                      this record
    records/_catalog.json                       one summary line per project (for the home page)
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from factory._internal.atomic import write_json
from factory.errors import FactoryError

RECORD_FORMAT = 1
PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")  # PEP 792

# sidecar kind -> suffix appended to the wheel's file name
SIDECAR_SUFFIXES: dict[str, str] = {
    "provenance": ".provenance",  # PEP 740 provenance object
    "sigstore": ".sigstore.json",  # Sigstore bundle over the wheel
    "intoto": ".intoto.jsonl",  # signed in-toto statements (SLSA provenance, ...)
    "sbom": ".cdx.json",  # CycloneDX SBOM
    "build": ".build.json",  # factory BuildRecord
    "in-toto": ".in-toto",  # directory: in-toto layout + links
}
# What every published wheel must carry: pages never name a wheel without them.
REQUIRED_SIDECARS: frozenset[str] = frozenset({"provenance", "sbom", "build"})
METADATA_SUFFIX = ".metadata"  # PEP 658 core metadata

_NORMALIZED = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

# Bounds on what a record may claim: a record is read whole, and a size is only
# ever compared, but neither may be absurd (a hostile or damaged file).
MAX_RECORD_BYTES = 64 << 20
MAX_FILE_SIZE = 1 << 40
MAX_NAME = 255  # one path component
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class IndexCorruptError(FactoryError):
    """A record cannot be read as one: damaged, hand-edited, or hostile."""

    default_hint = ("restore the record from a backup or republish the project; "
                    "`factory index check` lists every problem of the index")


def normalize(name: str) -> str:
    return str(canonicalize_name(name))


def is_normalized(name: str) -> bool:
    return bool(_NORMALIZED.match(name))


@dataclass(frozen=True)
class Layout:
    """Paths inside the index directory."""

    root: Path

    @property
    def simple(self) -> Path:
        return self.root / "simple"

    @property
    def records(self) -> Path:
        return self.root / "records"

    @property
    def trust(self) -> Path:
        return self.root / "trust"

    @property
    def catalog(self) -> Path:
        return self.records / "_catalog.json"

    @property
    def lock(self) -> Path:
        return self.root / ".publish.lock"

    def record(self, project: str) -> Path:
        return self.records / f"{project}.json"

    def files(self, project: str) -> Path:
        return self.root / "files" / project

    def sources(self, project: str) -> Path:
        return self.root / "sources" / project

    def simple_project(self, project: str) -> Path:
        return self.simple / project

    def human_project(self, project: str) -> Path:
        return self.root / "project" / project


@dataclass
class StoredFile:
    """One immutable file the index serves, relative to the index directory."""

    path: str
    sha256: str
    size: int


@dataclass
class SourceInfo:
    """The verified upstream sdist a wheel was built from."""

    filename: str
    sha256: str
    size: int
    upstream_url: str | None = None
    stored: str | None = None  # path in the index (sources/...), None if not kept


@dataclass
class FileEntry:
    """One published wheel with everything published beside it."""

    filename: str
    version: str
    sha256: str
    size: int
    upload_time: str
    requires_python: str | None
    metadata: StoredFile
    sidecars: dict[str, list[StoredFile]]
    source: SourceInfo | None = None
    built_from: dict[str, Any] = field(default_factory=dict)
    signer: dict[str, str] | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    advisories: list[dict[str, Any]] | None = None  # None: never checked
    advisories_checked: str | None = None

    def stored_files(self, project: str) -> list[StoredFile]:
        wheel = StoredFile(f"files/{project}/{self.filename}", self.sha256, self.size)
        out = [wheel, self.metadata]
        for group in self.sidecars.values():
            out.extend(group)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        data = dict(data)
        data["metadata"] = StoredFile(**data["metadata"])
        data["sidecars"] = {
            kind: [StoredFile(**f) for f in group] for kind, group in data["sidecars"].items()
        }
        if data.get("source") is not None:
            data["source"] = SourceInfo(**data["source"])
        return cls(**data)


@dataclass
class ProjectRecord:
    name: str  # normalized
    display_name: str
    files: list[FileEntry] = field(default_factory=list)
    status: str = "active"
    status_reason: str | None = None
    serial: int = 0  # bumped on every change; part of the pages' identity
    format: int = RECORD_FORMAT

    def find(self, filename: str) -> FileEntry | None:
        return next((f for f in self.files if f.filename == filename), None)

    def versions(self) -> list[str]:
        return sorted({f.version for f in self.files}, key=version_key)

    def latest(self, include_yanked: bool = False) -> str | None:
        live = [f.version for f in self.files if include_yanked or not f.yanked]
        return max(live, key=version_key) if live else None

    def served(self) -> dict[str, StoredFile]:
        """Every file this record vouches for, by its path in the index."""
        out: dict[str, StoredFile] = {}
        for entry in self.files:
            for stored in entry.stored_files(self.name):
                out[stored.path] = stored
            if entry.source and entry.source.stored:
                out[entry.source.stored] = StoredFile(
                    entry.source.stored, entry.source.sha256, entry.source.size
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProjectRecord:
        data = dict(data)
        data["files"] = [FileEntry.from_dict(f) for f in data["files"]]
        return cls(**data)


def version_key(version: str) -> tuple[int, Any]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def load_record(layout: Layout, project: str) -> ProjectRecord | None:
    """The record of ``project``; None if there is none.

    Raises IndexCorruptError naming the file when it is not a record this
    factory wrote: not a regular file, too large, not JSON, wrong types, or file
    paths that are not exactly where publishing puts a file (so no record can
    make a reader open anything outside the index).
    """
    if not is_normalized(project):
        return None  # records are only ever written under normalized names
    data = _read_record(layout.record(project), f"records/{project}.json")
    if data is _MISSING:
        return None
    return validate_record(data, project)


def validate_record(data: Any, project: str) -> ProjectRecord:
    """``data`` (parsed JSON) as the record of ``project``, or IndexCorruptError."""
    try:
        return _record(data, project)
    except _Invalid as exc:
        raise IndexCorruptError(f"records/{project}.json: {exc}") from None


_MISSING = object()


def _read_record(path: Path, rel: str) -> Any:
    # No symbolic link is followed and nothing but a regular file is read (a FIFO
    # would block, a device never end); the size is bounded before reading.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return _MISSING
    except OSError as exc:
        why = ("a symbolic link" if exc.errno == errno.ELOOP
               else f"cannot be read ({exc.strerror})")
        raise IndexCorruptError(f"{rel}: {why}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IndexCorruptError(f"{rel}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_RECORD_BYTES + 1)
    if len(raw) > MAX_RECORD_BYTES:
        raise IndexCorruptError(f"{rel}: larger than {MAX_RECORD_BYTES >> 20} MiB")
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise IndexCorruptError(f"{rel}: not valid JSON ({type(exc).__name__})") from None


# -- validation ------------------------------------------------------------------
class _Invalid(Exception):
    """One thing wrong with a record, said in a few words (no value is echoed raw)."""


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), "?")


def _object(value: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{where} is {_kind(value)}, not an object")
    missing = sorted(required - value.keys())
    if missing:
        raise _Invalid(f"{where} lacks {', '.join(missing)}")
    unknown = sorted(str(k) for k in value.keys() - required - optional)
    if unknown:
        shown = ", ".join(_printable(k) for k in unknown[:5])
        raise _Invalid(f"{where} has unknown field(s) {shown}")
    return value


def _printable(text: str, limit: int = 80) -> str:
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return repr(shown + ("…" if len(text) > limit else ""))


def _text(data: dict[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{where}.{key} is {_kind(value)}, not a string")
    return value


def _integer(data: dict[str, Any], key: str, where: str, high: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(f"{where}.{key} is {_kind(value)}, not an integer")
    if not 0 <= value <= high:
        raise _Invalid(f"{where}.{key} is out of range (0 to {high})")
    return value


def _digest(data: dict[str, Any], key: str, where: str) -> str:
    value = _text(data, key, where)
    if not _SHA256.match(value or ""):
        raise _Invalid(f"{where}.{key} is not a lowercase hex sha256")
    return str(value)


def _plain_name(value: str, where: str) -> None:
    """One path component that no filesystem or URL reads as anything else."""
    if (not value or len(value) > MAX_NAME or value in (".", "..") or value.startswith(".")
            or any(c in value for c in "/\\\0") or not value.isprintable()):
        raise _Invalid(f"{where} is not a plain file name: {_printable(value)}")


def _safe_relative(value: str, where: str) -> None:
    parts = value.split("/")
    if not parts or any(not p for p in parts):
        raise _Invalid(f"{where} is not a plain relative path: {_printable(value)}")
    for part in parts:
        _plain_name(part, where)


def _stored(value: Any, where: str, path: str | None = None,
            under: str | None = None) -> StoredFile:
    data = _object(value, where, {"path", "sha256", "size"}, set())
    rel = _text(data, "path", where) or ""
    if path is not None and rel != path:
        raise _Invalid(f"{where}.path is {_printable(rel)}, not {path!r}")
    if under is not None:
        if not rel.startswith(under):
            raise _Invalid(f"{where}.path {_printable(rel)} is not under {under!r}")
        _safe_relative(rel[len(under):], f"{where}.path")
    return StoredFile(rel, _digest(data, "sha256", where),
                      _integer(data, "size", where, MAX_FILE_SIZE))


_ENTRY_REQUIRED = {"filename", "version", "sha256", "size", "upload_time", "requires_python",
                   "metadata", "sidecars"}
_ENTRY_OPTIONAL = {"source", "built_from", "signer", "yanked", "yanked_reason", "advisories",
                   "advisories_checked"}


def _entry(value: Any, project: str, where: str) -> FileEntry:
    data = _object(value, where, _ENTRY_REQUIRED, _ENTRY_OPTIONAL)
    filename = _text(data, "filename", where) or ""
    _plain_name(filename, f"{where}.filename")
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        raise _Invalid(f"{where}.filename {_printable(filename)} is not a wheel file "
                       "name") from None
    if name != project:
        raise _Invalid(f"{where}.filename {_printable(filename)} is not a wheel of {project}")
    if _text(data, "version", where) != str(version):
        raise _Invalid(f"{where}.version is not the version of {filename} ({version})")
    base = f"files/{project}/{filename}"
    sidecars = data["sidecars"]
    if not isinstance(sidecars, dict):
        raise _Invalid(f"{where}.sidecars is {_kind(sidecars)}, not an object")
    groups: dict[str, list[StoredFile]] = {}
    for kind, group in sidecars.items():
        if kind not in SIDECAR_SUFFIXES:
            raise _Invalid(f"{where}.sidecars has an unknown kind {_printable(str(kind))}")
        groups[kind] = _group(group, kind, base, f"{where}.sidecars.{kind}")
    return FileEntry(
        filename=filename,
        version=str(version),
        sha256=_digest(data, "sha256", where),
        size=_integer(data, "size", where, MAX_FILE_SIZE),
        upload_time=_text(data, "upload_time", where) or "",
        requires_python=_text(data, "requires_python", where, optional=True),
        metadata=_stored(data["metadata"], f"{where}.metadata", path=base + METADATA_SUFFIX),
        sidecars=groups,
        source=_source(data.get("source"), project, f"{where}.source"),
        built_from=_json_object(data.get("built_from", {}), f"{where}.built_from"),
        signer=_signer(data.get("signer"), f"{where}.signer"),
        yanked=_flag(data.get("yanked", False), f"{where}.yanked"),
        yanked_reason=_text(data, "yanked_reason", where, optional=True),
        advisories=_advisories(data.get("advisories"), f"{where}.advisories"),
        advisories_checked=_text(data, "advisories_checked", where, optional=True),
    )


def _group(value: Any, kind: str, base: str, where: str) -> list[StoredFile]:
    if not isinstance(value, list):
        raise _Invalid(f"{where} is {_kind(value)}, not a list")
    suffix = SIDECAR_SUFFIXES[kind]
    if kind != "in-toto":  # one file beside the wheel
        if len(value) != 1:
            raise _Invalid(f"{where} names {len(value)} files, not 1")
        return [_stored(value[0], f"{where}[0]", path=base + suffix)]
    stored = [_stored(v, f"{where}[{i}]", under=f"{base}{suffix}/") for i, v in enumerate(value)]
    if len({s.path for s in stored}) != len(stored):
        raise _Invalid(f"{where} names a file twice")
    return stored


def _source(value: Any, project: str, where: str) -> SourceInfo | None:
    if value is None:
        return None
    data = _object(value, where, {"filename", "sha256", "size"}, {"upstream_url", "stored"})
    filename = _text(data, "filename", where) or ""
    _plain_name(filename, f"{where}.filename")
    stored = _text(data, "stored", where, optional=True)
    if stored is not None and stored != f"sources/{project}/{filename}":
        raise _Invalid(f"{where}.stored is {_printable(stored)}, not "
                       f"'sources/{project}/{filename}'")
    return SourceInfo(filename, _digest(data, "sha256", where),
                      _integer(data, "size", where, MAX_FILE_SIZE),
                      _text(data, "upstream_url", where, optional=True), stored)


def _json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{where} is {_kind(value)}, not an object")
    return value


def _signer(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    data = _json_object(value, where)
    if not all(isinstance(v, str) for v in data.values()):
        raise _Invalid(f"{where} holds a value that is not a string")
    return data


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"{where} is {_kind(value)}, not a boolean")
    return value


def _advisories(value: Any, where: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
        raise _Invalid(f"{where} is not a list of objects")
    return value


def _record(value: Any, project: str) -> ProjectRecord:
    data = _object(value, "the record", {"name", "display_name", "files"},
                   {"status", "status_reason", "serial", "format"})
    if data["name"] != project:
        raise _Invalid(f"its name is {_printable(str(data['name']))}, not {project!r}")
    display = _text(data, "display_name", "the record") or ""
    if len(display) > MAX_NAME or normalize(display) != project:
        raise _Invalid(f"display_name {_printable(display)} is not a spelling of {project}")
    form = data.get("format", RECORD_FORMAT)
    if form != RECORD_FORMAT or isinstance(form, bool):
        raise _Invalid(f"format {_printable(str(form))} is not {RECORD_FORMAT}, the one this "
                       "factory reads")
    status = data.get("status", "active")
    if status not in PROJECT_STATUSES:
        raise _Invalid(f"status {_printable(str(status))} is not one of "
                       f"{', '.join(PROJECT_STATUSES)}")
    if not isinstance(data["files"], list):
        raise _Invalid(f"files is {_kind(data['files'])}, not a list")
    files = [_entry(f, project, f"files[{i}]") for i, f in enumerate(data["files"])]
    record = ProjectRecord(
        name=project, display_name=display, files=files, status=status,
        status_reason=_text(data, "status_reason", "the record", optional=True),
        serial=_integer(data, "serial", "the record", 1 << 62) if "serial" in data else 0,
    )
    _consistent(record)
    return record


def _consistent(record: ProjectRecord) -> None:
    """One file per name; a path named twice (a shared sdist) names the same bytes."""
    names = [f.filename for f in record.files]
    if len(set(names)) != len(names):
        raise _Invalid("files names a wheel twice")
    seen: dict[str, tuple[str, int]] = {}
    for entry in record.files:
        stored = list(entry.stored_files(record.name))
        if entry.source and entry.source.stored:
            stored.append(StoredFile(entry.source.stored, entry.source.sha256, entry.source.size))
        for item in stored:
            if seen.setdefault(item.path, (item.sha256, item.size)) != (item.sha256, item.size):
                raise _Invalid(f"{item.path} is recorded twice with different digests")


def save_record(layout: Layout, record: ProjectRecord) -> None:
    """Replace the record atomically; a record that would not load again is refused."""
    record.serial += 1
    data = record.to_dict()
    validate_record(json.loads(json.dumps(data)), record.name)
    write_json(layout.record(record.name), data)


def list_projects(layout: Layout) -> list[str]:
    if not layout.records.is_dir():
        return []
    return sorted(
        p.stem for p in layout.records.glob("*.json")
        if not p.name.startswith(("_", ".")) and is_normalized(p.stem)
    )


# -- trust material ---------------------------------------------------------------------
TRUST_MANIFEST = "_trust.json"  # in records/: the trust files published, with their digests
TRUST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}")  # a plain file name: no separator
TRUST_MAX_BYTES = 256 * 1024  # trusted roots, layouts and public keys are small
PRIVATE_KEY_MARK = b"PRIVATE KEY"  # in every PEM private key ("BEGIN ... PRIVATE KEY")


def read_trust_manifest(layout: Layout) -> dict[str, Any]:
    """Trust file name -> {path, sha256, size}, as last published (empty if none or unreadable)."""
    try:
        files = json.loads((layout.records / TRUST_MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return dict(files) if isinstance(files, dict) else {}
