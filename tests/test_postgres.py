"""The distributed mode's database: a private PostgreSQL cluster from the system's packages
(flows.postgres), the ledger on it, and the embedded Prefect server on it (flows.server).

One cluster and one server for the module; the last test stops both.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from factory._internal.cluster import ADDRESS_FILE, PASSWORD_FILE, read_address
from factory.config import Settings, load_settings
from factory.errors import ConfigError
from flows.postgres import PostgresError, binaries, ensure_cluster, running, stop_cluster
from tests.postgres_fixtures import have_postgres, postgres_project, reachable_dir

needs_postgres = pytest.mark.skipif(not have_postgres(),
                                    reason="no PostgreSQL server programs (Debian's postgresql)")


@pytest.fixture(scope="module")
def project() -> Iterator[Settings]:
    from flows.server import own_server

    base = reachable_dir("factory-pg-")
    settings = postgres_project(base)
    try:
        with own_server(settings):  # another module's server must not answer
            # without fsync: Prefect's first start migrates its schema in half the time
            ensure_cluster(settings.cluster_dir, durable=False)
            yield settings
    finally:
        stop_cluster(settings.cluster_dir)
        shutil.rmtree(base, ignore_errors=True)


def postmaster_pid(settings: Settings) -> int:
    return int((settings.cluster_dir / "data" / "postmaster.pid").read_text().split()[0])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"


# -- settings (no server) ---------------------------------------------------------------

def test_server_database_setting(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "recipes").mkdir(parents=True)
    assert load_settings(root).server_database == "sqlite"
    assert load_settings(root).cluster_dir == load_settings(root).state_dir / "postgres"
    (root / "factory.toml").write_text('[server]\ndatabase = "mysql"\n')
    with pytest.raises(ConfigError, match="server.database = 'mysql' is not one of"):
        load_settings(root)
    (root / "factory.toml").write_text('[server]\ndatabase = "postgresql"\n'
                                       'postgres_dir = "/srv/pg"\n')
    assert load_settings(root).cluster_dir == Path("/srv/pg")


def test_ledger_says_when_the_cluster_is_not_running(tmp_path: Path) -> None:
    from factory.ledger import LedgerError, decisions

    settings = postgres_project(tmp_path)
    with pytest.raises(LedgerError, match="PostgreSQL cluster in .* is not running"):
        decisions(settings)


# -- the cluster ------------------------------------------------------------------------

@needs_postgres
@pytest.mark.slow
def test_cluster_starts_answers_and_is_reused(project: Settings) -> None:
    address = ensure_cluster(project.cluster_dir)
    assert address.host == "127.0.0.1"
    pid = postmaster_pid(project)
    assert running(project.cluster_dir) == address
    again = ensure_cluster(project.cluster_dir)  # a second start while it runs: reused
    assert again == address and postmaster_pid(project) == pid
    assert read_address(project.cluster_dir) == address
    # the password: generated, private, in no other file and not in the address's repr
    secret = project.cluster_dir / PASSWORD_FILE
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    password = secret.read_text().strip()
    assert len(password) >= 32 and password not in repr(address)
    for name in (ADDRESS_FILE, "server.log"):
        assert password not in (project.cluster_dir / name).read_text()
    data = project.cluster_dir / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    if os.geteuid() == 0:  # PostgreSQL refuses root: the server runs as another user
        assert data.stat().st_uid != 0
        assert Path(f"/proc/{pid}").stat().st_uid == data.stat().st_uid


@needs_postgres
@pytest.mark.slow
def test_ledger_round_trip_on_postgres(project: Settings) -> None:
    from factory import ledger

    ensure_cluster(project.cluster_dir)
    url = ledger.ledger_url(project)
    assert url.startswith("postgresql+psycopg://factory:")
    assert url.endswith("/ledger?require_auth=scram-sha-256")
    ledger.record_build(project, component="alpha", version="1.0", outcome="built",
                        sdist_sha256="a" * 64, wheel_filename="alpha-1.0-py3-none-any.whl",
                        wheel_sha256="b" * 64, run_id="run-1")
    ledger.record_decision(project, "alpha", ledger.REFUSED, "admission: no licence", "1.0")
    [build] = ledger.builds(project, "alpha")
    assert (build["version"], build["outcome"], build["run_id"]) == ("1.0", "built", "run-1")
    assert build["started"].tzinfo is not None  # timestamps keep their zone on PostgreSQL
    [decision] = ledger.decisions(project, "alpha")
    assert decision["reason"] == "admission: no licence"
    assert ledger.open_refusals(project) == {("alpha", "1.0"): decision}
    ledger.record_decision(project, "alpha", ledger.PUBLISHED, "", "1.0")
    assert ledger.open_refusals(project) == {}
    assert not (project.state_dir / "ledger.db").exists()


@needs_postgres
@pytest.mark.slow
def test_prefect_server_on_postgres_runs_a_flow(project: Settings) -> None:
    import psycopg

    from factory import ledger
    from flows.server import ensure_server

    api = ensure_server(project)
    assert httpx.get(api + "/health", timeout=10).status_code == 200
    server_pid = (project.state_dir / "prefect" / "server.pid").read_text()
    assert ensure_server(project) == api  # a second start while it runs: reused
    assert (project.state_dir / "prefect" / "server.pid").read_text() == server_pid
    assert not (project.state_dir / "prefect" / "prefect.db").exists()

    from prefect import flow, runtime, task
    from prefect.settings import PREFECT_API_URL, temporary_settings

    @task
    def build_one(name: str) -> str:
        ledger.record_build(project, component=name, version="2.0", outcome="built",
                            sdist_sha256="c" * 64, run_id=str(runtime.flow_run.id))
        return name

    @flow(name="postgres-probe")
    def probe() -> str:
        return build_one("beta")

    with temporary_settings(updates={PREFECT_API_URL: api}):
        state = probe(return_state=True)
    assert state.is_completed()
    run_id = str(state.state_details.flow_run_id)
    assert [b["run_id"] for b in ledger.builds(project, "beta")] == [run_id]
    address = ensure_cluster(project.cluster_dir)  # what the server wrote is in PostgreSQL
    with psycopg.connect(address.url("prefect", "psycopg").replace("postgresql+psycopg",
                                                                   "postgresql")) as conn:
        flow_run = conn.execute("SELECT state_type FROM flow_run WHERE id = %s",
                                (run_id,)).fetchone()
    # The flow run's states are written through the API into PostgreSQL. (Its task runs
    # are not checked here: Prefect 3 records them from the client's events, whose
    # process-wide sender, in a pytest worker that talked to other servers before, may
    # still be bound to one of those. tests/test_distributed.py runs real build flow runs,
    # each in its own process, against a PostgreSQL-backed server.)
    assert flow_run == ("COMPLETED",)


@needs_postgres
@pytest.mark.slow
def test_stop_leaves_no_server_process(project: Settings) -> None:
    from flows.server import ensure_server, stop_server

    ensure_server(project)
    db_pid = postmaster_pid(project)
    prefect_pid = int((project.state_dir / "prefect" / "server.pid").read_text())
    assert stop_server(project)
    assert not alive(db_pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(prefect_pid, 0)
    assert running(project.cluster_dir) is None
    assert read_address(project.cluster_dir) is None
    assert os.environ.get("PREFECT_API_URL") is None
    assert not stop_server(project)


# -- what goes wrong --------------------------------------------------------------------

@needs_postgres
def test_a_broken_data_dir_is_one_clear_error() -> None:
    base = reachable_dir("factory-pg-broken-")
    try:
        directory = base / "pg"
        data = directory / "data"
        data.mkdir(parents=True, mode=0o700)
        (data / "stray").write_text("not a cluster")
        with pytest.raises(PostgresError, match="is not a PostgreSQL data directory") as info:
            ensure_cluster(directory)
        assert "\n" not in str(info.value) and "move" in info.value.hint
        # a data directory whose files are gone: the server's own last words
        (data / "stray").unlink()
        (data / "PG_VERSION").write_text(binaries().parent.name + "\n")
        (directory / PASSWORD_FILE).write_text("x" * 40 + "\n")
        (directory / PASSWORD_FILE).chmod(0o600)  # as write_password makes it
        if os.geteuid() == 0:  # owned by the server's user, as a real one is
            who = "postgres" if _has("postgres") else "nobody"
            shutil.chown(data, user=who)
            shutil.chown(data / "PG_VERSION", user=who)
        with pytest.raises(PostgresError, match="PostgreSQL did not start on") as info:
            ensure_cluster(directory, wait=20)
        message = str(info.value)
        assert "\n" not in message and len(message) < 600
        assert "server.log" in info.value.hint
        assert not (directory / ADDRESS_FILE).exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_a_directory_the_server_user_cannot_reach() -> None:
    base = reachable_dir("factory-pg-private-")
    try:
        private = base / "private"
        private.mkdir(mode=0o700)
        with pytest.raises(PostgresError, match=r"cannot enter .*private \(mode 700\)") as info:
            ensure_cluster(private / "pg")
        assert "postgres_dir" in info.value.hint
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _has(user: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
