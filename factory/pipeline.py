"""The pipeline's stages as plain functions: what the CLI and the flows call.

Each stage takes Settings and returns data; none of them needs Prefect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factory import sources
from factory.config import Settings
from factory.errors import LockError
from factory.lock import (  # noqa: F401  (load_lock is part of the stage API)
    Change,
    Lock,
    LockedComponent,
    check_lock,
    load_lock,
    resolve,
    save_lock,
)
from factory.policy import check_licences
from factory.recipes import Recipe, load_recipes
from factory.upstream import Upstream


def lock_stage(settings: Settings, update: bool | set[str] = False,
               on_fetch: Callable[[str], None] | None = None) -> tuple[Lock, list[Change]]:
    """Resolve the recipes and write recipes.lock; returns the lock and what moved."""
    recipes = load_recipes(settings)
    previous = load_lock(settings) if settings.lock_path.is_file() else None
    unknown = update - set(recipes) if isinstance(update, set) else set()
    if unknown:
        raise LockError(f"--update names components with no recipe: {', '.join(sorted(unknown))}",
                        "use the names of files in recipes/")
    lock, changes = resolve(settings, recipes, previous, update, on_fetch=on_fetch)
    save_lock(settings, lock)
    return lock, changes


def check_stage(settings: Settings) -> list[str]:
    """Offline: how recipes.lock disagrees with the recipes (empty when it matches)."""
    return check_lock(load_recipes(settings), load_lock(settings))


@dataclass(frozen=True)
class Fetched:
    component: LockedComponent
    path: Path


def fetch_stage(settings: Settings, names: set[str] | None = None,
                progress: Callable[[str, int, int | None], None] | None = None) -> list[Fetched]:
    """Download and verify every locked sdist (or those of ``names``), checking licences."""
    recipes = load_recipes(settings)
    lock = load_lock(settings)
    problems = check_lock(recipes, lock)
    if problems:
        raise LockError(f"recipes.lock does not match the recipes: {problems[0]}")
    fetched = []
    with Upstream(settings.upstream, retries=settings.http_retries,
                  timeout=settings.http_timeout) as upstream:
        for entry in lock.components:
            if names and entry.key not in names:
                continue
            report = (lambda n, t, f=entry.sdist.filename: progress(f, n, t)) if progress else None
            path = sources.fetch(settings, entry, upstream, report)
            _check_licence(recipes[entry.key], path)
            fetched.append(Fetched(entry, path))
    return fetched


def _check_licence(recipe: Recipe, sdist: Path) -> None:
    meta = sources.read_metadata(sdist)
    if meta is not None:
        check_licences(recipe, meta.license_expression, meta.license, meta.classifiers)
    else:
        check_licences(recipe, None, None, ())
