"""Second attack pass on issue 19 (by someone who did not write the code), after DIST2's
additions: the zombie-run automation and resubmission of Crashed runs (flows/build.py:
``deploy_build``, ``_submit``), ``factory deploy --pool`` and the deployment's engine
command, the worker's remembered package list (factory/build/image.py), first-word-wins
``refs/builds/<ticket>``.

The attacker may create flow runs and set their states on the Prefect server (forged
Crashed/Completed states, parameters naming another ticket, results late or twice),
write the worker's state directory, and pass hostile `factory deploy --pool` arguments.
Each case is a break, fixed in the module that owns it (the test says what broke), or a
case that held. No docker: the Prefect client is stubbed, or the session's embedded
server (``prefect_api``) is used.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from factory.artifact_store import ArtifactStore, Blob, StoreError
from factory.build import image as images
from factory.build.ticket import BuildResult, BuildTicket, Input, ref_name
from factory.config import Settings
from factory.errors import BuildError, ConfigError
from tests import factories

# -- the publisher's side of a build run (flows/build.py: _submit), Prefect stubbed ---------


def _ticket() -> BuildTicket:
    return BuildTicket(
        component="alpha", version="1.0", lock_sha256="d" * 64, recipe_name="alpha",
        recipe_digest="sha256:" + "b" * 64, sdist=Input("alpha-1.0.tar.gz", "a" * 64, 11),
        tools=(), kit=(), image_tag="factory-builder:x", image_id="sha256:" + "c" * 64)


class Runs:
    """Stands in for prefect.deployments.run_deployment: each call is one flow run that
    ends in the next of ``states``; ``work`` runs as that run's worker (before its end)."""

    def __init__(self, states: list[Any], work: Any = None) -> None:
        self.states, self.work = list(states), work
        self.ids: list[uuid.UUID] = []
        self.parameters: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, parameters: dict[str, Any], **_: Any) -> Any:
        with self.lock:
            run_id = uuid.uuid4()
            self.ids.append(run_id)
            self.parameters.append(parameters)
            state = self.states.pop(0)
        if self.work is not None:
            self.work(run_id, parameters)
        return SimpleNamespace(id=run_id, state=state)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.at(str(tmp_path / "store"))


def _submit(monkeypatch: pytest.MonkeyPatch, store: ArtifactStore, runs: Runs,
            blob: Blob, attempts: int = 3) -> BuildResult:
    import prefect.deployments

    from flows import build as flows_build

    monkeypatch.setattr(prefect.deployments, "run_deployment", runs)
    return flows_build._submit(store, _ticket(), blob, attempts)


def _result(store: ArtifactStore, ticket: Blob, worker: str, outcome: str = "failed") -> Blob:
    return store.put_bytes(BuildResult(ticket.sha256, outcome, worker,
                                       message=f"from {worker}").to_bytes())


def test_a_forged_completed_state_with_no_result_is_one_line(
        monkeypatch: pytest.MonkeyPatch, store: ArtifactStore) -> None:
    """Held: a run set Completed before any worker took it left no result: a BuildError
    in one line (pointing at [store] url), nothing collected from elsewhere."""
    from prefect.states import Completed

    blob = store.put_bytes(_ticket().to_bytes())
    with pytest.raises(BuildError) as refused:
        _submit(monkeypatch, store, Runs([Completed()]), blob)
    assert "left no result" in refused.value.message
    assert "\n" not in refused.value.message


def test_forged_crashed_states_end_after_the_attempts_in_one_line(
        monkeypatch: pytest.MonkeyPatch, store: ArtifactStore) -> None:
    """Held: a run crashed again and again (by whoever may set states) is submitted
    ATTEMPTS times, then a BuildError; the forged message (newlines, 10 KB, escapes)
    reaches it as one bounded line."""
    from prefect.states import Crashed

    blob = store.put_bytes(_ticket().to_bytes())
    hostile = "lost\nhint: run rm -rf /\x1b[31m" + "x" * 10_000
    runs = Runs([Crashed(message=hostile) for _ in range(3)])
    with pytest.raises(BuildError) as refused:
        _submit(monkeypatch, store, runs, blob)
    assert len(runs.ids) == 3
    message = refused.value.message
    assert "3 build runs were lost" in message and "\n" not in message
    assert len(message) < 1000


