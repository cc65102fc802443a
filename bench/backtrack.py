"""Comparison 9: a resolution where pip must backtrack through several versions, from
`factory serve` and from pypiserver serving the same wheels.

The scenario: `top` has ten releases, 1.0.0 to 1.9.0; each release 1.k.0 after the
first requires `dep>=2.k`, and the user's constraints file says `dep<2` (a pin
their platform needs). pip takes the newest `top`, reads its metadata, finds the
conflict and tries the next older one, down to 1.0.0, which needs `dep>=1,<2`:
ten sets of metadata for one answer. Every wheel carries 2 to 5 MiB of
incompressible payload (a module with data in it, as real projects ship), so that
what the index saves pip is what a real project would see: from `factory serve`
pip reads each candidate's PEP 658 `.metadata` (a few hundred bytes); pypiserver
serves no `.metadata`, so pip downloads each candidate wheel whole to read it.

The wheels (tests.factories) are published into a scratch index through the Index
API (`Index.add`, with the fabricated sidecars of tests.index_fixtures: pip reads
none of them) and served by `factory serve`; pypiserver (waitress, fallback to
PyPI off; bench.servers) serves hard links to the same wheel files; nginx with the
configuration of docs/nginx.md serves the same published tree as a floor (not a
contender for the goal). All run at once on 127.0.0.1; the order rotates between
repeats.

Two cases, each with pip 26.3 (the pin of the install comparison) in a clean
environment and `--no-cache-dir` (fresh caches every run): the resolution alone,
`pip install --dry-run --report` (what `pip-compile`-like tools and CI dry runs
do; pip then downloads no wheel at all when the index has metadata), and a real
`pip install --target` into an empty directory (which also downloads the two
chosen wheels). Each run's report is checked: it must choose top 1.0.0 and dep
1.0.0. Bytes (server to client, headers included) and HTTP requests are counted
by a TCP proxy in front of each server during one untimed warm-up run per case and
server. The goal: factory faster than pypiserver (ratio of medians at most 1.0).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

from bench import peers, servers
from bench.harness import BenchSetupError, Comparison, Context, RatioSpec, rotated
from bench.install import PIP
from bench.proxy import counting_proxy
from bench.servers import Running

TOP, DEP = "top", "dep"
RELEASES = 10  # of top: 1.0.0 .. 1.9.0
MIB = 1 << 20
CONSTRAINT = "dep<2"
TIMEOUT = 600
BASE_URL = "http://127.0.0.1:8700"
DRY_RUN, INSTALL = "pip install --dry-run --report", "pip install --target"
CASES = (DRY_RUN, INSTALL)


def releases() -> list[tuple[str, str, list[str]]]:
    """(name, version, Requires-Dist) of every wheel published."""
    out: list[tuple[str, str, list[str]]] = [(TOP, "1.0.0", ["dep>=1,<2"])]
    out += [(TOP, f"1.{k}.0", [f"dep>=2.{k}"]) for k in range(1, RELEASES)]
    out += [(DEP, "1.0.0", [])]
    out += [(DEP, f"2.{k}.0", []) for k in range(1, RELEASES)]
    return out


def payload_size(i: int) -> int:
    return (2 + i % 4) * MIB  # 2, 3, 4, 5 MiB in turn


def make_wheels(ctx: Context) -> list[Path]:
    from tests import factories

    wheels = []
    for i, (name, version, requires) in enumerate(releases()):
        dist = factories.dist_name(name)
        # Incompressible and reproducible: the same bytes every run.
        payload = hashlib.shake_256(f"{name} {version}".encode()).digest(payload_size(i))
        wheels.append(factories.wheel(ctx.work / "dist", name, version, requires=requires,
                                      files={f"{dist}/__init__.py": b"VALUE = 1\n",
                                             f"{dist}/data.bin": payload}))
    return wheels


def publish(ctx: Context, wheels: list[Path]) -> Path:
    """The wheels published into a scratch state dir's index; returns the state dir."""
    from factory.index import Index
    from tests.index_fixtures import make_sidecars

    state = ctx.work / "state"
    index = Index(state / "index", BASE_URL)
    for wheel in wheels:
        index.add(wheel, make_sidecars(ctx.work / "sidecars", wheel, None))
    problems = index.check(deep=True)
    if problems:
        raise BenchSetupError(f"the scratch index is not sound: {problems[0]}",
                              "a bug in bench/backtrack.py or in the index")
    return state


