"""Approve a staged build: the recipe and the recipes.lock entry the admission gate wants.

The release stages sign only what was approved (factory.admission): a recipe for
the component and a lock entry whose pin is the sdist the wheel was built from,
under that recipe's digest. ``approve`` writes both for a build record made
without ``factory lock`` (the fixtures build on the host, with no upstream), and
returns the record re-saved with the recipe's real digest.
"""

from __future__ import annotations

import dataclasses

from packaging.utils import canonicalize_name
from packaging.version import Version

from factory.build.record import BuildRecord
from factory.config import Settings
from factory.lock import APPROVED, Lock, LockedComponent, load_lock, save_lock
from factory.recipes import parse_recipe
from factory.upstream.cache import cache_path, read_metadata
from tests import factories


def approve(settings: Settings, record: BuildRecord, recipe_body: str = "") -> BuildRecord:
    """Approve ``record``'s component at its version, pinned to its sdist (idempotent).

    ``recipe_body`` is added to a recipe this writes (e.g. ``allow_pth = true``); an
    existing recipe is kept as it is.
    """
    key = canonicalize_name(record.component)
    recipe_path = settings.recipes_dir / f"{key}.toml"
    if not recipe_path.is_file():
        factories.recipe(settings.root, key, f'versions = "=={record.version}"\n' + recipe_body)
    recipe = parse_recipe(recipe_path, settings.recipes_dir)
    sdist = cache_path(settings, record.source.sha256, record.source.filename)
    meta = read_metadata(sdist) if sdist.is_file() else None
    entry = LockedComponent(
        kind=recipe.kind, reason=APPROVED, recipe_digest=recipe.digest,
        sdist=dataclasses.replace(record.source, name=key, version=record.version,
                                  url=_lockable(record.source.url, record)),
        requires_dist=meta.requires_dist if meta else ())
    lock = load_lock(settings) if settings.lock_path.is_file() else Lock()
    lock.components = [c for c in lock.components
                       if not (c.key == key and Version(c.version) == Version(record.version))]
    lock.components.append(entry)
    save_lock(settings, lock)
    if record.recipe_digest == recipe.digest:
        return record
    approved = dataclasses.replace(record, recipe_digest=recipe.digest)
    approved.save(settings.wheels_dir)
    return approved


def _lockable(url: str, record: BuildRecord) -> str:
    """The lock takes http(s) URLs only; a fixture's file:// source gets a stand-in (the
    gate compares the pin by file name and sha256, never by URL)."""
    if url.startswith(("https://", "http://")):
        return url
    return f"https://files.example.invalid/packages/{record.source.filename}"
