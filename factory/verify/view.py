"""A read-only view of a published index directory, as the verifier needs it.

The project records (``records/<project>.json``) are the index's own account of
what it serves: file names, sha256 digests, sidecars, the sdist each wheel was
built from. The verifier reads them once and looks files up by name, by
name and version, or by digest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from factory.index.records import (
    FileEntry,
    IndexCorruptError,
    Layout,
    ProjectRecord,
    Sidecars,
    list_projects,
)
from factory.index.validation import load_record


@dataclass(frozen=True)
class Published:
    """One wheel the index publishes, with its record entry."""

    project: str
    entry: FileEntry
    path: Path  # the wheel in the index directory

    @property
    def filename(self) -> str:
        return self.entry.filename


def same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


class IndexView:
    """``base_url``: the URL the index's pages were rendered with, when known (for an
    auditor's copy it is not: the index checks read it from the pages)."""

    local = True  # a directory as published (factory.verify.remote: one fetched by URL)

    def __init__(self, root: Path, base_url: str | None = None) -> None:
        self.root = root
        self.base_url = base_url
        self.layout = Layout(root)
        self._records: dict[str, ProjectRecord | None] = {}
        self.corrupt: dict[str, str] = {}  # project -> why its record cannot be read
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self.layout.records.is_dir()

    def record(self, project: str) -> ProjectRecord | None:
        key = str(canonicalize_name(project))
        with self._lock:
            if key not in self._records:
                try:
                    self._records[key] = load_record(self.layout, key)
                except IndexCorruptError as exc:  # reported per project, never a crash
                    self._records[key] = None
                    self.corrupt[key] = exc.message
            return self._records[key]

    def unreadable(self, project: str) -> str | None:
        """Why the index cannot say what it publishes of ``project`` (a corrupt record)."""
        key = str(canonicalize_name(project))
        return self.corrupt.get(key) if self.record(key) is None else None

    def published(self, record: ProjectRecord, entry: FileEntry) -> Published:
        return Published(record.name, entry, self.layout.files(record.name) / entry.filename)

    def all(self) -> list[Published]:
        out: list[Published] = []
        for project in list_projects(self.layout):
            record = self.record(project)
            if record is not None:
                out.extend(self.published(record, e) for e in record.files)
        return out

    def by_version(self, name: str, version: str) -> list[Published]:
        record = self.record(name)
        if record is None:
            return []
        return [self.published(record, e) for e in record.files
                if same_version(e.version, version)]

    def by_filename(self, name: str, filename: str) -> Published | None:
        record = self.record(name)
        entry = record.find(filename) if record else None
        return self.published(record, entry) if record and entry else None

    def source_path(self, item: Published) -> Path | None:
        """The sdist the index keeps for this wheel, if it keeps one."""
        stored = item.entry.source_stored
        return self.root / stored if stored else None


def sidecar(wheel: Path, kind: str) -> Path:
    return Sidecars(wheel).path(kind)
