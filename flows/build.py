"""Builds on a Prefect work pool: the ``factory-build`` flow a worker runs, and the
publisher's side that submits a ticket to it and waits.

Each build is its own flow run of the ``factory-build`` deployment
(``deploy_build``), which lives on a process work pool. Any Docker host joins
with a plain ``prefect worker start --pool <pool> --type process``, its own
FACTORY_STATE_DIR, the project's checkout as FACTORY_ROOT and the shared
artifact store (``[store] url``); it never holds a key. The run takes the
ticket's digest, builds it (``factory.build.ticket.build_ticket``) and puts the
result in the store under ``runs/<flow run id>``.

The rebuild flow, with ``[distributed] pool`` set, hands ``remote_builder`` to
the executor: each node whose dependencies stand built is submitted with
``run_deployment`` and waited for. A run that ends Crashed (its worker was killed
and Prefect's heartbeat automation marked it so, or the infrastructure failed)
is submitted again, at most ``ATTEMPTS`` times; a refusal or a failed build is
not: it is deterministic.

A worker killed with -9 (or a host that vanished) leaves its flow run Running on
the server. Prefect's own answer is the flow-run heartbeat: the flow's process
emits ``prefect.flow-run.heartbeat`` every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``
seconds (30 at least), and the "zombie flow runs" automation that
``deploy_build`` creates marks a run of this deployment Crashed when neither
another heartbeat nor a final state follows one within ``ZOMBIE_SECONDS``. A run
whose worker died before starting its process sends no heartbeat at all: the
publisher marks a run Pending for ``PENDING_SECONDS`` Crashed itself (``_settle``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import shlex
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from factory.artifact_store import ArtifactStore, Blob
from factory.build.executor import Builder
from factory.build.job import BuildInputs
from factory.build.record import BuildRecord
from factory.build.ticket import (
    MAX_TICKET,
    BuildResult,
    BuildTicket,
    build_ticket,
    ref_name,
    remote_build,
)
from factory.config import Settings, load_settings
from factory.errors import BuildError, ConfigError, one_line

log = logging.getLogger("factory.workers")

FLOW = "factory-build"
DEPLOYMENT = "factory-build"
ATTEMPTS = 3  # flow runs of one ticket that may crash before the build counts as failed
POLL_SECONDS = 1.0
# A run a worker took but never started (the worker died between taking it and starting
# its process) stays Pending and sends no heartbeat, so the zombie automation never sees
# it: after this long it is marked Crashed and submitted again. Starting a run's process
# takes a worker seconds (about 9 s on a busy 2-core host).
PENDING_SECONDS = 300.0
HEARTBEAT_SECONDS = 30  # what workers set PREFECT_FLOWS_HEARTBEAT_FREQUENCY to (its minimum)
ZOMBIE_SECONDS = 90.0  # silence after a heartbeat that makes a build run Crashed
MAX_ZOMBIE_SECONDS = 86400.0  # a lost build waits at most this long to be built elsewhere
POOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # printed in a shell command
_USER = re.compile(r"[A-Za-z0-9._-]+")  # ssh's user@host: a name, never a secret
AUTOMATION = "factory-build: crash zombie build runs"
FINAL_EVENTS = ("prefect.flow-run.Completed", "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed")
CODE_ROOT = Path(__file__).resolve().parent.parent  # what a process worker loads the flow from


def run_ref(run_id: object) -> str:
    return f"runs/{run_id}"


@flow(name=FLOW, log_prints=True, persist_result=False)
def build(ticket: str, size: int) -> dict[str, str]:
    """Build the ticket ``ticket`` (its sha256; ``size`` bytes) from the artifact store."""
    settings = load_settings()
    store = ArtifactStore.of(settings)
    run_id = flow_run.get_id()
    result = build_ticket(settings, store, Blob(ticket, size),
                          run_ref=run_ref(run_id) if run_id else None)
    print(f"{result.outcome} on {result.worker}: ticket {ticket[:12]}")
    return {"outcome": result.outcome, "worker": result.worker}


def deploy_build(pool: str, source: str | None = None, limit: int | None = None,
                 zombie_seconds: float = ZOMBIE_SECONDS, python: str = "python") -> Any:
    """Create (or update) the ``factory-build`` deployment on the process work pool
    ``pool`` (created if missing), and the automation that marks its runs Crashed when
    their heartbeats stop (``zombie_automation``); the flow's code comes from
    ``source`` (a directory or a git URL; default: this checkout). Idempotent.
    Returns the deployment's id.

    Each run is one process, ``<python> -m prefect.engine`` (``python``: the workers'
    interpreter with prefect and the factory installed): without a command, Prefect
    3.8's process worker starts a workspace supervisor that imports Prefect and then
    starts the engine, which imports it again, twice the start-up per build."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    _check_deploy(pool, source, zombie_seconds, python)
    try:  # before anything is created: a source that cannot be loaded leaves nothing behind
        runnable: Any = build.from_source(source=source or str(CODE_ROOT),
                                          entrypoint="flows/build.py:build")
    except Exception as exc:  # noqa: BLE001 - Prefect raises what its storage raised
        raise ConfigError(f"cannot load the factory-build flow from --source: "
                          f"{type(exc).__name__}: {one_line(str(exc), 300)}",
                          "give this checkout's directory, or a git URL of it that the "
                          "workers can clone") from None
    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectAlreadyExists):
            client.create_work_pool(WorkPoolCreate(name=pool, type="process",
                                                   concurrency_limit=limit))
        kind = client.read_work_pool(pool).type
    if kind != "process":
        raise ConfigError(f"the work pool {pool} exists and is of type {one_line(kind, 60)}, "
                          "not process", "name another pool; factory builds run on a process "
                          "work pool")
    # Flow.deploy asks the pool for its workers first, a request prefect 3.8.8's own server
    # refuses (422: limit null); applying the deployment registers the same thing.
    deployment = runnable.to_deployment(
        name=DEPLOYMENT, work_pool_name=pool,
        job_variables={"command": f"{shlex.quote(python)} -m prefect.engine"})
    deployment_id = deployment.apply(work_pool_name=pool)
    zombie_automation(deployment_id, zombie_seconds)
    return deployment_id


