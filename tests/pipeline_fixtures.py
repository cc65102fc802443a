"""A small, real, published index without Docker, for tests of everything downstream.

``make_published_index(root)`` generates sdists (tests.factories.sdist),
puts them in the content-addressed source cache, builds each into a wheel on
the host with pypa/build and the test venv's setuptools/wheel, writes an honest
BuildRecord next to each wheel, and calls ``factory.publish.release``: the real
attest -> sign (embedded Sigstore authority) -> in-toto -> publish path.

Honest means: the builder is the host's Python (its binary's sha256 stands for
the image ID), the build tools are the host's installed setuptools and wheel
(pinned by the sha256 of their installed RECORD, as there is no wheel file),
and the network mode is "none" only when the build really ran in a fresh
network namespace (``unshare -rn``, loopback only); otherwise it says "host".

Use the session fixture ``published_index`` (read only!) or, to change files,
``clone(published, tmp_path)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import build
import pytest

from factory._internal.atomic import sha256_file
from factory.build.env import source_date_epoch
from factory.build.record import BuildRecord, InstalledTool
from factory.config import Settings
from factory.index import Index
from factory.index.serve import create_app
from factory.publish import release
from factory.upstream.archive import extract
from factory.upstream.cache import Sdist, cache_path
from tests import factories
from tests.approval_fixtures import approve
from tests.index_fixtures import running


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    requires: tuple[str, ...] = ()


# alpha <- beta <- gamma: installing gamma from the index pulls in all three.
PACKAGES = (
    Package("alpha", "1.0"),
    Package("beta", "2.0", ("alpha>=1.0",)),
    Package("gamma", "0.3", ("beta==2.0",)),
)


@dataclass(frozen=True)
class PublishedIndex:
    root: Path
    settings: Settings
    records: tuple[BuildRecord, ...]

    @property
    def index_dir(self) -> Path:
        return self.settings.index_dir

    def record(self, name: str) -> BuildRecord:
        return next(r for r in self.records if r.component == name)

    def wheel(self, name: str) -> Path:
        """The published wheel of ``name`` in the index directory."""
        record = self.record(name)
        return self.index_dir / "files" / record.component / record.wheel_filename

    def sdist(self, name: str) -> Path:
        record = self.record(name)
        return cache_path(self.settings, record.source.sha256, record.source.filename)


# -- building on the host -------------------------------------------------------------------
def network_isolation() -> list[str]:
    """The command prefix that runs a build without network, or [] when unavailable."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False)
    return [unshare, "-rn"] if probe.returncode == 0 else []


def _runner(prefix: list[str], log: Path, epoch: int):  # type: ignore[no-untyped-def]
    def run(cmd: Sequence[str], cwd: str | None = None,
            extra_environ: Mapping[str, str] | None = None) -> None:
        env = {**os.environ, **(extra_environ or {}), "SOURCE_DATE_EPOCH": str(epoch),
               "PYTHONWARNINGS": "ignore::UserWarning",
               "PYTHONHASHSEED": "0"}
        with log.open("ab") as out:
            subprocess.run([*prefix, *cmd], cwd=cwd, env=env, stdout=out,
                           stderr=subprocess.STDOUT, check=True)
    return run


