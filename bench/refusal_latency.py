"""Comparison 11: the refusal path at 10,000 approved projects. An explained 404 (what a
typo or a hallucinated name gets) and the policy API's signed answer, against a plain 404.

A project approves 10,000 generated names (its status record, as `factory status`
writes it; no wheel needs to exist for a name to be approved) and holds the per-role
keys, the answers key included. `factory serve` (one uvicorn process, as a user starts
it) serves it on 127.0.0.1; pypiserver (waitress, fallback off) serves an empty
directory as the peer's plain 404. wrk with one connection and one thread (latency, not
throughput: no queueing behind other requests) drives each target for a window per
repeat, after a warm-up; a Lua script walks through 20,000 distinct names, more than the
server's answer cache holds (4,096), so most answers are computed, not remembered:

- **plain 404**: `/files/<name>/<name>-1.0.tar.gz` on the factory (a file no record
  names: no matching), and `/simple/<name>/` on pypiserver (a project it does not have);
- **explained 404**: `/simple/<typo>/` on the factory, the typo one letter off an
  approved name (the did-you-mean answer with its fuzzy match over 10,000 names);
- **API check**: `/api/v1/check?requirement=<typo>`, the same answer as signed JSON (an
  in-toto statement, DSSE-signed with the answers key, per request).

Goals: p99 of the explained 404 and of the API check under 5 ms (recorded as the
contender "goal"), and the explained 404 no slower than pypiserver's plain 404.
"""

from __future__ import annotations

import random
import shutil
import string
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from bench import peers
from bench.harness import BenchSetupError, Comparison, Context, RatioSpec, rotated
from bench.serve_load import parse_wrk
from bench.servers import factory_serve, pypiserver

SIZE = 10_000
PATHS = 20_000
GOAL_MS = 5.0
CASE = "a name the index does not serve"
FULL_SECONDS = 10.0
QUICK_SECONDS = 4.0


def names(size: int = SIZE) -> list[str]:
    rng = random.Random(11)
    found: set[str] = set()
    while len(found) < size:
        found.add("".join(rng.choice(string.ascii_lowercase)
                          for _ in range(rng.randint(5, 14))))
    return sorted(found)


def typo(name: str, i: int) -> str:
    """One letter off ``name`` (a substitution at a varying position)."""
    at = i % len(name)
    other = "x" if name[at] != "x" else "y"
    return name[:at] + other + name[at + 1:]


def _project(ctx: Context, approved: list[str]) -> Path:
    from factory.attest.keys import init_keys
    from factory.config import load_settings
    from factory.index import Index

    root = ctx.work / "project"
    (root / "recipes").mkdir(parents=True)
    (root / "factory.toml").write_text('[factory]\nstate_dir = "state"\n', encoding="utf-8")
    settings = load_settings(root)
    init_keys(settings)
    Index.of(settings).write_status([
        {"name": n, "kind": "pure", "allowed": "any", "newest_upstream": "1.0",
         "locked": "1.0", "published": None, "advisories": [], "waiting_days": None,
         "note": None, "alarm": None, "refused": None} for n in approved])
    return root


def _script(ctx: Context, tag: str, paths: list[str]) -> Path:
    """A wrk Lua script that asks for ``paths`` in turn."""
    listing = ctx.work / f"{tag}.paths"
    listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
    script = ctx.work / f"{tag}.lua"
    script.write_text(
        "local paths = {}\n"
        f'for line in io.lines("{listing}") do paths[#paths + 1] = line end\n'
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n", encoding="utf-8")
    return script


def _wrk(base: str, script: Path, seconds: float) -> float:
    command = ["wrk", "--threads", "1", "--connections", "1", "--duration",
               f"{max(1, round(seconds))}s", "--timeout", "10s", "--latency",
               "--script", str(script), base]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr.strip()[:300]}")
    result = parse_wrk(done.stdout)
    if result.requests == 0:
        raise RuntimeError("wrk completed no request")
    return result.p99_ms


def _first(url: str) -> None:
    """One request, waited for (any status: these are 404s)."""
    try:
        with urllib.request.urlopen(url, timeout=120):
            pass
    except urllib.error.HTTPError:
        pass


def run(ctx: Context) -> None:
    if shutil.which("wrk") is None:
        raise BenchSetupError("wrk is not installed", "apt-get install -y wrk (Debian)")
    approved = names()
    root = _project(ctx, approved)
    picked = [approved[i % SIZE] for i in range(PATHS)]
    typos = [typo(name, i) for i, name in enumerate(picked)]
    window = QUICK_SECONDS if ctx.quick else FULL_SECONDS
    ctx.describe("approved projects", SIZE)
    ctx.describe("distinct names asked per target", PATHS)
    ctx.describe("load", f"wrk, 1 connection, 1 thread, {window:.0f} s windows")
    venv = peers.venv("pypiserver", peers.PYPISERVER, cache=ctx.cache)
    (ctx.work / "empty").mkdir()
    scripts = {
        "factory plain 404": ("factory", _script(ctx, "plain", [
            f"/files/{n}/{n}-1.0.tar.gz" for n in typos])),
        "pypiserver plain 404": ("pypiserver", _script(ctx, "peer", [
            f"/simple/{n}/" for n in typos])),
        "factory explained 404": ("factory", _script(ctx, "explained", [
            f"/simple/{n}/" for n in typos])),
        "factory API check": ("factory", _script(ctx, "api", [
            f"/api/v1/check?requirement={n}" for n in typos])),
    }
    with factory_serve(root, root / "state", ctx.work / "serve.log") as factory, \
            pypiserver(venv, ctx.work / "empty", ctx.work / "pypiserver.log") as peer:
        bases = {"factory": factory.url, "pypiserver": peer.url}
        for server, script in scripts.values():  # warm-up, not kept
            # The first answer builds the index of the approved names (a few tenths of a
            # second, once per change of them): asked alone, not inside wrk's first second.
            _first(bases[server] + script.with_suffix(".paths").read_text(
                encoding="utf-8").split("\n", 1)[0])
            _wrk(bases[server], script, 1.0)
        for i in range(ctx.repeats):
            for contender in rotated(list(scripts), i):
                server, script = scripts[contender]
                try:
                    p99 = _wrk(bases[server], script, window)
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                    ctx.fail(CASE, contender, "p99 latency", "ms", str(exc))
                    continue
                ctx.record(CASE, contender, "p99 latency", p99, "ms")
                ctx.log(f"  {contender}: p99 {p99:.2f} ms")
            ctx.record(CASE, "goal", "p99 latency", GOAL_MS, "ms")


COMPARISON = Comparison(
    number=11,
    name="refusal_latency",
    title="The refusal path at 10,000 approved projects: explained 404 and signed API answer",
    run=run,
    ratios=(RatioSpec("p99 latency", "factory explained 404", "goal", goal=1.0),
            RatioSpec("p99 latency", "factory API check", "goal", goal=1.0),
            RatioSpec("p99 latency", "factory explained 404", "pypiserver plain 404", goal=1.0),
            RatioSpec("p99 latency", "factory explained 404", "factory plain 404")),
    method=__doc__ or "",
    repeats=3,
    quick_repeats=1,
    chart_metrics=("p99 latency",),
)
