"""The intake flow: decide pending requests by policy and fulfil the approved ones.

Each run is one pass of ``factory.intake_policy.process``: where the site turned
``[intake] auto_approve`` on, a pending request whose whole closure `factory add`
approves by itself is approved (a look-alike of an approved name, or one that needs
a human, stays pending; a name upstream does not know is denied), and every
approved request is added, built and published. Served as a deployment on a short
interval beside watch (flows/deploy.py), so a request is picked up within that
interval; `factory requests approve` fulfils at once without it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from factory.config import load_settings
from factory.errors import printable
from factory.intake_policy import process
from factory.watch import why_knowledge


@flow(name="factory-intake", log_prints=True)
def intake() -> dict[str, Any]:
    """One pass over the request queue; returns what it decided and fulfilled."""
    settings = load_settings()
    done = process(settings, lambda: why_knowledge(settings, ""))
    logger = get_run_logger()
    for ticket in done.approved + done.denied + done.fulfilled:
        logger.info(printable(ticket.message()))  # requesters' text: made inert
    logger.info(done.summary())
    return {"approved": [t.token for t in done.approved],
            "denied": [t.token for t in done.denied],
            "left": [t.token for t in done.left],
            "fulfilled": {t.token: t.state for t in done.fulfilled}}