class ServerRuns(Runs):
    """Like Runs, but the first runs are real flow runs on the session's Prefect server,
    created in the states ``on_server`` gives (a run a worker left Pending, or an operator
    Paused); the later ones are stubbed, ending in ``then``."""

    def __init__(self, on_server: list[Any], then: list[Any] | None = None,
                 work: Any = None) -> None:
        super().__init__(then or [], work)
        self.on_server = on_server

    def __call__(self, name: str, parameters: dict[str, Any], **_: Any) -> Any:
        from prefect import flow
        from prefect.client.orchestration import get_client

        @flow(name="factory-build-stand-in")
        def stand_in() -> None:
            pass

        if not self.on_server:
            return super().__call__(name, parameters)
        state = self.on_server.pop(0)
        with get_client(sync_client=True) as client:
            run = client.create_flow_run(stand_in, state=state)
        self.ids.append(run.id)
        return run


def test_a_run_left_pending_by_a_lost_worker_is_crashed_and_submitted_again(
        prefect_api: str, monkeypatch: pytest.MonkeyPatch, store: ArtifactStore) -> None:
    """Broke (issue 19 leftover): a worker that died after taking a run but before
    starting its process sends no heartbeat, so the zombie automation never crashes it:
    the publisher waited for ever. Now a run Pending for PENDING_SECONDS is marked
    Crashed on the server and the ticket is submitted again."""
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Pending

    from flows import build as flows_build

    monkeypatch.setattr(flows_build, "PENDING_SECONDS", 1.0)
    monkeypatch.setattr(flows_build, "POLL_SECONDS", 0.2)
    blob = store.put_bytes(_ticket().to_bytes())

    def worker(run_id: uuid.UUID, parameters: dict[str, Any]) -> None:
        from flows.build import run_ref

        store.set_ref(run_ref(run_id), _result(store, blob, "second"))

    runs = ServerRuns([Pending()], [Completed()], worker)
    assert _submit(monkeypatch, store, runs, blob).worker == "second"
    with get_client(sync_client=True) as client:
        lost = client.read_flow_run(runs.ids[0])
    assert lost.state is not None and lost.state.is_crashed()
    assert "never started it" in (lost.state.message or "")


def test_a_paused_run_is_one_line_not_a_wait_for_ever(
        prefect_api: str, monkeypatch: pytest.MonkeyPatch, store: ArtifactStore) -> None:
    """Broke (issue 19 leftover): a run an operator paused made the publisher wait for
    ever; no build pauses itself, so it is that component's failure, in one line."""
    from prefect.states import Paused

    from flows import build as flows_build

    monkeypatch.setattr(flows_build, "POLL_SECONDS", 0.2)
    blob = store.put_bytes(_ticket().to_bytes())
    with pytest.raises(BuildError) as refused:
        _submit(monkeypatch, store, ServerRuns([Paused()]), blob)
    assert "was paused" in refused.value.message and "\n" not in refused.value.message


def test_a_crashed_run_s_own_late_result_is_taken_not_rebuilt(
        monkeypatch: pytest.MonkeyPatch, store: ArtifactStore) -> None:
    """Held: a run that was crashed (forged, or its heartbeats late) but left its result
    under runs/<run> is not submitted again: its result is the answer."""
    from prefect.states import Crashed

    from flows.build import run_ref

    blob = store.put_bytes(_ticket().to_bytes())

    def worker(run_id: uuid.UUID, parameters: dict[str, Any]) -> None:
        store.set_ref(run_ref(run_id), _result(store, blob, "late"))

    runs = Runs([Crashed(), Crashed()], worker)
    assert _submit(monkeypatch, store, runs, blob).worker == "late"
    assert len(runs.ids) == 1


def test_a_completed_run_takes_its_own_result_not_the_standing_one(
        monkeypatch: pytest.MonkeyPatch, store: ArtifactStore) -> None:
    """Held: a lost run's late result standing at builds/<ticket> does not replace the
    result of the run the publisher waited for (runs/<run> is read first)."""
    from prefect.states import Completed

    from flows.build import run_ref

    blob = store.put_bytes(_ticket().to_bytes())
    store.set_ref(ref_name(blob), _result(store, blob, "late", "failed"),
                  only_if_absent=True)

    def worker(run_id: uuid.UUID, parameters: dict[str, Any]) -> None:
        store.set_ref(run_ref(run_id), _result(store, blob, "mine"))
        assert not store.set_ref(ref_name(blob), _result(store, blob, "mine"),
                                 only_if_absent=True)

    assert _submit(monkeypatch, store, Runs([Completed()], worker), blob).worker == "mine"


