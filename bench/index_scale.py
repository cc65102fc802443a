"""Comparison 8: index scale. Publishing one wheel into an index of 5,000 projects and
50,000 wheels costs what it costs into an empty one; `verify --all` costs the same
per wheel whatever the size of the index.

**Publish.** The large index is synthetic, in the layout `Index.add` writes
(factory.index.records): 5,000 projects of ten tiny valid wheels each
(tests.factories), each wheel with its PEP 658 metadata and five sidecars
(provenance, SBOM, build record, Sigstore bundle, in-toto statements: the
fabricated sidecars of tests.index_fixtures, hard-linked within a project), each
project's record saved by the index's own writer, and every page rendered once by
`Index.rebuild`. That is 50,000 wheels and 350,000 files; `factory index check
--quick` (``Index.check(deep=False)``) finds it sound before it is kept. It is
written directly rather than published wheel by wheel (which would cost the
per-publish work measured here 50,000 times), with fsync off, once, and kept in
the bench cache (a few minutes to make; about 0.9 GB), keyed by the source of
factory/index. Each run publishes into a hard-linked copy of it (every index write
is temp + rename, so the cached tree is never changed). The empty index holds only
the project that receives the new versions (the same ten wheels), made by the same
code.

Each sample (three per repeat) is one `Index.add` of a new wheel (about 256 KiB,
with its sdist and the same fabricated sidecars), in this process, timed from the
call to its return:
the publisher's lock, placing every file (temp + fsync + rename), the record (the
commit point) and the pages it regenerates. Attesting and signing come before it in
`factory publish` (factory.publish._sign) and do not read the index, so they are
left out: they cost the same whatever its size. Two cases: a new version of an
existing project (the common case) and the first version of a new project (which
also rewrites the project list). Each contender is warmed up by one untimed publish
per case; the order of the two indexes alternates between repeats. The goal: the
large/empty ratio at most 1.2, and at most 200 ms into the large index.

**Verify.** Real signed wheels are needed (a failed signature check costs less than
a passing one), so indexes of 100 and 1,000 wheels (ten versions of each project)
(and 10,000) are made by the real release path (factory.publish.release: admission, attest,
sign with the embedded Sigstore authority, in-toto, publish) from wheels generated
without a build (tests.factories) and build records of the real shape
(tests.pipeline_fixtures; they say network "none", as no build ran at all, so the
provenance check passes as it does for a real build). Making them, once, skips only
the producer's own schema
check of each SBOM (about 1 s a wheel, in rfc3987 IRI parsing; the SBOM bytes are
the same, and verify validates every SBOM itself). They are kept in the bench cache
(about 0.2 s a wheel to make: 10,000 take most of an hour, once; then
FACTORY_BENCH_VERIFY_SIZES="100,1000,10000"; the default is 100 and 1,000). A tree
whose pages were rendered by older code has its pages rendered again from its
records (what `factory index rebuild` does; the signed files are kept); only a tree
that still fails is made again. Each sample is
one `verify(settings, everything=True)` (what `factory verify --all` runs) in a fresh
process, timed from the call to its return (interpreter start and imports are not
counted), divided by the number of wheels; a size above 1,000 wheels is sampled once
a run after its warm-up (a few minutes each). The goal: per-wheel cost at the largest
size at most 1.2 times that at the smallest. A fixed cost (trust root, process
pool) weighs more on the small index, which favours the large one a little.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import BenchSetupError, Comparison, Context, RatioSpec, rotated

ROOT = Path(__file__).resolve().parents[1]
BASE_URL = "http://127.0.0.1:8700"

PROJECTS, VERSIONS = 5_000, 10
TARGET = 2_500  # the project that receives the new versions (in the middle of the list)
GOAL_MS = 200.0
PAYLOAD = 256 * 1024  # incompressible bytes in the published wheel
PUBLISHES = 3  # samples of each publish per repeat: they are cheap, and one is noisy

EMPTY = "empty index"
LARGE = f"{PROJECTS:,} projects / {PROJECTS * VERSIONS:,} wheels"
GOAL = "goal (200 ms)"
CASE_VERSION = "publish a new version of a project"
CASE_PROJECT = "publish the first version of a new project"
CASE_VERIFY = "verify --all"
PUBLISH, PER_WHEEL = "publish time", "verify time per wheel"

GENERATOR = "2"  # bump when the synthetic or signed trees change shape


def verify_sizes() -> tuple[int, ...]:
    raw = os.environ.get("FACTORY_BENCH_VERIFY_SIZES", "100,1000")
    sizes = sorted({int(s) for s in raw.split(",") if s.strip()})
    return tuple(s for s in sizes if s >= VERSIONS) or (100, 1000)


SIZES = verify_sizes()


def size_label(wheels: int) -> str:
    return f"{wheels:,} wheels"


def project_name(i: int) -> str:
    return f"synth-{i:05d}"


# -- the synthetic index (made in a child process: python -m bench.index_scale) -----------

@contextmanager
def _no_fsync() -> Iterator[None]:
    """A fixture made in one go needs no crash safety; one sync at the end flushes it."""
    saved = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = saved
        os.sync()


def populate(root: Path, first: int, count: int, versions: int) -> None:
    """Projects ``first``..``first+count-1``, ``versions`` wheels each, in the layout
    `Index.add` writes (factory.index.records), then every page rendered once.

    Written directly rather than through `Index.add`, whose per-publish costs (the
    catalog, and for a new project the project list) would make this quadratic. The
    sidecars are the same bytes for every wheel (nothing in the index compares their
    content with the wheel), so within a project they are hard links to one copy. ``check`` (what
    `factory index check --quick` runs) confirms the result."""
    from factory.index import Index, intake
    from factory.index.records import FileEntry, Layout, ProjectRecord, Sidecars, StoredFile
    from factory.index.tree import metadata_in
    from factory.index.validation import save_record
    from tests import factories
    from tests.index_fixtures import make_sidecars

    layout = Layout(root)
    shared = root.parent / f"{root.name}-sidecars"
    sidecars = make_sidecars(shared, factories.wheel(shared, "stand-in", "1.0"), None)
    del sidecars["in-toto"]  # optional; a directory of links per wheel is 100,000 more files
    digests = {kind: hashlib.sha256(path.read_bytes()).hexdigest()
               for kind, path in sidecars.items()}
    info = intake.built_from(sidecars["build"], None)
    signer = intake.signer_of(intake.read_provenance(sidecars["provenance"]))
    uploaded = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    with _no_fsync():
        for i in range(first, first + count):
            name = project_name(i)
            record = ProjectRecord(name=name, display_name=name)
            directory = layout.files(name)
            directory.mkdir(parents=True)
            for v in range(versions):
                version = f"1.{v}.0"
                data = factories.wheel_bytes(name, version)
                filename = f"{factories.dist_name(name)}-{version}-{factories.PURE}.whl"
                rel = f"files/{name}/{filename}"
                metadata = metadata_in(io.BytesIO(data), 1 << 20)
                for target, content in ((filename, data), (filename + ".metadata", metadata)):
                    (directory / target).write_bytes(content)
                    (directory / target).chmod(0o644)
                placed = {}
                for kind, source in sidecars.items():
                    dest = directory / Sidecars.name(filename, kind)
                    if v == 0:
                        shutil.copyfile(source, dest)
                        dest.chmod(0o644)  # as the index serves every file
                    else:  # (a link count stays far below the filesystem's limit)
                        os.link(directory / Sidecars.name(record.files[0].filename, kind), dest)
                    placed[kind] = [StoredFile(Sidecars.name(rel, kind), digests[kind],
                                               source.stat().st_size)]
                record.files.append(FileEntry(
                    filename=filename, version=version,
                    sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                    upload_time=uploaded, requires_python=None,
                    metadata=StoredFile(Sidecars.name(rel, "metadata"),
                                        hashlib.sha256(metadata).hexdigest(), len(metadata)),
                    sidecars=placed,
                    built_from={k: v for k, v in info.items() if k not in ("source", "signer")},
                    signer=signer))
            save_record(layout, record)
        Index(root, BASE_URL).rebuild()
    shutil.rmtree(shared, ignore_errors=True)


def _source_key(*parts: str) -> str:
    digest = hashlib.sha256(GENERATOR.encode())
    for part in parts:
        digest.update(part.encode())
    for path in sorted((ROOT / "factory" / "index").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _child(ctx: Context, *args: str, timeout: float = 7200) -> str:
    """``python -m bench.index_scale ARGS`` from the project root; its last line of output."""
    done = subprocess.run([sys.executable, "-m", "bench.index_scale", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchSetupError(f"bench.index_scale {args[0]} failed: {tail}")
    return (done.stdout.strip().splitlines() or [""])[-1]


def synthetic_index(ctx: Context) -> Path:
    """The cached large index (made when missing, or when factory/index changed)."""
    home = ctx.cache / "index-scale"
    name = f"synthetic-{PROJECTS}x{VERSIONS}-{_source_key(str(PROJECTS), str(VERSIONS))}"
    done = home / name
    if (done / ".complete").is_file():
        return done / "index"
    for old in home.glob("synthetic-*"):  # a stale tree is a few hundred MB
        shutil.rmtree(old, ignore_errors=True)
    partial = home / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    ctx.log(f"  making the synthetic index of {PROJECTS:,} projects (once; a few minutes) ...")
    started = time.perf_counter()
    _child(ctx, "synthetic", str(partial / "index"), "0", str(PROJECTS), str(VERSIONS))
    findings = json.loads(_child(ctx, "check", str(partial / "index")))
    if findings:
        raise BenchSetupError(f"the synthetic index is not sound: {findings[0]} "
                              f"({len(findings)} findings)", "a bug in bench/index_scale.py")
    (partial / ".complete").write_text(f"made in {time.perf_counter() - started:.0f} s\n")
    partial.rename(done)
    return done / "index"


# -- publishing one wheel ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Upload:
    wheel: Path
    sidecars: dict[str, Path]
    sdist: Path


def _upload(ctx: Context, name: str, version: str) -> Upload:
    from tests import factories
    from tests.index_fixtures import make_sidecars

    where = ctx.work / "uploads" / f"{name}-{version}"
    dist = factories.dist_name(name)
    payload = hashlib.shake_256(f"{name} {version}".encode()).digest(PAYLOAD)
    wheel = factories.wheel(where / "dist", name, version, files={
        f"{dist}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist}/payload.bin": payload})
    sdist = factories.sdist(where / "sdist", name, version)
    return Upload(wheel, make_sidecars(where / "side", wheel, sdist), sdist)


def _publish(root: Path, upload: Upload) -> float:
    from factory.index import Index

    started = time.perf_counter()
    Index(root, BASE_URL).add(upload.wheel, upload.sidecars, upload.sdist)
    return (time.perf_counter() - started) * 1000


def _indexes(ctx: Context) -> dict[str, Path]:
    large = synthetic_index(ctx)
    copy = ctx.work / "large"
    started = time.perf_counter()
    done = subprocess.run(["cp", "-al", str(large.parent), str(copy)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise BenchSetupError(f"cannot copy the synthetic index: {done.stderr[:300]}",
                              "the bench cache (FACTORY_BENCH_CACHE) and TMPDIR must be on "
                              "one filesystem, for hard links")
    ctx.describe("hard-linked copy of the large index", f"{time.perf_counter() - started:.1f} s")
    empty = ctx.work / "empty" / "index"
    _child(ctx, "synthetic", str(empty), str(TARGET), "1", str(VERSIONS))
    return {EMPTY: empty, LARGE: copy / "index"}


def _measure_publish(ctx: Context) -> None:
    indexes = _indexes(ctx)
    ctx.describe("large index", f"{PROJECTS:,} projects x {VERSIONS} wheels, each with "
                 ".metadata and 5 sidecars (synthetic, see method)")
    target = project_name(TARGET)
    cases = {CASE_VERSION: lambda n: (target, f"2.{n}.0"),
             CASE_PROJECT: lambda n: (f"newproj-{n:03d}", "1.0.0")}
    for n in range(PUBLISHES * ctx.repeats + 1):  # n == 0: the untimed warm-up
        order = list(indexes) if n % 2 else list(reversed(indexes))
        for case, names in cases.items():
            upload = _upload(ctx, *names(n))
            for contender in order:
                try:
                    ms = _publish(indexes[contender], upload)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    ctx.fail(case, contender, PUBLISH, "ms", str(exc)[:300])
                    continue
                if n:
                    ctx.record(case, contender, PUBLISH, ms, "ms")
                    ctx.log(f"  {case}: {contender} {ms:.0f} ms")
            if n:
                ctx.record(case, GOAL, PUBLISH, GOAL_MS, "ms")
    problems = json.loads(_child(ctx, "check", str(indexes[EMPTY])))
    ctx.describe("index check of the empty index after the publishes",
                 "sound" if not problems else f"{len(problems)} findings: {problems[0]}")


# -- verify --all at several sizes -------------------------------------------------------

def make_signed(base: Path, wheels: int) -> None:
    """``wheels`` wheels (ten versions of each project) through the real release path."""
    import factory.attest.sbom as sbom_module
    from factory._internal.atomic import sha256_file
    from factory.lock import APPROVED, Lock, LockedComponent, save_lock
    from factory.publish import release
    from factory.recipes import parse_recipe
    from factory.upstream.cache import cache_path
    from tests import factories
    from tests.pipeline_fixtures import Package, _record

    # See the method: the producer's schema check is skipped; verify validates each SBOM.
    sbom_module.validate = lambda sbom: None  # type: ignore[assignment]
    settings = factories.settings(base, project="project", advisories=base / "advisories")
    settings.wheels_dir.mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    lock, records = Lock(), []
    for p in range(max(1, wheels // VERSIONS)):
        name = f"signed-{p:05d}"
        recipe = parse_recipe(factories.recipe(settings.root, name), settings.recipes_dir)
        for v in range(VERSIONS):
            version = f"1.{v}.0"
            made = factories.sdist(base / "upstream", name, version)
            sdist = cache_path(settings, sha256_file(made), made.name)
            sdist.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made, sdist)
            wheel = factories.wheel(settings.wheels_dir, name, version)
            invocation = hashlib.sha256(f"{name} {version}".encode()).hexdigest()[:32]
            log = settings.logs_dir / f"{name}-{version}-build-{invocation}.log"
            log.write_text("generated by bench/index_scale.py, not built\n")
            record = _record(settings, Package(name, version), sdist, wheel, log,
                             settings.recipes_dir / f"{name}.toml", "2024-01-01T00:00:00Z",
                             True, invocation)
            record = dataclasses.replace(record, recipe_digest=recipe.digest)
            record.save(settings.wheels_dir)
            lock.components.append(LockedComponent(
                kind=recipe.kind, reason=APPROVED, recipe_digest=recipe.digest,
                sdist=dataclasses.replace(
                    record.source, name=name, version=version,
                    url=f"https://files.example.invalid/packages/{made.name}")))
            records.append(record)
    save_lock(settings, lock)
    release(settings, records)


def time_verify(base: Path) -> dict[str, Any]:
    from factory.verify import verify
    from tests import factories

    settings = factories.settings(base, project="project", advisories=base / "advisories")
    started = time.perf_counter()
    report = verify(settings, everything=True)
    seconds = time.perf_counter() - started
    failures = [f"{a.label}: {c.message}" for a in report.artifacts for c in a.failures()]
    pages = [c.message for c in report.index_failures()]
    return {"seconds": seconds, "wheels": len(report.artifacts), "failures": failures + pages,
            "artifact_failures": len(failures)}


def refresh_pages(base: Path) -> None:
    """What `factory index rebuild` does for the tree at ``base``: the trust files, the
    TUF repository and every page, rendered again from the records (the signed files
    are not touched): a tree made before a change to the pages verifies again."""
    from factory.index import Index
    from factory.publish import publish_tuf, trust_files
    from tests import factories

    settings = factories.settings(base, project="project", advisories=base / "advisories")
    index = Index.of(settings)
    trust = trust_files(settings)
    if trust:
        index.publish_trust(trust)
        publish_tuf(settings, index, trust)
    index.rebuild()


def signed_index(ctx: Context, wheels: int, rebuild: bool = False) -> Path:
    home = ctx.cache / "index-scale"
    base = home / f"signed-{wheels}-v{GENERATOR}"
    if (base / ".complete").is_file() and not rebuild:
        return base
    shutil.rmtree(base, ignore_errors=True)
    ctx.log(f"  making {wheels:,} signed wheels (once; about {wheels * 0.25 / 60:.0f} min) ...")
    started = time.perf_counter()
    _child(ctx, "signed", str(base), str(wheels))
    (base / ".complete").write_text(f"made in {time.perf_counter() - started:.0f} s\n")
    return base


def _verify_once(ctx: Context, base: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_child(ctx, "verify", str(base), timeout=3600))
    return result


def _measure_verify(ctx: Context) -> None:
    bases = {}
    for wheels in SIZES:
        base = signed_index(ctx, wheels)
        first = _verify_once(ctx, base)  # the warm-up; and a tree made by older code
        if first["failures"] and not first.get("artifact_failures"):  # pages of older code
            ctx.log(f"  rendering the pages of the {wheels:,}-wheel tree again ...")
            _child(ctx, "pages", str(base))
            first = _verify_once(ctx, base)
        if first["failures"]:  # (another attestation format) is made again, once
            base = signed_index(ctx, wheels, rebuild=True)
            first = _verify_once(ctx, base)
        if first["failures"]:
            ctx.fail(CASE_VERIFY, size_label(wheels), PER_WHEEL, "ms",
                     f"{len(first['failures'])} failures: {first['failures'][0]}"[:300])
            continue
        bases[wheels] = base
    labels = list(bases)
    for i in range(ctx.repeats):
        # Above 1,000 wheels one sample a run (each takes minutes).
        for wheels in rotated([w for w in labels if w <= 1000 or i == 0], i):
            result = _verify_once(ctx, bases[wheels])
            label = size_label(wheels)
            if result["failures"]:
                ctx.fail(CASE_VERIFY, label, PER_WHEEL, "ms", result["failures"][0][:300])
                continue
            per_wheel = result["seconds"] * 1000 / result["wheels"]
            ctx.record(CASE_VERIFY, label, PER_WHEEL, per_wheel, "ms")
            ctx.record(CASE_VERIFY, label, "seconds", result["seconds"], "s")
            ctx.log(f"  verify --all, {label}: {result['seconds']:.1f} s, "
                    f"{per_wheel:.1f} ms a wheel")


def run(ctx: Context) -> None:
    if shutil.which("cp") is None:
        raise BenchSetupError("cp (coreutils) is not on PATH", "install coreutils")
    _measure_publish(ctx)
    _measure_verify(ctx)


COMPARISON = Comparison(
    number=8,
    name="index_scale",
    title="Index scale: publish one wheel into 5,000 projects vs an empty index; "
          "verify --all per wheel",
    run=run,
    ratios=(RatioSpec(PUBLISH, LARGE, EMPTY, goal=1.2),
            RatioSpec(PUBLISH, LARGE, GOAL, goal=1.0),
            RatioSpec(PER_WHEEL, size_label(SIZES[-1]), size_label(SIZES[0]), goal=1.2)),
    method=__doc__ or "",
    repeats=3,  # verify of 1,000 wheels takes a minute or two
    quick_repeats=1,
    chart_metrics=(PUBLISH, PER_WHEEL),
)


def main(argv: list[str]) -> int:
    """The child processes: make a tree, check one, or time one verify (JSON out)."""
    command, *args = argv
    if command == "synthetic":
        root, first, count, versions = Path(args[0]), *map(int, args[1:4])
        populate(root, first, count, versions)
    elif command == "check":
        from factory.index import Index

        print(json.dumps(Index(Path(args[0]), BASE_URL).check(deep=False)))
    elif command == "signed":
        make_signed(Path(args[0]), int(args[1]))
    elif command == "verify":
        print(json.dumps(time_verify(Path(args[0]))))
    elif command == "pages":
        refresh_pages(Path(args[0]))
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
