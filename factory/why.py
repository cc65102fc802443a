"""Why a name is (not) installable from the index, and what to use instead.

Pure logic over what the factory knows (``Knowledge``: the approved components'
status rows, the published catalog, and a project's releases on demand): no
printing, no network. The answer is the same for `factory serve`'s 404 body and
`factory why`; every text in it (the name asked, reasons from disk) is made
printable and bounded, and a name that cannot be a project name is answered
without any fuzzy matching.

    knowledge = Knowledge.from_rows(status_rows, catalog_rows)
    found = answer(knowledge, "reqests")
    found.verdict            # "did-you-mean"
    found.suggestions        # ("requests",)
    found.to_json()          # the 404 body a JSON client gets
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from factory.errors import printable
from factory.similar import Matcher, Suggestion, fold
from factory.upstream.listing import is_project_name

SERVED = "served"
NOT_APPROVED = "not-approved"
DID_YOU_MEAN = "did-you-mean"
NOT_PUBLISHED = "approved-not-published"
VERSION_BLOCKED = "version-blocked"
QUARANTINED = "quarantined"
UNKNOWN_UPSTREAM = "unknown-upstream"
VERDICTS = (SERVED, NOT_APPROVED, DID_YOU_MEAN, NOT_PUBLISHED, VERSION_BLOCKED, QUARANTINED,
            UNKNOWN_UPSTREAM)

MAX_NAME = 200  # longer is no project name: answered without matching
SHOWN = 200  # characters of the asked name an answer quotes
MAX_TEXT = 300  # characters of a reason (from disk) an answer quotes
MAX_VERSION = 64
_USABLE = ("active", "archived", "deprecated")  # PEP 792 statuses whose files are served


def clip(text: object, limit: int = MAX_TEXT) -> str:
    """``text`` made printable on one line and cut at ``limit`` characters of what is
    shown: escapes count (200 format characters are not 1,200 characters shown), and
    one is never cut in half; "…" marks a cut."""
    text = str(text)
    if len(text) <= limit and text.isprintable():
        return text
    shown: list[str] = []
    size = 0
    for char in text:
        piece = char if char.isprintable() else printable(char, keep="")
        if size + len(piece) > limit:
            return "".join(shown) + "…"
        shown.append(piece)
        size += len(piece)
    return "".join(shown)


@dataclass(frozen=True)
class Release:
    """One published version of a project."""

    version: str
    yanked: bool = False
    yanked_reason: str | None = None
    advisories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Component:
    """What the factory knows of one approved (or published) project."""

    name: str  # normalized
    approved: bool = True
    allowed: str | None = None  # the recipe's version range
    locked: str | None = None
    published: str | None = None  # the newest version served and not yanked
    refused: str | None = None  # the admission gate refused its wheel(s)
    alarm: str | None = None  # upstream changed a pinned file
    failed: str | None = None  # its last build failed
    status: str = "active"  # PEP 792
    status_reason: str | None = None
    alternatives: tuple[str, ...] = ()  # what its recipe names to use instead (normalized)
    upstream_status: str | None = None  # what upstream says of it (PEP 792), when not active
    upstream_status_reason: str | None = None


def _text(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    return clip(value) if isinstance(value, str) and value else None


MAX_ALTERNATIVES = 10
_STATUSES = ("active", "archived", "quarantined", "deprecated")  # PEP 792


def _status(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    return value if isinstance(value, str) and value in _STATUSES else None


def _names(row: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """A list of normalized project names from a row (bounded; anything else left out)."""
    value = row.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(v for v in value[:MAX_ALTERNATIVES]
                               if isinstance(v, str) and _is_key(v)))


class Knowledge:
    """The approved components and the published projects, indexed for matching;
    ``releases`` loads one project's published versions when a version is asked."""

    def __init__(self, components: Iterable[Component],
                 releases: Callable[[str], list[Release] | None] | None = None) -> None:
        self.components = {c.name: c for c in components}
        # Only what may be used is ever offered instead: an approved component, never one
        # published but no longer approved, nor one quarantined (or of a status unknown).
        self.matcher = Matcher(c.name for c in self.components.values() if _offered(c))
        self.releases = releases or (lambda _name: None)

    @classmethod
    def from_rows(cls, status: Iterable[Mapping[str, Any]],
                  catalog: Iterable[Mapping[str, Any]] = (),
                  releases: Callable[[str], list[Release] | None] | None = None) -> Knowledge:
        """From records/_status.json rows (``factory status``, one per approved component)
        and records/_catalog.json rows (one per published project). Rows are read as
        untrusted: a row without a normalized name is skipped, other fields are kept
        only if they are text, made printable and bounded."""
        found: dict[str, Component] = {}
        for row in status:
            name = row.get("name")
            if isinstance(name, str) and _is_key(name):
                found[name] = Component(
                    name, allowed=_text(row, "allowed"), locked=_text(row, "locked"),
                    published=_text(row, "published"), refused=_text(row, "refused"),
                    alarm=_text(row, "alarm"), failed=_text(row, "failed"),
                    alternatives=_names(row, "alternatives"),
                    # the status policy gives it, until a publish applies it to the record
                    status=_status(row, "status") or "active",
                    status_reason=_text(row, "status_reason"),
                    upstream_status=_status(row, "upstream_status"),
                    upstream_status_reason=_text(row, "upstream_status_reason"))
        approved = set(found)
        for row in catalog:
            name = row.get("name")
            if not (isinstance(name, str) and _is_key(name)):
                continue
            # Published without a status row: no longer approved (when there are rows).
            known = found.get(name) or Component(name, approved=not approved)
            status_ = row.get("status") if isinstance(row.get("status"), str) else "active"
            if status_ == "active" and known.status != "active":  # not applied yet
                found[name] = replace(known, published=_text(row, "latest"))
                continue
            found[name] = replace(known, published=_text(row, "latest"), status=clip(status_, 20),
                                  status_reason=_text(row, "status_reason"))
        return cls(found.values(), releases)


