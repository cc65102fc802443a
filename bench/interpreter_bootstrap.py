"""Comparison 13: interpreter bootstrap, paid once per builder image.

Each pinned CPython (factory.build.interpreters.PINS) built from Debian's verified
orig tarball in a fresh state directory (cold), then asked for again in the same
state (kept: the tree found and every file hashed again against its manifest).
"""

from __future__ import annotations

import shutil
import time
from functools import partial
from pathlib import Path

from bench.harness import BenchSetupError, Comparison, Context, RatioSpec
from factory.build import debian_source, interpreters
from factory.build.image import bootstrap_image, image_id
from factory.build.interpreters import Interpreter, InterpreterPin
from factory.config import Settings, load_settings
from factory.errors import FactoryError

METHOD = """
What `factory builder bootstrap --interpreters` pays per interpreter, once per
builder image. Set-up, not timed: the interpreter build image (the builder image
plus CPython's build headers, `interpreters.BUILD_PACKAGES`; its seconds are
reported, 0 when it exists) and the source tarball with its upstream signature,
fetched once through Debian's signed chain into a seed state directory (each
sample's fresh state gets a copy, as a factory keeps it).

- **cold**: `interpreters.for_image` on a fresh state: the signature check
  (gpgv, pinned key), one network-less container of the build image
  (`./configure --disable-shared`, no PGO/LTO, `make -j<build_cpus>`,
  `make install`, the module import check), the prefix's tar unpacked into
  the state (tarfile's data filter), its manifest written (sha256 of every file).
- **kept**: the same call again: the kept tree found and every file hashed
  again against the manifest before it may be used.

A pin whose tarball this machine's mirror does not serve is a failure of that
case with the reason (no figure is made up for it).
"""


def _seed(ctx: Context) -> Settings:
    return load_settings(ctx.settings.root, state_dir=str(ctx.cache / "interpreters-state"))


def _fresh(ctx: Context, seed: Settings, tag: str) -> Settings:
    settings = load_settings(ctx.settings.root, state_dir=str(ctx.work / tag / "state"))
    kept = debian_source.directory(seed)
    if kept.is_dir():
        shutil.copytree(kept, debian_source.directory(settings), dirs_exist_ok=True)
    return settings


def _case(pin: InterpreterPin) -> str:
    return f"{pin.tag} ({pin.source.package} {pin.source.version}, {pin.source.suite})"


def run(ctx: Context) -> None:
    if image_id(ctx.settings, ctx.settings.builder_image) is None:
        raise BenchSetupError(f"the builder image {ctx.settings.builder_image} is missing",
                              "run `factory builder bootstrap` first")
    seed = _seed(ctx)
    started = time.monotonic()
    image = bootstrap_image(ctx.settings, interpreters.BUILD_PACKAGES)
    ctx.describe("interpreter build image (set-up; seconds, 0 when it exists)",
                 f"{image.tag} {image.id[:19]} ({round(time.monotonic() - started, 1)} s)")
    ctx.describe("build flags sha256", interpreters.flags_sha256())
    ctx.describe("build cpus (make -j)", max(1, int(ctx.settings.build_cpus)))
    for pin in interpreters.PINS.values():
        case = _case(pin)
        try:
            tarball, signature = interpreters.fetch_source(seed, pin)
        except FactoryError as exc:
            ctx.fail(case, "cold", "seconds", "s", f"source not available: {exc.message}")
            continue
        ctx.describe(f"{pin.tag} source", f"{tarball.filename} sha256:{tarball.sha256}; "
                     f"upstream signature: {signature['kind']}"
                     + (f" {signature['fingerprint']} ({signature['signed']})"
                        if signature["kind"] == "openpgp" else ""))
        trees = set()
        for i in range(ctx.repeats):
            settings = _fresh(ctx, seed, f"{pin.tag}-{i}")
            built = ctx.timed(case, "cold", partial(interpreters.for_image, settings, image, pin))
            if isinstance(built, Interpreter):
                trees.add(built.tree_sha256)
                ctx.describe(f"{pin.tag} built", f"CPython {built.version}, tree sha256:"
                             f"{built.tree_sha256}, {_size(built.tree)}")
                again = ctx.timed(case, "kept",
                                  partial(interpreters.for_image, settings, image, pin))
                if isinstance(again, Interpreter) and again.fresh:
                    ctx.note(f"{pin.tag}: the kept tree was built again (should be found)")
            shutil.rmtree(ctx.work / f"{pin.tag}-{i}", ignore_errors=True)
        if len(trees) > 1:
            ctx.note(f"{pin.tag}: {len(trees)} different trees from {ctx.repeats} cold builds "
                     "(the build is not reproducible bit for bit yet)")
        elif ctx.repeats > 1 and trees:
            ctx.note(f"{pin.tag}: {ctx.repeats} cold builds gave the same tree")


def _size(tree: Path) -> str:
    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    return f"{len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.0f} MB"


COMPARISON = Comparison(
    number=13,
    name="interpreter_bootstrap",
    title="Interpreter bootstrap, once per builder image",
    run=run,
    ratios=(RatioSpec("seconds", "kept", "cold", goal=0.05),),
    method=METHOD,
    repeats=1,
    quick_repeats=1,
)
