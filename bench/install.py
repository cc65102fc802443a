"""Comparison 4: install the approved set into a fresh venv, from `factory serve` and from
pypiserver serving the same wheels, with pip and with uv; nginx serving the same
tree (with and without PEP 658 metadata) measures the floor any server can reach."""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

from bench import peers
from bench.harness import Comparison, Context, RatioSpec, rotated
from bench.indexes import TOP_LEVEL, both, static_floors
from bench.proxy import counting_proxy
from bench.servers import Running

PIP = ("pip==26.3",)
UV = ("uv==0.13.9",)
CLIENTS = ("pip", "uv")
TIMEOUT = 600

METHOD = """
Each run makes a fresh venv (not timed) and times one install of `requests flask`
(the twelve approved runtime components) with `--index-url` set to one server:
pip with `--no-cache-dir --no-compile`, uv with `--no-cache` (uv compiles no bytecode
by default; compiling is the same interpreter work whatever the index, about half
of pip's run time and most of its run-to-run noise, so pip skips it too and the
figures measure what the index changes). All servers run at once on
127.0.0.1, `factory serve` on the published index and pypiserver (waitress) on a
directory holding hard links to the same wheel files; the order of the servers
rotates from one repeat to the next, so each takes each slot. Installers run in a
clean environment (no pip configuration, no find-links), so every byte comes from
the server under test. Bytes are counted
on the wire (headers included, server to client) by a TCP proxy in front of each
server, during one untimed warm-up install per client and server.

Two more servers, not contenders for the goal, show where the time goes: nginx
(with the configuration of docs/nginx.md) serving the same published tree as
static files, which answers in about 0.15 ms and so is the floor of any server;
and nginx serving a copy of that tree whose pages announce no PEP 658 core
metadata. pip fetches every announced `.metadata` file during resolution, one
after the other, and the wheel afterwards: one more request and one more parse
per package, which no server can save it (compare the two nginx rows). uv fetches
concurrently; without PEP 658 it reads wheel metadata with range requests.
"""


def _uv() -> list[str]:
    beside = Path(sys.executable).with_name("uv")
    if beside.is_file():
        return [str(beside)]
    return [str(peers.venv("uv", UV) / "bin" / "uv")]


def _fresh_venv(uv: list[str], path: Path) -> Path:
    subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(path)],
                   check=True, capture_output=True, env=peers.clean_env())
    return path / "bin" / "python"


def install_command(client: str, tool: list[str], python: Path, simple: str) -> list[str]:
    if client == "pip":
        return [*tool, "-m", "pip", "--python", str(python), "install", "--quiet",
                "--no-cache-dir", "--no-compile", "--disable-pip-version-check", "--no-input",
                "--progress-bar", "off", "--index-url", simple, *TOP_LEVEL]
    return [*tool, "pip", "install", "--quiet", "--no-cache", "--no-config", "--python",
            str(python), "--index-url", simple, *TOP_LEVEL]


def _install(ctx: Context, tools: dict[str, list[str]], client: str, simple: str,
             tag: str) -> None:
    python = _fresh_venv(tools["uv"], ctx.work / f"venv-{tag}")
    done = subprocess.run(install_command(client, tools[client], python, simple),
                          capture_output=True, text=True, env=peers.clean_env(), timeout=TIMEOUT,
                          check=False)
    if done.returncode != 0:
        tail = " ".join((done.stdout + done.stderr).split()[-30:])
        raise RuntimeError(f"{client} install failed (exit {done.returncode}): {tail}")


def _check(ctx: Context, tag: str) -> None:
    python = ctx.work / f"venv-{tag}" / "bin" / "python"
    subprocess.run([str(python), "-c", "import requests, flask"], check=True,
                   capture_output=True, env=peers.clean_env())


def _port(running: Running) -> int:
    return int(running.url.rsplit(":", 1)[1])


def _warm_and_count(ctx: Context, tools: dict[str, list[str]],
                    running: dict[str, Running]) -> None:
    for client in CLIENTS:
        for name in running:
            with counting_proxy(_port(running[name])) as counter:
                tag = f"count-{client}-{name}"
                try:
                    _install(ctx, tools, client, counter.url + "/simple/", tag)
                    _check(ctx, tag)
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    ctx.fail(client, name, "bytes", "B", str(exc)[:300])
                    continue
            ctx.record(client, name, "bytes", counter.down, "B")
            ctx.record(client, name, "bytes sent by client", counter.up, "B")
            ctx.record(client, name, "HTTP requests", counter.requests, "count")
            ctx.log(f"  {client} from {name}: {counter.down} bytes down, "
                    f"{counter.requests} requests")


def run(ctx: Context) -> None:
    tools = {"pip": [str(peers.venv("pip", PIP, cache=ctx.cache) / "bin" / "python")],
             "uv": _uv()}
    pip_version = peers.version_of([*tools["pip"], "-m", "pip", "--version"])
    ctx.describe("pip", pip_version.split(" from")[0])
    ctx.describe("uv", peers.version_of([*tools["uv"], "--version"]))
    with both(ctx) as contenders, static_floors(ctx) as floors:
        running = {**contenders, **floors}
        _warm_and_count(ctx, tools, running)
        names = list(running)
        for i in range(ctx.repeats):
            order = rotated(names, i)  # each takes each slot
            for client in CLIENTS:
                for name in order:
                    action = partial(_install, ctx, tools, client, running[name].simple,
                                     f"{client}-{name}-{i}")
                    ctx.timed(client, name, action)


COMPARISON = Comparison(
    number=4,
    name="install",
    title="Install requests+flask into a fresh venv",
    run=run,
    ratios=(RatioSpec("seconds", "factory", "pypiserver", goal=1.0),
            RatioSpec("bytes", "factory", "pypiserver"),
            RatioSpec("seconds", "nginx", "pypiserver"),
            RatioSpec("seconds", "nginx, no PEP 658", "pypiserver")),
    method=METHOD,
    repeats=9,  # short runs: more of them, so a busy moment does not decide the median
    quick_repeats=3,
    chart_metrics=("seconds", "bytes"),
)