def releases_of(record: Any) -> list[Release] | None:
    """The published versions of a project record (``factory.index.records.ProjectRecord``:
    its ``files``), oldest first; None without a record."""
    if record is None:
        return None
    by_version = {f.version: f for f in record.files}
    return [Release(v, f.yanked, clip(f.yanked_reason) if f.yanked_reason else None,
                    tuple(sorted({clip(a.get("id", "?"), 80) for a in f.advisories or ()})))
            for v, f in sorted(by_version.items(), key=lambda item: version_order(item[0]))]


def _offered(component: Component) -> bool:
    """May ``component`` be named as what to use instead?"""
    return component.approved and component.status in _USABLE


def _is_key(name: str) -> bool:
    return (len(name) <= MAX_NAME and is_project_name(name)
            and canonicalize_name(name) == name)


@dataclass(frozen=True)
class Answer:
    """The answer for one name (and version): ``verdict`` is one of VERDICTS, for
    machines; ``message()`` says it in one line, for people."""

    verdict: str
    name: str  # as asked: printable, bounded
    reason: str
    project: str | None = None  # the approved project it names
    version: str | None = None
    suggestions: tuple[str, ...] = ()
    instead: str | None = None  # a version to use instead
    advisories: tuple[str, ...] = ()
    upstream: str | None = None  # "exists", "unknown", "unreachable"; None: not asked
    details: dict[str, str] = field(default_factory=dict)  # why each suggestion
    status: str | None = None  # the project's PEP 792 status, when not active
    status_reason: str | None = None
    upstream_status: str | None = None  # what upstream says of it (PEP 792), when not active

    @property
    def installable(self) -> bool:
        return self.verdict == SERVED

    def message(self) -> str:
        """One line for a person: what it is, and what to do instead."""
        what = f"{self.name}=={self.version}" if self.version else self.name
        line = f"{what} is {self.reason}"
        if self.instead:
            line += f"; use {self.project}=={self.instead} instead"
        if self.suggestions and self.project is not None and self.verdict != DID_YOU_MEAN:
            line += "; approved alternatives: " + ", ".join(self.suggestions)
        elif self.suggestions:
            line += "; did you mean: " + ", ".join(self.suggestions)
        return line

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["suggestions"], data["advisories"] = list(self.suggestions), list(self.advisories)
        data["message"] = self.message()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


