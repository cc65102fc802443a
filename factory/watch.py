"""The watch cycle: notice new patch releases and advisories, and say what to rebuild.

One cycle: re-resolve the lock as far as each recipe's track allows (one
conditional request per approved component: listings are cached by ETag),
check every published version against the advisories (yanking the affected
ones, with the advisory ids as the reason), and return the components whose
pins moved so that the rebuild runs for exactly those.

A pinned file that changed upstream (other bytes, another host) is an alarm:
the pin stays, the component is not rebuilt (its published build keeps
serving), and the alarm is recorded and returned until an operator accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from packaging.version import Version

from factory import ledger
from factory.config import Settings
from factory.errors import printable
from factory.index import Index
from factory.lock import Alarm, Change, lock_report
from factory.status import component_status
from factory.upstream.advisories import AdvisoryDatabase


@dataclass
class WatchResult:
    moved: list[Change] = field(default_factory=list)
    rebuild: list[str] = field(default_factory=list)
    yanked: list[tuple[str, str, str]] = field(default_factory=list)  # project, version, why
    alarms: list[Alarm] = field(default_factory=list)  # pins kept: upstream changed under them

    def summary(self) -> str:
        parts = [f"ALARM {a.describe()}" for a in self.alarms]
        parts += [c.describe() for c in self.moved]
        parts += [f"yanked {p} {v} ({why})" for p, v, why in self.yanked]
        # Logged through Prefect's console handler: upstream and OSV text, made inert.
        return printable("; ".join(parts)) or "nothing new upstream, no new advisories"


def watch_cycle(settings: Settings, run_id: str | None = None) -> WatchResult:
    index = Index.of(settings)
    result = WatchResult()
    report = lock_report(settings, update=True)
    result.alarms = report.alarms
    alarmed = {a.name for a in report.alarms}
    result.moved = [c for c in report.changes if c.new is not None]
    result.rebuild = sorted({c.name for c in result.moved} - alarmed)
    for change in result.moved:
        ledger.record_decision(settings, change.name, "locked", change.why, change.new, run_id)
    result.yanked = check_advisories(settings, index, run_id)
    publish_status(settings, index)
    return result


def publish_status(settings: Settings, index: Index) -> None:
    """Show `factory status` on the index home page (listings come from the ETag cache)."""
    index.write_status([row.to_dict() for row in component_status(settings)])


def check_advisories(settings: Settings, index: Index,
                     run_id: str | None = None) -> list[tuple[str, str, str]]:
    """Record the advisory status of every published version; yank the affected ones."""
    if not settings.advisories:
        return []
    db = AdvisoryDatabase(settings.advisories)
    yanked = []
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for project in index.projects():
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
