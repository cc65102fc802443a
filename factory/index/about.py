"""What a project page says about a project beyond its files.

The summary, licence and dependencies of its newest version (from that wheel's PEP
658 metadata, the ``.metadata`` file its record pins by digest), which of those
dependencies this index serves, the advisories the factory knows for it with each
one's VEX status per served version (factory.vex ``history``, from the record), and
each pure wheel's upstream-equivalence statement (factory.verify.equivalence).

Everything here is upstream-controlled text: bounded in count and length here,
escaped where it is rendered (factory.index.human, autoescaping). The same record,
the same pinned files and the same set of served names give the same ``About``,
so the page stays a function of them (`factory index check` re-renders it).

    about = gather(record, reader(layout.root), served=lambda name: ...)
    html = human.render_project(record, base_url, about)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from factory.index.records import MAX_NAME, FileEntry, ProjectRecord, is_normalized, version_key
from factory.index.validation import clip

if TYPE_CHECKING:
    from factory.vex import History

# How much of upstream's text a page shows.
MAX_METADATA = 1 << 20  # the .metadata file read (pinned by digest; bounded anyway)
MAX_SUMMARY = 300
MAX_LICENSE = 200
MAX_CLASSIFIERS = 10
MAX_DEPENDENCIES = 200
MAX_REQUIREMENT = 300
MAX_STATEMENT = 1 << 20  # an equivalence statement (a Sigstore bundle)
MAX_REASONS = 50  # per-file differences shown per wheel
MAX_REASON = 300
MAX_ADVISORIES = 200
MAX_VERSIONS_LISTED = 30  # per advisory and status
EQUIVALENCE_KIND = "equivalence"  # the statement's sidecar kind (factory.verify.equivalence)

Reader = Callable[[str, int], "bytes | None"]  # a file under the index, bounded; None if not


@dataclass(frozen=True)
class Dependency:
    """One Requires-Dist line: the name it links to (None: not a requirement), as shown."""

    text: str
    name: str | None
    extras: str = ""
    specifier: str = ""
    marker: str = ""
    served: bool = False


@dataclass(frozen=True)
class Equivalence:
    """A wheel's statement as shown: verdict, upstream file, per-file reasons."""

    verdict: str  # equivalent, divergent, no-upstream-wheel, unreadable, ...
    upstream: str = ""
    reasons: tuple[str, ...] = ()
    more: int = 0  # reasons not shown
    note: str = ""


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: str
    summary: str
    fixed: str
    statuses: tuple[tuple[str, tuple[str, ...], int], ...]  # (status, versions shown, more)


@dataclass
class About:
    version: str | None = None  # the version the summary, licence and dependencies are of
    summary: str = ""
    license: str = ""
    license_classifiers: list[str] = field(default_factory=list)
    dependencies: list[Dependency] = field(default_factory=list)
    dependencies_more: int = 0
    metadata_problem: str = ""
    advisories: list[Advisory] | None = None  # None: no served version was checked
    advisories_more: int = 0
    # by wheel file name: the recorded statements (a pure wheel without one: not compared)
    equivalence: dict[str, Equivalence] = field(default_factory=dict)


def reader(root: Path) -> Reader:
    """Read files under ``root`` as `factory index check` does: never through a link,
    never a FIFO, bounded (factory.index.tree)."""
    from factory.index.tree import NotReadable, read_regular

    def read(rel: str, limit: int) -> bytes | None:
        try:
            return read_regular(root, rel, limit)
        except NotReadable:
            return None

    return read


def served_in(root: Path) -> Callable[[str], bool]:
    """Whether the index at ``root`` has a record of a (normalized) project name."""
    records = root / "records"

    def served(name: str) -> bool:
        try:
            return is_record_name(name) and (records / f"{name}.json").is_file()
        except OSError:
            return False

    return served


def is_record_name(name: str) -> bool:
    """Whether ``name`` (normalized) can be a project of this index: records/<name>.json
    must fit one path component. A Requires-Dist name is upstream's text (PEP 508 sets no
    length): a longer one is shown, never linked, looked up or noted as a file name."""
    return len(name.encode()) <= MAX_NAME - len(".json") and is_normalized(name)


def gather(record: ProjectRecord, read: Reader, served: Callable[[str], bool]) -> About:
    about = About()
    newest = _newest(record)
    if newest is not None:
        about.version = newest.version
        _metadata(about, newest, read, served, record.name)
    about.advisories, about.advisories_more = _advisories(record)
    for entry in record.files:  # a pure wheel without one is "not compared" (``is_pure``)
        if entry.sidecars.get(EQUIVALENCE_KIND):
            about.equivalence[entry.filename] = _equivalence(entry, read)
    return about


def dependencies_of(about: About) -> list[str]:
    """The project names the page links to (the ones it says are served or not)."""
    return sorted({d.name for d in about.dependencies if d.name})


def mark_served(about: About, served: frozenset[str] | set[str]) -> About:
    """``about`` with each dependency marked served when its name is in ``served``."""
    return replace(about, dependencies=[replace(d, served=d.name in served)
                                        for d in about.dependencies])


def _newest(record: ProjectRecord) -> FileEntry | None:
    live = [f for f in record.files if not f.yanked] or record.files
    if not live:
        return None
    return max(sorted(live, key=lambda f: f.filename), key=lambda f: version_key(f.version))