def _check_deploy(pool: object, source: str | None, zombie_seconds: float,
                  python: str) -> None:
    """Refuse, in one line and before anything is created, what would make a broken or
    leaky deployment: a pool name Prefect refuses (or that is unsafe in the printed shell
    command), a zombie window that is not a number of seconds between the heartbeat and a
    day, an interpreter that is empty or holds control characters, a source URL that
    carries credentials (they would be stored in the deployment, readable by anyone who
    can read the Prefect server, and in every worker's logs)."""
    if not isinstance(pool, str) or not POOL_NAME.fullmatch(pool):
        raise ConfigError(f"{one_line(repr(pool), 120)} is not a work pool name",
                          "use letters, digits, '.', '_' and '-' (at most 100)")
    if not math.isfinite(zombie_seconds) or zombie_seconds <= HEARTBEAT_SECONDS:
        raise ConfigError(f"a build run may go {zombie_seconds:.0f} s without a heartbeat, "
                          f"not more than the workers' {HEARTBEAT_SECONDS} s between two",
                          f"give more than {HEARTBEAT_SECONDS} s (90 is Prefect's advice)")
    if zombie_seconds > MAX_ZOMBIE_SECONDS:
        raise ConfigError(f"a zombie window of {zombie_seconds:.0f} s is over a day: a lost "
                          "build would wait that long to be built elsewhere",
                          f"give at most {MAX_ZOMBIE_SECONDS:.0f} s (90 is Prefect's advice)")
    if not python or not python.isprintable() or python != python.strip():
        raise ConfigError(f"--python {one_line(repr(python), 120)} is not an interpreter path",
                          "give the workers' python, e.g. /opt/factory/.venv/bin/python")
    if source is None:
        return
    if not source or not source.isprintable():
        raise ConfigError("--source is empty or holds control characters",
                          "give this checkout's directory or a git URL of it")
    scheme, sep, rest = source.partition("://")
    if not sep:
        scheme, rest = "", source
    if "@" in rest:
        user = rest.split("@", 1)[0]
        if scheme not in ("", "ssh", "git+ssh") or not _USER.fullmatch(user):
            raise ConfigError("a --source URL with credentials in it is refused (they would "
                              "be stored in the deployment and shown to everyone who can "
                              "read the Prefect server)",
                              "give workers the credentials through git's credential helper "
                              "or an ssh key, and the URL without them")


def zombie_automation(deployment_id: Any, within: float = ZOMBIE_SECONDS) -> Any:
    """Create (or update, by name) the automation of Prefect's "zombie flow runs" recipe
    for the runs of one deployment: after a ``prefect.flow-run.heartbeat``, expect
    another heartbeat or a final state within ``within`` seconds, for each flow run;
    else change that run's state to Crashed. Returns the automation's id.

    Only this deployment's runs: every Prefect 3.8 flow run heartbeats (every 180 s by
    default), and a publisher's long rebuild run must not be taken for a zombie."""
    from datetime import timedelta

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    automation = AutomationCore(
        name=AUTOMATION,
        description="A factory-build run whose heartbeats stopped (its worker was killed "
                    "or its host vanished) is Crashed; the publisher submits it again.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            match_related={"prefect.resource.role": "deployment",
                           "prefect.resource.id": [f"prefect.deployment.{deployment_id}"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive, threshold=1, within=timedelta(seconds=within)),
        actions=[ChangeFlowRunState(
            name="Crashed", state=StateType.CRASHED, force=False,
            message=f"no heartbeat for {within:.0f} s: its worker was lost")])
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(AUTOMATION)
        if existing:
            client.update_automation(existing[0].id, automation)
            for extra in existing[1:]:  # two deploys raced: keep one
                client.delete_automation(extra.id)
            return existing[0].id
        return client.create_automation(automation)


