"""The rules every JSON file under records/ must follow, and the reading and writing of records.

A project record is read without following a symbolic link, bounded in size, and
accepted only if every field has its type and every file path is exactly where
publishing puts a file (so no record can make a reader open anything outside the
index). `factory index check`, `factory verify` and `factory serve` all read
records through ``record_from``, so a record one calls corrupt is never served
as sound by another. The trust manifest, the catalog and the status rows have
their rules here too.
"""

from __future__ import annotations

import json
import os
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from factory._internal.atomic import write_json
from factory._internal.plainfile import NotPlain, read_plain
from factory.errors import printable
from factory.index.records import (
    MAX_FILE_SIZE,
    MAX_NAME,
    MAX_RECORD_BYTES,
    PROJECT_STATUSES,
    RECORD_FORMAT,
    SHA256,
    SIDECAR_SUFFIXES,
    STATUS_SOURCES,
    TRUST_NAME,
    FileEntry,
    IndexCorruptError,
    Layout,
    ProjectRecord,
    Sidecars,
    StoredFile,
    is_normalized,
    normalize,
)
from factory.upstream.cache import Sdist


class Invalid(ValueError):
    """One thing wrong with a record, said in a few words (no value is echoed raw)."""


def clip(text: str, limit: int = 100) -> str:
    """``text`` from disk made safe to print (no control character) and cut at ``limit``."""
    return printable(text[:limit], keep="") + ("…" if len(text) > limit else "")


def _quoted(text: str, limit: int = 80) -> str:
    return repr(clip(text, limit))


# -- project records -------------------------------------------------------------------
def load_record(layout: Layout, project: str) -> ProjectRecord | None:
    """The record of ``project``; None if there is none.

    Raises IndexCorruptError naming the file when it is not a record this
    factory wrote: not a regular file, too large, not JSON, wrong types, or file
    paths that are not exactly where publishing puts a file.
    """
    if not is_normalized(project):
        return None  # records are only ever written under normalized names
    data = _read_record(layout.record(project), f"records/{project}.json")
    if data is _MISSING:
        return None
    return validate_record(data, project)


def load_catalog(layout: Layout) -> list[dict[str, Any]]:
    """The published catalog's rows (records/_catalog.json), read like a record: a
    regular file, never through a link, bounded, checked row by row; [] when nothing
    is published yet. Raises IndexCorruptError naming the file."""
    rel = "records/_catalog.json"
    data = _read_record(layout.catalog, rel)
    if data is _MISSING:
        return []
    try:
        return catalog_rows(data)
    except Invalid as exc:
        raise IndexCorruptError(f"{rel}: {exc}") from None


def validate_record(data: Any, project: str) -> ProjectRecord:
    """``data`` (parsed JSON) as the record of ``project``, or IndexCorruptError."""
    try:
        return record_from(data, project)
    except Invalid as exc:
        raise IndexCorruptError(f"records/{project}.json: {exc}") from None


def save_record(layout: Layout, record: ProjectRecord) -> None:
    """Replace the record atomically; a record that would not load again is refused."""
    record.serial += 1
    data = record.to_dict()
    validate_record(json.loads(json.dumps(data)), record.name)
    write_json(layout.record(record.name), data)


_MISSING = object()


def _read_record(path: os.PathLike[str], rel: str) -> Any:
    try:
        raw = read_plain(path, MAX_RECORD_BYTES)
    except NotPlain as exc:
        raise IndexCorruptError(f"{rel}: {exc.why}") from None
    if raw is None:
        return _MISSING
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise IndexCorruptError(f"{rel}: not valid JSON ({type(exc).__name__})") from None


def record_from(value: Any, project: str) -> ProjectRecord:
    """``value`` (parsed JSON) as the record of ``project``, or Invalid saying why."""
    data = _object(value, "the record", {"name", "display_name", "files"},
                   {"status", "status_reason", "serial", "format", "status_source"})
    if data["name"] != project:
        raise Invalid(f"its name is {_quoted(str(data['name']))}, not {project!r}")
    display = _text(data, "display_name", "the record") or ""
    if len(display) > MAX_NAME or normalize(display) != project:
        raise Invalid(f"display_name {_quoted(display)} is not a spelling of {project}")
    form = data.get("format", RECORD_FORMAT)
    if form != RECORD_FORMAT or isinstance(form, bool):
        raise Invalid(f"format {_quoted(str(form))} is not {RECORD_FORMAT}, the one this "
                      "factory reads")
    status = data.get("status", "active")
    if status not in PROJECT_STATUSES:
        raise Invalid(f"status {_quoted(str(status))} is not one of "
                      f"{', '.join(PROJECT_STATUSES)}")
    source = data.get("status_source")
    if source is not None and source not in STATUS_SOURCES:
        raise Invalid(f"status_source {_quoted(str(source))} is not one of "
                      f"{', '.join(STATUS_SOURCES)}")
    if not isinstance(data["files"], list):
        raise Invalid(f"files is {_kind(data['files'])}, not a list")
    files = [_entry(f, project, f"files[{i}]") for i, f in enumerate(data["files"])]
    record = ProjectRecord(
        name=project, display_name=display, files=files, status=status,
        status_reason=_text(data, "status_reason", "the record", optional=True),
        serial=_integer(data, "serial", "the record", 1 << 62) if "serial" in data else 0,
        status_source=source,
    )
    _consistent(record)
    return record


