"""The watch cycle: notice new patch releases and advisories, and say what to rebuild.

One cycle: re-resolve the lock as far as each recipe's track allows (one
conditional request per approved component: listings are cached by ETag),
check every published version against the advisories (yanking the affected
ones, with the advisory ids as the reason), and return the components whose
pins moved so that the rebuild runs for exactly those.

A pinned file that changed upstream (other bytes, another host) is an alarm:
the pin stays, the component is not rebuilt (its published build keeps
serving), and the alarm is recorded and returned until an operator accepts it.

What the cycle watches is also what `factory status` shows, one row per approved
component (``component_status``): policy, upstream, lock, index, advisories,
alarms and refusals; each cycle writes it to the index home page. What it knows of
one name is also what `factory why` explains (``why_knowledge``, ``ask_upstream``).

    result = watch_cycle(settings)
    result.rebuild       # the components whose pins moved: rebuild exactly these
    result.summary()     # one printable line
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from factory import ledger
from factory.config import Settings
from factory.errors import FactoryError, UpstreamError, printable
from factory.index import Index
from factory.index.validation import load_catalog
from factory.lock import Alarm, Change, Lock, LockedComponent, Problem, load_lock, lock_report
from factory.lock.policy import parse_time
from factory.project_status import Policy, apply_statuses, policy_status
from factory.recipes import load_recipes
from factory.upstream.advisories import (
    AdvisoriesUnavailable,
    AdvisoryDatabase,
    archive_problem,
    is_archive_url,
    open_advisories,
)
from factory.upstream.client import Upstream
from factory.upstream.listing import ProjectListing, is_project_name
from factory.verify.equivalence import recheck
from factory.vex import publish_vex
from factory.why import Knowledge, releases_of


@dataclass
class WatchResult:
    moved: list[Change] = field(default_factory=list)
    rebuild: list[str] = field(default_factory=list)
    yanked: list[tuple[str, str, str]] = field(default_factory=list)  # project, version, why
    alarms: list[Alarm] = field(default_factory=list)  # pins kept: upstream changed under them
    problems: list[Problem] = field(default_factory=list)  # could not be locked this time
    statuses: list[str] = field(default_factory=list)  # PEP 792 statuses applied (one line each)
    advisories_problem: str | None = None  # why advisories were NOT CHECKED this cycle
    tuf_problem: str | None = None  # why the TUF repository was not re-signed this cycle
    # published releases equivalent to upstream's wheel before that diverge from the one
    # upstream lists now (factory.verify.equivalence.recheck), and why one was not compared
    equivalence_alarms: list[str] = field(default_factory=list)
    equivalence_notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"ALARM {a.describe()}" for a in self.alarms]
        parts += [f"ALARM {a}" for a in self.equivalence_alarms]
        parts += self.equivalence_notes
        if self.advisories_problem:
            parts.append(f"advisories NOT CHECKED: {self.advisories_problem}")
        parts += [f"not locked: {p.describe()}" for p in self.problems]
        parts += [c.describe() for c in self.moved]
        parts += [f"yanked {p} {v} ({why})" for p, v, why in self.yanked]
        parts += [f"status {line}" for line in self.statuses]
        if self.tuf_problem:
            parts.append(f"TUF repository NOT re-signed: {self.tuf_problem}")
        # Logged through Prefect's console handler: upstream and OSV text, made inert.
        return printable("; ".join(parts)) or "nothing new upstream, no new advisories"


def watch_cycle(settings: Settings, run_id: str | None = None) -> WatchResult:
    index = Index.of(settings)
    result = WatchResult()
    report = lock_report(settings, update=True)
    result.alarms, result.problems = report.alarms, report.problems
    alarmed = {a.name for a in report.alarms}
    result.moved = [c for c in report.changes if c.new is not None]
    result.rebuild = sorted({c.name for c in result.moved} - alarmed)
    for change in result.moved:
        ledger.record_decision(settings, change.name, "locked", change.why, change.new, run_id)
    result.equivalence_notes, result.equivalence_alarms = recheck(settings, index.root, run_id)
    db, result.advisories_problem = open_advisories(settings.advisories,
                                                    advisories_cache(settings))
    if db is not None:
        try:
            result.yanked = check_advisories(settings, index, run_id, db)
        except AdvisoriesUnavailable as exc:  # the archive went away between two reads
            db, result.advisories_problem = None, exc.message
    if db is not None or not settings.advisories:
        # the signed OpenVEX feed of what was just checked (/.well-known/factory/vex.json);
        # never rewritten from a source that could not be read (the last one stands)
        publish_vex(settings, index, db)
    else:
        ledger.record_decision(settings, "*", "advisories-not-checked",
                               result.advisories_problem or "", run_id=run_id)
    # upstream's archived or deprecated (as the lock now records it) onto the served project
    result.statuses = apply_statuses(settings, index, Policy.load(settings, report.lock))
    publish_status(settings, index)
    result.tuf_problem = refresh_tuf(settings, index)
    return result


def refresh_tuf(settings: Settings, index: Index) -> str | None:
    """Re-sign the index's TUF repository where due (its timestamp lives 7 days), so that a
    watched index stays current for `sigstore --instance` clients however long nothing is
    published. Why it could not, or None; the cycle goes on either way."""
    from factory.publish import publish_tuf  # factory.publish imports this module

    try:
        publish_tuf(settings, index)
    except FactoryError as exc:
        return exc.message
    return None


def publish_status(settings: Settings, index: Index) -> None:
    """Show `factory status` on the index home page (listings come from the ETag cache)."""
    index.write_status([row.to_dict() for row in component_status(settings)])


def advisories_cache(settings: Settings) -> Path:
    """Where an advisory archive URL is cached for this factory (its state directory)."""
    return settings.state_dir / "advisories"


def check_advisories(settings: Settings, index: Index, run_id: str | None = None,
                     db: AdvisoryDatabase | None = None,
                     projects: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
    """Record the advisory status of every published version (of ``projects`` only, when
    given); yank the affected ones (none when the settings' source cannot be read:
    ``advisories_problem`` says why)."""
    if db is None:
        db, _ = open_advisories(settings.advisories, advisories_cache(settings))
        if db is None:
            return []
    yanked = []
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for project in index.projects() if projects is None else sorted(set(projects)):
        record = index.record(project)
        if record is None:
            continue
        for version in sorted({f.version for f in record.files}, key=Version):
            hits = db.affecting(project, version)
            found = [{"id": a.id, "summary": a.summary, "aliases": list(a.aliases),
                      "fixed": ", ".join(str(v) for v in a.fixed_versions(project))}
                     for a in hits]
            entries = [f for f in record.files if f.version == version]
            if any(f.advisories != found for f in entries):
                index.record_advisories(project, version, found, now)
            if hits and not all(f.yanked for f in entries):
                # Shown by pip to whoever installs it: the OSV source's ids, made inert.
                why = "advisory " + ", ".join(sorted(printable(a.id, keep="") for a in hits))
                index.yank(project, version, why)
                ledger.record_decision(settings, project, "yanked", why, version, run_id)
                yanked.append((project, version, why))
    return yanked


# -- status: what `factory status` and the home page show ------------------------


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    kind: str
    allowed: str
    newest_upstream: str | None
    locked: str | None
    published: str | None
    advisories: list[str]
    waiting_days: float | None  # age of the newest allowed upstream release not yet published
    note: str = ""
    alarm: str | None = None  # upstream changed a pinned file: the pin is kept, not rebuilt
    refused: str | None = None  # a built wheel the admission gate refused to sign
    # a release equivalent to upstream's wheel before that diverges now (open until it is
    # equivalent again; factory.verify.equivalence)
    equivalence_alarm: str | None = None
    alternatives: list[str] = field(default_factory=list)  # the recipe's: use these instead
    # PEP 792: the status policy gives it (its recipe's, else upstream's archived or
    # deprecated; None: active), and what upstream says (the lock's record, or the listing)
    status: str | None = None
    status_reason: str | None = None
    advisories_problem: str | None = None  # why ``advisories`` may not be the whole truth
    upstream_status: str | None = None
    upstream_status_reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _newest(listing: ProjectListing | None) -> tuple[Version, str | None] | None:
    if listing is None:
        return None
    finals = [(f.version, f.upload_time) for f in listing.sdists()
              if f.version is not None and not f.version.is_prerelease and not f.yanked]
    return max(finals, key=lambda item: item[0], default=None)  # type: ignore[arg-type,return-value]


def _alarm(key: str, lock: Lock, listing: ProjectListing | None,
           opened: dict[tuple[str, str | None], dict[str, object]]) -> str | None:
    """The open alarm of ``key`` from the ledger, or a change the listing shows now."""
    for (name, version), row in sorted(opened.items(), key=lambda item: str(item[0])):
        if name == key:
            return f"{version or ''}: {row['reason']}".lstrip(": ")
    pins: list[LockedComponent] = [c for c in lock.components if c.key == key]
    for file in listing.files if listing is not None else ():
        for pin in pins:
            if file.filename == pin.sdist.filename and file.sha256 not in (None, pin.sdist.sha256):
                return (f"{pin.version}: upstream now lists {file.filename} with sha256 "
                        f"{file.sha256}, pinned {pin.sdist.sha256} (run `factory lock`)")
    return None


def _refused(key: str, refusals: dict[tuple[str, str | None], dict[str, object]]) -> str | None:
    """The refusals of ``key``'s wheels not followed by a publication, one line."""
    found = [f"{version}: {row['reason']}" for (name, version), row in sorted(
        refusals.items(), key=lambda item: str(item[0])) if name == key]
    return "; ".join(found) or None