def test_a_run_s_parameters_changed_to_another_ticket_is_refused(
        monkeypatch: pytest.MonkeyPatch, store: ArtifactStore) -> None:
    """Held: whoever may edit a flow run's parameters made the worker build another
    ticket; its result names that ticket, and remote_build's check refuses it (the
    result is returned by _submit and compared there, in one line)."""
    from prefect.states import Completed

    from flows.build import run_ref

    blob = store.put_bytes(_ticket().to_bytes())
    other = store.put_bytes(b"another ticket")

    def worker(run_id: uuid.UUID, parameters: dict[str, Any]) -> None:
        store.set_ref(run_ref(run_id), _result(store, other, "w"))

    result = _submit(monkeypatch, store, Runs([Completed()], worker), blob)
    assert result.ticket == other.sha256 != blob.sha256  # remote_build refuses this


@pytest.mark.parametrize("planted", [b"[" * 1000, b'{"sha256": "' + b"e" * 64 + b'", "size": 1}',
                                     b"not json"])
def test_a_hostile_run_ref_is_a_store_error(monkeypatch: pytest.MonkeyPatch,
                                            store: ArtifactStore, tmp_path: Path,
                                            planted: bytes) -> None:
    """Held: runs/<run> written by whoever can write the store (garbage, nested, naming a
    missing object) is a one-line StoreError, nothing collected."""
    from prefect.states import Completed

    from flows.build import run_ref

    blob = store.put_bytes(_ticket().to_bytes())

    def worker(run_id: uuid.UUID, parameters: dict[str, Any]) -> None:
        store.set_ref(run_ref(run_id), blob)
        (tmp_path / "store" / "refs" / "runs" / str(run_id)).write_bytes(planted)

    with pytest.raises(StoreError) as refused:
        _submit(monkeypatch, store, Runs([Completed()], worker), blob)
    assert "\n" not in refused.value.message


def test_a_run_ref_naming_a_huge_blob_is_refused_before_reading(
        monkeypatch: pytest.MonkeyPatch, store: ArtifactStore, tmp_path: Path) -> None:
    """Held: a result ref claiming 1 TiB is refused by its size, nothing read."""
    from prefect.states import Completed

    from flows.build import run_ref

    blob = store.put_bytes(_ticket().to_bytes())

    def worker(run_id: uuid.UUID, parameters: dict[str, Any]) -> None:
        store.set_ref(run_ref(run_id), blob)
        (tmp_path / "store" / "refs" / "runs" / str(run_id)).write_text(
            json.dumps({"sha256": blob.sha256, "size": 1 << 40}))

    with pytest.raises(BuildError, match="over"):
        _submit(monkeypatch, store, Runs([Completed()], worker), blob)


