"""Comparison 15: builds on a Prefect work pool (issue 19): scheduling overhead per build,
and throughput with one and with two workers on this machine.

A scratch project (the real flit-core, pyproject-hooks, packaging and installer
sdists from the project's verified source cache, served by a local upstream, and
small flit-based components) runs in the distributed mode: a private PostgreSQL
cluster (without fsync), the embedded Prefect server on it, the ``factory-build``
deployment on a process pool (``deploy_build``, with its zombie automation), a
shared artifact store, and ``prefect worker start`` processes with their own state
directories, each taking one build at a time (``--limit 1``). The publisher is
``factory rebuild`` in its own process. The build tools are built first (untimed).

- **Scheduling overhead**, per build: from the flow run's start (Prefect's
  ``start_time``, set when the run enters Running in the worker's flow-run
  process) to its build container's start (the Docker Engine's ``start`` event of
  the container labelled with the component). It covers what the ``factory-build``
  flow does before building: reading and checking the ticket, the checkout and the
  image, fetching and re-verifying the inputs from the store, preparing the build
  directory. Goal: 1 s. Also reported, not part of the goal: from the flow run's
  creation (the publisher's ``run_deployment``) to its start: the worker's polling
  (``PREFECT_WORKER_QUERY_SECONDS=1``) and the start of a Python process that
  imports Prefect and the factory (a process pool's price per build).
- **Throughput**: a rebuild of N fresh components (built with flit_core), timed
  from the publisher's start to its end (lock excluded), with one worker and then
  with two (each taking new components, so nothing is skipped); builds per minute.
  On a 2-core machine two workers share the two cores with the server, the
  database, the publisher and the build containers: the second worker can only
  overlap the waits (process starts, polling, container start-up), not add CPU.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import BenchSetupError, Comparison, Context, RatioSpec
from bench.indexes import factory_cli, locked_sdists, tool_project

TOOLS = ("flit-core", "pyproject-hooks", "packaging", "installer")
GOAL_SECONDS = 1.0
OVERHEAD = "flow run start to container start"
PICKUP = "flow run created to started"
CASE = "one build on a process pool"
CONTENDER = "factory-build flow run"
FULL_COMPONENTS = 6
QUICK_COMPONENTS = 4


def run(ctx: Context) -> None:
    from factory.config import Settings
    from flows.server import own_server
    from tests.local_upstream import LocalUpstream, start

    count = QUICK_COMPONENTS if ctx.quick else FULL_COMPONENTS
    ctx.work.chmod(0o711)  # as root the cluster runs as postgres, who must reach its data
    upstream = start(LocalUpstream(ctx.work / "upstream"))
    pool = f"bench-{uuid.uuid4().hex[:8]}"
    root = tool_project(ctx, upstream.url, TOOLS, (
        f'[build]\nrepair = "none"\nconcurrency = 4\n[store]\nurl = "{ctx.work / "store"}"\n'
        f'[distributed]\npool = "{pool}"\n[server]\ndatabase = "postgresql"\n'))
    settings = Settings(root=root, state_dir=root / "state", server_database="postgresql")
    workers: dict[str, subprocess.Popen[bytes]] = {}
    with own_server(settings):
        _measure(ctx, settings, upstream, root, pool, count, workers)


def _measure(ctx: Context, settings: Any, upstream: Any, root: Path, pool: str, count: int,
             workers: dict[str, subprocess.Popen[bytes]]) -> None:
    from flows.postgres import PostgresError, ensure_cluster
    from flows.server import ensure_server
    from tests.local_upstream import stop

    try:
        for name, path in locked_sdists(ctx, TOOLS):
            upstream.add_file(name, path)
        try:
            ensure_cluster(settings.cluster_dir, durable=False)
        except PostgresError as exc:
            raise BenchSetupError(exc.message, exc.hint) from None
        api = ensure_server(settings, wait=300)
        env = {**os.environ, "FACTORY_ROOT": str(root), "PREFECT_API_URL": api,
               "PREFECT_LOGGING_LEVEL": "WARNING"}
        _deploy(env, pool)
        workers["worker-1"] = _worker(ctx, env, pool, "worker-1")
        ctx.log("  locking and building the build tools (untimed) ...")
        factory_cli(env, "lock")
        factory_cli(env, "rebuild")
        ctx.describe("components per throughput run", count)
        rounds = [("one worker", 1), ("two workers", 2)]
        for repeat in range(ctx.repeats):
            for label, size in rounds:
                while len(workers) < size:
                    name = f"worker-{len(workers) + 1}"
                    workers[name] = _worker(ctx, env, pool, name)
                while len(workers) > size:
                    _stop(workers.pop(sorted(workers)[-1]))
                names = [f"c{repeat}{label[:3]}{i}" for i in range(count)]
                for name in names:
                    (root / "recipes" / f"{name}.toml").write_text(
                        f'name = "{name}"\nversions = ">=1,<2"\nlicenses = ["MIT"]\n')
                    upstream.add(name, "1.0.0", build_requires=["flit_core>=3.4,<5"],
                                 backend="flit_core.buildapi")
                factory_cli(env, "lock")
                since = time.time()
                started = time.perf_counter()
                try:
                    factory_cli(env, "rebuild", *names, timeout=1800)
                except BenchSetupError as exc:
                    ctx.fail(f"{count} builds", label, "builds per minute", "/min", str(exc))
                    continue
                seconds = time.perf_counter() - started
                per_minute = count / seconds * 60
                ctx.record(f"{count} builds", label, "builds per minute", per_minute, "/min",
                           better="higher")
                ctx.record(f"{count} builds", label, "seconds", seconds, "s")
                ctx.log(f"  {label}: {count} builds in {seconds:.1f} s "
                        f"({per_minute:.1f} per minute)")
                _overheads(ctx, api, names, since)
        ctx.note("scheduling overhead: Prefect's flow-run start_time to the Docker Engine's "
                 "start event of the build's container (both on this machine's clock)")
    finally:
        for worker in list(workers.values()):
            _stop(worker)
        stop(upstream)


def _deploy(env: dict[str, str], pool: str) -> None:
    code = ("import sys; from flows.build import deploy_build; "
            "deploy_build(sys.argv[1], python=sys.executable)")
    done = subprocess.run([sys.executable, "-c", code, pool], env=env, capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise BenchSetupError("deploy_build failed: " +
                              (done.stderr.strip().splitlines() or ["?"])[-1])


def _worker(ctx: Context, env: dict[str, str], pool: str, name: str) -> subprocess.Popen[bytes]:
    home = ctx.work / name
    home.mkdir(exist_ok=True)
    with (home / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type",
             "process", "--limit", "1", "--name", name],
            env={**env, "FACTORY_STATE_DIR": str(home / "state"), "FACTORY_WORKER_NAME": name,
                 "PREFECT_HOME": str(home / "prefect"),
                 "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
                 "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1",
                 "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent)


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _overheads(ctx: Context, api: str, names: list[str], since: float) -> None:
    """Record, per build of ``names``, flow-run start -> container start, and flow-run
    creation -> start."""
    starts = dict(_container_starts(since))
    for run in _flow_runs(api):
        component = run["name"].split(" ")[1] if run["name"].startswith("build ") else ""
        if component not in names or not run.get("start_time"):
            continue
        started = _seconds(run["start_time"])
        ctx.record(CASE, CONTENDER, PICKUP, started - _seconds(run["created"]), "s")
        container = starts.get(component)
        if container is None:
            ctx.fail(CASE, CONTENDER, OVERHEAD, "s", f"no container start seen for {component}")
            continue
        ctx.record(CASE, CONTENDER, OVERHEAD, container - started, "s")
        ctx.record(CASE, "goal", OVERHEAD, GOAL_SECONDS, "s")


def _flow_runs(api: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}/flow_runs/filter", timeout=30, json={
        "flow_runs": {"name": {"like_": "build "}}, "limit": 200,
        "sort": "EXPECTED_START_TIME_ASC"})
    response.raise_for_status()
    return list(response.json())


def _container_starts(since: float) -> Iterator[tuple[str, float]]:
    """(component, start time) of every build container started since ``since``."""
    from factory.build.engine import connect

    for event in connect().events(since=int(since) - 1, until=int(time.time()) + 1,
                                  decode=True, filters={"type": "container", "event": "start",
                                                        "label": "org.factory.role=build"}):
        labels = event.get("Actor", {}).get("Attributes", {})
        component = str(labels.get("org.factory.component", "")).split("==")[0]
        yield component, int(event["timeNano"]) / 1e9


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


COMPARISON = Comparison(
    number=15,
    name="distributed",
    title="Builds on a Prefect work pool: scheduling overhead, throughput with 1 and 2 workers",
    run=run,
    ratios=(RatioSpec(OVERHEAD, CONTENDER, "goal", goal=1.0, case=CASE),),
    method=__doc__ or "",
    repeats=1,
    quick_repeats=1,
    chart_metrics=("builds per minute", OVERHEAD),
)
