"""Comparison 3: patch latency, from a release appearing upstream to its signed wheel
being installable from the factory, with `factory watch --interval 10`.

A local upstream (PEP 691 on 127.0.0.1) serves the real flit-core,
pyproject-hooks, packaging and installer sdists (from the project's verified
source cache: they are the build tools a flit-based component needs) and a small
flit-based component `demo`. A project approving them is locked and rebuilt
once (untimed), `factory watch --interval 10` and `factory serve` run as their
own processes against an embedded Prefect server, and then, per sample, a new
patch release of demo is added upstream. The clock starts when the file is
added and stops when the factory's PEP 691 page lists the new wheel with its
provenance (a pip download of it then confirms it installs). Peers poll every
5 minutes to weekly; the goal is 60 s for a pure-Python component.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.harness import Comparison, Context, RatioSpec
from bench.indexes import confirm_install, factory_cli, locked_sdists, tool_project
from bench.servers import factory_serve

GOAL_SECONDS = 60.0
INTERVAL = 10
CASE = "pure-Python patch release"
TOOLS = ("flit-core", "pyproject-hooks", "packaging", "installer")
JSON = "application/vnd.pypi.simple.v1+json"


def _project(ctx: Context, upstream_url: str) -> Path:
    root = tool_project(ctx, upstream_url, TOOLS)
    (root / "recipes" / "demo.toml").write_text(
        'name = "demo"\nversions = ">=1,<2"\ntrack = "minor"\n')
    return root


def _add_demo(upstream: object, version: str) -> None:
    upstream.add("demo", version, build_requires=["flit_core>=3.4,<5"],  # type: ignore[attr-defined]
                 backend="flit_core.buildapi", age_days=0)


def _wait_listed(page: str, filename: str, limit: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            files = httpx.get(page, headers={"Accept": JSON}, timeout=5).json().get("files", [])
            if any(f["filename"] == filename and f.get("provenance") for f in files):
                return time.monotonic()
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.25)
    return None


def run(ctx: Context) -> None:
    from factory.config import Settings
    from flows.server import ensure_server, stop_server
    from tests.local_upstream import LocalUpstream, start, stop

    upstream = start(LocalUpstream(ctx.work / "upstream"))
    server_settings = Settings(root=ctx.work, state_dir=ctx.work / "prefect-state")
    saved = os.environ.pop("PREFECT_API_URL", None)
    watcher: subprocess.Popen[bytes] | None = None
    try:
        for name, path in locked_sdists(ctx, TOOLS):
            upstream.add_file(name, path)
        _add_demo(upstream, "1.0.0")
        root = _project(ctx, upstream.url)
        api = ensure_server(server_settings)
        env = {**os.environ, "FACTORY_ROOT": str(root), "PREFECT_API_URL": api,
               "PREFECT_LOGGING_LEVEL": "WARNING"}
        ctx.log("  locking and building the starting point (untimed) ...")
        factory_cli(env, "lock")
        factory_cli(env, "rebuild")
        with factory_serve(root, root / "state", ctx.work / "serve.log") as served:
            page = served.simple + "demo/"
            with (ctx.work / "watch.log").open("wb") as log:
                watcher = subprocess.Popen(
                    [sys.executable, "-m", "factory.cli", "watch", "--interval", str(INTERVAL)],
                    env=env, stdout=log, stderr=subprocess.STDOUT)
            for n in range(1, ctx.repeats + 1):
                version = f"1.0.{n}"
                time.sleep(INTERVAL * 0.37 * n % INTERVAL)  # land at varied points of a cycle
                added = time.monotonic()
                _add_demo(upstream, version)
                seen = _wait_listed(page, f"demo-{version}-py3-none-any.whl", 180)
                if seen is None:
                    ctx.fail(CASE, "factory watch", "seconds", "s", f"{version} not published "
                             "within 180 s (see watch.log)")
                    continue
                ctx.record(CASE, "factory watch", "seconds", seen - added, "s")
                ctx.record(CASE, "goal", "seconds", GOAL_SECONDS, "s")
                ctx.log(f"  demo {version}: installable {seen - added:.1f} s after release")
            confirm_install(ctx, served.simple, f"demo=={version}", "the last release")
    finally:
        if watcher is not None:
            watcher.terminate()
            watcher.wait(timeout=30)
        stop(upstream)
        stop_server(server_settings)
        if saved is not None:
            os.environ["PREFECT_API_URL"] = saved


COMPARISON = Comparison(
    number=3,
    name="patch_latency",
    title="Patch latency: upstream release to installable signed wheel (watch every 10 s)",
    run=run,
    ratios=(RatioSpec("seconds", "factory watch", "goal", goal=1.0),),
    method=__doc__ or "",
    repeats=3,
    quick_repeats=2,
)
