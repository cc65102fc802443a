"""Index servers under test, on 127.0.0.1 and free ports, stopped when the block ends.

Both are started as a user would start them: `factory serve` (the CLI, uvicorn,
one process) and `pypi-server run` (waitress, one process) with fallback to
the public index disabled.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import peers
from bench.harness import BenchSetupError

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Running:
    name: str
    url: str  # base URL, no trailing slash
    pid: int

    @property
    def simple(self) -> str:
        return self.url + "/simple/"


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchSetupError(f"the server for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise BenchSetupError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def process(name: str, command: list[str], probe: str, url: str, log: Path,
            env: dict[str, str]) -> Iterator[Running]:
    """Start ``command``; yield once ``probe`` answers; stop it (ours, by pid) afterwards."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            wait_until_up(probe, proc)
            yield Running(name, url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _factory_command() -> list[str]:
    script = Path(sys.executable).with_name("factory")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from factory.cli import main; main()"]


@contextmanager
def factory_serve(root: Path, state_dir: Path, log: Path) -> Iterator[Running]:
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = peers.clean_env(FACTORY_ROOT=str(root), FACTORY_STATE_DIR=str(state_dir))
    command = [*_factory_command(), "serve", "--host", HOST, "--port", str(port)]
    with process("factory", command, url + "/simple/", url, log, env) as running:
        yield running


@contextmanager
def pypiserver(venv: Path, packages: Path, log: Path) -> Iterator[Running]:
    port = free_port()
    url = f"http://{HOST}:{port}"
    command = [str(venv / "bin" / "pypi-server"), "run", "--host", HOST, "--port", str(port),
               "--disable-fallback", "--authenticate", ".", "--passwords", ".",
               "--server", "auto", str(packages)]
    with process("pypiserver", command, url + "/simple/", url, log, peers.clean_env()) as running:
        yield running


def link_tree(files: list[Path], target: Path) -> None:
    """Hard-link (or copy) ``files`` into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        dest = target / path.name
        if dest.exists():
            continue
        try:
            os.link(path, dest)
        except OSError:
            shutil.copyfile(path, dest)
