"""PEP 792 project status from policy and from upstream, applied to the served index.

Three parties may give a project a status, and the first that does wins:

1. an operator (`factory index status NAME STATE --reason ...`): it stands until an
   operator sets the project active again, which hands it back to the other two;
2. its recipe (``status = "deprecated" | "archived" | "quarantined"`` with
   ``status_reason``): applied when the factory publishes;
3. upstream's own status, as the lock recorded it from the listing: "archived" and
   "deprecated" are mirrored onto the served project with the reason prefixed
   "upstream: "; upstream's "quarantined" is not mirrored (the versions already built,
   verified and served stay served) but no new version of the project is published
   (``held``), and `factory why` and the 404 say so.

    wanted = policy_status(recipe, upstream_status, upstream_reason)
    apply_statuses(settings, index)      # every approved, published project
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from factory.config import Settings
from factory.errors import FactoryError
from factory.index import Index
from factory.index.records import IndexCorruptError
from factory.index.validation import load_catalog
from factory.lock import Lock, LockedComponent, load_lock
from factory.recipes import Recipe, check_recipes

MIRRORED = ("archived", "deprecated")  # upstream statuses the served project takes on
MAX_REASON = 300


@dataclass(frozen=True)
class Wanted:
    """The status policy gives a project: ``source`` is "recipe", "upstream" or None."""

    status: str = "active"
    reason: str | None = None
    source: str | None = None


def policy_status(recipe: Recipe, upstream: str | None = None,
                  upstream_reason: str | None = None) -> Wanted:
    """The recipe's status, else upstream's archived or deprecated, else active."""
    if recipe.status is not None:
        return Wanted(recipe.status, recipe.status_reason, "recipe")
    if upstream in MIRRORED:
        said = upstream_reason or f"the project is {upstream}"
        return Wanted(upstream, f"upstream: {said}"[:MAX_REASON], "upstream")
    return Wanted()


def held(recipe: Recipe | None, locked: LockedComponent | None) -> str | None:
    """Why no new version of the project may be published, or None: its recipe
    quarantines or archives it, or upstream quarantined it."""
    if recipe is not None and recipe.status in ("quarantined", "archived"):
        why = f": {recipe.status_reason}" if recipe.status_reason else ""
        return f"its recipe sets status {recipe.status}{why}; no new version is published"
    if locked is not None and locked.upstream_status == "quarantined":
        why = f": {locked.upstream_status_reason}" if locked.upstream_status_reason else ""
        return f"upstream quarantined it (PEP 792){why}; no new version is published"
    return None


@dataclass(frozen=True)
class Policy:
    """The recipes and the lock, read once for a publish or a watch cycle; empty when
    there are none (an index published by hand)."""

    recipes: dict[str, Recipe]
    lock: Lock

    @classmethod
    def load(cls, settings: Settings, lock: Lock | None = None) -> Policy:
        try:
            recipes, _errors = check_recipes(settings)  # the good ones apply
        except FactoryError:
            recipes = {}
        if lock is None:
            try:
                lock = load_lock(settings) if settings.lock_path.is_file() else Lock()
            except FactoryError:
                lock = Lock()
        return cls(recipes, lock)

    def wanted(self, key: str) -> Wanted | None:
        recipe, locked = self.recipes.get(key), self.lock.primary(key)
        if recipe is None:
            return None
        if locked is None:
            return policy_status(recipe)
        return policy_status(recipe, locked.upstream_status, locked.upstream_status_reason)

    def held(self, key: str) -> str | None:
        return held(self.recipes.get(key), self.lock.primary(key))


def apply_statuses(settings: Settings, index: Index, policy: Policy | None = None) -> list[str]:
    """Give every approved, published project the status policy asks for (an
    operator's stands); one line per change. Only projects whose catalog entry
    differs from it are read."""
    policy = policy or Policy.load(settings)
    try:
        catalog: dict[str, Any] | None = {row["name"]: row for row in load_catalog(index.layout)}
    except IndexCorruptError:  # each record is asked instead (and the catalog rewritten)
        catalog = None
    changed = []
    for key in sorted(policy.recipes):
        wanted = policy.wanted(key)
        row = catalog.get(key) if catalog is not None else {}
        if row is None or wanted is None:
            continue  # not published: nothing to apply it to
        if (row.get("status", "active"), row.get("status_reason")) == (wanted.status,
                                                                         wanted.reason):
            continue
        try:
            applied = index.apply_status(key, wanted.status, wanted.reason, wanted.source)
        except IndexCorruptError:  # `factory index check` names it; the others go on
            continue
        if applied:
            changed.append(f"{key}: {wanted.status}" + (f" ({wanted.reason})"
                                                        if wanted.reason else ""))
    return changed
