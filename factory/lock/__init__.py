"""Stage 2, lock: the approved state, resolved (recipes.lock).

``lock_stage(settings)`` resolves every recipe against upstream and writes
recipes.lock; ``check_stage(settings)`` says, offline, how the lock disagrees
with the recipes. The parts: ``model`` (the lock file: rows, checks, load and
save), ``policy`` (which version a recipe allows), ``resolve`` (choosing pins
and the closure of requirements).

    from factory import lock
    the_lock, changes = lock.lock_stage(settings)            # AlarmError if upstream moved a pin
    for change in changes:
        print(change.describe())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from factory.config import Settings
from factory.errors import AlarmError, LockError
from factory.lock.model import (
    APPROVED,
    Alarm,
    Change,
    Lock,
    LockedComponent,
    Problem,
    Resolution,
    alarm_error,
    check_lock,
    load_lock,
    lock_mismatches,
    problems_error,
    save_lock,
)
from factory.lock.resolve import (
    marker_environment,
    marker_environments,
    parse_requirements,
    resolve_report,
)
from factory.recipes import load_recipes

__all__ = [
    "APPROVED", "Alarm", "Change", "Lock", "LockedComponent", "Problem", "Resolution",
    "alarm_error", "check_lock", "check_stage", "load_lock", "lock_mismatches", "lock_report",
    "lock_stage",
    "marker_environment", "marker_environments", "parse_requirements", "problems_error",
    "record_alarm", "save_lock",
]


def lock_stage(settings: Settings, update: bool | set[str] = False,
               on_fetch: Callable[[str], None] | None = None,
               accept: Iterable[str] = ()) -> tuple[Lock, list[Change]]:
    """Resolve the recipes and write recipes.lock; returns the lock and what moved.

    When upstream changed a pinned file (bytes or host) the pin is kept, the lock
    is still written for everything else, and an AlarmError says so. A component that
    cannot be locked (with what waits for it) is left out, the rest is written, and a
    LockError names it (``lock_report`` returns every one).
    """
    report = lock_report(settings, update, on_fetch, accept)
    if report.alarms:
        raise alarm_error(report.alarms)
    if report.problems:
        raise problems_error(report.problems)
    return report.lock, report.changes


def lock_report(settings: Settings, update: bool | set[str] = False,
                on_fetch: Callable[[str], None] | None = None,
                accept: Iterable[str] = ()) -> Resolution:
    """``lock_stage`` without raising for alarms: they are recorded in the ledger
    (``alarm``; ``alarm-accepted`` for those ``accept`` accepts) and returned."""
    from factory import ledger  # here: sqlalchemy is costly for readers of the lock

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
    _record_upstream_statuses(settings, previous, result.lock)
    if result.lock.components or not result.problems:  # nothing locked: keep the old file
        save_lock(settings, result.lock)
    return result


UPSTREAM_STATUS = "upstream-status"  # ledger action: upstream's PEP 792 status changed


def _record_upstream_statuses(settings: Settings, previous: Lock | None, lock: Lock) -> None:
    """A ledger decision for each approved project whose upstream status (PEP 792)
    differs from the one the previous lock recorded."""
    from factory import ledger

    for entry in lock.components:
        if not entry.is_primary:
            continue
        old = previous.primary(entry.key) if previous is not None else None
        before = (old.upstream_status, old.upstream_status_reason) if old else (None, None)
        if before != (entry.upstream_status, entry.upstream_status_reason):
            said = entry.upstream_status or "active"
            if entry.upstream_status_reason:
                said += f": {entry.upstream_status_reason}"
            ledger.record_decision(settings, entry.key, UPSTREAM_STATUS, said, entry.version)


def record_alarm(settings: Settings, exc: AlarmError) -> None:
    """Record an alarm raised outside resolution (a download of other bytes, say)."""
    _record_alarms(settings, [_alarm_of(exc)])


def _alarm_of(exc: AlarmError) -> Alarm:
    return Alarm(exc.component or "?", exc.version or "", exc.message)


def _record_alarms(settings: Settings, alarms: list[Alarm],
                   opened: dict[tuple[str, str | None], dict[str, object]] | None = None) -> None:
    """Record each alarm once: one still open with the same reason is not repeated."""
    from factory import ledger  # here: sqlalchemy is costly for readers of the lock

    opened = ledger.open_alarms(settings) if opened is None else opened
    for alarm in alarms:
        row = opened.get((alarm.name, alarm.version or None))
        if alarm.name != "?" and (row is None or row["reason"] != alarm.reason):
            ledger.record_decision(settings, alarm.name, ledger.ALARM, alarm.reason,
                                   alarm.version or None)


def check_stage(settings: Settings) -> list[str]:
    """Offline: how recipes.lock disagrees with the recipes (empty when it matches)."""
    return check_lock(load_recipes(settings), load_lock(settings))


