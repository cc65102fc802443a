"""Builds across two workers of a Prefect work pool, one publisher holding the keys.

A real Prefect server, the ``factory-build`` deployment on a process pool, and two
``prefect worker start`` processes, each with its own state directory and no keys,
sharing one artifact store with the publisher (the rebuild flow, run here). The
approved set (the four real build tools and two projects built with flit_core) is
built across both workers, published once, and verifies. Then the refusals: a
tampered store object, and a worker whose builder image is not the pinned one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from factory.config import Settings, load_settings
from factory.lock import lock_stage
from tests import factories
from tests.builders_fixtures import PINNED, download
from tests.local_upstream import LocalUpstream

pytestmark = [pytest.mark.docker, pytest.mark.network, pytest.mark.slow]

TOOLS = ("flit-core", "pyproject-hooks", "packaging", "installer")
ALLOWANCES = {"packaging": 'allow_prebuilt = ["tests/manylinux/*", "tests/musllinux/*"]\n',
              "installer": 'allow_prebuilt = ["src/installer/_scripts/*.exe"]\n'}
PROJECTS = ("demo", "other")
FLIT = ["flit_core>=3.4,<5"]


@dataclass
class Pool:
    name: str
    settings: Settings  # the publisher's
    store: Path
    tmp: Path
    workers: dict[str, subprocess.Popen[bytes]]

    def state(self, worker: str) -> Path:
        return self.tmp / worker / "state"

    def start(self, worker: str, **env: str) -> subprocess.Popen[bytes]:
        home = self.tmp / worker
        home.mkdir(exist_ok=True)
        log = (home / "worker.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", self.name,
             "--type", "process", "--limit", "1", "--name", worker],
            cwd=self.settings.root, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "FACTORY_ROOT": str(self.settings.root),
                 "FACTORY_STATE_DIR": str(self.state(worker)),
                 "FACTORY_STORE_URL": str(self.store), "FACTORY_WORKER_NAME": worker,
                 "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1",
                 "PYTHONPATH": str(factories.REPO), **env})
        self.workers[worker] = process
        return process

    def stop(self, worker: str) -> None:
        process = self.workers.pop(worker)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture
def pool(prefect_api: str, tmp_path: Path, upstream: LocalUpstream,
         request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
         image: object) -> Iterator[Pool]:
    from flows.build import deploy_build

    cache = Path(request.config.cache.mkdir("pinned-sdists"))
    for name in TOOLS:
        url, sha = PINNED[name]
        upstream.add_file(name, download(cache, url, sha))
    root = tmp_path / "project"
    for name in TOOLS:
        factories.recipe(root, name, 'kind = "build-tool"\n' + ALLOWANCES.get(name, ""))
    for name in PROJECTS:
        factories.recipe(root, name, 'versions = ">=1,<2"\nlicenses = ["MIT"]\n')
        upstream.add(name, "1.0.0", build_requires=FLIT, backend="flit_core.buildapi",
                     files={"README.md": name.encode() + b"\n"})
    name = f"factory-test-{uuid.uuid4().hex[:8]}"
    store = tmp_path / "store"
    (root / "factory.toml").write_text(
        f'[factory]\nupstream = "{upstream.url}"\nstate_dir = "state"\n'
        f'advisories = "{tmp_path / "advisories"}"\n[build]\nrepair = "none"\n'
        f'concurrency = 4\n[store]\nurl = "{store}"\n[distributed]\npool = "{name}"\n')
    (tmp_path / "advisories").mkdir()
    monkeypatch.setenv("FACTORY_ROOT", str(root))
    settings = load_settings(root)
    lock_stage(settings)
    deploy_build(name)
    pool = Pool(name, settings, store, tmp_path, {})
    try:
        yield pool
    finally:
        for worker in list(pool.workers):
            pool.stop(worker)


def built_by(pool: Pool, worker: str) -> set[str]:
    wheels = pool.state(worker) / "wheels"
    return {p.name for p in wheels.glob("*.whl")} if wheels.is_dir() else set()


def test_two_workers_build_the_set_and_one_publisher_publishes_it(pool: Pool) -> None:
    from flows.rebuild import rebuild

    pool.start("worker-a")
    pool.start("worker-b")
    summary = rebuild()
    assert summary["failed"] == 0 and summary["published"] == len(TOOLS) + len(PROJECTS)

    a, b = built_by(pool, "worker-a"), built_by(pool, "worker-b")
    published = {p.name for p in (pool.settings.index_dir / "files").glob("*/*.whl")}
    assert a and b, (a, b)  # each worker built some
    assert a | b == published and len(published) == len(TOOLS) + len(PROJECTS)
    for worker in ("worker-a", "worker-b"):  # build workers never hold a key
        state = pool.state(worker)
        assert not (state / "keys").exists() and not (state / "authority").exists()
        assert not list(state.rglob("*.pem")) and not list(state.rglob("*key*.json"))

    verified = factories.cli(pool.settings, "verify", "--all", "--no-advisories", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)

    again = rebuild()  # nothing new: nothing built, nothing published twice
    assert again["built"] == 0 and again["published"] == 0

    refusals(pool)


def refusals(pool: Pool) -> None:
    """A worker whose image is not the pinned one, and a tampered store object: refused
    with one clear line each, before anything is built."""
    from factory.artifact_store import ArtifactStore, Blob, StoreError
    from factory.build.ticket import BuildTicket, TicketRefused, build_ticket

    store = ArtifactStore.at(str(pool.store))
    built = sorted((pool.store / "refs" / "builds").iterdir())
    tickets = {}
    for ref in built:
        blob = Blob(ref.name, (pool.store / "sha256" / ref.name[:2] / ref.name).stat().st_size)
        tickets[BuildTicket.from_bytes(store.read_bytes(blob)).component] = blob
    demo = tickets["demo"]

    other = load_settings(pool.settings.root, state_dir=str(pool.tmp / "worker-c" / "state"),
                          builder_image="factory-builder:not-the-pinned-one")
    with pytest.raises(TicketRefused) as refused:
        build_ticket(other, store, demo)
    assert "refused: the ticket pins builder image sha256:" in refused.value.message
    assert "\n" not in refused.value.message

    # One wheel of demo's build environment (flit_core's), changed in the store.
    ticket = BuildTicket.from_bytes(store.read_bytes(demo))
    tool = ticket.tools[0]
    stored = pool.store / "sha256" / tool.sha256[:2] / tool.sha256
    stored.chmod(0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 1
    stored.write_bytes(bytes(data))
    fresh = load_settings(pool.settings.root, state_dir=str(pool.tmp / "worker-d" / "state"))
    with pytest.raises(StoreError) as tampered:
        build_ticket(fresh, store, demo)
    assert tool.sha256[:12] in tampered.value.message or "sha256" in tampered.value.message
    assert "\n" not in tampered.value.message
    assert not (pool.tmp / "worker-d" / "state" / "wheels").exists()  # nothing was built
