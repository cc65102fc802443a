"""Comparison 5: `factory verify --all` against the stock `sigstore verify` CLI.

Both read the project's published index (what `make demo` made), the same
wheels. The stock CLI (sigstore-python's `sigstore verify identity --offline`,
with the factory's trust config) checks only the signature over each wheel;
it runs two ways: once for all wheels (its CLI takes several files, each with
its W.sigstore.json beside it: the fair peer, one interpreter start and one
trusted root for the lot) and once per wheel (as a script looping over files
would; reported, without a goal). A third run is the issue's peer, the stock CLI
verifying the same bundles `factory verify --all` verifies, in one process: for each
wheel its signature bundle, every signed statement in W.intoto.jsonl (SLSA provenance,
SBOM), every PEP 740 attestation (as the bundle it is made from) and the upstream
equivalence statement, each staged beside a link to the wheel (staging is not timed;
the stock CLI checks that each DSSE statement names the wheel's digest). Its ratio
carries the goal; the signature-only ratio is the stricter reading and is reported
beside it. `factory verify --all` runs once, as one
fresh process (interpreter start and imports included), and checks every wheel
fully: digest against the index, PEP 658 metadata, the Sigstore bundle, SLSA
provenance, the SBOM (schema and binding), the PEP 740 attestations, the
in-toto layout and links, and advisories. Throughput is wheels per second; the
ratio is factory / stock CLI in one process (goal at least 1). Both run from
byte-compiled modules, as installed packages do: pip compiled the stock CLI's
venv when it installed it; the project's own modules (an editable install,
which pip leaves uncompiled) are compiled once before the first run. Each
contender runs once untimed first (a warm page cache for both), then the
order of the contenders rotates between repeats. Beside each wall time, the CPU
time of all of the contender's processes: on two cores, the factory's run can end
no sooner than half its CPU.
"""

from __future__ import annotations

import compileall
import contextlib
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import factory
from bench.harness import BenchSetupError, Comparison, Context, RatioSpec, rotated
from factory.index.records import Sidecars
from factory.sign.pep740 import attestation_to_bundle_json
from factory.verify.evidence import attestations

CASE = "approved set"


def _wheels(ctx: Context) -> list[Path]:
    wheels = sorted((ctx.settings.index_dir / "files").glob("*/*.whl"))
    if not wheels:
        raise BenchSetupError("no published wheels in the project's index",
                              "run `make demo` first")
    return wheels


def _stock_command(ctx: Context, wheels: list[Path]) -> list[str]:
    """`sigstore verify identity --offline` for ``wheels`` (each W.sigstore.json beside it)."""
    sigstore = Path(sys.executable).with_name("sigstore")
    config = ctx.settings.authority_dir / "trust_config.json"
    return [str(sigstore), "--trust-config", str(config), "verify", "identity", "--offline",
            "--cert-identity", ctx.settings.identity,
            "--cert-oidc-issuer", ctx.settings.issuer, *map(str, wheels)]


def _bundles_of(wheel: Path) -> list[str]:
    """Every distinct Sigstore bundle `factory verify` checks for ``wheel`` (as JSON text)."""
    sidecars = Sidecars(wheel)
    found = [sidecars.path("sigstore").read_text(encoding="utf-8")]
    intoto = sidecars.path("intoto")
    if intoto.is_file():
        found += [line for line in intoto.read_text(encoding="utf-8").splitlines()
                  if line.strip()]
    document = json.loads(sidecars.path("provenance").read_text(encoding="utf-8"))
    found += [attestation_to_bundle_json(a) for a in attestations(document)]
    equivalence = sidecars.path("equivalence")
    if equivalence.is_file():
        found.append(equivalence.read_text(encoding="utf-8"))
    distinct: dict[str, str] = {}
    for text in found:  # the factory verifies a bundle seen twice once (same JSON value)
        distinct.setdefault(json.dumps(json.loads(text), sort_keys=True), text)
    return list(distinct.values())


