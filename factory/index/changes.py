"""Publish wheels into the index directory, atomically; yank and unyank.

Order of a publish, under the index lock:
  1. copy the sidecars, the core metadata, the sdist, then the wheel into
     place (each temp + fsync + rename; files no record names are invisible);
  2. replace the project's record (the commit point);
  3. regenerate that project's pages (and the project list if it is new).
A kill at any point leaves every page naming only complete files with their
attestations; running the same publish again finds the wheel recorded (same
bytes: nothing to copy) and finishes the pages.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from cryptography import x509
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from factory._internal.atomic import sha256_file, write_bytes, write_json
from factory.config import Settings
from factory.errors import PublishError
from factory.index.records import (
    METADATA_SUFFIX,
    PRIVATE_KEY_MARK,
    PROJECT_STATUSES,
    REQUIRED_SIDECARS,
    SIDECAR_SUFFIXES,
    TRUST_MANIFEST,
    TRUST_NAME,
    FileEntry,
    Layout,
    ProjectRecord,
    SourceInfo,
    StoredFile,
    load_record,
    normalize,
    read_trust_manifest,
    save_record,
)
from factory.index.regen import write_project_list, write_project_pages
from factory.index.store import (
    clean_leftovers,
    fsync_dir,
    place_bytes,
    place_file,
    publish_lock,
)

# Fulcio certificate extensions naming the OIDC issuer (v2 is DER-encoded).
_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


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


def publish(
    settings: Settings,
    wheel: Path,
    sidecars: dict[str, Path],
    sdist: Path | None = None,
    built_from: dict[str, Any] | None = None,
    *,
    required: frozenset[str] = REQUIRED_SIDECARS,
) -> PublishedFile:
    """Publish one wheel with its sidecars (and the sdist it was built from)."""
    project, version = _parse_wheel_name(wheel)
    _check_sidecars(wheel, sidecars, required)
    wheel_sha = sha256_file(wheel)
    metadata = read_core_metadata(wheel)
    display_name, requires_python = _check_metadata(wheel, metadata, project, version)
    provenance = _read_provenance(sidecars.get("provenance"))
    layout = Layout(settings.index_dir)
    with publish_lock(layout.lock), index_writes(layout):
        _clean(layout, project)
        record = load_record(layout, project)
        is_new = record is None
        record = record or ProjectRecord(name=project, display_name=display_name)
        existing = record.find(wheel.name)
        if existing is not None:
            return _republish(settings, layout, record, existing, wheel_sha, is_new)
        if record.status in ("archived", "quarantined"):
            raise PublishError(
                f"{project} is {record.status}: the index accepts no new files for it",
                f"set the project active first (`factory index status {project} active`)",
            )
        info = _built_from(sidecars.get("build"), built_from)
        entry = _place_all(layout, record, wheel, wheel_sha, sidecars, metadata, sdist, info)
        entry.requires_python = requires_python
        entry.signer = info.get("signer") or _signer(provenance)
        record.files.append(entry)
        save_record(layout, record)
        _regenerate(settings, layout, record, is_new)
    return _published(record, entry, already=False)


@contextmanager
def index_writes(layout: Layout) -> Iterator[None]:
    """A failed write (disk full, quota, read-only) is a PublishError, not a traceback.

    Every write is temp + rename, so what failed was never visible; a rerun
    after the cause is fixed completes the publish.
    """
    try:
        yield
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        cause = "the filesystem is full" if full else (exc.strerror or type(exc).__name__)
        raise PublishError(
            f"cannot write to the index at {layout.root}: {cause} ({exc})",
            ("free space there and publish again; " if full else "fix the cause and publish "
             "again; ") + "pages still name only complete files",
        ) from None


def _republish(
    settings: Settings,
    layout: Layout,
    record: ProjectRecord,
    existing: FileEntry,
    wheel_sha: str,
    is_new: bool,
) -> PublishedFile:
    if existing.sha256 != wheel_sha:
        raise PublishError(
            f"{existing.filename} is already published with different bytes "
            f"(published sha256 {existing.sha256}, this one {wheel_sha})",
            "published files are immutable: publish a new version (or build number) instead",
        )
    # A previous run may have stopped after its commit point: finish its pages.
    _regenerate(settings, layout, record, is_new)
    return _published(record, existing, already=True)


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
    meta = place_bytes(
        metadata, files_dir / (wheel.name + METADATA_SUFFIX), rel + METADATA_SUFFIX, False
    )
    source = _place_source(layout, record, sdist, info)
    stored = place_file(wheel, files_dir / wheel.name, rel, protected=False)
    if stored.sha256 != wheel_sha:
        raise PublishError(f"{wheel} changed while it was being published", "publish it again")
    fsync_dir(files_dir)
    return FileEntry(
        filename=wheel.name,
        version=_parse_wheel_name(wheel)[1],
        sha256=stored.sha256,
        size=stored.size,
        upload_time=_now(),
        requires_python=None,
        metadata=meta,
        sidecars=placed,
        source=source,
        built_from={k: v for k, v in info.items() if k not in ("source", "signer")},
    )


def _place_sidecar(files_dir: Path, wheel_rel: str, kind: str, src: Path) -> list[StoredFile]:
    suffix = SIDECAR_SUFFIXES[kind]
    dest = files_dir / (Path(wheel_rel).name + suffix)
    if not src.is_dir():
        return [place_file(src, dest, wheel_rel + suffix, protected=False)]
    out = []
    for item in sorted(src.rglob("*")):
        if item.is_symlink():
            raise PublishError(f"sidecar {src} holds a symbolic link ({item.name})")
        if item.is_file():
            sub = item.relative_to(src).as_posix()
            out.append(place_file(item, dest / sub, f"{wheel_rel}{suffix}/{sub}", False))
    return out


def _place_source(
    layout: Layout, record: ProjectRecord, sdist: Path | None, info: dict[str, Any]
) -> SourceInfo | None:
    declared = info.get("source") or {}
    if sdist is None:
        if not declared:
            return None
        return SourceInfo(
            filename=declared["filename"],
            sha256=declared["sha256"],
            size=int(declared.get("size", 0)),
            upstream_url=declared.get("url"),
        )
    rel = f"sources/{record.name}/{sdist.name}"
    protected = any(f.source and f.source.stored == rel for f in record.files)
    stored = place_file(sdist, layout.sources(record.name) / sdist.name, rel, protected)
    if declared.get("sha256") and declared["sha256"] != stored.sha256:
        raise PublishError(
            f"{sdist.name} (sha256 {stored.sha256}) is not the sdist the build record names "
            f"(sha256 {declared['sha256']})",
            "publish the wheel with the verified sdist it was built from",
        )
    fsync_dir(layout.sources(record.name))
    return SourceInfo(
        filename=sdist.name,
        sha256=stored.sha256,
        size=stored.size,
        upstream_url=declared.get("url"),
        stored=rel,
    )


def _regenerate(
    settings: Settings,
    layout: Layout,
    record: ProjectRecord,
    is_new: bool,
) -> None:
    write_project_pages(layout, record, settings.index_url)
    # A run killed before the list was written left the project unlisted: fix it.
    if is_new or not _listed(layout, record.name):
        write_project_list(layout)


def _listed(layout: Layout, project: str) -> bool:
    try:
        data = json.loads((layout.simple / "index.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return False
    return any(normalize(p["name"]) == project for p in data.get("projects", []))


def _clean(layout: Layout, project: str) -> None:
    clean_leftovers(
        layout.root,
        layout.records,
        layout.simple,
        layout.files(project),
        *layout.files(project).glob("*.in-toto"),
        layout.sources(project),
        layout.simple_project(project),
        layout.human_project(project),
    )


# -- inputs -------------------------------------------------------------------


def _parse_wheel_name(wheel: Path) -> tuple[str, str]:
    try:
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        raise PublishError(f"{wheel.name} is not a valid wheel file name ({exc})") from None
    return str(name), str(version)


def _check_sidecars(wheel: Path, sidecars: dict[str, Path], required: frozenset[str]) -> None:
    if not wheel.is_file():
        raise PublishError(f"wheel {wheel} does not exist")
    unknown = sorted(set(sidecars) - set(SIDECAR_SUFFIXES))
    if unknown:
        raise PublishError(
            f"unknown sidecar kind(s) {', '.join(unknown)} for {wheel.name}",
            f"known kinds: {', '.join(sorted(SIDECAR_SUFFIXES))}",
        )
    missing = sorted(required - set(sidecars))
    if missing:
        raise PublishError(
            f"{wheel.name} lacks its {', '.join(missing)}: the index never shows a wheel "
            "without its attestations",
            "run the attest and sign stages first",
        )
    for kind, path in sidecars.items():
        ok = path.is_dir() if kind == "in-toto" else path.is_file()
        if not ok:
            raise PublishError(f"{kind} sidecar {path} for {wheel.name} does not exist")


def read_core_metadata(wheel: Path) -> bytes:
    """The wheel's ``*.dist-info/METADATA`` bytes (served as PEP 658 metadata)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [
                n
                for n in archive.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            if len(names) != 1:
                raise PublishError(f"{wheel.name} has {len(names)} .dist-info/METADATA files")
            return archive.read(names[0])
    except zipfile.BadZipFile:
        raise PublishError(f"{wheel.name} is not a zip archive") from None


