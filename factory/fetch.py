"""Stage 3, fetch: every locked sdist, downloaded into the content-addressed cache
and verified (size, sha256, its own PKG-INFO), its licence and prebuilt files
checked against its recipe. One component's refusal never stops the others.

    from factory.fetch import fetch_stage
    refused: dict[str, str] = {}
    for item in fetch_stage(settings, failed=refused):
        print(item.component.name, item.path)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factory.admission import admit_sdist
from factory.config import Settings
from factory.errors import AlarmError, FactoryError, LockError
from factory.lock import Lock, LockedComponent, load_lock, lock_mismatches, record_alarm
from factory.lock.policy import check_license
from factory.recipes import Recipe, load_recipes
from factory.upstream import cache
from factory.upstream.client import Upstream, open_upstream


@dataclass(frozen=True)
class Fetched:
    component: LockedComponent
    path: Path


def fetch_stage(settings: Settings, names: set[str] | None = None,
                progress: Callable[[str, int, int | None], None] | None = None,
                failed: dict[str, str] | None = None) -> list[Fetched]:
    """Download and verify every locked sdist (or those of ``names``), checking licences
    and the prebuilt files each ships against its recipe.

    One component's refusal (an upstream alarm, a licence, a prebuilt file, a
    mismatched PKG-INFO) never stops the others. With ``failed`` given, each refusal
    is put there (``name==version`` -> one-line reason) and the rest are returned;
    without it, the refusals are raised once the rest are fetched.
    """
    recipes = load_recipes(settings)
    lock = load_lock(settings)
    mismatched = _mismatched(recipes, lock, names, failed)
    fetched: list[Fetched] = []
    errors: list[FactoryError] = []
    upstreams: dict[str, Upstream] = {}
    try:
        for entry in lock.components:
            if (names and entry.key not in names) or entry.key in mismatched:
                continue
            report = (lambda n, t, f=entry.sdist.filename: progress(f, n, t)) if progress else None
            index = recipes[entry.key].source.index or settings.upstream
            if index not in upstreams:  # each index's own host policy applies to its files
                upstreams[index] = open_upstream(settings, index)
            try:
                fetched.append(_fetch_one(settings, entry, recipes[entry.key],
                                          upstreams[index], report))
            except FactoryError as exc:
                errors.append(exc)
                if failed is not None:
                    failed[f"{entry.key}=={entry.version}"] = exc.reason()
    finally:
        for upstream in upstreams.values():
            upstream.close()
    if errors and failed is None:
        raise errors[0] if len(errors) == 1 else FetchError(errors)
    return fetched


def _mismatched(recipes: dict[str, Recipe], lock: Lock, names: set[str] | None,
                failed: dict[str, str] | None) -> set[str]:
    """Projects whose lock rows disagree with their recipe: never fetched. Without
    ``failed`` that is an error; with it, each of their rows is refused there (one
    line) and the rest go on. A recipe not locked yet has no row to refuse."""
    problems = [(key, why) for key, why in lock_mismatches(recipes, lock)
                if not names or key in names]
    if problems and failed is None:
        raise LockError(f"recipes.lock does not match the recipes: {problems[0][1]}")
    why_of: dict[str, str] = {}
    for key, why in problems:
        why_of.setdefault(key, why)
    for entry in lock.components:
        if entry.key in why_of and failed is not None:
            failed.setdefault(f"{entry.key}=={entry.version}",
                              f"{why_of[entry.key]} (run `factory lock`)")
    return set(why_of)


def _fetch_one(settings: Settings, entry: LockedComponent, recipe: Recipe, upstream: Upstream,
               report: Callable[[int, int | None], None] | None) -> Fetched:
    try:
        path = cache.fetch(settings, entry.sdist, upstream, report)
    except AlarmError as exc:  # the pin's bytes or host changed: recorded, refused
        record_alarm(settings, exc)
        raise
    _check_license(recipe, path)
    admit_sdist(path, recipe)  # prebuilt files: refused before a build is spent on them
    return Fetched(entry, path)


class FetchError(FactoryError):
    """Several components could not be fetched; each is named with its reason."""

    def __init__(self, errors: list[FactoryError]) -> None:
        super().__init__(f"{len(errors)} components refused at fetch: "
                         + "; ".join(e.message for e in errors),
                         errors[0].hint)
        self.errors = errors


def _check_license(recipe: Recipe, sdist: Path) -> None:
    meta = cache.read_metadata(sdist)
    if meta is not None:
        check_license(recipe, meta.license_expression, meta.license, meta.classifiers)
    else:
        check_license(recipe, None, None, ())