def _stage_same_bundles(wheels: list[Path], into: Path) -> list[Path]:
    """For each bundle of each wheel, ``into/<n>/<wheel>`` (a link to the wheel) with the
    bundle beside it as ``<wheel>.sigstore.json``: the inputs for one stock CLI run."""
    inputs = []
    for wheel in wheels:
        for text in _bundles_of(wheel):
            slot = into / hashlib.sha256(f"{wheel.name}\0{text}".encode()).hexdigest()[:16]
            slot.mkdir(parents=True)
            staged = slot / wheel.name
            staged.symlink_to(wheel.resolve())
            staged.with_name(wheel.name + ".sigstore.json").write_text(text, encoding="utf-8")
            inputs.append(staged)
    return inputs


def _children_cpu() -> float:
    """CPU seconds (user and system) of this process's waited-for children so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _stock_once(ctx: Context, wheels: list[Path]) -> float:
    started = time.perf_counter()
    result = subprocess.run(_stock_command(ctx, wheels), capture_output=True, text=True,
                            timeout=600)
    seconds = time.perf_counter() - started
    verified = result.stderr.count("OK: ")
    if result.returncode != 0 or verified != len(wheels):
        raise RuntimeError(f"sigstore verify exited {result.returncode} with {verified} of "
                           f"{len(wheels)} OK: "
                           f"{(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return seconds


def _stock_per_file(ctx: Context, wheels: list[Path]) -> float:
    started = time.perf_counter()
    for wheel in wheels:
        subprocess.run(_stock_command(ctx, [wheel]), check=True, capture_output=True,
                       timeout=120)
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


FACTORY = "factory verify --all"
STOCK_SAME = "stock sigstore CLI, the same bundles, one process"
STOCK = "stock sigstore CLI, signature bundles only, one process"
STOCK_PER_FILE = "stock sigstore CLI, signature bundles only, per file"


def run(ctx: Context) -> None:
    wheels = _wheels(ctx)
    stage = Path(tempfile.mkdtemp(prefix="bench-verify-bundles-"))
    try:
        _run(ctx, wheels, _stage_same_bundles(wheels, stage))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _run(ctx: Context, wheels: list[Path], same: list[Path]) -> None:
    ctx.describe("wheels", len(wheels))
    ctx.describe("bundles factory verify checks (signature, statements, PEP 740, "
                 "equivalence; distinct)", len(same))
    compileall.compile_dir(Path(factory.__file__).parent, quiet=1)
    contenders: list[tuple[str, Callable[[], float]]] = [
        (FACTORY, lambda: _factory(ctx)),
        (STOCK_SAME, lambda: _stock_once(ctx, same)),
        (STOCK, lambda: _stock_once(ctx, wheels)),
        (STOCK_PER_FILE, lambda: _stock_per_file(ctx, wheels)),
    ]
    for _, measure in contenders[:3]:  # warm the page cache and the byte-code caches
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            measure()  # a failure is recorded by the timed runs
    for i in range(ctx.repeats):
        for contender, measure in rotated(contenders, i):
            cpu = _children_cpu()
            try:
                seconds = measure()
            except (RuntimeError, subprocess.CalledProcessError,
                    subprocess.TimeoutExpired) as exc:
                ctx.fail(CASE, contender, "wheels/s", "wheels/s", str(exc)[:200])
                continue
            # Per wheel for every contender: the same-bundles run checked all of each
            # wheel's bundles, so its wheels/s is wheels whose bundles all verified.
            ctx.record(CASE, contender, "wheels/s", len(wheels) / seconds, "wheels/s",
                       better="higher")
            ctx.record(CASE, contender, "seconds", seconds, "s")
            # All of its processes' CPU (the factory's child and workers, each wheel's
            # process for the per-file loop): what the wall time is made of, per core.
            cpu = _children_cpu() - cpu
            ctx.record(CASE, contender, "CPU seconds", cpu, "s")
            ctx.log(f"  {contender}: {seconds:.2f} s ({cpu:.2f} s of CPU), "
                    f"{len(wheels) / seconds:.1f} wheels/s")


COMPARISON = Comparison(
    number=5,
    name="verify",
    title="Verify the whole index: factory verify --all vs the stock sigstore CLI",
    run=run,
    ratios=(RatioSpec("wheels/s", FACTORY, STOCK_SAME, goal=1.0, op=">="),
            RatioSpec("wheels/s", FACTORY, STOCK, op=">="),
            RatioSpec("wheels/s", FACTORY, STOCK_PER_FILE, op=">=")),
    method=__doc__ or "",
    repeats=3,
    quick_repeats=1,
    chart_metrics=("wheels/s",),
)
