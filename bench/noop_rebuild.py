"""Comparison 2: a no-op rebuild of the approved set against a running Prefect server.

The project's state (sources, built wheels, published index) is copied with
hard links into a scratch state directory, so the run reads what `make demo`
made and changes nothing of it. A Prefect server is started once, outside the
timing. Each sample is one `rebuild()` flow run in a fresh Python process,
timed inside the process from the flow call to its return (so the interpreter
and import start-up, about 6 s, are not counted: a served deployment pays them
once). The same no-op through the library alone, with no orchestrator, is the
reference for what Prefect adds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness import BenchSetupError, Comparison, Context, RatioSpec

GOAL_SECONDS = 3.0
CASE = "no-op rebuild, approved set"

_FLOW = """
import json, time
from flows.rebuild import rebuild
t = time.perf_counter(); summary = rebuild(); elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "summary": summary}))
"""
_LIBRARY = """
import json, time
from factory.config import load_settings
from factory import fetch
from factory.build.executor import run_plan
from factory.plan import make_plan
from factory.publish import release
t = time.perf_counter()
s = load_settings(); fetch.fetch_stage(s); out = run_plan(s, make_plan(s))
published = release(s, out.records)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "summary": {"records": len(out.records), "published": len(published)}}))
"""


def _scratch_state(ctx: Context) -> Path:
    source = ctx.settings.state_dir
    if not (source / "index" / "records").is_dir():
        raise BenchSetupError("no published index in the project's state directory",
                              "run `make demo` (or `factory build && factory publish`) first")
    state = ctx.work / "state"
    state.mkdir(parents=True)
    for part in ("sources", "wheels", "index", "keys", "authority", "builder", "builds"):
        if (source / part).exists():
            shutil.copytree(source / part, state / part, copy_function=os.link)
    return state


def _run(ctx: Context, code: str, env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=600, cwd=ctx.settings.root)
    if result.returncode != 0:
        raise RuntimeError((result.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(ctx: Context) -> None:
    from factory.config import Settings
    from flows.server import ensure_server, stop_server

    state = _scratch_state(ctx)
    server_settings = Settings(root=ctx.work, state_dir=ctx.work / "prefect-state")
    saved = os.environ.pop("PREFECT_API_URL", None)
    try:
        api = ensure_server(server_settings)
        env = {**os.environ, "FACTORY_ROOT": str(ctx.settings.root),
               "FACTORY_STATE_DIR": str(state), "PREFECT_API_URL": api}
        ctx.describe("prefect_api", api)
        _run(ctx, _FLOW, env)  # warm-up: creates the concurrency limit, caches the flow
        for _ in range(ctx.repeats):
            for contender, code in (("prefect flow", _FLOW), ("library only", _LIBRARY)):
                try:
                    outcome = _run(ctx, code, env)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                    ctx.fail(CASE, contender, "seconds", "s", str(exc))
                    continue
                ctx.record(CASE, contender, "seconds", float(outcome["seconds"]), "s")  # type: ignore[arg-type]
                ctx.log(f"  {contender}: {float(outcome['seconds']):.2f} s {outcome['summary']}")  # type: ignore[arg-type]
            ctx.record(CASE, "goal", "seconds", GOAL_SECONDS, "s")
    finally:
        stop_server(server_settings)
        if saved is not None:
            os.environ["PREFECT_API_URL"] = saved


COMPARISON = Comparison(
    number=2,
    name="noop_rebuild",
    title="No-op rebuild of the approved set on a running Prefect server",
    run=run,
    ratios=(RatioSpec("seconds", "prefect flow", "goal", goal=1.0),
            RatioSpec("seconds", "prefect flow", "library only")),
    method=__doc__ or "",
    repeats=5,
    quick_repeats=2,
)
