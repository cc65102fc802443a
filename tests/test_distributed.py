"""Builds across two workers of a Prefect work pool, one publisher holding the keys.

PostgreSQL (the system's, a private cluster), a Prefect server on it, the
``factory-build`` deployment on a process pool with its zombie-run automation,
and two ``prefect worker start`` processes, each with its own state directory
and no keys, sharing one artifact store with the publisher (the rebuild flow,
run here). One server, pool and pair of workers for the module (they cost half a
minute to start); the tests run in order:

1. the approved set (the four real build tools and a project built with
   flit_core) is built across both workers, published once, and verifies; a
   second rebuild builds and publishes nothing;
2. a worker with another builder image, and a tampered store object, are
   refused with one line each;
3. kill -9 of the worker (its whole process tree) that took a slow build while
   its container runs: Prefect's heartbeat automation marks the run Crashed, the
   publisher submits it again, the other worker builds it; published once, no
   build slot left held, verify passes.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from factory.config import Settings, load_settings
from factory.lock import lock_stage
from tests import factories
from tests.builders_fixtures import BACKEND, FLIT, FLIT_TOOLS, serve_flit_tools
from tests.local_upstream import LocalUpstream, serving

pytestmark = [pytest.mark.docker, pytest.mark.network, pytest.mark.slow]

PROJECTS = ("demo",)
ZOMBIE_SECONDS = 40.0  # the workers heartbeat every 30 s (Prefect's minimum)
SLOW_SECONDS = 8  # how long the slow project's backend sleeps in its container
SLOW_PYPROJECT = """[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "slow"
version = "1.0.0"
"""

try:
    from flows.postgres import PostgresError, binaries

    binaries()
    HAVE_POSTGRES = True
except PostgresError:
    HAVE_POSTGRES = False


@dataclass
class Pool:
    name: str
    settings: Settings  # the publisher's
    store: Path
    tmp: Path
    api: str
    upstream: LocalUpstream
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # where the time went

    def state(self, worker: str) -> Path:
        return self.tmp / worker / "state"

    def start(self, worker: str) -> subprocess.Popen[bytes]:
        home = self.tmp / worker
        home.mkdir(exist_ok=True)
        log = (home / "worker.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", self.name,
             "--type", "process", "--limit", "2", "--name", worker],
            cwd=self.settings.root, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "FACTORY_ROOT": str(self.settings.root),
                 "FACTORY_STATE_DIR": str(self.state(worker)),
                 "FACTORY_STORE_URL": str(self.store), "FACTORY_WORKER_NAME": worker,
                 "PREFECT_API_URL": self.api, "PREFECT_HOME": str(home / "prefect"),
                 "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30", "PREFECT_LOGGING_LEVEL": "INFO",
                 "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1",
                 "PYTHONPATH": str(factories.REPO)})
        self.workers[worker] = process
        return process

    def kill(self, worker: str) -> None:
        """SIGKILL to the worker and every process under it (a flow run's process has a
        session of its own): as if its host had vanished."""
        process = self.workers.pop(worker)
        tree = [process.pid, *descendants(process.pid)]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)

    @contextlib.contextmanager
    def timed(self, what: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[what] = round(time.monotonic() - started, 1)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parent = int(stat[stat.rindex(")") + 2:].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def reachable_dir(prefix: str) -> Path:
    """A directory the cluster's user can enter (as root the server runs as postgres)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o711)
    return base


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
         image: object) -> Iterator[Pool]:
    """PostgreSQL, a Prefect server on it, the pool with its deployment and automation,
    two workers; all stopped at the end, even on failure."""
    if not HAVE_POSTGRES:
        pytest.skip("no PostgreSQL server programs (Debian's postgresql)")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.build import deploy_build
    from flows.postgres import ensure_cluster
    from flows.server import ensure_server, own_server, stop_server

    tmp = tmp_path_factory.mktemp("distributed")
    cluster = reachable_dir("factory-dist-pg-")
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(serving(tmp / "upstream"))
        root = tmp / "project"
        serve_flit_tools(upstream, root, Path(request.config.cache.mkdir("pinned-sdists")))
        for name in PROJECTS:
            factories.recipe(root, name, 'versions = ">=1,<2"\nlicenses = ["MIT"]\n')
            upstream.add(name, "1.0.0", build_requires=FLIT, backend="flit_core.buildapi",
                         files={"README.md": name.encode() + b"\n"})
        name = f"factory-test-{uuid.uuid4().hex[:8]}"
        store = tmp / "store"
        (root / "factory.toml").write_text(
            f'[factory]\nupstream = "{upstream.url}"\nstate_dir = "state"\n'
            f'advisories = "{tmp / "advisories"}"\n[build]\nrepair = "none"\n'
            f'concurrency = 4\n[store]\nurl = "{store}"\n[distributed]\npool = "{name}"\n'
            f'[server]\ndatabase = "postgresql"\npostgres_dir = "{cluster / "pg"}"\n')
        (tmp / "advisories").mkdir()
        settings = load_settings(root)
        # the session's SQLite server must not answer
        stack.enter_context(own_server(settings, also=("FACTORY_ROOT", "PREFECT_UI_ENABLED")))
        os.environ["FACTORY_ROOT"] = str(root)
        pool = Pool(name, settings, store, tmp, "", upstream)
        try:
            # Locking (fetching the sdists; the ledger is on the cluster) needs no Prefect
            # server: it runs while the server migrates its schema.
            locking = threading.Thread(target=lock_stage, args=(settings,), daemon=True)
            with pool.timed("setup: postgresql and prefect server"):
                os.environ["PREFECT_UI_ENABLED"] = "false"  # the test's server serves no UI
                ensure_cluster(settings.cluster_dir, durable=False)  # tests: no fsync
                locking.start()
                pool.api = ensure_server(settings)
            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: pool.api}))
            with pool.timed("setup: lock, deployment, workers"):
                deploy_build(name, zombie_seconds=ZOMBIE_SECONDS, python=sys.executable)
                locking.join(timeout=300)
                assert (root / "recipes.lock").is_file(), "locking the set failed"
                pool.start("worker-a")
                pool.start("worker-b")
            yield pool
        finally:
            with contextlib.suppress(Exception):
                report_runs(pool)
            for worker in list(pool.workers):
                pool.kill(worker)
            _remove_containers("slow")
            stop_server(settings)  # before its cluster's directory goes
            shutil.rmtree(cluster, ignore_errors=True)
            print(f"\ntest_distributed timings (s): {pool.seconds}")


