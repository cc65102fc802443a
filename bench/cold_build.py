"""Comparison 1: cold build of the approved set with its build tools.

factory (plan + execute, fresh state dir) vs a bare `pip wheel` loop in the same
image vs `fromager bootstrap` of the same top-level requirements.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench import peers
from bench.harness import BenchSetupError, Comparison, Context, RatioSpec, rotated
from bench.indexes import TOP_LEVEL
from bench.servers import link_tree
from factory.build import debian_source, patchelf, repair
from factory.build.docker import Bind, prepare_output, run_container
from factory.build.executor import execute
from factory.build.image import bootstrap_image, image_id
from factory.config import Settings, load_settings
from factory.errors import FactoryError
from factory.lock import LockedComponent, load_lock
from factory.plan import Plan, make_plan, node_id
from factory.recipes import load_recipes
from factory.upstream import cache
from factory.verify.equivalence import rate

LOOP = Path(__file__).with_name("_bare_loop.py")
TIMEOUT = 3600

METHOD = """
All three start from the same locked sdists already on disk, and build every
wheel from source, build tools included; the builder image already exists, and
so does the factory's patchelf for it (built from Debian's source once per image,
like the image: the set-up reports its seconds).

- **factory**: `make_plan` + `execute` (what `factory build` runs) on a fresh
  state directory whose source cache holds hard links to the locked sdists:
  no wheel, no unpacked tree, no cached build requirements. One hardened,
  network-less container per build, its own front end, BuildRecords.
- **bare**: one network-less container of the same image (same limits) runs
  `pip wheel --no-deps --no-index --find-links /out` (Debian's pip, with its
  build isolation) on each sdist, and nothing else. /out starts empty and
  receives each wheel as it is built, so pip's isolated build environments take
  the build tools from wheels built earlier in the loop, as the factory's do.
  The bare loop is handed the factory's build order and dependencies (learnt
  from the factory run, not timed) and the factory's concurrency (one build per
  core), so the ratio is the cost of what the factory adds around each build.
- **fromager**: `fromager --constraints-file C bootstrap requests==… flask==…`
  with its defaults (serial builds, network isolation by unshare, uv-made build
  envs), Python 3.12 (fromager needs it). C pins every component with a single
  locked version to it; those with several locked versions (setuptools,
  flit-core, hatchling: the extra ones match upstream's build backend, see
  below) are left to fromager's resolver. Its
  sdists-repo is pre-seeded with the locked sdists (fromager reuses a download
  that is already there), so, like the others, it downloads no source; it does
  still resolve every requirement against PyPI, which it needs the network for.
  It builds fewer wheels: not the factory's own front-end kit (installer,
  pyproject-hooks), and one version per name.

