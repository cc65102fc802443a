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

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from factory.atomic import write_json

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
    path = layout.record(project)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return ProjectRecord.from_dict(json.loads(text))


def save_record(layout: Layout, record: ProjectRecord) -> None:
    record.serial += 1
    write_json(layout.record(record.name), record.to_dict())


def list_projects(layout: Layout) -> list[str]:
    if not layout.records.is_dir():
        return []
    return sorted(
        p.stem for p in layout.records.glob("*.json") if not p.name.startswith(("_", "."))
    )
