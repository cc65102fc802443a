"""One hardened, throw-away container per build.

Every build runs in a fresh container with: no network at all
(``network_mode="none"``: no interface but loopback, so neither the internet nor
a service on the host's 127.0.0.1 is reachable), a read-only root filesystem
with tmpfs for /tmp and /build, bind mounts that are read-only except the
output directory, a non-root user, every capability dropped,
no-new-privileges, memory/pids/CPU limits, and a wall-time limit after which it
is killed. The environment is given in full; nothing is inherited from the host.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from docker.errors import DockerException, NotFound
from docker.types import Mount

from factory.builders.engine import connect
from factory.config import Settings
from factory.errors import EngineError

BUILD_UID = 1000
TMPFS_OPTIONS = "rw,exec,mode=1777,size=4g"


@dataclass(frozen=True)
class Bind:
    source: Path
    target: str
    read_only: bool = True

    def mount(self) -> Mount:
        return Mount(self.target, str(self.source), type="bind", read_only=self.read_only)


@dataclass
class ContainerRun:
    """What happened: exit code (None when killed), the log, and the container as inspected."""

    exit_code: int | None
    timed_out: bool
    log: bytes
    seconds: float
    inspect: dict[str, Any] = field(default_factory=dict)


def build_user() -> str:
    """uid:gid the build runs as: 1000 when we are root, else our own (never root)."""
    if os.geteuid() == 0:
        return f"{BUILD_UID}:{BUILD_UID}"
    return f"{os.getuid()}:{os.getgid()}"


def prepare_output(directory: Path) -> None:
    """The one writable mount: owned by the build user, private to it."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(directory, BUILD_UID, BUILD_UID)
    directory.chmod(0o755)


def hardening(settings: Settings) -> dict[str, Any]:
    """The container options every build gets (also recorded in provenance)."""
    return {
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": TMPFS_OPTIONS, "/build": TMPFS_OPTIONS},
        "user": build_user(),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": settings.build_memory,
        "memswap_limit": settings.build_memory,  # no swap on top of the memory limit
        "pids_limit": settings.build_pids,
        "nano_cpus": int(settings.build_cpus * 1e9),
        "ipc_mode": "private",
        "init": True,  # reaps zombies; the kill at the limit takes the whole tree
    }


def run_container(
    settings: Settings,
    image: str,
    command: list[str],
    binds: list[Bind],
    environment: dict[str, str],
    timeout: float,
    labels: dict[str, str] | None = None,
) -> ContainerRun:
    """Run ``command`` in a fresh hardened container; kill it at ``timeout`` seconds."""
    client = connect()
    try:
        container = client.containers.create(
            image,
            command,
            environment=environment,
            mounts=[b.mount() for b in binds],
            labels={"org.factory.role": "build", **(labels or {})},
            **hardening(settings),
        )
    except DockerException as exc:
        raise EngineError(f"cannot create the build container: {str(exc)[:300]}") from None
    started = time.monotonic()
    try:
        container.start()
        exit_code, timed_out = _wait(container, timeout)
        log = container.logs(stdout=True, stderr=True)
        container.reload()
        return ContainerRun(exit_code, timed_out, log, time.monotonic() - started, container.attrs)
    finally:
        _remove(container)


def _wait(container: Any, timeout: float) -> tuple[int | None, bool]:
    try:
        result = container.wait(timeout=timeout)
    except (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout):
        container.kill()
        container.wait(timeout=60)
        return None, True
    return int(result.get("StatusCode", -1)), False


def _remove(container: Any) -> None:
    try:
        container.remove(force=True)
    except NotFound:
        pass
    except DockerException:
        pass  # removal is housekeeping; a leftover container holds no secrets