def component_status(settings: Settings, offline: bool = False) -> list[ComponentStatus]:
    recipes = load_recipes(settings)
    lock = load_lock(settings) if settings.lock_path.is_file() else Lock()
    index = Index.of(settings)
    now = datetime.now(UTC)
    opened = ledger.open_alarms(settings)
    refusals = ledger.open_refusals(settings)
    diverged = ledger.open_equivalence_alarms(settings)
    unchecked = advisories_problem(settings)
    rows = []
    with Upstream(settings.upstream, retries=1, timeout=settings.http_timeout,
                  cache_dir=settings.state_dir / "upstream-cache") as upstream:
        for key, recipe in sorted(recipes.items()):
            note, listing = "", None
            if not offline:
                try:
                    listing = upstream.project(recipe.name)
                except FactoryError as exc:
                    note = exc.message
            if listing is not None and listing.rejected and not note:
                first = listing.rejected[0]
                note = (f"upstream lists {len(listing.rejected)} file(s) we refuse "
                        f"({first.filename}: {first.reason})")
            newest = _newest(listing)
            allowed = None
            if listing is not None:
                allowed = _newest(ProjectListing(listing.name, tuple(
                    f for f in listing.files
                    if f.version is not None and recipe.versions.contains(f.version))))
            record = index.record(key)
            live = [f for f in record.files if not f.yanked] if record else []
            published = max((Version(f.version) for f in live), default=None)
            advisories = sorted({a.get("id", "?") for f in (record.files if record else [])
                                 for a in (f.advisories or [])})
            waiting = None
            if allowed and (published is None or allowed[0] > published) and allowed[1]:
                uploaded = parse_time(allowed[1])
                waiting = round((now - uploaded).total_seconds() / 86400, 2) if uploaded else None
            locked = lock.primary(key)
            said = (listing.status, listing.status_reason) if listing is not None else (
                (locked.upstream_status, locked.upstream_status_reason) if locked else (None, None))
            wanted = policy_status(recipe, *said)
            rows.append(ComponentStatus(
                name=key, kind=recipe.kind, allowed=str(recipe.versions) or "any",
                newest_upstream=str(newest[0]) if newest else None,
                locked=locked.version if locked else None,
                published=str(published) if published else None,
                advisories=advisories, waiting_days=waiting, note=note,
                alarm=_alarm(key, lock, listing, opened),
                refused=_refused(key, refusals), alternatives=list(recipe.alternatives),
                equivalence_alarm="; ".join(str(row["reason"]) for (name, _), row in sorted(
                    diverged.items(), key=lambda item: str(item[0])) if name == key) or None,
                status=wanted.status if wanted.source else None,
                status_reason=wanted.reason if wanted.source else None,
                upstream_status=said[0], upstream_status_reason=said[1],
                advisories_problem=unchecked))
    return rows