def _remove_containers(component: str) -> None:
    from factory.build.engine import connect

    with contextlib.suppress(Exception):
        for container in connect().containers.list(
                all=True, filters={"label": f"org.factory.component={component}==1.0.0"}):
            container.remove(force=True)


def built_by(pool: Pool, worker: str) -> set[str]:
    wheels = pool.state(worker) / "wheels"
    return {p.name for p in wheels.glob("*.whl")} if wheels.is_dir() else set()


def published(pool: Pool) -> list[str]:
    return sorted(p.name for p in (pool.settings.index_dir / "files").glob("*/*.whl"))


def verify(pool: Pool) -> None:
    verified = factories.cli(pool.settings, "verify", "--all", "--no-advisories", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)


def test_two_workers_build_the_set_and_one_publisher_publishes_it(pool: Pool) -> None:
    from flows.rebuild import rebuild

    with pool.timed("rebuild: the set"):
        summary = rebuild()
    assert summary["failed"] == 0 and summary["published"] == len(FLIT_TOOLS) + len(PROJECTS)

    a, b = built_by(pool, "worker-a"), built_by(pool, "worker-b")
    assert a and b, (a, b)  # each worker built some
    assert a | b == set(published(pool)) and len(published(pool)) == len(FLIT_TOOLS) + len(PROJECTS)
    for worker in ("worker-a", "worker-b"):  # build workers never hold a key
        state = pool.state(worker)
        assert not (state / "keys").exists() and not (state / "authority").exists()
        assert not list(state.rglob("*.pem")) and not list(state.rglob("*key*.json"))
    with pool.timed("verify"):
        verify(pool)

    with pool.timed("rebuild: again"):
        again = rebuild()  # nothing new: nothing built, nothing published twice
    assert again["built"] == 0 and again["published"] == 0