def _metadata(about: About, entry: FileEntry, read: Reader, served: Callable[[str], bool],
              project: str) -> None:
    data = read(entry.metadata.path, MAX_METADATA)
    if data is None:
        about.metadata_problem = "its core metadata cannot be read"
        return
    if hashlib.sha256(data).hexdigest() != entry.metadata.sha256:
        about.metadata_problem = "its core metadata is not the file its record pins"
        return
    raw, _ = parse_email(data)
    about.summary = clip(str(raw.get("summary") or ""), MAX_SUMMARY)
    about.license = clip(str(raw.get("license_expression") or raw.get("license") or ""),
                         MAX_LICENSE)
    about.license_classifiers = [
        clip(c, MAX_LICENSE) for c in (raw.get("classifiers") or [])
        if isinstance(c, str) and c.startswith("License ::")][:MAX_CLASSIFIERS]
    lines = [r for r in (raw.get("requires_dist") or []) if isinstance(r, str)]
    about.dependencies = [_dependency(line, served, project) for line in lines[:MAX_DEPENDENCIES]]
    about.dependencies_more = max(0, len(lines) - MAX_DEPENDENCIES)


def _dependency(line: str, served: Callable[[str], bool], project: str) -> Dependency:
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return Dependency(clip(line, MAX_REQUIREMENT), None)
    name = str(canonicalize_name(req.name))
    if not is_record_name(name):  # no project of this index can have it
        return Dependency(clip(line, MAX_REQUIREMENT), None)
    return Dependency(
        text=clip(line, MAX_REQUIREMENT),
        name=name,
        extras=clip(",".join(sorted(req.extras)), MAX_REQUIREMENT),
        specifier=clip(str(req.specifier), MAX_REQUIREMENT),
        marker=clip(str(req.marker) if req.marker else "", MAX_REQUIREMENT),
        served=name == project or served(name),
    )


def _advisories(record: ProjectRecord) -> tuple[list[Advisory] | None, int]:
    if not any(f.advisories is not None and f.advisories_checked for f in record.files):
        return None, 0
    from factory.vex import history

    known = history(record)
    return [_advisory(h) for h in known[:MAX_ADVISORIES]], max(0, len(known) - MAX_ADVISORIES)


def _advisory(known: History) -> Advisory:
    statuses = tuple(
        (status, tuple(clip(v, 60) for v in versions[-MAX_VERSIONS_LISTED:][::-1]),
         max(0, len(versions) - MAX_VERSIONS_LISTED))
        for status, versions in known.statuses.items() if versions)
    adv = known.advisory
    return Advisory(clip(adv.id, 100), clip(", ".join(adv.aliases), 300),
                    clip(adv.summary, MAX_SUMMARY), clip(", ".join(adv.fixed), 200), statuses)


def is_pure(filename: str) -> bool:
    """As factory.verify.equivalence.is_pure (not imported: the server renders pages)."""
    try:
        tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return False
    return all(t.abi == "none" and t.platform == "any" for t in tags)


def _equivalence(entry: FileEntry, read: Reader) -> Equivalence:
    stored = entry.sidecars[EQUIVALENCE_KIND][0]
    data = read(stored.path, MAX_STATEMENT)
    if data is None or hashlib.sha256(data).hexdigest() != stored.sha256:
        return Equivalence("unreadable", note="the statement is not the file its record pins")
    statement = _read_statement(data)
    if statement is None:
        return Equivalence("unreadable", note="the statement beside it is not one the factory "
                                              "writes (`factory verify` checks it)")
    subject = statement.get("subject")
    named = (subject[0].get("digest", {}).get("sha256") if isinstance(subject, list) and subject
             and isinstance(subject[0], dict) and isinstance(subject[0].get("digest"), dict)
             else None)
    if named != entry.sha256:
        return Equivalence("unreadable", note="the statement beside it is about another file")
    predicate = statement.get("predicate")
    return _shown(predicate if isinstance(predicate, dict) else {})


def _read_statement(data: bytes) -> dict[str, Any] | None:
    """The in-toto statement inside a Sigstore DSSE bundle, unverified (the page only shows
    it; `factory verify` checks its signature). As factory.verify.equivalence.read_statement
    reads it, from bytes read through the index tree (never through a link, never a FIFO)."""
    import base64

    from factory.attest.types import EQUIVALENCE_PREDICATE_TYPE as PREDICATE_TYPE

    try:
        bundle = json.loads(data)
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True)
        statement = json.loads(payload)
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(statement, dict) or statement.get("predicateType") != PREDICATE_TYPE:
        return None
    return statement


def _shown(predicate: dict[str, Any]) -> Equivalence:
    """The predicate's fields (factory.verify.equivalence.statement) as the page shows them."""
    upstream = predicate.get("upstream")
    name = upstream.get("filename") if isinstance(upstream, dict) else None
    raw = predicate.get("differences")
    reasons = [_reason(r) for r in raw] if isinstance(raw, list) else []
    verdict = predicate.get("verdict")
    if not isinstance(verdict, str):  # the first statements: written only when equivalent
        verdict = "equivalent" if not reasons else "divergent"
    return Equivalence(clip(verdict, 40), clip(name, 200) if isinstance(name, str) else "",
                       tuple(reasons[:MAX_REASONS]), max(0, len(reasons) - MAX_REASONS),
                       _backend(predicate.get("backend")))


def _reason(item: Any) -> str:
    """One difference: "FILE: WHY (DETAIL)"."""
    if isinstance(item, dict):
        text = f"{item.get('file', '?')}: {item.get('why', '?')}"
        if item.get("detail"):
            text += f" ({item['detail']})"
        return clip(text, MAX_REASON)
    return clip(str(item), MAX_REASON)


def _backend(backend: Any) -> str:
    """Which build backend built ours and upstream's, and why they differ if they do."""
    if not isinstance(backend, dict):
        return ""
    parts = [f"backend: ours {backend.get('ours') or '?'}, upstream's "
             f"{backend.get('upstream') or '?'}"]
    if backend.get("reason"):
        parts.append(str(backend["reason"]))
    return clip("; ".join(parts), MAX_REASON)