def advisories_problem(settings: Settings) -> str | None:
    """Why the advisories the index shows are NOT CHECKED (or checked against a stale
    copy), read offline from the settings and the archive's cache; None: checked."""
    source = settings.advisories
    if not source:
        return "no advisory source configured"
    if is_archive_url(source):
        cache = advisories_cache(settings)
        if not (cache / "archive.zip").is_file():
            return f"{source} not fetched yet, or unreachable"
        problem = archive_problem(cache)
        return f"stale copy in use ({problem})" if problem else None
    if not source.startswith(("http://", "https://")) and not Path(source).exists():
        return f"advisory source {source} does not exist"
    return None


# -- why: what the factory knows of a name, for `factory why` ------------------------
def why_knowledge(settings: Settings, name: str) -> Knowledge:
    """What the factory knows, offline: every recipe's status row (recipes, lock, index,
    ledger refusals and alarms), the published catalog, the last build of ``name``
    if it failed, and the releases of any project from its index record."""
    index = Index.of(settings)
    rows = [row.to_dict() for row in component_status(settings, offline=True)]
    key = canonicalize_name(name) if is_project_name(name) else None
    for row in rows:
        if row["name"] == key:
            last = ledger.builds(settings, key, limit=1)
            if last and last[0]["outcome"] == "failed":
                row["failed"] = f"{last[0]['version']}: {last[0]['error'] or 'no error recorded'}"

    return Knowledge.from_rows(rows, load_catalog(index.layout),
                               lambda project: releases_of(index.record(project)))


def ask_upstream(settings: Settings, name: str) -> str:
    """What the upstream index says of ``name``, in one bounded request: "exists",
    "unknown" (a 404, or no name an index can have), or "unreachable"."""
    if not is_project_name(name):
        return "unknown"
    try:
        with Upstream(settings.upstream, retries=0, timeout=min(settings.http_timeout, 10.0),
                      deadline=20.0, max_listing_bytes=16 << 20) as upstream:
            upstream.project(name)
    except UpstreamError as exc:
        return "unknown" if " does not know " in exc.message else "unreachable"
    except FactoryError:  # the listing is there but refused (too large, an odd host...)
        return "exists"
    return "exists"
