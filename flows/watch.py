"""The watch flow: poll upstream and the advisories; rebuild exactly what moved.

Each run re-resolves the lock within each recipe's track (a new patch release,
or the fixed version of an advisory that affects what we serve), yanks the
published versions a new advisory affects (the advisory ids are the reason),
emits a ``factory.components.changed`` event, and rebuilds the moved
components: as a subflow, or, when the flows are served as deployments
(flows/deploy.py), through the rebuild deployment's DeploymentEventTrigger on
that event. A pinned file that changed upstream (other bytes, another host)
is an alarm: logged as an error, returned under ``alarms``, never rebuilt.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from factory.config import Settings, load_settings
from factory.watch import WatchResult, watch_cycle
from flows.rebuild import rebuild

CHANGED_EVENT = "factory.components.changed"


@task(name="poll-upstream-and-advisories", retries=2, retry_delay_seconds=[5, 20],
      cache_policy=NO_CACHE)
def poll(settings: Settings, run_id: str) -> WatchResult:
    return watch_cycle(settings, run_id)


@flow(name="factory-watch", log_prints=True)
def watch(via_deployment: bool = False) -> dict[str, Any]:
    """One watch cycle; returns what moved, what was yanked, what was rebuilt."""
    settings = load_settings()
    logger = get_run_logger()
    result = poll(settings, str(flow_run.get_id() or ""))
    logger.info("watch: %s", result.summary())
    for alarm in result.alarms:  # kept pins, not rebuilt; an operator must look
        logger.error("upstream alarm: %s (pin kept; accept with `factory lock "
                     "--accept-change %s` if legitimate)", alarm.describe(), alarm.name)
    rebuilt: dict[str, Any] | None = None
    if result.rebuild:
        emit_event(event=CHANGED_EVENT,
                   resource={"prefect.resource.id": "factory.components"},
                   payload={"components": result.rebuild})
        if not via_deployment:  # served deployments rebuild on the event instead
            rebuilt = rebuild(components=result.rebuild)
    return {"moved": [c.describe() for c in result.moved], "rebuild": result.rebuild,
            "yanked": [f"{p}=={v}: {why}" for p, v, why in result.yanked],
            "alarms": [a.describe() for a in result.alarms], "rebuilt": rebuilt}
