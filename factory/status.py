"""Status of every approved component: policy, upstream, lock, index, advisories, alarms."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from packaging.version import Version

from factory import ledger
from factory.config import Settings
from factory.errors import FactoryError
from factory.index import Index
from factory.lock import Lock, LockedComponent, load_lock
from factory.lock.policy import parse_time
from factory.recipes import load_recipes
from factory.upstream.client import Upstream
from factory.upstream.listing import ProjectListing


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
            rows.append(ComponentStatus(
                name=key, kind=recipe.kind, allowed=str(recipe.versions) or "any",
                newest_upstream=str(newest[0]) if newest else None,
                locked=locked.version if locked else None,
                published=str(published) if published else None,
                advisories=advisories, waiting_days=waiting, note=note,
                alarm=_alarm(key, lock, listing, opened),
                refused=_refused(key, refusals)))
    return rows
