"""Serve the flows as deployments: watch on a schedule, rebuild on demand and on events,
intake (the request queue) every 30 seconds.

``python -m flows.deploy`` (or ``factory deploy``) runs a long-lived process
that serves the deployments (Prefect's ``serve``: a process worker in one).
Scale-out to a docker or kubernetes work pool (deploying the same flows to
it) is not set up here yet.
"""

from __future__ import annotations

import argparse

from prefect import serve
from prefect.events import DeploymentEventTrigger

from flows.intake import intake
from flows.rebuild import rebuild
from flows.watch import CHANGED_EVENT, watch

INTAKE_SECONDS = 30  # a request waits at most this long for policy to look at it


def deployments(interval_seconds: int) -> list[object]:
    rebuild_on_change = DeploymentEventTrigger(
        expect={CHANGED_EVENT},
        match={"prefect.resource.id": "factory.components"},
        parameters={"components": "{{ event.payload.components }}"},
    )
    return [
        rebuild.to_deployment(name="rebuild", triggers=[rebuild_on_change]),
        watch.to_deployment(name="watch", interval=interval_seconds,
                            parameters={"via_deployment": True}),
        intake.to_deployment(name="intake", interval=INTAKE_SECONDS),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=int, default=600, help="watch every N seconds")
    args = parser.parse_args()
    serve(*deployments(args.interval))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