def _check_metadata(
    wheel: Path, metadata: bytes, project: str, version: str
) -> tuple[str, str | None]:
    headers = BytesHeaderParser().parsebytes(metadata)
    name, meta_version = headers.get("Name"), headers.get("Version")
    if not name or normalize(name) != project:
        raise PublishError(f"{wheel.name}: METADATA names project {name!r}, not {project!r}")
    if not meta_version or Version(meta_version) != Version(version):
        raise PublishError(f"{wheel.name}: METADATA version {meta_version!r} != {version!r}")
    requires = headers.get("Requires-Python")
    return str(name), (str(requires).strip() if requires else None)


def _read_provenance(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise PublishError(f"provenance {path} is not JSON") from None
    if (
        not isinstance(data, dict)
        or data.get("version") != 1
        or not isinstance(data.get("attestation_bundles"), list)
    ):
        raise PublishError(
            f"provenance {path} is not a PEP 740 provenance object",
            'expected {"version": 1, "attestation_bundles": [...]}',
        )
    return data


def _built_from(build_record: Path | None, given: dict[str, Any] | None) -> dict[str, Any]:
    """What the wheel was built from: the build record's facts, then the caller's."""
    info: dict[str, Any] = {}
    if build_record is not None:
        try:
            data = json.loads(build_record.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise PublishError(f"build record {build_record} is not JSON") from None
        for key in (
            "finished_on",
            "builder_image",
            "builder_image_id",
            "invocation_id",
            "recipe_name",
            "network_mode",
            "source",
        ):
            if key in data:
                info[key] = data[key]
    info.update(given or {})
    return info


def _signer(provenance: dict[str, Any] | None) -> dict[str, str] | None:
    """The signing identity in the first attestation's certificate, if readable."""
    if not provenance:
        return None
    for bundle in provenance["attestation_bundles"]:
        for attestation in bundle.get("attestations", []):
            cert_b64 = attestation.get("verification_material", {}).get("certificate")
            if cert_b64:
                found = _identity_of(cert_b64)
                if found:
                    return found
        publisher = bundle.get("publisher")
        if isinstance(publisher, dict) and publisher.get("kind"):
            return {"identity": json.dumps(publisher, sort_keys=True), "issuer": ""}
    return None


def _identity_of(cert_b64: str) -> dict[str, str] | None:
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(cert_b64))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.UniformResourceIdentifier) or san.get_values_for_type(
            x509.RFC822Name
        )
    except (ValueError, x509.ExtensionNotFound):
        return None
    if not names:
        return None
    return {"identity": names[0], "issuer": _issuer_of(cert)}


