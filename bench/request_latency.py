"""Comparison 12: request latency, from a developer's request for a project nobody
approved to its signed wheel being installable from the factory.

A local upstream (PEP 691 on 127.0.0.1) serves the real flit-core, pyproject-hooks,
packaging and installer sdists (the build tools a flit-based project needs, from the
project's verified source cache) and, per sample, a new small flit-based project
`asked-N` nobody approved. A project approving only the build tools is locked, built
and published once (untimed); `factory serve` runs as its own process. Per sample the
clock starts when the request is POSTed to the policy API (/api/v1/requests) and stops
when the request's status says installable and the PEP 691 page lists the wheel with
its provenance. In between, the platform team's approval is `factory requests approve
TOKEN` in a fresh process (the human's thinking time is not the factory's: the command
runs as soon as the request is queued), which runs `factory add`, then builds in a
network-less container, attests, signs and publishes. The second contender is the same
request decided by policy (`[intake] auto_approve = true`): `factory requests process`,
one pass of what the intake flow runs every 30 s, judges it with `factory add`'s dry
run and fulfils it (the wait for the next pass, up to 30 s, is not counted). A pip
download of the last wheel then confirms it installs. Goal: under 2 minutes for a
pure-Python project (issue 18).
The peers have no intake queue: a request to them is an email.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.harness import Comparison, Context, RatioSpec, rotated
from bench.indexes import confirm_install, factory_cli, locked_sdists, tool_project
from bench.servers import factory_serve

GOAL_SECONDS = 120.0
CASE = "pure-Python project nobody approved"
TOOLS = ("flit-core", "pyproject-hooks", "packaging", "installer")
JSON = "application/vnd.pypi.simple.v1+json"


def _project(ctx: Context, upstream_url: str) -> Path:
    # Pure-Python only: no wheel is repaired, so `factory add` needs no auditwheel.
    return tool_project(ctx, upstream_url, TOOLS,
                        '[build]\nrepair = "none"\n[intake]\nauto_approve = true\n')


def _listed(page: str, filename: str) -> bool:
    try:
        files = httpx.get(page, headers={"Accept": JSON}, timeout=5).json().get("files", [])
    except (httpx.HTTPError, ValueError):
        return False
    return any(f["filename"] == filename and f.get("provenance") for f in files)


HUMAN, POLICY = "factory, approved by a human", "factory, approved by policy"
# Far apart from each other: policy leaves a look-alike of an approved name to a human.
WORDS = ("meadow", "quartz", "lantern", "harbor", "violet", "copper", "tundra", "saffron",
         "glacier", "pebble", "orchid", "falcon", "juniper", "walrus", "cobalt", "thistle")


def _decide(env: dict[str, str], token: str, by: str) -> None:
    command = ["requests", "approve", token] if by == HUMAN else ["requests", "process"]
    subprocess.run([sys.executable, "-m", "factory.cli", *command], env=env,
                   capture_output=True, timeout=600)


def _sample(ctx: Context, env: dict[str, str], base: str, name: str,
            by: str) -> float | None:
    """Seconds from the request to the wheel served; None (recorded as failed) if not."""
    api = base + "/api/v1/requests"
    started = time.monotonic()
    asked = httpx.post(api, json={"requirement": name, "reason": "bench",
                                  "requester": "bench"}, timeout=30)
    if asked.status_code != 200 or not asked.json()["answer"]["queued"]:
        ctx.fail(CASE, by, "seconds", "s", f"not queued: {asked.text[:200]}")
        return None
    token = asked.json()["answer"]["request"]["token"]
    _decide(env, token, by)
    state = httpx.get(f"{api}/{token}", timeout=30).json()["answer"]
    wheel = f"{name.replace('-', '_')}-1.0.0-py3-none-any.whl"
    if state["state"] != "installable" or not _listed(f"{base}/simple/{name}/", wheel):
        ctx.fail(CASE, by, "seconds", "s", f"{name}: {state['state']}: {state['detail'][:200]}")
        return None
    return time.monotonic() - started


def run(ctx: Context) -> None:
    from tests.local_upstream import LocalUpstream, start, stop

    upstream = start(LocalUpstream(ctx.work / "upstream"))
    try:
        for name, path in locked_sdists(ctx, TOOLS):
            upstream.add_file(name, path)
        root = _project(ctx, upstream.url)
        env = {**os.environ, "FACTORY_ROOT": str(root)}
        env.pop("PREFECT_API_URL", None)
        ctx.log("  locking, building and publishing the build tools (untimed) ...")
        factory_cli(env, "lock")
        factory_cli(env, "build")
        factory_cli(env, "publish")
        with factory_serve(root, root / "state", ctx.work / "serve.log") as served:
            name, words = "", iter(WORDS * 8)
            for n in range(1, ctx.repeats + 1):
                for by in rotated([HUMAN, POLICY], n):
                    name = f"{next(words)}-{n}"
                    upstream.add(name, "1.0.0", build_requires=["flit_core>=3.4,<5"],
                                 backend="flit_core.buildapi", age_days=0)
                    seconds = _sample(ctx, env, served.url, name, by)
                    if seconds is None:
                        continue
                    ctx.record(CASE, by, "seconds", seconds, "s")
                    ctx.log(f"  {name}: installable {seconds:.1f} s after the request")
                ctx.record(CASE, "goal", "seconds", GOAL_SECONDS, "s")
            confirm_install(ctx, served.simple, name, "the last requested project")
    finally:
        stop(upstream)


COMPARISON = Comparison(
    number=12,
    name="request_latency",
    title="Request latency: a developer's request to an installable signed wheel",
    run=run,
    ratios=(RatioSpec("seconds", HUMAN, "goal", goal=1.0),
            RatioSpec("seconds", POLICY, "goal", goal=1.0)),
    method=__doc__ or "",
    repeats=3,
    quick_repeats=1,
)
