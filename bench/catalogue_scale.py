"""Comparison 10: the catalogue at scale: approve, lock, plan, cold build and no-op build of
300 components, the cold build side by side with fromager at the same parallelism.

A local upstream (PEP 691 on 127.0.0.1) serves the real flit-core, pyproject-hooks,
packaging and installer sdists (from the project's verified source cache) and 300
generated flit-based projects, ``cat-0000`` to ``cat-0299``, each requiring up to two
earlier ones at run time. They are small on purpose: every build runs the real
backend, so what the comparison weighs is what each side adds around a build
(resolution, environments, isolation, records), which is what grows with a
catalogue.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from bench import peers
from bench.harness import Comparison, Context, RatioSpec, rotated
from bench.indexes import locked_sdists, tool_project
from bench.servers import link_tree

SIZE = 300
TOOLS = ("flit-core", "pyproject-hooks", "packaging", "installer")
NOOP_GOAL = 3.0
TIMEOUT = 7200

METHOD = f"""
The project approves the front-end kit and flit-core (the project's own recipes) and
then `factory add` approves the {SIZE} generated projects by name in one command
(it walks their runtime and build closure and locks once; timed once, for the
report). Each timed step is the CLI a user runs, in a fresh process, so start-up is
counted:

- **lock, warm**: `factory lock` again, nothing new upstream (conditional requests).
- **plan**: `factory plan` of the whole catalogue.
- **cold build**: `factory build` on a fresh state directory whose source cache holds
  hard links to the sdists (no wheel, no unpacked tree, nothing learnt), against
  `fromager -j N bootstrap-parallel` of the same {SIZE} top-level requirements, N
  being the factory's `[build] concurrency` (one per core here), fromager's
  defaults otherwise (network isolation by unshare, uv-made build environments),
  Python 3.12, every project's `resolver_dist.sdist_server_url` set to the local
  upstream, its sdists-repo pre-seeded with the same sdists so neither side
  downloads a source. Both build every wheel from source, flit-core included.
- **no-op build**: `factory build` again on the built state: nothing to do. Goal
  {NOOP_GOAL:.0f} s (recorded as the contender "goal").
"""


def names(size: int = SIZE) -> list[str]:
    return [f"cat-{i:04d}" for i in range(size)]


def requirements_of(i: int) -> list[str]:
    """Up to two earlier projects: a catalogue's runtime graph, shallow and wide."""
    return sorted({f"cat-{j:04d}" for j in (i // 2, i // 3) if j < i})


def _project(ctx: Context, upstream_url: str) -> Path:
    return tool_project(ctx, upstream_url, TOOLS,
                        f"[build]\nconcurrency = {ctx.settings.build_concurrency}\n"
                        'repair = "none"\n')


def _factory(env: dict[str, str], *args: str, timeout: float = TIMEOUT) -> bool:
    result = subprocess.run([sys.executable, "-m", "factory.cli", *args], env=env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"factory {args[0]} failed (exit {result.returncode}): {last}")
    return True


def _fresh_state(root: Path, tag: str, sources: Path) -> Path:
    """A state directory whose source cache holds hard links to the verified sdists."""
    state = root.parent / tag / "state"
    shutil.copytree(sources, state / "sources", copy_function=os.link)
    return state


def _fromager(ctx: Context, venv: Path, tag: str, upstream_url: str,
              sdists: list[Path], jobs: int) -> int:
    base = ctx.work / tag
    out = base / "out"
    link_tree(sdists, out / "sdists-repo" / "downloads")
    settings_dir = base / "settings"
    settings_dir.mkdir(parents=True)
    for name in [*names(), *TOOLS]:
        (settings_dir / f"{name.replace('-', '_')}.yaml").write_text(
            f"resolver_dist:\n  sdist_server_url: {upstream_url}\n", encoding="utf-8")
    return peers.run_fromager(
        venv, ["-j", str(jobs), "--settings-dir", str(settings_dir), "bootstrap-parallel",
               *(f"{name}==1.0.0" for name in names())], base, out, TIMEOUT)


def run(ctx: Context) -> None:
    from tests.local_upstream import LocalUpstream, start, stop

    python = peers.find_python("3.12")
    venv = peers.venv("fromager", peers.FROMAGER, python=python, cache=ctx.cache)
    ctx.describe("fromager", peers.version_of([str(venv / "bin" / "fromager"), "--version"]))
    jobs = ctx.settings.build_concurrency
    ctx.describe("catalogue", f"{SIZE} generated flit-core projects and the front-end kit")
    ctx.describe("concurrency (factory [build] concurrency, fromager -j)", jobs)
    upstream = start(LocalUpstream(ctx.work / "upstream"))
    try:
        for name, path in locked_sdists(ctx, TOOLS):
            upstream.add_file(name, path)
        for i, name in enumerate(names()):
            upstream.add(name, "1.0.0", build_requires=["flit_core>=3.4,<5"],
                         backend="flit_core.buildapi", requires=requirements_of(i))
        root = _project(ctx, upstream.url)
        env = {**os.environ, "FACTORY_ROOT": str(root), "PREFECT_LOGGING_LEVEL": "WARNING"}
        _measure(ctx, root, env, venv, upstream.url, jobs)
    finally:
        stop(upstream)


def _measure(ctx: Context, root: Path, env: dict[str, str], venv: Path, upstream_url: str,
             jobs: int) -> None:
    ctx.log(f"  approving {SIZE} projects with factory add ...")
    started = time.perf_counter()
    _factory(env, "add", *names())
    ctx.describe(f"factory add of {SIZE} projects (walk, recipes, one lock)",
                 f"{time.perf_counter() - started:.1f} s")
    _factory(env, "fetch")  # the sources every cold build starts from (untimed)
    sources = root / "state" / "sources"
    sdists = sorted(sources.glob("sha256/*/*.tar.gz"))
    for _ in range(ctx.repeats):
        ctx.timed("lock, warm", "factory", partial(_factory, env, "lock"))
        ctx.timed("plan", "factory", partial(_factory, env, "plan"))
    built_state: Path | None = None
    for i in range(max(1, ctx.repeats // 3)):  # the cold build is long: fewer samples
        for side in rotated(["factory", "fromager"], i):
            if side == "factory":
                state = _fresh_state(root, f"factory-{i}", sources)
                cold = {**env, "FACTORY_STATE_DIR": str(state)}
                if ctx.timed("cold build", "factory", partial(_factory, cold, "build")):
                    built_state = state
                    ctx.describe("wheels built by factory",
                                 len(list((state / "wheels").glob("*.whl"))))
            else:
                wheels = ctx.timed("cold build", "fromager", partial(
                    _fromager, ctx, venv, f"fromager-{i}", upstream_url, sdists, jobs))
                if wheels is not None:
                    ctx.describe("wheels built by fromager", wheels)
                shutil.rmtree(ctx.work / f"fromager-{i}", ignore_errors=True)
    if built_state is None:
        return
    built = {**env, "FACTORY_STATE_DIR": str(built_state)}
    for _ in range(ctx.repeats):
        ctx.timed("no-op build", "factory", partial(_factory, built, "build"))
        ctx.record("no-op build", "goal", "seconds", NOOP_GOAL, "s")


COMPARISON = Comparison(
    number=10,
    name="catalogue_scale",
    title=f"The catalogue at scale: {SIZE} components approved, locked, planned and built",
    run=run,
    ratios=(RatioSpec("seconds", "factory", "fromager", goal=1.0, case="cold build"),
            RatioSpec("seconds", "factory", "goal", goal=1.0, case="no-op build")),
    method=METHOD,
    repeats=3,
    quick_repeats=1,
)