def test_two_publishers_racing_on_one_ticket_each_take_their_own_run(
        monkeypatch: pytest.MonkeyPatch, store: ArtifactStore) -> None:
    """Held: two publishers submit one ticket at once; both runs build; exactly one
    result stands at builds/<ticket>, and each publisher collects its own run's."""
    from prefect.states import Completed

    from flows.build import run_ref

    blob = store.put_bytes(_ticket().to_bytes())
    barrier = threading.Barrier(2)

    def worker(run_id: uuid.UUID, parameters: dict[str, Any]) -> None:
        assert parameters == {"ticket": blob.sha256, "size": blob.size}
        result = _result(store, blob, str(run_id))
        store.set_ref(run_ref(run_id), result)
        barrier.wait()
        store.set_ref(ref_name(blob), result, only_if_absent=True)

    runs = Runs([Completed(), Completed()], worker)
    got: list[BuildResult] = []
    import prefect.deployments

    from flows import build as flows_build

    monkeypatch.setattr(prefect.deployments, "run_deployment", runs)
    threads = [threading.Thread(target=lambda: got.append(
        flows_build._submit(store, _ticket(), blob, 3))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.worker for r in got) == sorted(map(str, runs.ids))
    standing = BuildResult.from_bytes(store.read_bytes(store.ref(ref_name(blob))))  # type: ignore[arg-type]
    assert standing.worker in {str(i) for i in runs.ids}


@pytest.mark.parametrize("ticket, size", [("../../etc/passwd", 1), ("A" * 64, 1),
                                          ("a" * 64, -1), ("a" * 64, 1 << 60)])
def test_a_build_run_with_hostile_parameters_is_refused_before_anything(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ticket: str, size: int) -> None:
    """Held: a factory-build run created with parameters naming no valid ticket (a path,
    upper case, a negative or absurd size) is a StoreError before the store is read."""
    from flows import build as flows_build

    settings = factories.settings(tmp_path, "p", store_url=str(tmp_path / "store"))
    monkeypatch.setattr(flows_build, "load_settings", lambda: settings)
    with pytest.raises(StoreError):
        flows_build.build.fn(ticket=ticket, size=size)
    assert not (tmp_path / "store" / "refs").exists()


# -- the worker's remembered package list (factory/build/image.py) ------------------------


class _Engine:
    """A Docker client holding one image; counts the dpkg listings asked of it."""

    def __init__(self, image_id: str = "sha256:" + "1" * 64) -> None:
        self.images = SimpleNamespace(get=lambda tag: SimpleNamespace(id=image_id))
        self.listed = 0


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> _Engine:
    fake = _Engine()

    def listing(client: Any, image: str) -> tuple[list[str], dict[str, str]]:
        fake.listed += 1
        return ["gcc=12.2.0-14", "make=4.3-4.1"], {"gcc": "amd64", "make": "amd64"}

    monkeypatch.setattr(images, "_packages_in_image", listing)
    return fake


@pytest.fixture
def worker(tmp_path: Path) -> Settings:
    return factories.settings(tmp_path, "p")


def _plant(settings: Settings, data: bytes) -> Path:
    path = images.images_record(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data", [b"{not json", b"\xff\xfe", b"[" * 100_000,
                                  b'{"factory-builder:x": ["a list"]}',
                                  b'{"factory-builder:x": {"id": "sha256:' + b"1" * 64
                                  + b'", "packages": "gcc=1", "architectures": 7}}'])
def test_a_tampered_package_list_is_listed_again(engine: _Engine, worker: Settings,
                                                  data: bytes) -> None:
    """Broke: a torn or tampered images.json (not JSON, not UTF-8, nested past the parser,
    an entry that is a list; the last case held) raised ValueError, RecursionError or
    AttributeError out of held_image: every build on that worker ended in a traceback.
    Now a bad record is taken as none: the image is listed again and the record rewritten."""
    _plant(worker, data)
    ref = images._existing(worker, engine, "factory-builder:x")  # type: ignore[arg-type]
    assert ref is not None and ref.packages == ["gcc=12.2.0-14", "make=4.3-4.1"]
    assert images._existing(worker, engine, "factory-builder:x") == ref  # type: ignore[arg-type]
    assert json.loads(images.images_record(worker).read_text())["factory-builder:x"]["id"] \
        == ref.id


def test_a_huge_package_list_is_not_read_whole(engine: _Engine, worker: Settings) -> None:
    """Broke: images.json was read whole (a sparse 256 MiB file was read into memory
    before each build). Now it is read bounded and an oversized one is listed again."""
    path = _plant(worker, b"")
    with path.open("r+b") as handle:
        handle.truncate(256 << 20)
    ref = images._existing(worker, engine, "factory-builder:x")  # type: ignore[arg-type]
    assert ref is not None and engine.listed == 1
    assert images.images_record(worker).stat().st_size < 1 << 20


def test_a_linked_package_list_is_neither_followed_nor_written_through(
        engine: _Engine, worker: Settings, tmp_path: Path) -> None:
    """Broke: images.json as a link to a file elsewhere was read through (the link's
    target chose the image's package list). Now a link is not followed: the image is
    listed again, and the record replaces the link, the target untouched."""
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"factory-builder:x": {
        "tag": "factory-builder:x", "id": "sha256:" + "1" * 64, "origin": "debootstrap",
        "packages": ["gcc=evil"], "architectures": {"gcc": "amd64"}}}))
    path = images.images_record(worker)
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    ref = images._existing(worker, engine, "factory-builder:x")  # type: ignore[arg-type]
    assert ref is not None and "gcc=evil" not in ref.packages
    assert not path.is_symlink() and "gcc=evil" in target.read_text()