def _consistent(record: ProjectRecord) -> None:
    """One file per name; a path named twice (a shared sdist) names the same bytes."""
    names = [f.filename for f in record.files]
    if len(set(names)) != len(names):
        raise Invalid("files names a wheel twice")
    seen: dict[str, tuple[str, int]] = {}
    for entry in record.files:
        stored = list(entry.stored_files(record.name))
        if entry.source and entry.source_stored:
            stored.append(StoredFile(entry.source_stored, entry.source.sha256, entry.source.size))
        for item in stored:
            if seen.setdefault(item.path, (item.sha256, item.size)) != (item.sha256, item.size):
                raise Invalid(f"{item.path} is recorded twice with different digests")


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
        raise Invalid(f"{where}.filename {_quoted(filename)} is not a wheel file "
                      "name") from None
    if name != project:
        raise Invalid(f"{where}.filename {_quoted(filename)} is not a wheel of {project}")
    if _text(data, "version", where) != str(version):
        raise Invalid(f"{where}.version is not the version of {filename} ({version})")
    base = f"files/{project}/{filename}"
    sidecars = data["sidecars"]
    if not isinstance(sidecars, dict):
        raise Invalid(f"{where}.sidecars is {_kind(sidecars)}, not an object")
    groups: dict[str, list[StoredFile]] = {}
    for kind, group in sidecars.items():
        if kind not in SIDECAR_SUFFIXES:
            raise Invalid(f"{where}.sidecars has an unknown kind {_quoted(str(kind))}")
        groups[kind] = _group(group, kind, base, f"{where}.sidecars.{kind}")
    source, source_stored = _source(data.get("source"), project, str(version), f"{where}.source")
    return FileEntry(
        filename=filename,
        version=str(version),
        sha256=_digest(data, "sha256", where),
        size=_integer(data, "size", where, MAX_FILE_SIZE),
        upload_time=_text(data, "upload_time", where) or "",
        requires_python=_text(data, "requires_python", where, optional=True),
        metadata=_stored(data["metadata"], f"{where}.metadata",
                         path=Sidecars.name(base, "metadata")),
        sidecars=groups,
        source=source,
        source_stored=source_stored,
        built_from=_json_object(data.get("built_from", {}), f"{where}.built_from"),
        signer=_signer(data.get("signer"), f"{where}.signer"),
        yanked=_flag(data.get("yanked", False), f"{where}.yanked"),
        yanked_reason=_text(data, "yanked_reason", where, optional=True),
        advisories=_advisories(data.get("advisories"), f"{where}.advisories"),
        advisories_checked=_text(data, "advisories_checked", where, optional=True),
    )


def _group(value: Any, kind: str, base: str, where: str) -> list[StoredFile]:
    if not isinstance(value, list):
        raise Invalid(f"{where} is {_kind(value)}, not a list")
    path = Sidecars.name(base, kind)
    if not Sidecars.is_directory(kind):  # one file beside the wheel
        if len(value) != 1:
            raise Invalid(f"{where} names {len(value)} files, not 1")
        return [_stored(value[0], f"{where}[0]", path=path)]
    stored = [_stored(v, f"{where}[{i}]", under=f"{path}/") for i, v in enumerate(value)]
    if len({s.path for s in stored}) != len(stored):
        raise Invalid(f"{where} names a file twice")
    return stored


def _source(value: Any, project: str, version: str,
            where: str) -> tuple[Sdist | None, str | None]:
    """The sdist the wheel was built from, and where the index keeps it (None: not kept)."""
    if value is None:
        return None, None
    data = _object(value, where, {"filename", "sha256", "size"}, {"upstream_url", "stored"})
    filename = _text(data, "filename", where) or ""
    _plain_name(filename, f"{where}.filename")
    stored = _text(data, "stored", where, optional=True)
    if stored is not None and stored != f"sources/{project}/{filename}":
        raise Invalid(f"{where}.stored is {_quoted(stored)}, not "
                      f"'sources/{project}/{filename}'")
    sdist = Sdist(project, version, filename,
                  _text(data, "upstream_url", where, optional=True) or "",
                  _digest(data, "sha256", where), _integer(data, "size", where, MAX_FILE_SIZE))
    return sdist, stored