def remote_builder(settings: Settings, attempts: int = ATTEMPTS) -> Builder:
    """The executor's builder for ``[distributed] pool``: each build a flow run there."""
    if not settings.build_pool:
        raise ConfigError("no build pool is configured", "set [distributed] pool in factory.toml")
    store = ArtifactStore.of(settings)

    def submit(ticket: BuildTicket, blob: Blob) -> BuildResult:
        return _submit(store, ticket, blob, attempts)

    def build_remotely(settings: Settings, inputs: BuildInputs) -> BuildRecord:
        return remote_build(settings, store, inputs, submit)

    return build_remotely


def _submit(store: ArtifactStore, ticket: BuildTicket, blob: Blob,
            attempts: int) -> BuildResult:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    crashed: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            run: FlowRun = run_deployment(  # type: ignore[assignment]
                f"{FLOW}/{DEPLOYMENT}", parameters={"ticket": blob.sha256, "size": blob.size},
                timeout=0, poll_interval=POLL_SECONDS,  # _settle waits
                flow_run_name=f"build {ticket.component} {ticket.version} ({attempt})")
            run = _settle(run, ticket)
        except ObjectNotFound:
            raise ConfigError(f"there is no {FLOW}/{DEPLOYMENT} deployment to build on",
                              "run `factory deploy --pool <pool>` once against this Prefect "
                              "server, and start workers on that pool") from None
        except PrefectHTTPStatusError as exc:
            raise BuildError(f"{ticket.what}: the Prefect server refused the build run: "
                             f"{one_line(str(exc), 300)}",
                             "check the server's log and PREFECT_API_URL") from None
        state = run.state
        if state is not None and state.is_completed():
            done = store.ref(run_ref(run.id)) or store.ref(ref_name(blob))
            if done is None:
                raise BuildError(f"{ticket.what}: the build run {run.id} completed but left "
                                 "no result in the store",
                                 "check that workers and publisher share [store] url")
            return BuildResult.from_bytes(store.read_bytes(_bounded(done)))
        message = one_line((state.message if state else None) or "no state", 600)
        name = state.name if state else "unknown"
        if state is not None and (state.is_crashed() or state.is_cancelled()):
            # The worker died or its infrastructure failed: the build may run elsewhere.
            crashed.append(f"{name}: {message}")
            log.warning("%s: build run %s ended %s (%s); submitting again (%d of %d)",
                        ticket.what, run.id, name, message, attempt, attempts)
            # It may have finished before it was lost: its own result, or another run's.
            done = store.ref(run_ref(run.id)) or store.ref(ref_name(blob))
            if done is not None:
                return BuildResult.from_bytes(store.read_bytes(_bounded(done)))
            continue
        raise BuildError(f"{ticket.what}: the build run on the pool ended {name}: {message}",
                         "a refusal names its cause; the run's logs are in the Prefect UI")
    raise BuildError(f"{ticket.what}: {attempts} build runs were lost "
                     f"(last: {crashed[-1] if crashed else 'none'})",
                     "check the workers of the pool (`prefect work-pool inspect`)")


def _settle(run: Any, ticket: BuildTicket) -> Any:
    """The flow run once it is final. A run Pending for PENDING_SECONDS is marked Crashed
    (the caller submits it again); a Paused one is a BuildError (no build pauses itself:
    an operator did, and this build waits for nobody). Scheduled runs wait for a worker
    as long as it takes, said in the log every PENDING_SECONDS."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    if run.state is not None and run.state.is_final():
        return run
    pending_since: float | None = None
    waiting_since = time.monotonic()
    with get_client(sync_client=True) as client:
        while run.state is None or not run.state.is_final():
            state, now = run.state, time.monotonic()
            if state is not None and state.is_paused():
                raise BuildError(f"{ticket.what}: the build run {run.id} was paused",
                                 "resume or cancel it in the Prefect UI, then rebuild")
            if state is not None and state.is_pending():
                pending_since = pending_since or now
                if now - pending_since > PENDING_SECONDS:
                    client.set_flow_run_state(run.id, Crashed(
                        message=f"Pending for {PENDING_SECONDS:.0f} s: the worker that "
                                "took it never started it"), force=False)
            else:
                pending_since = None
                if now - waiting_since > PENDING_SECONDS and state is not None \
                        and state.is_scheduled():
                    log.warning("%s: no worker has taken build run %s for %.0f s; start "
                                "workers on the pool", ticket.what, run.id, now - waiting_since)
                    waiting_since = now
            time.sleep(POLL_SECONDS)
            run = client.read_flow_run(run.id)
    return run


def _bounded(blob: Blob) -> Blob:
    if blob.size > MAX_TICKET:
        raise BuildError(f"a build result of {blob.size} bytes is over {MAX_TICKET}")
    return blob