def test_another_image_s_package_list_is_not_taken(engine: _Engine, worker: Settings) -> None:
    """Held: a record for the same tag but another image ID (the image was replaced, or
    the record planted) is not used: the image is listed again, once."""
    _plant(worker, json.dumps({"factory-builder:x": {
        "tag": "factory-builder:x", "id": "sha256:" + "2" * 64, "origin": "debootstrap",
        "packages": ["gcc=evil"], "architectures": {"gcc": "amd64"}}}).encode())
    ref = images._existing(worker, engine, "factory-builder:x")  # type: ignore[arg-type]
    assert ref is not None and "gcc=evil" not in ref.packages and engine.listed == 1
    images._existing(worker, engine, "factory-builder:x")  # type: ignore[arg-type]
    assert engine.listed == 1


# -- factory deploy --pool (flows/build.py: deploy_build), the session's Prefect server ---


def _pools() -> set[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {pool.name for pool in client.read_work_pools(limit=200)}


@pytest.mark.parametrize("changes", [
    {"zombie_seconds": float("nan")}, {"zombie_seconds": float("inf")},
    {"zombie_seconds": 1e15}, {"zombie_seconds": 86401.0}, {"zombie_seconds": -1.0},
    {"pool": ""}, {"pool": "a/b"}, {"pool": "p\x1b[31m"}, {"pool": "x" * 101},
    {"pool": "p; rm -rf ~"}, {"python": ""}, {"python": "py\nthon"}, {"python": " python"},
    {"source": "/nonexistent/dir"}, {"source": "/"}, {"source": ""},
    {"source": "https://user:hunter2@example.invalid/x.git"},
    {"source": "https://ghp_TOKEN@example.invalid/x.git"},
    {"source": "s3://AKIA:se/cret@bucket/code"},
    {"source": "ssh://git:hunter2@example.invalid/x.git"},
    {"source": "user:hunter2@example.invalid:x.git"},
], ids=lambda c: repr(c)[:48])
def test_hostile_deploy_arguments_are_one_line_and_create_nothing(
        prefect_api: str, changes: dict[str, Any]) -> None:
    """Broke: NaN/inf/huge --zombie-seconds raised ValueError/OverflowError from
    timedelta, an empty or '/' pool name a pydantic ValidationError, a --source that
    cannot be loaded FileNotFoundError/RuntimeError: tracebacks, each after the work pool
    had been created; a pool name with escapes or '; rm', an empty or multi-line
    --python, and a --source URL carrying credentials (stored in the deployment for all
    to read) were taken. Now each is a ConfigError in one line, before anything is made,
    and no credential is echoed."""
    from flows.build import deploy_build

    pool = changes.pop("pool", f"attack-{uuid.uuid4().hex[:8]}")
    before = _pools()
    with pytest.raises(ConfigError) as refused:
        deploy_build(pool, **changes)
    message = refused.value.message + (refused.value.hint or "")
    assert "\n" not in message and "hunter2" not in message and "TOKEN" not in message
    assert "cret" not in message
    assert _pools() == before


def test_an_existing_pool_of_another_type_is_not_deployed_on(prefect_api: str) -> None:
    """Broke: --pool naming an existing pool of another type (a docker pool, say) was
    used as it is: the deployment with a process command went on a pool whose workers
    run containers. Now a one-line ConfigError, no deployment made."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from flows.build import deploy_build

    pool = f"attack-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="kubernetes"))
    with pytest.raises(ConfigError, match="not process"):
        deploy_build(pool)


@pytest.mark.slow  # a CLI process against the session's Prefect server
def test_the_cli_refuses_a_nan_window_in_one_line(prefect_api: str,
                                                   project: Settings) -> None:
    """Broke: `factory deploy --pool p --zombie-seconds nan` printed a traceback (and
    made the pool). Now one line, exit code 1 or 2."""
    done = factories.cli(project, "deploy", "--pool", f"attack-{uuid.uuid4().hex[:8]}",
                         "--zombie-seconds", "nan", PREFECT_API_URL=prefect_api)
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("error")] or \
        "heartbeat" in done.stdout + done.stderr
