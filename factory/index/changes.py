"""The Index: one published index directory, the URL clients reach it at, and every change.

Callers build it once at the edge (``Index(root, base_url)``, or ``Index.of(settings)``)
and pass it in. Every change takes the publisher's lock and turns a failed write
into one PublishError (``_writing``).

Order of a publish (``add``), under the lock:
  1. note the project as pending (factory.index.regen.begin); copy the sidecars,
     the core metadata, the sdist, then the wheel into place (each temp + fsync +
     rename; files no record names are invisible);
  2. replace the project's record (the commit point);
  3. regenerate that project's pages and its entry in the catalog, the project
     list and the home page (never reading another record), then drop the note.
A kill at any point leaves every page naming only complete files with their
attestations; running the same publish again finds the wheel recorded (same
bytes: nothing to copy) and finishes the pages, and the next change of any
project finishes the pages of the noted one (``regen.recover``).
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import Version

from factory._internal.atomic import sha256_file, write_bytes, write_json
from factory.errors import PublishError
from factory.index import intake, regen
from factory.index.check import inspect_index
from factory.index.records import (
    PRIVATE_KEY_MARK,
    PROJECT_STATUSES,
    REQUIRED_SIDECARS,
    TRUST_MANIFEST,
    TRUST_NAME,
    FileEntry,
    Layout,
    ProjectRecord,
    Sidecars,
    StoredFile,
    list_projects,
    normalize,
    read_trust_manifest,
)
from factory.index.store import fsync_dir, place_bytes, place_file, publish_lock
from factory.index.validation import load_record, save_record
from factory.sign.tuf_paths import PREFIX as TUF_PREFIX
from factory.upstream.cache import Sdist

if TYPE_CHECKING:
    from factory.config import Settings


class UnknownProjectError(PublishError):
    default_hint = "check the name with `factory status`; only published projects can be changed"


@dataclass(frozen=True)
class PublishedFile:
    project: str
    version: str
    filename: str
    sha256: str
    size: int
    path: str  # relative to the index directory
    already_published: bool = False


class Index:
    """One published index directory and the URL clients reach it at."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = Path(root)
        self.base_url = base_url
        self.layout = Layout(self.root)

    @classmethod
    def of(cls, settings: Settings) -> Index:
        """The index a factory's settings name (``index_dir``, ``index_url``)."""
        return cls(settings.index_dir, settings.index_url)

    # -- reading ---------------------------------------------------------------
    def record(self, project: str) -> ProjectRecord | None:
        """The record of ``project`` (a normalized name); None if it has none."""
        return load_record(self.layout, project)

    def projects(self) -> list[str]:
        """The normalized names of every project with a record."""
        return list_projects(self.layout)

    def serves(self, project: str, filename: str, sha256: str) -> bool:
        """True when the index already serves ``filename`` of ``project`` with these bytes."""
        record = self.record(project)
        entry = record.find(filename) if record else None
        return entry is not None and entry.sha256 == sha256

    def check(self, *, deep: bool = True, allow_interrupted: bool = False) -> list[str]:
        """Every problem of the index tree, one line each naming the file (none: it is sound).

        See factory.index.check. ``allow_interrupted`` tolerates what a publish that
        stopped half way leaves (pages behind their record, files no record names
        yet), as long as every page names only recorded files with their digests.
        """
        findings = inspect_index(self.root, self.base_url, deep=deep)
        return [str(f) for f in findings if not (allow_interrupted and f.interrupted)]

    # -- changes -----------------------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[Layout]:
        """The publisher's lock; a failed write (disk full, quota, read-only) is a
        PublishError, not a traceback.

        Every write is temp + rename, so what failed was never visible; a rerun
        after the cause is fixed completes the change.
        """
        with publish_lock(self.layout.lock):
            try:
                regen.recover(self.layout, self.base_url)
                yield self.layout
            except OSError as exc:
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                cause = "the filesystem is full" if full else (exc.strerror or type(exc).__name__)
                raise PublishError(
                    f"cannot write to the index at {self.root}: {cause} ({exc})",
                    ("free space there and publish again; " if full else "fix the cause and "
                     "publish again; ") + "pages still name only complete files",
                ) from None

    def add(
        self,
        wheel: Path,
        sidecars: dict[str, Path],
        sdist: Path | None = None,
        built_from: dict[str, Any] | None = None,
        *,
        required: frozenset[str] = REQUIRED_SIDECARS,
    ) -> PublishedFile:
        """Publish one wheel with its sidecars (and the sdist it was built from)."""
        project, version = intake.parse_wheel_name(wheel)
        intake.check_sidecars(wheel, sidecars, required)
        wheel_sha = sha256_file(wheel)
        metadata = intake.read_core_metadata(wheel)
        display_name, requires_python = intake.check_metadata(wheel, metadata, project, version)
        provenance = intake.read_provenance(sidecars.get("provenance"))
        with self._writing() as layout:
            regen.sweep(layout, project)
            record = load_record(layout, project)
            record = record or ProjectRecord(name=project, display_name=display_name)
            existing = record.find(wheel.name)
            if existing is not None:
                return self._republish(record, existing, wheel_sha)
            # A status mirrored from upstream's archived still takes the factory's builds
            # of what upstream already released; any other archived or quarantined does not.
            if record.status == "quarantined" or (
                    record.status == "archived" and record.status_owner != "upstream"):
                raise PublishError(
                    f"{project} is {record.status}: the index accepts no new files for it",
                    f"set the project active first (`factory index status {project} active`)",
                )
            info = intake.built_from(sidecars.get("build"), built_from)
            regen.begin(layout, [project])
            entry = _place_all(layout, record, wheel, wheel_sha, sidecars, metadata, sdist, info)
            entry.requires_python = requires_python
            entry.signer = info.get("signer") or intake.signer_of(provenance)
            record.files.append(entry)
            self._commit(record)
        return _published(record, entry, already=False)

    def _republish(self, record: ProjectRecord, existing: FileEntry,
                   wheel_sha: str) -> PublishedFile:
        if existing.sha256 != wheel_sha:
            raise PublishError(
                f"{existing.filename} is already published with different bytes "
                f"(published sha256 {existing.sha256}, this one {wheel_sha})",
                "published files are immutable: publish a new version (or build number) instead",
            )
        # A previous run may have stopped after its commit point: finish its pages.
        regen.begin(self.layout, [record.name])
        regen.write_project_pages(self.layout, record, self.base_url)
        regen.finish(self.layout)
        return _published(record, existing, already=True)

    def yank(self, project: str, version: str, reason: str = "") -> list[str]:
        """Mark every file of ``project==version`` yanked (PEP 592); returns their names."""
        return self._set_yanked(project, version, True, reason or None)

    def unyank(self, project: str, version: str) -> list[str]:
        return self._set_yanked(project, version, False, None)

    def _set_yanked(self, project: str, version: str, yanked: bool,
                    reason: str | None) -> list[str]:
        with self._writing() as layout:
            record = _existing(layout, project)
            files = [f for f in record.files if _same_version(f.version, version)]
            if not files:
                known = ", ".join(record.versions()) or "none"
                raise PublishError(
                    f"{record.name} has no published version {version}",
                    f"published versions: {known}",
                )
            for entry in files:
                entry.yanked, entry.yanked_reason = yanked, reason
            self._save(record)
        return [f.filename for f in files]

    def set_status(self, project: str, status: str, reason: str | None = None) -> None:
        """Set the PEP 792 project status as an operator (quarantined hides every file).

        An operator's status stands whatever the recipe or upstream say, until an
        operator sets the project active: that hands it back to them (the next publish
        or watch cycle applies the recipe's status, else upstream's)."""
        if status not in PROJECT_STATUSES:
            raise PublishError(
                f"unknown project status {status!r}", f"one of: {', '.join(PROJECT_STATUSES)}"
            )
        with self._writing() as layout:
            record = _existing(layout, project)
            record.status, record.status_reason = status, reason
            record.status_source = None if status == "active" else "operator"
            self._save(record)

    def apply_status(self, project: str, status: str, reason: str | None,
                     source: str | None) -> bool:
        """Give ``project`` the status policy asks for (``source``: "recipe", "upstream",
        None for active), unless an operator set its status; True when it changed.
        A project without a record is left alone (False)."""
        if status not in PROJECT_STATUSES:
            raise PublishError(f"unknown project status {status!r}")
        source = None if status == "active" else source
        with self._writing() as layout:
            record = load_record(layout, normalize(project))
            if record is None or record.status_owner == "operator" or (
                    record.status, record.status_reason, record.status_source) == (
                    status, reason, source):
                return False
            record.status, record.status_reason, record.status_source = status, reason, source
            self._save(record)
        return True

    def record_advisories(self, project: str, version: str, advisories: list[dict[str, Any]],
                          checked_at: str | None = None) -> None:
        """Record the advisory check of one version (``[]``: checked, none known)."""
        with self._writing() as layout:
            record = _existing(layout, project)
            for entry in record.files:
                if _same_version(entry.version, version):
                    entry.advisories = list(advisories)
                    entry.advisories_checked = checked_at or _now()
            self._save(record)

    def _save(self, record: ProjectRecord) -> None:
        regen.begin(self.layout, [record.name])
        self._commit(record)

    def _commit(self, record: ProjectRecord) -> None:
        """Replace the noted project's record (the commit point), write what derives
        from it, and drop the note."""
        save_record(self.layout, record)
        regen.write_project_pages(self.layout, record, self.base_url)
        regen.finish(self.layout)

    def publish_trust(self, files: dict[str, Path]) -> list[str]:
        """Copy public trust material (trusted root, layout, public keys) to trust/.

        Served under /.well-known/factory/<name>. Unlike distributions these files
        may be replaced (key rotation), each atomically. Refuses anything that
        looks like a private key. Each name and digest goes into the trust manifest
        (records/_trust.json): `factory serve` sends only what it names, with those
        bytes, never whatever else is in trust/.
        """
        written = []
        with self._writing() as layout:
            regen.begin(layout, [])  # a kill leaves temporary files in records/: swept
            manifest = read_trust_manifest(layout)
            for name, src in sorted(files.items()):
                if not TRUST_NAME.fullmatch(name) or not src.is_file():
                    raise PublishError(f"trust file {name!r} ({src}) is not a plain file "
                                       "name/file")
                data = src.read_bytes()
                if PRIVATE_KEY_MARK in data:
                    raise PublishError(
                        f"{src} holds a private key; only public material is published",
                        "publish the public key (SPKI PEM) instead",
                    )
                write_bytes(layout.trust / name, data)
                manifest[name] = {"path": f"trust/{name}", "size": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest()}
                written.append(name)
            write_json(layout.records / TRUST_MANIFEST, {"files": manifest})
            regen.finish(layout)
        return written

    @contextmanager
    def tuf_directory(self) -> Iterator[Path]:
        """The TUF repository's directory (tuf/, served at /tuf/: factory.sign.tuf_repo),
        for one writer at a time: the publish lock is held while it is changed."""
        with self._writing() as layout:
            yield layout.root / TUF_PREFIX

    def write_status(self, rows: list[dict[str, Any]]) -> None:
        """Record each component's status (as `factory status` shows it) for the home page.

        The record (records/_status.json, replaced atomically) is the data: `factory
        serve` renders the home page from it and the catalog on request; the
        index.html written here is the static copy for other web servers only.
        """
        with self._writing() as layout:
            regen.begin(layout, [])
            regen.write_status(layout, rows, self.base_url)
            regen.finish(layout)

    def rebuild(self) -> int:
        """Regenerate every page from the records; returns the number of projects.

        A corrupt record is skipped (its old pages are left as they are) and, once
        every other project is done, raised as IndexCorruptError.
        """
        with self._writing() as layout:
            regen.begin(layout, [])
            count = regen.rebuild_all(layout, self.base_url)
            regen.finish(layout)
            return count


