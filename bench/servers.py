"""Index servers under test, on 127.0.0.1 and free ports, stopped when the block ends.

Both are started as a user would start them: `factory serve` (the CLI, uvicorn,
one process) and `pypi-server run` (waitress, one process) with fallback to
the public index disabled. nginx, with the configuration docs/nginx.md gives,
serves a published tree as static files: the floor of what any server can do.
"""

from __future__ import annotations

import os
import re
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
DOCS_NGINX = Path(__file__).resolve().parents[1] / "docs" / "nginx.md"
DOCUMENTED_ROOT = "/srv/factory/.factory/index"  # what docs/nginx.md names


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


def link_or_copy(source: str | Path, dest: str | Path) -> None:
    """Hard-link ``source`` as ``dest``, or copy it where links cannot go."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def link_tree(files: list[Path], target: Path) -> None:
    """Hard-link (or copy) ``files`` into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        dest = target / path.name
        if not dest.exists():
            link_or_copy(path, dest)


_NGINX_MAIN = """daemon off;
{user}pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{}}
http {{
    access_log {access_log};
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/factory-index.conf;
}}
"""


def nginx_binary() -> Path | None:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return Path(found) if Path(found).is_file() else None


def documented_nginx_config(index_dir: Path, port: int) -> str:
    """The server block of docs/nginx.md, pointed at ``index_dir`` and 127.0.0.1:``port``."""
    (block,) = re.findall(r"```nginx\n(.*?)```", DOCS_NGINX.read_text(), re.S)
    return block.replace(DOCUMENTED_ROOT, str(index_dir)).replace(
        "listen 8080;", f"listen {HOST}:{port};")


@contextmanager
def nginx(index_dir: Path, workdir: Path, name: str = "nginx",
          access_log: bool = False) -> Iterator[Running]:
    """nginx in the foreground serving ``index_dir`` with the documented configuration."""
    binary = nginx_binary()
    if binary is None:
        raise BenchSetupError("nginx is not installed", "apt-get install nginx-light")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "factory-index.conf").write_text(documented_nginx_config(index_dir, port))
    # As root, workers would drop to nobody and could not read a private tree.
    user = "user root;\n" if os.geteuid() == 0 else ""
    log = str(workdir / "access.log") if access_log else "off"
    (workdir / "nginx.conf").write_text(
        _NGINX_MAIN.format(user=user, tmp=workdir, access_log=log))
    command = [str(binary), "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
               "-e", str(workdir / "error.log")]
    url = f"http://{HOST}:{port}"
    with process(name, command, url + "/", url, workdir / "stderr.log",
                 dict(os.environ)) as running:
        yield running