def test_another_image_and_a_tampered_object_are_refused(pool: Pool) -> None:
    """A worker whose image is not the pinned one, and a tampered store object: refused
    with one clear line each, before anything is built."""
    from factory.artifact_store import ArtifactStore, Blob, StoreError
    from factory.build.ticket import BuildTicket, TicketRefused, build_ticket

    store = ArtifactStore.at(str(pool.store))
    tickets = {}
    for ref in sorted((pool.store / "refs" / "builds").iterdir()):
        blob = Blob(ref.name, (pool.store / "sha256" / ref.name[:2] / ref.name).stat().st_size)
        tickets[BuildTicket.from_bytes(store.read_bytes(blob)).component] = blob
    demo = tickets["demo"]

    other = load_settings(pool.settings.root, state_dir=str(pool.tmp / "worker-c" / "state"),
                          builder_image="factory-builder:not-the-pinned-one")
    with pytest.raises(TicketRefused) as refused:
        build_ticket(other, store, demo)
    assert "refused: the ticket pins builder image sha256:" in refused.value.message
    assert "\n" not in refused.value.message

    # One wheel of demo's build environment (flit_core's), changed in a copy of the store
    # (the kill test goes on with the real one).
    copy = pool.tmp / "store-copy"
    shutil.copytree(pool.store, copy)
    ticket = BuildTicket.from_bytes(store.read_bytes(demo))
    tool = ticket.tools[0]
    stored = copy / "sha256" / tool.sha256[:2] / tool.sha256
    stored.chmod(0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 1
    stored.write_bytes(bytes(data))
    fresh = load_settings(pool.settings.root, state_dir=str(pool.tmp / "worker-d" / "state"))
    with pytest.raises(StoreError) as tampered:
        build_ticket(fresh, ArtifactStore.at(str(copy)), demo)
    assert tool.sha256[:12] in tampered.value.message or "sha256" in tampered.value.message
    assert "\n" not in tampered.value.message
    assert not (pool.tmp / "worker-d" / "state" / "wheels").exists()  # nothing was built


def test_a_worker_killed_mid_build_loses_nothing(pool: Pool) -> None:
    """kill -9 of the worker whose build container runs: the run is marked Crashed by the
    heartbeat automation, submitted again, built by the other worker, published once."""
    from flows.rebuild import rebuild

    assert set(pool.workers) == {"worker-a", "worker-b"}
    factories.recipe(pool.settings.root, "slow", 'versions = ">=1,<2"\nlicenses = ["MIT"]\n')
    payload = f"    import time; time.sleep({SLOW_SECONDS})"
    pool.upstream.add("slow", "1.0.0", build_requires=[], backend="backend", files={
        "pyproject.toml": SLOW_PYPROJECT, "slow/__init__.py": None,
        "backend.py": BACKEND.format(name="slow", version="1.0.0", payload=payload)})
    lock_stage(pool.settings)

    outcome: dict[str, Any] = {}

    def publisher() -> None:
        try:
            outcome["summary"] = rebuild(["slow"])
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(publisher,),
                              daemon=True)  # the Prefect settings travel in the context
    started = time.monotonic()
    thread.start()
    with pool.timed("kill: until the slow container runs"):
        container = wait_for(lambda: _running("slow"), 180, "the slow build's container", thread)
    owner = int(container.labels["org.factory.owner"].split(":")[1])
    victim = next(w for w, p in pool.workers.items() if p.pid in ancestors(owner))
    survivor = ({"worker-a", "worker-b"} - {victim}).pop()
    pool.kill(victim)
    with pool.timed("kill: from the kill to the rebuild's end"):
        thread.join(timeout=300)
    pool.seconds["kill: the whole rebuild"] = round(time.monotonic() - started, 1)
    assert not thread.is_alive(), "the publisher still waits for the killed worker's run"
    assert "error" not in outcome, outcome
    summary = outcome["summary"]
    assert summary["built"] == 1 and summary["failed"] == 0 and summary["published"] == 1

    slow = [w for w in published(pool) if w.startswith("slow-")]
    assert len(slow) == 1  # published once
    assert slow[0] in built_by(pool, survivor) and slow[0] not in built_by(pool, victim)
    runs = build_runs("slow")
    assert sorted(r.state.type.value for r in runs) == ["COMPLETED", "CRASHED"], runs
    assert active_slots() == 0  # no build slot left held
    verify(pool)
    again = rebuild(["slow"])  # a result the killed run left behind is not published again
    assert again["built"] == 0 and again["published"] == 0
    assert [w for w in published(pool) if w.startswith("slow-")] == slow


def _running(component: str) -> Any:
    from factory.build.engine import connect

    found = connect().containers.list(
        filters={"label": f"org.factory.component={component}==1.0.0", "status": "running"})
    return found[0] if found else None


def ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1:
        seen.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    return seen


def wait_for(probe: Callable[[], Any], seconds: float, what: str,
             thread: threading.Thread) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        if not thread.is_alive():
            pytest.fail(f"the rebuild ended before {what} was seen")
        time.sleep(0.2)
    pytest.fail(f"{what} was not seen within {seconds:.0f} s")


def build_runs(component: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(like_=f"build {component} ")),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=50)
    return list(runs)


def active_slots() -> int:
    from prefect.client.orchestration import get_client

    from flows.slots import BUILD_LIMIT

    with get_client(sync_client=True) as client:
        return int(client.read_global_concurrency_limit_by_name(BUILD_LIMIT).active_slots)


def report_runs(pool: Pool) -> None:
    """Print each build run's wait before its process started, and its run time."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=200)
    for run in sorted(runs, key=lambda r: r.created or 0):
        if run.start_time and run.created:
            wait = (run.start_time - run.created).total_seconds()
            print(f"run {run.name!r}: {run.state_name}, started {wait:.1f} s after it was "
                  f"created, ran {run.total_run_time.total_seconds():.1f} s")


def test_a_worker_lists_the_pinned_image_once(image: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A build worker holds the image but did not make it: the first build asks the image
    for its packages (a container), and the worker's state remembers them by image ID."""
    from factory.build import image as images

    settings = factories.settings(tmp_path)
    first = images.held_image(settings)
    assert first is not None and first.id == image.id and first.packages
    assert json.loads(images.images_record(settings).read_text())[first.tag]["id"] == image.id

    def no_container(*args: object) -> None:
        raise AssertionError("the image was asked again")

    monkeypatch.setattr(images, "_packages_in_image", no_container)
    again = images.held_image(settings)
    assert again == first
