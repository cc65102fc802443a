"""The Prefect server the flows report to.

PREFECT_API_URL selects an existing server (PostgreSQL-backed in production).
Without it, the embedded default starts ``prefect server start`` (SQLite in the
state directory) in the background on 127.0.0.1, once, and reuses it while it
answers. Nothing here imports prefect, so it is cheap to call first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
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


def ensure_server(settings: Settings, wait: float = 90.0) -> str:
    """The API URL of a running Prefect server; starts the embedded one if needed."""
    configure_environment(settings)
    existing = os.environ.get("PREFECT_API_URL")
    if existing:
        if not _healthy(existing, timeout=5):
            raise ConfigError(f"PREFECT_API_URL={existing} does not answer",
                              "start that server or unset PREFECT_API_URL for the embedded one")
        return existing
    home = server_home(settings)
    url_file = home / "api-url"
    if url_file.is_file() and _healthy(url := url_file.read_text().strip()):
        os.environ["PREFECT_API_URL"] = url
        return url
    return _start(settings, home, url_file, wait)


def _start(settings: Settings, home: Path, url_file: Path, wait: float) -> str:
    home.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1"
    port = _free_port(host)
    url = f"http://{host}:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url}
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
            url_file.write_text(url)
            os.environ["PREFECT_API_URL"] = url
            return url
        time.sleep(0.5)
    process.terminate()
    raise ConfigError(f"the embedded Prefect server did not answer within {wait:.0f} s",
                      f"read {home / 'server.log'}")


def stop_server(settings: Settings) -> bool:
    """Stop the embedded server this state directory started, if it runs."""
    home = server_home(settings)
    pid_file = home / "server.pid"
    if not pid_file.is_file():
        return False
    with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
        os.killpg(int(pid_file.read_text()), signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
    (home / "api-url").unlink(missing_ok=True)
    return True


def ui_url(api_url: str) -> str:
    return api_url[: -len("/api")] if api_url.endswith("/api") else api_url
