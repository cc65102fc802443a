"""The pipeline's stages as plain functions: what the CLI and the flows call.

Each stage takes Settings and returns data; none of them needs Prefect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from factory import ledger, sources
from factory.admission import admit_sdist
from factory.config import Settings
from factory.errors import AlarmError, FactoryError, LockError
from factory.lock import (  # noqa: F401  (load_lock is part of the stage API)
    Alarm,
    Change,
    Lock,
    LockedComponent,
    Resolution,
    alarm_error,
    check_lock,
    load_lock,
    resolve_report,
    save_lock,
)
from factory.policy import check_licences
from factory.recipes import Recipe, load_recipes
from factory.upstream import Upstream


def lock_stage(settings: Settings, update: bool | set[str] = False,
               on_fetch: Callable[[str], None] | None = None,
               accept: Iterable[str] = ()) -> tuple[Lock, list[Change]]:
    """Resolve the recipes and write recipes.lock; returns the lock and what moved.

    When upstream changed a pinned file (bytes or host) the pin is kept, the lock
    is still written for everything else, and an AlarmError says so.
    """
    report = lock_report(settings, update, on_fetch, accept)
    if report.alarms:
        raise alarm_error(report.alarms)
    return report.lock, report.changes


def lock_report(settings: Settings, update: bool | set[str] = False,
                on_fetch: Callable[[str], None] | None = None,
                accept: Iterable[str] = ()) -> Resolution:
    """``lock_stage`` without raising for alarms: they are recorded in the ledger
    (``alarm``; ``alarm-accepted`` for those ``accept`` accepts) and returned."""
    recipes = load_recipes(settings)
    previous = load_lock(settings) if settings.lock_path.is_file() else None
    accept = set(accept)
    for option, names in (("--update", update if isinstance(update, set) else set()),
                          ("--accept-change", accept)):
        if names - set(recipes):
            raise LockError(f"{option} names components with no recipe: "
                            f"{', '.join(sorted(names - set(recipes)))}",
                            "use the names of files in recipes/")
    opened = ledger.open_alarms(settings)
    sticky = {(name, version): str(row["reason"]) for (name, version), row in opened.items()
              if version is not None}
    try:
        result = resolve_report(settings, recipes, previous, update, on_fetch=on_fetch,
                                accept=accept, sticky=sticky)
    except AlarmError as exc:  # nothing could be kept (a new component): refused, recorded
        _record_alarms(settings, [_alarm_of(exc)], opened)
        raise
    # an open alarm no pin carries (a listing that redirected before anything was
    # pinned) is closed by accepting it too
    result.accepted += [Alarm(name, version or "", str(row["reason"]))
                        for (name, version), row in sorted(opened.items(), key=str)
                        if name in accept and name not in {a.name for a in result.accepted}]
    idle = accept - {a.name for a in result.accepted}
    if idle:
        raise LockError(f"--accept-change {', '.join(sorted(idle))}: no upstream alarm to accept",
                        "`factory status` shows the open alarms")
    _record_alarms(settings, result.alarms, opened)
    for alarm in result.accepted:
        ledger.record_decision(settings, alarm.name, ledger.ALARM_ACCEPTED, alarm.reason,
                               alarm.version or None)
    save_lock(settings, result.lock)
    return result


def _alarm_of(exc: AlarmError) -> Alarm:
    return Alarm(exc.component or "?", exc.version or "", exc.message)


def _record_alarms(settings: Settings, alarms: list[Alarm],
                   opened: dict[tuple[str, str | None], dict[str, object]] | None = None) -> None:
    """Record each alarm once: one still open with the same reason is not repeated."""
    opened = ledger.open_alarms(settings) if opened is None else opened
    for alarm in alarms:
        row = opened.get((alarm.name, alarm.version or None))
        if alarm.name != "?" and (row is None or row["reason"] != alarm.reason):
            ledger.record_decision(settings, alarm.name, ledger.ALARM, alarm.reason,
                                   alarm.version or None)


def check_stage(settings: Settings) -> list[str]:
    """Offline: how recipes.lock disagrees with the recipes (empty when it matches)."""
    return check_lock(load_recipes(settings), load_lock(settings))


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
    problems = check_lock(recipes, lock)
    if problems:
        raise LockError(f"recipes.lock does not match the recipes: {problems[0]}")
    fetched: list[Fetched] = []
    errors: list[FactoryError] = []
    upstreams: dict[str, Upstream] = {}
    try:
        for entry in lock.components:
            if names and entry.key not in names:
                continue
            report = (lambda n, t, f=entry.sdist.filename: progress(f, n, t)) if progress else None
            index = recipes[entry.key].source.index or settings.upstream
            if index not in upstreams:  # each index's own host policy applies to its files
                upstreams[index] = Upstream(index, retries=settings.http_retries,
                                            timeout=settings.http_timeout)
            try:
                fetched.append(_fetch_one(settings, entry, recipes[entry.key],
                                          upstreams[index], report))
            except FactoryError as exc:
                errors.append(exc)
                if failed is not None:
                    failed[f"{entry.key}=={entry.version}"] = exc.message
    finally:
        for upstream in upstreams.values():
            upstream.client.close()
    if errors and failed is None:
        raise errors[0] if len(errors) == 1 else FetchError(errors)
    return fetched


def _fetch_one(settings: Settings, entry: LockedComponent, recipe: Recipe, upstream: Upstream,
               report: Callable[[int, int | None], None] | None) -> Fetched:
    try:
        path = sources.fetch(settings, entry, upstream, report)
    except AlarmError as exc:  # the pin's bytes or host changed: recorded, refused
        _record_alarms(settings, [_alarm_of(exc)])
        raise
    _check_licence(recipe, path)
    admit_sdist(path, recipe)  # prebuilt files: refused before a build is spent on them
    return Fetched(entry, path)


class FetchError(FactoryError):
    """Several components could not be fetched; each is named with its reason."""

    def __init__(self, errors: list[FactoryError]) -> None:
        super().__init__(f"{len(errors)} components refused at fetch: "
                         + "; ".join(e.message for e in errors),
                         errors[0].hint)
        self.errors = errors


def _check_licence(recipe: Recipe, sdist: Path) -> None:
    meta = sources.read_metadata(sdist)
    if meta is not None:
        check_licences(recipe, meta.license_expression, meta.license, meta.classifiers)
    else:
        check_licences(recipe, None, None, ())
