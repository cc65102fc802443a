"""The per-project published record: the single source of truth of the index.

Every page (Simple API HTML/JSON, human pages) is derived from these records,
and the server refuses to serve any file the records do not name, or whose
bytes no longer match the digest recorded for it. A record is replaced
atomically; replacing it is the commit point of a publish. The rules a record
must follow, and its reading and writing, are in factory.index.validation.

Layout of the index directory (an Index's root)::

    simple/index.html, simple/index.json        project list (PEP 503/691)
    simple/<project>/index.html, index.json     project detail
    files/<project>/<wheel> and its sidecars    immutable once recorded (``Sidecars``)
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

from factory.errors import FactoryError
from factory.upstream.cache import Sdist

RECORD_FORMAT = 1
PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")  # PEP 792
# Who set a project's status: an operator (`factory index status`), its recipe, or the
# factory mirroring upstream's. An operator's stands until an operator sets it active;
# publishing applies the recipe's, else upstream's (``Index.apply_status``).
STATUS_SOURCES = ("operator", "recipe", "upstream")

# sidecar kind -> suffix appended to the wheel's file name (``Sidecars`` names them)
SIDECAR_SUFFIXES: dict[str, str] = {
    "provenance": ".provenance",  # PEP 740 provenance object
    "sigstore": ".sigstore.json",  # Sigstore bundle over the wheel
    "intoto": ".intoto.jsonl",  # signed in-toto statements (SLSA provenance, ...)
    "sbom": ".cdx.json",  # CycloneDX SBOM
    "build": ".build.json",  # factory BuildRecord
    "in-toto": ".in-toto",  # directory: in-toto layout + links
    "equivalence": ".equivalence.json",  # signed verdict against upstream's wheel (optional)
}
# What every published wheel must carry: pages never name a wheel without them.
REQUIRED_SIDECARS: frozenset[str] = frozenset({"provenance", "sbom", "build"})
METADATA_SUFFIX = ".metadata"  # PEP 658 core metadata


@dataclass(frozen=True)
class Sidecars:
    """The files published beside one wheel, each named ``<wheel file name><suffix>``.

    The same names where a build leaves them (beside the built wheel), where
    publishing reads them, and in the index. ``kind`` is a key of SIDECAR_SUFFIXES,
    or "metadata" (the wheel's core metadata, PEP 658).
    """

    wheel: Path

    def path(self, kind: str) -> Path:
        """The sidecar of ``kind`` beside the wheel (a directory for "in-toto")."""
        return self.wheel.with_name(self.name(self.wheel.name, kind))

    def files(self) -> dict[str, Path]:
        """Every sidecar kind a record lists, by kind."""
        return {kind: self.path(kind) for kind in SIDECAR_SUFFIXES}

    @staticmethod
    def suffix(kind: str) -> str:
        return METADATA_SUFFIX if kind == "metadata" else SIDECAR_SUFFIXES[kind]

    @staticmethod
    def name(wheel: str, kind: str) -> str:
        """The sidecar's name (or path in the index, given the wheel's) as text."""
        return wheel + Sidecars.suffix(kind)

    @staticmethod
    def is_directory(kind: str) -> bool:
        return kind == "in-toto"

_NORMALIZED = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

# Bounds on what a record may claim: a record is read whole, and a size is only
# ever compared, but neither may be absurd (a hostile or damaged file).
MAX_RECORD_BYTES = 64 << 20
MAX_FILE_SIZE = 1 << 40
MAX_NAME = 255  # one path component
SHA256 = re.compile(r"[0-9a-f]{64}")  # a lowercase hex digest (fullmatch)


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
    source: Sdist | None = None  # the verified upstream sdist it was built from
    source_stored: str | None = None  # where the index keeps that sdist (sources/...), if it does
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
    def from_dict(cls, data: dict[str, Any], project: str) -> FileEntry:
        data = dict(data)
        data["metadata"] = StoredFile(**data["metadata"])
        data["sidecars"] = {
            kind: [StoredFile(**f) for f in group] for kind, group in data["sidecars"].items()
        }
        if data.get("source") is not None:
            data["source"], data["source_stored"] = source_from_json(
                data["source"], project, data["version"])
        return cls(**data)


def source_json(sdist: Sdist, stored: str | None) -> dict[str, Any]:
    """A record's "source": the sdist without the name and version its entry gives or
    an upload time, its URL as ``upstream_url`` (null when the index was handed the
    file without a build record naming it), and where the index keeps it."""
    return {"filename": sdist.filename, "sha256": sdist.sha256, "size": sdist.size,
            "upstream_url": sdist.url or None, "stored": stored}


def source_from_json(data: dict[str, Any], project: str,
                     version: str) -> tuple[Sdist, str | None]:
    """``source_json`` read back: the sdist, and where the index keeps it."""
    sdist = Sdist(project, version, data["filename"], data.get("upstream_url") or "",
                  data["sha256"], data["size"])
    return sdist, data.get("stored")


@dataclass
class ProjectRecord:
    name: str  # normalized
    display_name: str
    files: list[FileEntry] = field(default_factory=list)
    status: str = "active"
    status_reason: str | None = None
    serial: int = 0  # bumped on every change; part of the pages' identity
    format: int = RECORD_FORMAT
    status_source: str | None = None  # one of STATUS_SOURCES; None: none set it

    @property
    def status_owner(self) -> str | None:
        """Who the status is of; a status set before sources were recorded is an
        operator's (nothing overrides it)."""
        if self.status_source is None and self.status != "active":
            return "operator"
        return self.status_source

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
            if entry.source and entry.source_stored:
                out[entry.source_stored] = StoredFile(
                    entry.source_stored, entry.source.sha256, entry.source.size
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for entry, out in zip(self.files, data["files"], strict=True):
            del out["source_stored"]
            out["source"] = source_json(entry.source, entry.source_stored) if entry.source else None
        if data["status_source"] is None:  # records without one read as before
            del data["status_source"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProjectRecord:
        data = dict(data)
        data["files"] = [FileEntry.from_dict(f, data["name"]) for f in data["files"]]
        return cls(**data)


def version_key(version: str) -> tuple[int, Any]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


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