def _issuer_of(cert: x509.Certificate) -> str:
    for oid in (_ISSUER_V2, _ISSUER_V1):
        try:
            raw = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        value = raw.value if isinstance(raw, x509.UnrecognizedExtension) else b""
        if oid == _ISSUER_V2 and len(value) > 2 and value[0] == 0x0C:
            value = value[2:]  # DER UTF8String: tag, short length, text
        return value.decode("utf-8", "replace")
    return ""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- changes to published files -------------------------------------------------


def yank(settings: Settings, project: str, version: str, reason: str = "") -> list[str]:
    """Mark every file of ``project==version`` yanked (PEP 592); returns their names."""
    return _set_yanked(settings, project, version, True, reason or None)


def unyank(settings: Settings, project: str, version: str) -> list[str]:
    return _set_yanked(settings, project, version, False, None)


def _set_yanked(
    settings: Settings, project: str, version: str, yanked: bool, reason: str | None
) -> list[str]:
    layout = Layout(settings.index_dir)
    with publish_lock(layout.lock), index_writes(layout):
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
        save_record(layout, record)
        write_project_pages(layout, record, settings.index_url)
    return [f.filename for f in files]


def set_status(settings: Settings, project: str, status: str, reason: str | None = None) -> None:
    """Set the PEP 792 project status (quarantined hides every file)."""
    if status not in PROJECT_STATUSES:
        raise PublishError(
            f"unknown project status {status!r}", f"one of: {', '.join(PROJECT_STATUSES)}"
        )
    layout = Layout(settings.index_dir)
    with publish_lock(layout.lock), index_writes(layout):
        record = _existing(layout, project)
        record.status, record.status_reason = status, reason
        save_record(layout, record)
        write_project_pages(layout, record, settings.index_url)


def record_advisories(
    settings: Settings,
    project: str,
    version: str,
    advisories: list[dict[str, Any]],
    checked_at: str | None = None,
) -> None:
    """Record the advisory check of one version (``[]``: checked, none known)."""
    layout = Layout(settings.index_dir)
    with publish_lock(layout.lock), index_writes(layout):
        record = _existing(layout, project)
        for entry in record.files:
            if _same_version(entry.version, version):
                entry.advisories = list(advisories)
                entry.advisories_checked = checked_at or _now()
        save_record(layout, record)
        write_project_pages(layout, record, settings.index_url)


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


def publish_trust(settings: Settings, files: dict[str, Path]) -> list[str]:
    """Copy public trust material (trusted root, layout, public keys) to trust/.

    Served under /.well-known/factory/<name>. Unlike distributions these files
    may be replaced (key rotation), each atomically. Refuses anything that
    looks like a private key. Each name and digest goes into the trust manifest
    (records/_trust.json): `factory serve` sends only what it names, with those
    bytes, never whatever else is in trust/.
    """
    layout = Layout(settings.index_dir)
    written = []
    with publish_lock(layout.lock), index_writes(layout):
        manifest = read_trust_manifest(layout)
        for name, src in sorted(files.items()):
            if not TRUST_NAME.fullmatch(name) or not src.is_file():
                raise PublishError(f"trust file {name!r} ({src}) is not a plain file name/file")
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
    return written
