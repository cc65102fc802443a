"""Comparison 6: `factory serve` under loopback load vs pypiserver (wrk, 50 connections)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

import httpx

from bench.harness import BenchSetupError, Comparison, Context, RatioSpec
from bench.indexes import both
from bench.servers import Running

JSON = "application/vnd.pypi.simple.v1+json"
PROJECT = "requests"
FULL_SECONDS = 30.0
QUICK_SECONDS = 6.0
MIN_WINDOW = 2.0

METHOD = f"""
wrk (C, epoll) on 127.0.0.1 with 2 threads and 50 connections (keep-alive) drives one
URL at a time: the simple page of `{PROJECT}` as HTML, the same page as PEP 691
JSON (`Accept: {JSON}`; pypiserver serves no JSON, so only the factory), and the
`{PROJECT}` wheel itself (URL taken from each server's own page). Each target
and server gets the load time in equal windows, one window per repeat, after a
short warm-up; the table gives median/min/max over windows. p99 is wrk's
latency distribution. Errors are socket errors (connect, read, write, timeout)
plus non-2xx/3xx answers; zero is expected. The load generator and the server
share the machine's cores, the same for both servers. `factory serve` is one
uvicorn process; pypiserver is one waitress process (4 threads).
"""


@dataclass(frozen=True)
class Target:
    case: str
    url: str
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p99_ms: float
    errors: int
    requests: int


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, p99 and errors from wrk's report (run with --latency)."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p99 = re.search(r"^\s+99(?:\.0+)?%\s+(\S+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    if not (rps and p99 and total):
        raise ValueError("unexpected wrk output: " + " ".join(output.split())[:300])
    errors = 0
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        output)
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return WrkResult(float(rps.group(1)), _ms(p99.group(1)), errors, int(total.group(1)))


def wrk_command(target: Target, seconds: float, connections: int, threads: int) -> list[str]:
    command = ["wrk", "--threads", str(threads), "--connections", str(connections),
               "--duration", f"{max(1, round(seconds))}s", "--timeout", "10s", "--latency"]
    for header in target.headers:
        command += ["--header", header]
    return [*command, target.url]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def wheel_url(page_url: str, html: str) -> str:
    parser = _Links()
    parser.feed(html)
    for href in parser.hrefs:
        url, _ = urldefrag(urljoin(page_url, href))
        if url.endswith(".whl"):
            return url
    raise BenchSetupError(f"{page_url} links no wheel")


def targets(server: Running) -> list[Target]:
    page = f"{server.url}/simple/{PROJECT}/"
    answer = httpx.get(page, headers={"Accept": "text/html"}, timeout=10)
    answer.raise_for_status()
    found = [Target("simple page (HTML)", page, ("Accept: text/html",))]
    if server.name == "factory":
        found.append(Target("simple page (JSON)", page, (f"Accept: {JSON}",)))
    found.append(Target("wheel download", wheel_url(page, answer.text)))
    for target in found:  # every target answers correctly before it is loaded
        headers = dict(h.split(": ", 1) for h in target.headers)
        check = httpx.get(target.url, headers=headers, timeout=10)
        if check.status_code != 200:
            raise BenchSetupError(f"{target.url} answered {check.status_code}")
        if "JSON" in target.case and not check.headers["content-type"].startswith(JSON):
            raise BenchSetupError(f"{target.url} did not answer JSON")
    return found


def _wrk(target: Target, seconds: float, connections: int) -> WrkResult:
    command = wrk_command(target, seconds, connections, threads=2)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr.strip()[:300]}")
    return parse_wrk(done.stdout)


def _measure(ctx: Context, server: Running, target: Target, window: float) -> None:
    _wrk(target, 1.0 if ctx.quick else 2.0, ctx.options.connections)  # warm-up, not kept
    for _ in range(ctx.repeats):
        try:
            result = _wrk(target, window, ctx.options.connections)
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            ctx.fail(target.case, server.name, "requests/s", "req/s", str(exc))
            continue
        ctx.record(target.case, server.name, "requests/s", result.requests_per_s, "req/s",
                   better="higher")
        ctx.record(target.case, server.name, "p99 latency", result.p99_ms, "ms")
        ctx.record(target.case, server.name, "errors", result.errors, "count")
        ctx.log(f"  {target.case}: {server.name} {result.requests_per_s:,.0f} req/s, "
                f"p99 {result.p99_ms:.1f} ms, {result.errors} errors")


def run(ctx: Context) -> None:
    if shutil.which("wrk") is None:
        raise BenchSetupError("wrk is not installed", "apt-get install -y wrk (Debian)")
    total = ctx.options.duration or (QUICK_SECONDS if ctx.quick else FULL_SECONDS)
    window = max(MIN_WINDOW, total / ctx.repeats)
    ctx.describe("load", f"{ctx.options.connections} connections, {ctx.repeats} window(s) of "
                         f"{window:.0f} s per target and server")
    ctx.describe("load generator", subprocess.run(["wrk", "--version"], capture_output=True,
                                                  text=True, check=False).stdout.split("\n")[0]
                 .split(" Copyright")[0])
    ctx.note("pypiserver serves no PEP 691 JSON: the JSON page is measured for the factory only.")
    with both(ctx) as running:
        for name in ("factory", "pypiserver"):
            for target in targets(running[name]):
                _measure(ctx, running[name], target, window)
    errors = [s for s in ctx.outcome.series if s.metric == "errors" and any(s.samples)]
    ctx.note("errors: none on any run" if not errors else "errors seen: " + "; ".join(
        f"{s.contender} {s.case}: {int(sum(s.samples))}" for s in errors))


COMPARISON = Comparison(
    number=6,
    name="serve_load",
    title="Index under loopback load (wrk)",
    run=run,
    ratios=(RatioSpec("requests/s", "factory", "pypiserver", op=">="),
            RatioSpec("p99 latency", "factory", "pypiserver")),
    method=METHOD,
    repeats=3,
    quick_repeats=2,
    chart_metrics=("requests/s", "p99 latency"),
)
