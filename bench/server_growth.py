"""Comparison 14: the Prefect server's database growth per 1,000 builds, on PostgreSQL.

The distributed mode's server runs on the private PostgreSQL cluster of
``[server] database = "postgresql"`` (flows.postgres, from the system's packages). A
scratch project starts that cluster and the embedded Prefect server on it (outside
the measurement; the cluster without fsync, which changes no size). One Python
process then records N builds the way a distributed build is recorded: one flow run
named ``factory-build`` per build, with the build flow's parameters (a ticket's
sha256 and size), one task run inside it, and the build flow's one printed line
(a log row). Its states, task run, logs (the build's line and the engine's own, at a
worker's default level, INFO) and events land in the server's database.

Measured: ``pg_database_size('prefect')`` before and after, once the server's event
persister has written everything (the events table stops growing), divided by N and
scaled to 1,000 builds. N is 200 (50 with --quick), **extrapolated linearly to
1,000**: flow-run rows do not share pages across builds, so growth is linear at
this scale. A build on a real pool also passes through Scheduled and Pending states
and worker events that an in-process flow run does not, so the figure is a floor
of a few rows per build below what a pool adds. The database's largest tables
after the run are listed with their sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import BenchSetupError, Comparison, Context

CASE = "builds recorded by the server"
CONTENDER = "prefect server on PostgreSQL"
METRIC = "MB per 1,000 builds"
FULL_BUILDS = 200
QUICK_BUILDS = 50

_BUILDS = """
import hashlib, json, sys, time
from prefect import flow, task

@task(name="build")
def build_one(ticket: str, size: int) -> str:
    return "built"

@flow(name="factory-build", log_prints=True, persist_result=False)
def build(ticket: str, size: int) -> dict:
    outcome = build_one(ticket, size)
    print(f"{outcome} on bench: ticket {ticket[:12]}")
    return {"outcome": outcome, "worker": "bench"}

n = int(sys.argv[1])
started = time.perf_counter()
for i in range(n):
    ticket = hashlib.sha256(str(i).encode()).hexdigest()
    build.with_options(flow_run_name=f"build component-{i} 1.0.{i} (1)")(ticket, 4096 + i)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""

_SIZES = """
SELECT relname, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY 2 DESC LIMIT 6
"""


def run(ctx: Context) -> None:
    from factory.config import Settings
    from flows.postgres import PostgresError, ensure_cluster
    from flows.server import ensure_server, own_server

    builds = QUICK_BUILDS if ctx.quick else FULL_BUILDS
    ctx.work.chmod(0o711)  # as root the server runs as postgres, who must reach its data
    settings = Settings(root=ctx.work, state_dir=ctx.work / "state",
                        server_database="postgresql")
    with own_server(settings):
        try:
            address = ensure_cluster(settings.cluster_dir, durable=False)
        except PostgresError as exc:
            raise BenchSetupError(exc.message, exc.hint) from None
        api = ensure_server(settings, wait=300)
        ctx.describe("postgresql", _server_version(address))
        ctx.describe("builds recorded (extrapolated to 1,000)", builds)
        for _ in range(ctx.repeats):
            before = _database_size(address)
            seconds = _record_builds(ctx, api, settings, builds)
            _wait_for_events(address)
            grown = _database_size(address) - before
            per_thousand = grown / builds * 1000 / 1e6
            ctx.record(CASE, CONTENDER, METRIC, per_thousand, "MB")
            ctx.record(CASE, CONTENDER, "ms per build recorded", seconds / builds * 1000,
                       "ms")
            ctx.log(f"  {builds} builds: +{grown / 1e6:.2f} MB, {per_thousand:.1f} MB per "
                    f"1,000 builds ({seconds:.0f} s)")
        ctx.describe("largest tables after the run (MB)", _tables(address))
        ctx.describe("rows after the run", _rows(address))
        ctx.note(f"measured on {builds} builds per repeat and extrapolated linearly to 1,000")


def _record_builds(ctx: Context, api: str, settings: Any, builds: int) -> float:
    env = {**os.environ, "PREFECT_API_URL": api,
           "PREFECT_HOME": str(settings.state_dir / "prefect"),
           # a worker's default: the engine's INFO lines and the build's print reach the API
           "PREFECT_LOGGING_LEVEL": "INFO"}
    done = subprocess.run([sys.executable, "-c", _BUILDS, str(builds)], env=env,
                          capture_output=True, text=True, timeout=3600, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["the builds failed"])[-1])
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def _connect(address: Any) -> Any:
    import psycopg

    return psycopg.connect(host=address.host, port=address.port, user=address.role,
                           password=address.password, dbname="prefect", autocommit=True)


def _database_size(address: Any) -> int:
    with _connect(address) as conn:
        return int(conn.execute("SELECT pg_database_size('prefect')").fetchone()[0])


def _wait_for_events(address: Any, limit: float = 60.0) -> None:
    """Until the server's event persister has caught up: the events table stops growing."""
    last, deadline = -1, time.monotonic() + limit
    while time.monotonic() < deadline:
        with _connect(address) as conn:
            count = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        if count == last:
            return
        last = count
        time.sleep(3.0)


def _server_version(address: Any) -> str:
    with _connect(address) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


def _tables(address: Any) -> dict[str, float]:
    with _connect(address) as conn:
        return {name: round(size / 1e6, 2) for name, size in conn.execute(_SIZES)}


def _rows(address: Any) -> dict[str, int]:
    tables = ("flow_run", "flow_run_state", "task_run", "task_run_state", "log", "events",
              "event_resources")
    with _connect(address) as conn:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # constant
                for t in tables}


COMPARISON = Comparison(
    number=14,
    name="server_growth",
    title="Prefect server database growth per 1,000 builds (PostgreSQL)",
    run=run,
    method=__doc__ or "",
    repeats=1,
    quick_repeats=1,
    chart_metrics=(METRIC,),
)