def _published(record: ProjectRecord, entry: FileEntry, already: bool) -> PublishedFile:
    return PublishedFile(
        project=record.name,
        version=entry.version,
        filename=entry.filename,
        sha256=entry.sha256,
        size=entry.size,
        path=f"files/{record.name}/{entry.filename}",
        already_published=already,
    )


def _place_all(
    layout: Layout,
    record: ProjectRecord,
    wheel: Path,
    wheel_sha: str,
    sidecars: dict[str, Path],
    metadata: bytes,
    sdist: Path | None,
    info: dict[str, Any],
) -> FileEntry:
    project = record.name
    files_dir = layout.files(project)
    rel = f"files/{project}/{wheel.name}"
    placed: dict[str, list[StoredFile]] = {}
    for kind in sorted(sidecars):
        placed[kind] = _place_sidecar(files_dir, rel, kind, sidecars[kind])
    meta = place_bytes(metadata, Sidecars(files_dir / wheel.name).path("metadata"),
                       Sidecars.name(rel, "metadata"), False)
    version = intake.parse_wheel_name(wheel)[1]
    source, source_stored = _place_source(layout, record, version, sdist, info)
    stored = place_file(wheel, files_dir / wheel.name, rel, protected=False)
    if stored.sha256 != wheel_sha:
        raise PublishError(f"{wheel} changed while it was being published", "publish it again")
    fsync_dir(files_dir)
    return FileEntry(
        filename=wheel.name,
        version=version,
        sha256=stored.sha256,
        size=stored.size,
        upload_time=_now(),
        requires_python=None,
        metadata=meta,
        sidecars=placed,
        source=source,
        source_stored=source_stored,
        built_from={k: v for k, v in info.items() if k not in ("source", "signer")},
    )