def build_wheel(sdist: Path, out_dir: Path, log: Path, prefix: list[str]) -> Path:
    """Build ``sdist`` with pypa/build (no isolation: the test venv's setuptools)."""
    work = out_dir / f".tree-{uuid.uuid4().hex[:8]}"
    tree = extract(sdist, work)
    try:
        builder = build.ProjectBuilder(tree, python_executable=sys.executable,
                                       runner=_runner(prefix, log, source_date_epoch(sdist)))
        return Path(builder.build("wheel", out_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def host_tools() -> list[InstalledTool]:
    tools = []
    for name in ("setuptools", "wheel"):
        dist = importlib.metadata.distribution(name)
        record = Path(str(dist.locate_file(f"{dist.metadata['Name']}-{dist.version}.dist-info")))
        record = record / "RECORD"
        if not record.is_file():  # dist-info names are normalized differently by some tools
            record = next(Path(str(dist.locate_file(""))).glob(f"{name}-*.dist-info")) / "RECORD"
        tools.append(InstalledTool(name, dist.version, f"{name}-{dist.version}.dist-info",
                                   sha256_file(record)))
    return tools


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(settings: Settings, package: Package, sdist: Path, wheel: Path, log: Path,
            recipe: Path, started: str, isolated: bool, invocation: str) -> BuildRecord:
    python = Path(sys.executable).resolve()
    return BuildRecord(
        invocation_id=invocation,
        component=package.name,
        version=package.version,
        wheel_filename=wheel.name,
        wheel_sha256=sha256_file(wheel),
        source=Sdist(package.name, package.version, sdist.name, sdist.resolve().as_uri(),
                     sha256_file(sdist), sdist.stat().st_size),
        recipe_name=recipe.name,
        recipe_digest="sha256:" + sha256_file(recipe),
        builder_image=f"host-python:{sys.version.split()[0]}",
        builder_image_id="sha256:" + sha256_file(python),
        builder_settings={
            "backend": "host (test fixture)",
            "frontend": f"build {build.__version__}, no isolation",
            "python": str(python),
            "container": {"network_mode": "none" if isolated else "host"},
            "isolation": "unshare -rn (new network namespace)" if isolated else "none",
        },
        build_tools=host_tools(),
        started_on=started,
        finished_on=_now(),
        log_filename=log.name,
        log_sha256=sha256_file(log),
        network_mode="none" if isolated else "host",
    )


def build_package(settings: Settings, package: Package, upstream_dir: Path,
                  prefix: list[str]) -> BuildRecord:
    made = factories.sdist(upstream_dir, package.name, package.version,
                           requires=package.requires)
    sdist = cache_path(settings, sha256_file(made), made.name)
    sdist.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(made, sdist)
    recipe = factories.recipe(settings.root, package.name, f'versions = "=={package.version}"\n')
    invocation = uuid.uuid4().hex
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log = settings.logs_dir / f"{package.name}-{package.version}-build-{invocation}.log"
    log.touch()
    started = _now()
    out = settings.builds_dir / invocation
    out.mkdir(parents=True)
    built = build_wheel(sdist, out, log, prefix)
    settings.wheels_dir.mkdir(parents=True, exist_ok=True)
    wheel = settings.wheels_dir / built.name
    shutil.move(built, wheel)
    record = _record(settings, package, sdist, wheel, log, recipe, started, bool(prefix),
                     invocation)
    record.save(settings.wheels_dir)
    shutil.rmtree(out, ignore_errors=True)
    return record


def make_published_index(root: Path, packages: Sequence[Package] = PACKAGES,
                         **settings_overrides: object) -> PublishedIndex:
    """Build, attest, sign and publish ``packages`` into an index under ``root``."""
    settings = factories.settings(root, project="project",
                                  **{"advisories": root / "advisories", **settings_overrides})
    prefix = network_isolation()
    with ThreadPoolExecutor(max_workers=len(packages) or 1) as pool:
        records = list(pool.map(
            lambda p: build_package(settings, p, root / "upstream", prefix), packages))
    records = [approve(settings, r) for r in records]  # the lock the admission gate wants
    release(settings, records)
    return PublishedIndex(root, settings, tuple(records))


def clone(published: PublishedIndex, dest: Path) -> PublishedIndex:
    """A private copy (project, state, index) to tamper with."""
    shutil.copytree(published.root, dest, symlinks=True, dirs_exist_ok=True)
    settings = dataclasses.replace(
        published.settings, root=dest / "project", state_dir=dest / "state",
        advisories=str(dest / "advisories"))
    return PublishedIndex(dest, settings, published.records)


@contextlib.contextmanager
def serve_index(settings: Settings) -> Iterator[str]:
    """``factory serve`` (create_app under uvicorn) on a free 127.0.0.1 port, in a thread.

    Yields the base URL; pip/uv use ``<url>/simple/``. Stops when the block ends.
    """
    with running(create_app(Index.of(settings))) as base:
        yield base


_SHARED: dict[str, PublishedIndex] = {}


def shared_published_index(tmp_path_factory: pytest.TempPathFactory) -> PublishedIndex:
    """The default published index, built once per test session whichever module asks."""
    if "default" not in _SHARED:
        _SHARED["default"] = make_published_index(tmp_path_factory.mktemp("published"))
    return _SHARED["default"]


@pytest.fixture(scope="session")
def published_index(tmp_path_factory: pytest.TempPathFactory) -> PublishedIndex:
    """A published index of alpha, beta, gamma (read only: clone it to change files).

    Import it into a test module (``from tests.pipeline_fixtures import
    published_index``); every module gets the same index, built once.
    """
    return shared_published_index(tmp_path_factory)