Equivalence with upstream (a fact of the factory's first run, not timed): each
pure wheel it built compared with upstream's wheel of the same version, the one
the lock pins (`upstream_backend.wheel`); the same comparison as the signed
statements published beside each wheel (factory.verify.equivalence.rate):
equivalent / pure, and for the rest the verdict, the files that differ and why
the backend version did or did not match upstream's.
"""


def _locked(settings: Settings) -> list[LockedComponent]:
    return load_lock(settings).components


def _sdists(ctx: Context) -> dict[str, Path]:
    """Every locked sdist, verified: from the project's cache, else fetched into ours."""
    seed = load_settings(ctx.settings.root, state_dir=str(ctx.cache / "sdists-state"))
    found = {}
    for comp in _locked(ctx.settings):
        own = cache.cache_path(ctx.settings, comp.sdist.sha256, comp.sdist.filename)
        found[node_id(comp.name, comp.version)] = (
            own if own.is_file() else cache.fetch(seed, comp.sdist))
    return found


def _patchelf(ctx: Context) -> Settings:
    """patchelf built from Debian's source for every image the approved set builds in
    (once per image, like the image itself: set-up, not timed), in a seed state
    directory each fresh factory state gets a copy of."""
    seed = load_settings(ctx.settings.root, state_dir=str(ctx.cache / "sdists-state"))
    if repair.mode(seed) != repair.TOOL:
        return seed
    sets = {tuple(sorted(r.system_packages)) for r in load_recipes(ctx.settings).values()}
    started = time.monotonic()
    for packages in sorted(sets):
        try:
            patchelf.for_image(seed, bootstrap_image(ctx.settings, packages))
        except FactoryError as exc:
            ctx.describe(f"patchelf for the image of {packages or 'the base set'}",
                         f"not built ({exc.message}): its wheels repair without grafting")
    ctx.describe("patchelf from Debian's source, every image (set-up, not timed; "
                 "seconds, 0 when kept)", round(time.monotonic() - started, 1))
    return seed


def _fresh_state(ctx: Context, tag: str, sdists: dict[str, Path],
                 seed: Settings | None = None, **overrides: object) -> Settings:
    settings = load_settings(ctx.settings.root, state_dir=str(ctx.work / tag / "state"),
                             **overrides)
    for comp in _locked(settings):
        path = sdists[node_id(comp.name, comp.version)]
        dest = cache.cache_path(settings, comp.sdist.sha256, comp.sdist.filename)
        link_tree([path], dest.parent)
    if seed is not None:  # the kept patchelf source and builds, as a factory keeps them
        for kept in (debian_source.directory(seed), seed.state_dir / "builder" / "patchelf"):
            if kept.is_dir():
                shutil.copytree(kept, settings.state_dir / kept.relative_to(seed.state_dir),
                                dirs_exist_ok=True)
    return settings


# -- factory ---------------------------------------------------------------------

def factory_build(settings: Settings) -> int:
    plan = make_plan(settings)
    return len(execute(settings, plan))


# -- bare loop ---------------------------------------------------------------------

def bare_plan(plan: Plan, sdists: dict[str, Path], concurrency: int) -> dict[str, object]:
    nodes = [{"id": nid, "sdist": sdists[nid].name,
              "deps": sorted(d for d in plan.nodes[nid].env if d != nid)}
             for nid in plan.order]
    return {"concurrency": concurrency, "nodes": nodes}


def bare_build(ctx: Context, tag: str, plan: dict[str, object]) -> int:
    base = ctx.work / tag
    (base / "bare").mkdir(parents=True, exist_ok=True)
    (base / "bare" / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    (base / "bare" / "loop.py").write_bytes(LOOP.read_bytes())
    out = base / "out"
    prepare_output(out)
    binds = [Bind(ctx.work / "sdists", "/sdists"), Bind(base / "bare", "/bare"),
             Bind(out, "/out", read_only=False)]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": "/tmp", "LANG": "C.UTF-8"}
    result = run_container(ctx.settings, ctx.settings.builder_image,
                           ["python3", "-I", "/bare/loop.py"], binds, env, TIMEOUT,
                           labels={"org.factory.role": "bench"})
    if result.exit_code != 0:
        tail = result.log.decode("utf-8", "replace")[-600:]
        raise RuntimeError(f"bare loop failed (exit {result.exit_code}): {tail}")
    return len(list(out.glob("*.whl")))


# -- fromager ----------------------------------------------------------------------

def constraints(components: list[LockedComponent]) -> str:
    """Pins for every name locked at exactly one version (fromager takes one per name)."""
    versions: dict[str, list[str]] = {}
    for comp in components:
        versions.setdefault(comp.key, []).append(comp.version)
    return "".join(f"{name}=={found[0]}\n" for name, found in sorted(versions.items())
                   if len(found) == 1)


def top_level(components: list[LockedComponent]) -> list[str]:
    pinned = {c.key: c.version for c in components if c.is_primary}
    return [f"{name}=={pinned[name]}" for name in TOP_LEVEL]


def fromager_build(ctx: Context, venv: Path, tag: str, sdists: dict[str, Path]) -> int:
    base = ctx.work / tag
    out = base / "out"
    link_tree(list(sdists.values()), out / "sdists-repo" / "downloads")
    components = _locked(ctx.settings)
    pins = base / "constraints.txt"
    pins.write_text(constraints(components), encoding="utf-8")
    return peers.run_fromager(venv, ["--constraints-file", str(pins), "bootstrap",
                                     *top_level(components)], base, out, TIMEOUT)


# -- the comparison -------------------------------------------------------------------

def _preconditions(ctx: Context) -> None:
    if not ctx.settings.lock_path.is_file():
        raise BenchSetupError("no recipes.lock", "run `factory lock` first")
    if image_id(ctx.settings, ctx.settings.builder_image) is None:
        raise BenchSetupError(f"the builder image {ctx.settings.builder_image} is missing",
                              "run `factory builder bootstrap` first")


def run(ctx: Context) -> None:
    _preconditions(ctx)
    sdists = _sdists(ctx)
    seed = _patchelf(ctx)
    link_tree(list(sdists.values()), ctx.work / "sdists")
    python = peers.find_python("3.12")
    venv = peers.venv("fromager", peers.FROMAGER, python=python, cache=ctx.cache)
    ctx.describe("fromager", peers.version_of([str(venv / "bin" / "fromager"), "--version"]))
    ctx.describe("concurrency (factory and bare)", ctx.settings.build_concurrency)
    plan: dict[str, object] | None = None
    contenders = ["factory", "bare", "fromager"]
    for i in range(ctx.repeats):
        for name in rotated(contenders, i):  # rotate: no side always first
            tag = f"{name}-{i}"
            action: Callable[[], int]
            if name == "factory":
                settings = _fresh_state(ctx, tag, sdists, seed)  # set-up, not timed
                action = partial(factory_build, settings)
            elif name == "bare":
                # The factory's order and dependencies; from the project's plan if the
                # factory has not run successfully yet.
                plan = plan or bare_plan(make_plan(ctx.settings), sdists,
                                         ctx.settings.build_concurrency)
                action = partial(bare_build, ctx, tag, plan)
            else:
                action = partial(fromager_build, ctx, venv, tag, sdists)
            built = ctx.timed("approved set", name, action)
            if built is not None:
                ctx.describe(f"wheels built by {name}", built)
                if name == "factory" and i == 0:  # not timed: compared with upstream's
                    ctx.describe("equivalence with upstream (factory's pure wheels)",
                                 rate(ctx.settings, list(settings.wheels_dir.glob("*.whl")))
                                 .line())
                if name == "factory" and plan is None:
                    # What the factory learnt (dynamic build requirements) orders the bare loop.
                    plan = bare_plan(make_plan(settings), sdists, ctx.settings.build_concurrency)
            shutil.rmtree(ctx.work / tag, ignore_errors=True)


COMPARISON = Comparison(
    number=1,
    name="cold_build",
    title="Cold build of the approved set with its build tools",
    run=run,
    ratios=(RatioSpec("seconds", "factory", "bare", goal=1.15),
            RatioSpec("seconds", "factory", "fromager", goal=1.0)),
    method=METHOD,
    repeats=2,
    quick_repeats=1,
)