def _place_sidecar(files_dir: Path, wheel_rel: str, kind: str, src: Path) -> list[StoredFile]:
    dest = Sidecars(files_dir / Path(wheel_rel).name).path(kind)
    rel = Sidecars.name(wheel_rel, kind)
    if not src.is_dir():
        return [place_file(src, dest, rel, protected=False)]
    out = []
    for item in sorted(src.rglob("*")):
        if item.is_symlink():
            raise PublishError(f"sidecar {src} holds a symbolic link ({item.name})")
        if item.is_file():
            sub = item.relative_to(src).as_posix()
            out.append(place_file(item, dest / sub, f"{rel}/{sub}", False))
    return out


def _place_source(
    layout: Layout, record: ProjectRecord, version: str, sdist: Path | None,
    info: dict[str, Any],
) -> tuple[Sdist | None, str | None]:
    """The sdist the wheel was built from, and where the index keeps it (None: not kept)."""
    declared = info.get("source") or {}
    if sdist is None:
        if not declared:
            return None, None
        return Sdist(
            name=record.name,
            version=version,
            filename=declared["filename"],
            url=declared.get("url") or "",
            sha256=declared["sha256"],
            size=int(declared.get("size", 0)),
        ), None
    rel = f"sources/{record.name}/{sdist.name}"
    protected = any(f.source_stored == rel for f in record.files)
    stored = place_file(sdist, layout.sources(record.name) / sdist.name, rel, protected)
    if declared.get("sha256") and declared["sha256"] != stored.sha256:
        raise PublishError(
            f"{sdist.name} (sha256 {stored.sha256}) is not the sdist the build record names "
            f"(sha256 {declared['sha256']})",
            "publish the wheel with the verified sdist it was built from",
        )
    fsync_dir(layout.sources(record.name))
    return Sdist(
        name=record.name,
        version=version,
        filename=sdist.name,
        url=declared.get("url") or "",
        sha256=stored.sha256,
        size=stored.size,
    ), rel


def _existing(layout: Layout, project: str) -> ProjectRecord:
    record = load_record(layout, normalize(project))
    if record is None:
        raise UnknownProjectError(f"no project {project!r} is published in {layout.root}")
    return record


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except ValueError:
        return a == b


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