def parse_request(text: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME==VERSION`` -> (name, version); ValueError if it is neither."""
    name, sep, version = text.partition("==")
    name, version = name.strip(), version.strip()
    if not name or (sep and not version):
        raise ValueError(f"{clip(text, 80)!r} is not NAME or NAME==VERSION")
    if sep:
        if len(version) > MAX_VERSION:  # before parsing: no work grows with the input
            raise ValueError("the version is longer than 64 characters")
        try:
            Version(version)
        except InvalidVersion:
            raise ValueError(f"{clip(version, 80)!r} is not a version") from None
    return name, version or None


def plausible(name: str) -> bool:
    """Could ``name`` be typed for a project name (in any script)? Letters, digits,
    combining marks and . _ - only, at most 200 characters."""
    return 0 < len(name) <= MAX_NAME and all(
        c.isalnum() or c in "-_." or unicodedata.combining(c) for c in name)


def answer(knowledge: Knowledge, name: str, version: str | None = None) -> Answer:
    """Why ``name`` (``==version``) is or is not installable from the index."""
    shown = clip(name, SHOWN)
    version = clip(version, MAX_VERSION) if version is not None else None
    if not plausible(name):
        why = ("longer than 200 characters: no project has such a name" if len(name) > MAX_NAME
               else "not a project name")
        return Answer(NOT_APPROVED, shown, why, version=version)
    key = canonicalize_name(name)
    component = knowledge.components.get(key) if is_project_name(name) else None
    if component is not None:
        return _known(knowledge, component, shown, version)
    suggestions = knowledge.matcher.suggest(fold(name))
    if suggestions:
        return _did_you_mean(shown, version, suggestions)
    return Answer(NOT_APPROVED, shown, "not an approved component of this index",
                  version=version)


def _did_you_mean(shown: str, version: str | None, found: list[Suggestion]) -> Answer:
    return Answer(DID_YOU_MEAN, shown, "not an approved component of this index",
                  version=version, suggestions=tuple(s.name for s in found),
                  details={s.name: s.why for s in found})


def _known(knowledge: Knowledge, component: Component, shown: str,
           version: str | None) -> Answer:
    found = _known_verdict(knowledge, component, shown, version)
    if component.upstream_status not in (None, "active"):
        found = replace(found, upstream_status=component.upstream_status)
        if component.upstream_status == "quarantined" and found.verdict != NOT_PUBLISHED:
            found = replace(found, reason=found.reason + "; " + _pulled(component))
    if component.status != "active":
        found = replace(found, status=component.status, status_reason=component.status_reason)
        if found.verdict == SERVED:  # deprecated or archived: served, with a notice
            found = replace(found, reason=found.reason + _notice(component))
    if found.verdict != SERVED or component.status != "active":
        offered = alternatives(knowledge, component)
        if offered:
            found = replace(found, suggestions=offered, details=dict.fromkeys(
                offered, f"an approved alternative to {component.name} (its recipe)"))
    return found


def alternatives(knowledge: Knowledge, component: Component) -> tuple[str, ...]:
    """The alternatives ``component``'s recipe names that may be used: approved,
    served, not quarantined."""
    found = []
    for name in component.alternatives:
        other = knowledge.components.get(name)
        if other is not None and name != component.name and _offered(other) \
                and other.published:
            found.append(name)
    return tuple(found)


def _pulled(component: Component) -> str:
    why = f": {component.upstream_status_reason}" if component.upstream_status_reason else ""
    return f"upstream quarantined it (PEP 792){why}; no new version is published"


def _notice(component: Component) -> str:
    """What a served project's PEP 792 status says, as the end of its reason."""
    why = f"; {component.status} (PEP 792)"
    return why + (f": {component.status_reason}" if component.status_reason else "")


def _known_verdict(knowledge: Knowledge, component: Component, shown: str,
                   version: str | None) -> Answer:
    name = component.name
    if component.status == "quarantined":
        why = "quarantined: its files are not served (PEP 792)"
        if component.status_reason:
            why += f" ({component.status_reason})"
        return Answer(QUARANTINED, shown, why, name, version)
    releases = knowledge.releases(name) if version or not component.published else None
    newest = component.published if releases is None else max(
        (r.version for r in releases if not r.yanked), key=version_order, default=None)
    if newest is None:
        return Answer(NOT_PUBLISHED, shown, _not_published(component, releases), name, version)
    if version is None:
        return Answer(SERVED, shown, _served(component, newest), name, version)
    return _version(component, releases or [], shown, version, newest)


def _served(component: Component, newest: str) -> str:
    why = f"served (newest {newest})"
    return why if component.approved else why + "; published, but no longer approved"


def _not_published(component: Component, releases: list[Release] | None) -> str:
    """Why an approved component is not served (yet): the first the factory knows of."""
    if component.upstream_status == "quarantined":
        return "approved, but " + _pulled(component)
    if component.refused:
        return f"approved, but the admission gate refused its wheel: {component.refused}"
    if component.alarm:
        return f"approved, but held by an upstream alarm: {component.alarm}"
    if component.failed:
        return f"approved, but its build failed: {component.failed}"
    if releases:
        return "approved, but every published version is yanked: " + "; ".join(
            f"{r.version}: {r.yanked_reason or 'yanked'}" for r in releases[:5])
    if component.locked:
        return f"approved and locked at {component.locked}, but not built or published yet"
    return "approved, but not locked or built yet"


def _version(component: Component, releases: list[Release], shown: str, version: str,
             newest: str) -> Answer:
    name = component.name
    release = next((r for r in releases if _same(r.version, version)), None)
    # A version to use instead only of an approved project, and never the one asked.
    instead = newest if component.approved and not _same(newest, version) else None
    if release is not None and not release.yanked:
        return Answer(SERVED, shown, f"served{_advised(release)}", name, version,
                      advisories=release.advisories)
    if release is not None:
        why = f"yanked: {release.yanked_reason or 'no reason given'}"
        return Answer(VERSION_BLOCKED, shown, why, name, version, instead=instead,
                      advisories=release.advisories)
    return Answer(VERSION_BLOCKED, shown, _unbuilt(component, version), name, version,
                  instead=instead)


def _advised(release: Release) -> str:
    return f" (advisories: {', '.join(release.advisories)})" if release.advisories else ""


def _unbuilt(component: Component, version: str) -> str:
    """Why a version of a served project is not served."""
    if not component.approved:
        return "not served: the project is no longer approved"
    if component.allowed and not _allows(component.allowed, version):
        return f"not in the approved range {component.allowed}"
    for what, text in (("refused by the admission gate", component.refused),
                       ("held by an upstream alarm", component.alarm),
                       ("not built: its build failed", component.failed)):
        if text and _mentions(text, version):
            return f"{what}: {text}"
    locked = f" (locked: {component.locked})" if component.locked else ""
    return f"not built by this factory{locked}"


def _allows(allowed: str, version: str) -> bool:
    if allowed == "any":
        return True
    try:
        return SpecifierSet(allowed).contains(version, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return True  # cannot tell: say what else is known


def _mentions(text: str, version: str) -> bool:
    return any(part.split(":", 1)[0].strip() == version for part in text.split(";"))


def version_order(version: str) -> tuple[int, Any]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _same(a: str, b: str) -> bool:
    try:
        return a == b or Version(a) == Version(b)
    except InvalidVersion:
        return False


def with_upstream(found: Answer, upstream: str) -> Answer:
    """``found`` with what the upstream index said of the name: a name upstream does
    not know either, close to nothing approved, is likely hallucinated."""
    if found.verdict not in (NOT_APPROVED, DID_YOU_MEAN) or not found.reason.startswith(
            "not an approved"):
        return replace(found, upstream=upstream)
    if upstream == "unknown" and found.verdict == NOT_APPROVED:
        return replace(found, verdict=UNKNOWN_UPSTREAM, upstream=upstream,
                       reason="not an approved component, and the upstream index does not "
                       "know it either (a hallucinated or mistyped name?)")
    if upstream == "unknown":
        return replace(found, upstream=upstream, reason="not an approved component of this "
                       "index, and unknown upstream too")
    if upstream == "exists":
        return replace(found, upstream=upstream, reason="not an approved component of this "
                       "index (upstream has it: ask the platform team to approve it)")
    return replace(found, upstream=upstream)
