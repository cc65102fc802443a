"""Status of every approved component: policy, upstream, lock, index, advisories."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from packaging.version import Version

from factory.config import Settings
from factory.errors import FactoryError
from factory.index.records import Layout, load_record
from factory.lock import Lock, load_lock
from factory.policy import parse_time
from factory.recipes import load_recipes
from factory.upstream import ProjectListing, Upstream


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

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _newest(listing: ProjectListing | None) -> tuple[Version, str | None] | None:
    if listing is None:
        return None
    finals = [(f.version, f.upload_time) for f in listing.sdists()
              if f.version is not None and not f.version.is_prerelease and not f.yanked]
    return max(finals, key=lambda item: item[0], default=None)  # type: ignore[arg-type,return-value]


def component_status(settings: Settings, offline: bool = False) -> list[ComponentStatus]:
    recipes = load_recipes(settings)
    lock = load_lock(settings) if settings.lock_path.is_file() else Lock()
    layout = Layout(settings.index_dir)
    now = datetime.now(UTC)
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
            newest = _newest(listing)
            allowed = None
            if listing is not None:
                allowed = _newest(ProjectListing(listing.name, tuple(
                    f for f in listing.files
                    if f.version is not None and recipe.versions.contains(f.version))))
            record = load_record(layout, key)
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
                advisories=advisories, waiting_days=waiting, note=note))
    return rows
