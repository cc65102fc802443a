"""The Prefect server the flows report to.

PREFECT_API_URL selects an existing server (PostgreSQL-backed in production).
Without it, the embedded default starts ``prefect server start`` in the background
on 127.0.0.1, once, and reuses it while it answers. Its database is SQLite in the
state directory, or with ``[server] database = "postgresql"`` the private cluster
of flows.postgres (started first; the ledger uses it too). Nothing here imports
prefect, so it is cheap to call first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from factory.config import Settings
from factory.errors import ConfigError

QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_UI_ENABLED": "true",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


# The embedded server's database URL (prefect's own setting; the older name is its alias)
DATABASE_VARIABLES = ("PREFECT_SERVER_DATABASE_CONNECTION_URL",
                      "PREFECT_API_DATABASE_CONNECTION_URL")
DATABASE_FILE = "database"  # in the server's home: what it was started on (no secret)


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(api_url.rstrip("/") + "/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_home(settings: Settings) -> Path:
    return settings.state_dir / "prefect"


def configure_environment(settings: Settings) -> None:
    for key, value in QUIET.items():
        if value:
            os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(server_home(settings)))


@contextlib.contextmanager
def own_server(settings: Settings, also: tuple[str, ...] = ()) -> Iterator[None]:
    """A scope in which this process talks to the embedded server of ``settings`` alone
    (for tests and benchmarks that start several): another server's PREFECT_API_URL
    unset and PREFECT_HOME at this one's home; at the end the server (and its cluster)
    stopped and the environment as it was, ``also`` included -- ensure_server sets
    PREFECT_API_URL and Prefect's quiet defaults in it."""
    names = ("PREFECT_API_URL", "PREFECT_HOME", *QUIET, *also)
    saved = {name: os.environ.get(name) for name in names}
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_HOME"] = str(server_home(settings))
    try:
        yield
    finally:
        try:
            stop_server(settings)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def ensure_server(settings: Settings, wait: float = 90.0) -> str:
    """The API URL of a running Prefect server; starts the embedded one if needed."""
    configure_environment(settings)
    existing = os.environ.get("PREFECT_API_URL")
    if existing:
        if not _healthy(existing, timeout=5):
            raise ConfigError(f"PREFECT_API_URL={existing} does not answer",
                              "start that server or unset PREFECT_API_URL for the embedded one")
        return existing
    database, marker = _database(settings)
    home = server_home(settings)
    url_file = home / "api-url"
    if url_file.is_file() and _healthy(url := url_file.read_text().strip()):
        if _marker(home) == marker:
            os.environ["PREFECT_API_URL"] = url
            return url
        # It runs on another database: [server] database changed, or the cluster was
        # stopped under it and has started again on another port.
        _stop_prefect(home)
    return _start(settings, home, url_file, wait, database, marker)


def _database(settings: Settings) -> tuple[str | None, str]:
    """The Prefect server's database URL on the private cluster (started if needed), or
    None for its SQLite default; and what the server's home records about it."""
    if settings.server_database != "postgresql":
        return None, "sqlite"
    from flows.postgres import ensure_cluster

    address = ensure_cluster(settings.cluster_dir)
    return address.url("prefect", "asyncpg"), f"postgresql {address.host}:{address.port}"


def _marker(home: Path) -> str:
    try:
        return (home / DATABASE_FILE).read_text().strip()
    except OSError:
        return "sqlite"


def _start(settings: Settings, home: Path, url_file: Path, wait: float,
           database: str | None = None, marker: str = "sqlite") -> str:
    home.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1"
    port = _free_port(host)
    url = f"http://{host}:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url}
    for name in DATABASE_VARIABLES:
        env.pop(name, None)
    if database:  # the password travels in the server's environment, never on its command line
        env[DATABASE_VARIABLES[0]] = database
    with (home / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", host,
             "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"the embedded Prefect server exited (code {process.returncode})",
                              f"read {home / 'server.log'}")
        if _healthy(url):
            # A fresh server holds no lease (its lease store is in memory); slots the
            # database still counts belong to builds of the previous server.
            from flows.slots import reset_slots

            reset_slots(url)
            (home / "server.pid").write_text(str(process.pid))
            (home / DATABASE_FILE).write_text(marker + "\n")
            url_file.write_text(url)
            os.environ["PREFECT_API_URL"] = url
            return url
        time.sleep(0.5)
    process.terminate()
    raise ConfigError(f"the embedded Prefect server did not answer within {wait:.0f} s",
                      f"read {home / 'server.log'}")


def stop_server(settings: Settings, wait: float = 15.0) -> bool:
    """Stop the embedded server this state directory started, if it runs, and then the
    private PostgreSQL cluster it ran on; True when either ran."""
    stopped = _stop_prefect(server_home(settings), wait)
    if settings.server_database == "postgresql":
        from flows.postgres import stop_cluster

        stopped = stop_cluster(settings.cluster_dir) or stopped
    return stopped


def _stop_prefect(home: Path, wait: float = 15.0) -> bool:
    """SIGTERM to the server's process group, then wait (bounded) until it is gone:
    a database stopped under it would fill its log with errors."""
    pid_file = home / "server.pid"
    if not pid_file.is_file():
        return False
    with contextlib.suppress(ValueError, OSError):
        group = int(pid_file.read_text())
        for sig, seconds in ((signal.SIGTERM, wait), (signal.SIGKILL, 5.0)):
            if not _signal_group(group, sig, seconds):
                break
    pid_file.unlink(missing_ok=True)
    url_file = home / "api-url"
    with contextlib.suppress(OSError):
        if os.environ.get("PREFECT_API_URL") == url_file.read_text().strip():
            del os.environ["PREFECT_API_URL"]  # ensure_server pointed us at it
    url_file.unlink(missing_ok=True)
    return True


def _signal_group(group: int, sig: int, seconds: float) -> bool:
    """Send ``sig`` to the process group; False once no process of it is left."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(group, os.WNOHANG)  # our own child: reap it, or it stays a zombie
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.05)
    return True


def ui_url(api_url: str) -> str:
    return api_url[: -len("/api")] if api_url.endswith("/api") else api_url
