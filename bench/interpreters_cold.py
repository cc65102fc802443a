"""Comparison 16: cold build of the approved set for CPython 3.11 alone vs 3.11 and 3.13.

factory with ``[build] interpreters = ["3.11"]`` vs ``["3.11", "3.13"]`` (fresh state
each, the 3.13 tree kept once per machine), and the peer for the same matrix: the
bare `pip wheel` loop of comparison 1 run once per interpreter in the same image.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.cold_build import _fresh_state, _patchelf, _preconditions, _sdists, bare_plan
from bench.harness import BenchSetupError, Comparison, Context, RatioSpec, rotated
from bench.servers import link_tree
from factory.build import interpreters
from factory.build.docker import Bind, prepare_output, run_container
from factory.build.executor import Outcome, run_plan
from factory.build.image import bootstrap_image
from factory.build.interpreters import Interpreter
from factory.config import Settings, load_settings
from factory.plan import make_plan

LOOP = Path(__file__).with_name("_bare_loop.py")
TIMEOUT = 3600
OTHER = "3.13"  # 3.14's Debian tarball answers 404 on this machine's mirror (comparison 13)
# --quick: flask's runtime set and its build tools (one native component, markupsafe),
# as tests/test_interpreters_docker.py builds; a full run builds the whole approved set.
QUICK_SET = ["flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker"]

ONE, TWO = "3.11", "3.11+3.13"
F1, F2, B1, B2 = f"factory {ONE}", f"factory {TWO}", f"bare {ONE}", f"bare {TWO}"

METHOD = """
The same approved set (recipes/, the project's lock) built cold for one
interpreter and for two: CPython 3.11 (the builder image's Debian python3) and
3.11 + 3.13 (the 3.13 tree the factory built from Debian's verified tarball,
kept once per machine in `FACTORY_INTERPRETERS_DIR`, default
`~/.cache/factory/interpreters`, and only checked against its manifest here; its
bootstrap is comparison 13's figure, not counted). 3.14 is left out: its Debian
tarball answered 404 on this machine's mirror. Every side starts from the locked
sdists already on disk and the factory's patchelf already built (as comparison 1).
`--quick` builds flask's runtime set and its build tools only (markupsafe is its
one native component); a full run builds every locked component.

- **factory 3.11** / **factory 3.11+3.13**: `make_plan` + `run_plan` (what
  `factory build` runs) on a fresh state directory with `[build] interpreters`
  set to each matrix. With two, a node whose 3.11 wheel is bound to its ABI is
  built again in a container with the 3.13 tree mounted; pure and abi3 wheels
  (build tools included) are shared. The builds each made are counted, and the
  ones built twice are named: only native components should be.
- **bare 3.11** / **bare 3.11+3.13**: comparison 1's bare loop (`pip wheel
  --no-deps --no-index --find-links /out` on each sdist, one network-less
  container of the builder image, the factory's order and concurrency) run once
  per interpreter: for 3.13 in the same image with the 3.13 tree mounted
  read-only at its prefix, and pip from the tree's bundled pip wheel (the loop
  first makes a venv of `python3.13` in the container's /tmp, whose ensurepip
  installs that wheel, compiled once, a few seconds inside the timed pass;
  running pip from the wheel itself on PYTHONPATH, as
  tests/test_interpreters_docker.py installs with it, recompiles pip in every
  call and was 2.5 times slower in a first try). A bare loop does not
  know which components are native before building them, so its 3.13 pass builds
  every sdist again, its build tools from its own /out as the 3.11 pass does. Its
  3.11+3.13 figure is the sum of the two passes of the same repeat (one sample
  each); its 3.11 figure is the first pass.

The headline ratio is factory 3.11+3.13 / factory 3.11 (what a second
interpreter costs the factory); bare 3.11+3.13 / bare 3.11 is the peer's for the
same matrix, and factory / bare per matrix says what the factory adds.
"""


@dataclass
class BareRun:
    built: list[str]
    failed: dict[str, str]
    wheels: list[str]


def machine_interpreters() -> Path:
    """Where this machine keeps built interpreters (`make demo` and the docker test share it)."""
    given = os.environ.get("FACTORY_INTERPRETERS_DIR")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "factory" / \
        "interpreters"


def kept_interpreter(ctx: Context) -> Interpreter:
    settings = load_settings(ctx.settings.root, state_dir=str(ctx.work / "probe"),
                             interpreters_dir=str(machine_interpreters()))
    image = bootstrap_image(settings, interpreters.BUILD_PACKAGES)
    found = interpreters.usable(settings, image, interpreters.PINS[OTHER])
    if found is None:
        raise BenchSetupError(f"CPython {OTHER} is not kept in {machine_interpreters()}",
                              "build it once: `make demo`, or `factory builder bootstrap "
                              f"--interpreters` with FACTORY_BUILD_INTERPRETERS=3.11,{OTHER} "
                              f"and FACTORY_INTERPRETERS_DIR={machine_interpreters()}")
    return found


def _targets(ctx: Context) -> list[str] | None:
    return QUICK_SET if ctx.quick else None


# -- factory ---------------------------------------------------------------------

def factory_build(settings: Settings, targets: list[str] | None) -> Outcome:
    return run_plan(settings, make_plan(settings, targets))


def describe_factory(ctx: Context, matrix: str, outcome: Outcome) -> None:
    names = [r.wheel_filename for r in outcome.records]
    by_node: dict[str, list[str]] = {}
    for record in outcome.records:
        by_node.setdefault(f"{record.component}=={record.version}", []).append(
            record.wheel_filename.split("-")[2])
    twice = sorted(f"{nid} ({', '.join(tags)})" for nid, tags in by_node.items()
                   if len(tags) > 1)
    native = sorted(n for n in names if "-none-any" not in n and "-abi3-" not in n)
    ctx.describe(f"factory {matrix}: builds", f"{len(names)} ({len(by_node)} components)")
    ctx.describe(f"factory {matrix}: native wheels", ", ".join(native) or "none")
    if matrix == TWO:
        ctx.describe(f"factory {matrix}: components built twice", ", ".join(twice) or "none")
        wrong = sorted(nid for nid, tags in by_node.items()
                       if len(tags) > 1 and not all(t.startswith("cp3") for t in tags))
        if wrong:
            ctx.note("factory built a pure wheel's component twice: " + ", ".join(wrong))
    if outcome.failed:
        ctx.describe(f"factory {matrix}: failed", "; ".join(
            f"{k}: {v[:160]}" for k, v in outcome.failed.items()))
    if outcome.skipped:
        ctx.describe(f"factory {matrix}: not built for an interpreter", "; ".join(
            f"{k}: {v[:160]}" for k, v in outcome.skipped.items()))
    if outcome.failed:
        raise RuntimeError(f"{len(outcome.failed)} build(s) failed: "
                           + ", ".join(sorted(outcome.failed))[:300])


# -- bare loop, once per interpreter ----------------------------------------------------

def bare_pass(ctx: Context, tag: str, plan: dict[str, object],
              python: Interpreter | None) -> BareRun:
    base = ctx.work / tag
    (base / "bare").mkdir(parents=True, exist_ok=True)
    (base / "bare" / "loop.py").write_bytes(LOOP.read_bytes())
    binds = [Bind(ctx.work / "sdists", "/sdists"), Bind(base / "bare", "/bare")]
    if python is not None:
        plan = {**plan, "python": python.executable}
        binds.append(Bind(python.tree, python.prefix))
    (base / "bare" / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    out = base / "out"
    prepare_output(out)
    binds.append(Bind(out, "/out", read_only=False))
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": "/tmp", "LANG": "C.UTF-8"}
    result = run_container(ctx.settings, ctx.settings.builder_image,
                           ["python3", "-I", "/bare/loop.py"], binds, env, TIMEOUT,
                           labels={"org.factory.role": "bench"})
    log = result.log.decode("utf-8", "replace")
    summary = next((line for line in reversed(log.splitlines())
                    if line.startswith('{"built"')), None)
    if summary is None:
        raise RuntimeError(f"bare loop failed (exit {result.exit_code}): {log[-600:]}")
    found = json.loads(summary)
    wheels = sorted(p.name for p in out.glob("*.whl"))
    return BareRun(list(found["built"]), dict(found["failed"]), wheels)


def describe_bare(ctx: Context, label: str, run: BareRun) -> None:
    native = [w for w in run.wheels if "-none-any" not in w and "-abi3-" not in w]
    ctx.describe(f"bare {label}: builds", f"{len(run.wheels)} wheels "
                 f"({len(run.failed)} failed)")
    ctx.describe(f"bare {label}: native wheels", ", ".join(native) or "none")
    if run.failed:
        ctx.describe(f"bare {label}: failed", "; ".join(
            f"{k}: {' '.join(v.split())[-200:]}" for k, v in sorted(run.failed.items())))


# -- the comparison -------------------------------------------------------------------

def run(ctx: Context) -> None:
    _preconditions(ctx)
    python = kept_interpreter(ctx)
    ctx.describe(f"CPython {OTHER} (kept; its bootstrap is comparison 13's)",
                 f"{python.version}, tree sha256:{python.tree_sha256[:16]}…, "
                 f"in {machine_interpreters()}")
    ctx.describe("3.14", "left out: its Debian tarball answers 404 on this machine's mirror")
    ctx.describe("set", "flask's runtime set and build tools (--quick)" if ctx.quick
                 else "the whole approved set (recipes/, the lock)")
    ctx.describe("concurrency (factory and bare)", ctx.settings.build_concurrency)
    sdists = _sdists(ctx)
    seed = _patchelf(ctx)
    link_tree(list(sdists.values()), ctx.work / "sdists")
    targets = _targets(ctx)
    plan: dict[str, object] | None = None
    matrices = {ONE: ("3.11",), TWO: ("3.11", OTHER)}
    case = "flask set (quick)" if ctx.quick else "approved set"
    # The larger matrix first: with one repeat (a full run's default), whatever the first
    # build pays once on this machine is charged to it, not to the one it is compared with.
    contenders = [F2, F1, "bare"]
    for i in range(ctx.repeats):
        for name in rotated(contenders, i):
            if name == "bare":
                plan = plan or bare_plan(make_plan(ctx.settings, targets), sdists,
                                         ctx.settings.build_concurrency)
                _bare(ctx, case, i, plan, python)
                continue
            matrix = name.removeprefix("factory ")
            tag = f"factory-{len(matrices[matrix])}-{i}"
            settings = _fresh_state(ctx, tag, sdists, seed,  # set-up, not timed
                                    build_interpreters=",".join(matrices[matrix]),
                                    interpreters_dir=str(machine_interpreters()))
            action: Callable[[], Outcome] = partial(factory_build, settings, targets)
            outcome = ctx.timed(case, name, action)
            if outcome is not None:
                if i == 0:
                    describe_factory(ctx, matrix, outcome)
                if plan is None:  # what the factory learnt orders the loop
                    plan = bare_plan(make_plan(settings, targets), sdists,
                                     ctx.settings.build_concurrency)
            shutil.rmtree(ctx.work / tag, ignore_errors=True)


def _bare(ctx: Context, case: str, i: int, plan: dict[str, object],
          python: Interpreter) -> None:
    """One pass per interpreter; recorded as 3.11 (the first) and 3.11+3.13 (the sum)."""
    seconds: list[float] = []
    for label, interpreter in (("3.11", None), (OTHER, python)):
        started = time.perf_counter()
        try:
            result = bare_pass(ctx, f"bare-{label}-{i}", plan, interpreter)
        except Exception as exc:  # noqa: BLE001 - one side failing must not end the run
            ctx.fail(case, B1 if interpreter is None else B2, "seconds", "s",
                     f"{label} pass: {type(exc).__name__}: {str(exc)[-300:]}")
            return
        finally:
            shutil.rmtree(ctx.work / f"bare-{label}-{i}", ignore_errors=True)
        seconds.append(time.perf_counter() - started)
        ctx.log(f"  bare {label} pass: {seconds[-1]:.2f} s, {len(result.wheels)} wheels")
        if i == 0:
            describe_bare(ctx, f"{label} pass", result)
    ctx.record(case, B1, "seconds", seconds[0], "s")
    ctx.record(case, B2, "seconds", sum(seconds), "s")
    ctx.describe(f"bare {OTHER} pass / bare 3.11 pass (repeat {i + 1})",
                 round(seconds[1] / seconds[0], 2))


COMPARISON = Comparison(
    number=16,
    name="interpreters_cold",
    title="Cold build of the approved set for 3.11 vs 3.11 + 3.13",
    run=run,
    ratios=(RatioSpec("seconds", F2, F1), RatioSpec("seconds", B2, B1),
            RatioSpec("seconds", F2, B2, goal=1.15), RatioSpec("seconds", F1, B1, goal=1.15)),
    method=METHOD,
    # About 4 to 5 minutes a repeat on 2 cores; one extra native build is within one
    # sample's noise, so a full run takes three (rotated: each side first once).
    repeats=3,
    quick_repeats=1,
)