# -- the other files under records/ ---------------------------------------------------------
def trust_entry(name: Any, item: Any) -> StoredFile:
    """The trust manifest's entry for ``name``: a plain file name kept as trust/<name>."""
    if not isinstance(name, str) or not TRUST_NAME.fullmatch(name):
        raise Invalid(f"trust file name {_quoted(str(name))} is not a plain file name")
    return _stored(item, f"trust file {name}", path=f"trust/{name}")


def trust_manifest(value: Any) -> dict[str, StoredFile]:
    """records/_trust.json: every entry sound, or Invalid (`factory serve` sends none)."""
    files = value.get("files") if isinstance(value, dict) else None
    if not isinstance(files, dict):
        raise Invalid("no files listed")
    return {name: trust_entry(name, item) for name, item in files.items()}


def catalog_rows(value: Any) -> list[dict[str, Any]]:
    """records/_catalog.json: the project summaries in name order, each naming itself."""
    if not isinstance(value, dict):
        raise Invalid("not a mapping of projects")
    rows = []
    for name in sorted(value):
        row = value[name]
        if not (is_normalized(name) and isinstance(row, dict) and row.get("name") == name
                and isinstance(row.get("display_name"), str)
                and normalize(row["display_name"]) == name):  # a spelling of it, never another
            raise Invalid(f"entry {_quoted(name, 300)} is not a project summary")
        rows.append(row)
    return rows


def status_rows(value: Any) -> list[dict[str, Any]]:
    """records/_status.json: one object per approved component."""
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise Invalid("not a list of component rows")
    return value


# -- field rules -------------------------------------------------------------------------
def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), "?")


def _object(value: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{where} is {_kind(value)}, not an object")
    missing = sorted(required - value.keys())
    if missing:
        raise Invalid(f"{where} lacks {', '.join(missing)}")
    unknown = sorted(str(k) for k in value.keys() - required - optional)
    if unknown:
        shown = ", ".join(_quoted(k) for k in unknown[:5])
        raise Invalid(f"{where} has unknown field(s) {shown}")
    return value


def _text(data: dict[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{where}.{key} is {_kind(value)}, not a string")
    return value


def _integer(data: dict[str, Any], key: str, where: str, high: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{where}.{key} is {_kind(value)}, not an integer")
    if not 0 <= value <= high:
        raise Invalid(f"{where}.{key} is out of range (0 to {high})")
    return value


def _digest(data: dict[str, Any], key: str, where: str) -> str:
    value = _text(data, key, where)
    if not SHA256.fullmatch(value or ""):
        raise Invalid(f"{where}.{key} is not a lowercase hex sha256")
    return str(value)


def _plain_name(value: str, where: str) -> None:
    """One path component that no filesystem or URL reads as anything else."""
    if (not value or len(value) > MAX_NAME or value in (".", "..") or value.startswith(".")
            or any(c in value for c in "/\\\0") or not value.isprintable()
            or len(value.encode()) > MAX_NAME):  # the filesystem's bound is in bytes
        raise Invalid(f"{where} is not a plain file name: {_quoted(value)}")


def _safe_relative(value: str, where: str) -> None:
    parts = value.split("/")
    if not parts or any(not p for p in parts):
        raise Invalid(f"{where} is not a plain relative path: {_quoted(value)}")
    for part in parts:
        _plain_name(part, where)


def _stored(value: Any, where: str, path: str | None = None,
            under: str | None = None) -> StoredFile:
    data = _object(value, where, {"path", "sha256", "size"}, set())
    rel = _text(data, "path", where) or ""
    if path is not None and rel != path:
        raise Invalid(f"{where}.path is {_quoted(rel)}, not {path!r}")
    if under is not None:
        if not rel.startswith(under):
            raise Invalid(f"{where}.path {_quoted(rel)} is not under {under!r}")
        _safe_relative(rel[len(under):], f"{where}.path")
    return StoredFile(rel, _digest(data, "sha256", where),
                      _integer(data, "size", where, MAX_FILE_SIZE))


def _json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{where} is {_kind(value)}, not an object")
    return value


def _signer(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    data = _json_object(value, where)
    if not all(isinstance(v, str) for v in data.values()):
        raise Invalid(f"{where} holds a value that is not a string")
    return data


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{where} is {_kind(value)}, not a boolean")
    return value


def _advisories(value: Any, where: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
        raise Invalid(f"{where} is not a list of objects")
    return value
