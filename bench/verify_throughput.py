"""Comparison 5: `factory verify --all` against the stock `sigstore verify` CLI, per file.

Both read the project's published index (what `make demo` made). The stock
CLI (sigstore-python's `sigstore verify identity --offline`, with the
factory's trust config) runs once per wheel, as an auditor without our tool
would, and checks only the signature over the wheel. `factory verify --all`
runs once, as one fresh process (interpreter start and imports included), and
checks every wheel fully: digest against the index, the Sigstore bundle, SLSA
provenance, the SBOM (schema and binding), the PEP 740 attestations, the
in-toto layout and links, and advisories. Throughput is wheels per second;
the ratio is factory / stock. Both run from byte-compiled modules, as installed
packages do: pip compiled the stock CLI's venv when it installed it; the
project's own modules (an editable install, which pip leaves uncompiled) are
compiled once before the first run.
"""

from __future__ import annotations

import compileall
import subprocess
import sys
import time
from pathlib import Path

import factory
from bench.harness import BenchSetupError, Comparison, Context, RatioSpec

CASE = "approved set"


def _wheels(ctx: Context) -> list[Path]:
    wheels = sorted((ctx.settings.index_dir / "files").glob("*/*.whl"))
    if not wheels:
        raise BenchSetupError("no published wheels in the project's index",
                              "run `make demo` first")
    return wheels


def _stock(ctx: Context, wheels: list[Path]) -> float:
    sigstore = Path(sys.executable).with_name("sigstore")
    config = ctx.settings.authority_dir / "trust_config.json"
    started = time.perf_counter()
    for wheel in wheels:
        subprocess.run([str(sigstore), "--trust-config", str(config), "verify", "identity",
                        "--offline", "--bundle", f"{wheel}.sigstore.json",
                        "--cert-identity", ctx.settings.identity,
                        "--cert-oidc-issuer", ctx.settings.issuer, str(wheel)],
                       check=True, capture_output=True, timeout=120)
    return time.perf_counter() - started


def _factory(ctx: Context) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "factory.cli", "verify", "--all", "--json"],
                            capture_output=True, text=True, timeout=600,
                            cwd=ctx.settings.root)
    if result.returncode != 0:
        raise RuntimeError(f"factory verify --all exited {result.returncode}: "
                           f"{(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return time.perf_counter() - started


def run(ctx: Context) -> None:
    wheels = _wheels(ctx)
    ctx.describe("wheels", len(wheels))
    compileall.compile_dir(Path(factory.__file__).parent, quiet=1)
    for _ in range(ctx.repeats):
        for contender, measure in (("factory verify --all", lambda: _factory(ctx)),
                                   ("stock sigstore CLI", lambda: _stock(ctx, wheels))):
            try:
                seconds = measure()
            except (RuntimeError, subprocess.CalledProcessError,
                    subprocess.TimeoutExpired) as exc:
                ctx.fail(CASE, contender, "wheels/s", "wheels/s", str(exc)[:200])
                continue
            ctx.record(CASE, contender, "wheels/s", len(wheels) / seconds, "wheels/s",
                       better="higher")
            ctx.record(CASE, contender, "seconds", seconds, "s")
            ctx.log(f"  {contender}: {seconds:.2f} s, {len(wheels) / seconds:.1f} wheels/s")


COMPARISON = Comparison(
    number=5,
    name="verify",
    title="Verify the whole index: factory verify --all vs the stock sigstore CLI per file",
    run=run,
    ratios=(RatioSpec("wheels/s", "factory verify --all", "stock sigstore CLI", goal=10.0,
                      op=">="),),
    method=__doc__ or "",
    repeats=3,
    quick_repeats=1,
    chart_metrics=("wheels/s",),
)