@contextmanager
def contenders(ctx: Context, state: Path, wheels: list[Path]) -> Iterator[dict[str, Running]]:
    packages = ctx.work / "pypiserver-packages"
    servers.link_tree(wheels, packages)
    venv = peers.venv("pypiserver", peers.PYPISERVER, cache=ctx.cache)
    ctx.describe("pypiserver", " + ".join(peers.PYPISERVER) + " (--server auto: waitress)")
    root = ctx.work / "project"
    root.mkdir(exist_ok=True)
    with ExitStack() as stack:
        running = {
            "factory": stack.enter_context(servers.factory_serve(
                root, state, ctx.work / "factory-serve.log")),
            "pypiserver": stack.enter_context(servers.pypiserver(
                venv, packages, ctx.work / "pypiserver.log")),
        }
        if servers.nginx_binary() is not None:
            running["nginx"] = stack.enter_context(
                servers.nginx(state / "index", ctx.work / "nginx"))
        else:
            ctx.note("nginx is not installed: the static-server floor was not measured "
                     "(apt-get install nginx-light)")
        yield running


def pip_command(pip: list[str], case: str, simple: str, constraints: Path,
                out: Path) -> list[str]:
    common = ["--quiet", "--no-cache-dir", "--disable-pip-version-check", "--no-input",
              "--progress-bar", "off", "--index-url", simple, "-c", str(constraints)]
    if case == DRY_RUN:
        return [*pip, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--report",
                str(out), *common, TOP]
    return [*pip, "-m", "pip", "install", "--target", str(out), "--no-compile", *common, TOP]


def chosen(case: str, out: Path) -> dict[str, str]:
    """name -> version that pip chose (from the report, or the installed dist-info)."""
    if case == DRY_RUN:
        report = json.loads(out.read_text())
        return {i["metadata"]["name"]: i["metadata"]["version"] for i in report["install"]}
    found = {}
    for info in out.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        found[name] = version
    return found


def resolve(ctx: Context, pip: list[str], case: str, simple: str, tag: str) -> None:
    out = ctx.work / "out" / ("report" if case == DRY_RUN else "target") / tag
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_dir():
        shutil.rmtree(out)
    out.unlink(missing_ok=True)
    done = subprocess.run(pip_command(pip, case, simple, ctx.work / "constraints.txt", out),
                          capture_output=True, text=True, env=peers.clean_env(),
                          timeout=TIMEOUT, check=False)
    if done.returncode != 0:
        tail = " ".join((done.stdout + done.stderr).split()[-30:])
        raise RuntimeError(f"pip failed (exit {done.returncode}): {tail}")
    got = chosen(case, out)
    if got != {TOP: "1.0.0", DEP: "1.0.0"}:
        raise RuntimeError(f"pip chose {got}, not top 1.0.0 and dep 1.0.0")


def _port(running: Running) -> int:
    return int(running.url.rsplit(":", 1)[1])


def count(ctx: Context, pip: list[str], running: dict[str, Running]) -> None:
    for case in CASES:
        for name, server in running.items():
            with counting_proxy(_port(server)) as counter:
                try:
                    resolve(ctx, pip, case, counter.url + "/simple/", f"count-{name}")
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    ctx.fail(case, name, "bytes", "B", str(exc)[:300])
                    continue
            ctx.record(case, name, "bytes", counter.down, "B")
            ctx.record(case, name, "HTTP requests", counter.requests, "count")
            ctx.log(f"  {case} from {name}: {counter.down / MIB:.1f} MiB down, "
                    f"{counter.requests} requests")


def run(ctx: Context) -> None:
    pip = [str(peers.venv("pip", PIP, cache=ctx.cache) / "bin" / "python")]
    ctx.describe("pip", peers.version_of([*pip, "-m", "pip", "--version"]).split(" from")[0])
    (ctx.work / "constraints.txt").write_text(CONSTRAINT + "\n")
    wheels = make_wheels(ctx)
    tops = [w for w in wheels if w.name.startswith(f"{TOP}-")]
    ctx.describe("wheels", f"{len(wheels)} ({len(tops)} of top, {len(wheels) - len(tops)} of "
                 f"dep), {sum(w.stat().st_size for w in wheels) / MIB:.0f} MiB in all")
    ctx.describe("scenario", f"`pip install top -c constraints.txt` with `{CONSTRAINT}`: "
                 "top 1.1.0-1.9.0 each need dep>=2.k, so pip backtracks to top 1.0.0")
    state = publish(ctx, wheels)
    with contenders(ctx, state, wheels) as running:
        count(ctx, pip, running)
        names = list(running)
        for i in range(ctx.repeats):
            order = rotated(names, i)
            for case in CASES:
                for name in order:
                    action = partial(resolve, ctx, pip, case, running[name].simple,
                                     f"{name}-{i}")
                    ctx.timed(case, name, action)


COMPARISON = Comparison(
    number=9,
    name="backtrack",
    title="pip backtracking through ten releases: factory (PEP 658) vs pypiserver",
    run=run,
    ratios=(RatioSpec("seconds", "factory", "pypiserver", goal=1.0),
            RatioSpec("bytes", "factory", "pypiserver"),
            RatioSpec("seconds", "factory", "nginx")),
    method=__doc__ or "",
    repeats=5,
    quick_repeats=2,
    chart_metrics=("seconds", "bytes"),
)
