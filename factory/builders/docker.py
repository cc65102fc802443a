"""One hardened, throw-away container per build.

Every build runs in a fresh container with: no network at all
(``network_mode="none"``: no interface but loopback, so neither the internet nor
a service on the host's 127.0.0.1 is reachable), a read-only root filesystem
with tmpfs for /tmp and /build, bind mounts that are read-only except the
output directory, a non-root user, every capability dropped,
no-new-privileges, memory/pids/CPU limits, and a wall-time limit after which it
is killed. The environment is given in full; nothing is inherited from the host.

What a build writes is bounded too: no single file may exceed the output limit
(RLIMIT_FSIZE, enforced by the kernel), and a watcher kills the container as
soon as the output directory as a whole grows past it. Every container is
labelled with the process that owns it, so containers a killed factory process
left behind are removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from docker.errors import DockerException, NotFound
from docker.types import Mount, Ulimit

from factory.builders.engine import connect
from factory.config import Settings
from factory.errors import EngineError

BUILD_UID = 1000
TMPFS_OPTIONS = "rw,exec,mode=1777,size=4g"
ROLE_LABEL = "org.factory.role"
OWNER_LABEL = "org.factory.owner"  # host:pid:start-time of the factory process
WATCH_INTERVAL = 0.25


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
    output_exceeded: int | None = None  # bytes seen in the output when it was killed for it
    pids_limit_hit: bool = False  # the kernel refused a fork or clone (pids limit)

    @property
    def oom_killed(self) -> bool:
        return bool(self.inspect.get("State", {}).get("OOMKilled"))


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


def max_output(settings: Settings) -> int:
    """Bytes a build may write to its output ([build] max_output)."""
    return int(settings.build_max_output)


def hardening(settings: Settings) -> dict[str, Any]:
    """The container options every build gets (also recorded in provenance)."""
    limit = max_output(settings)
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
        # No single file larger than the output limit, anywhere (the kernel says EFBIG).
        "ulimits": [Ulimit(name="fsize", soft=limit, hard=limit)],
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
    """Run ``command`` in a fresh hardened container; kill it at ``timeout`` seconds,
    or as soon as the writable mount holds more than the output limit."""
    client = connect()
    reap_orphans(client)
    try:
        container = client.containers.create(
            image,
            command,
            environment=environment,
            mounts=[b.mount() for b in binds],
            labels={ROLE_LABEL: "build", OWNER_LABEL: owner_id(), **(labels or {})},
            **hardening(settings),
        )
    except DockerException as exc:
        raise EngineError(f"cannot create the build container: {str(exc)[:300]}") from None
    outputs = [b.source for b in binds if not b.read_only]
    watcher = _Watcher(container, outputs, max_output(settings))
    started = time.monotonic()
    try:
        container.start()
        watcher.start()
        exit_code, timed_out = _wait(container, timeout)
        watcher.stop()
        log = container.logs(stdout=True, stderr=True)
        container.reload()
        return ContainerRun(exit_code, timed_out, log, time.monotonic() - started, container.attrs,
                            watcher.exceeded, watcher.pids_hit or _forks_refused(log))
    finally:
        watcher.stop()
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


# -- limits the engine cannot enforce alone -----------------------------------------


class _Watcher:
    """Polls a running build: kills it when its output outgrows the limit, and
    notes whether the kernel refused it processes (the pids cgroup's counter)."""

    def __init__(self, container: Any, outputs: list[Path], limit: int) -> None:
        self.container, self.outputs, self.limit = container, outputs, limit
        self.exceeded: int | None = None
        self.pids_hit = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="build-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        events = _pids_events(self.container.id)
        while not self._stop.wait(WATCH_INTERVAL):
            used = sum(_tree_bytes(path) for path in self.outputs)
            if used > self.limit:
                self.exceeded = used
                with contextlib.suppress(DockerException):  # gone already: exit code says
                    self.container.kill()
                return
            if events is not None and not self.pids_hit:
                self.pids_hit = _pids_refused(events)


def _tree_bytes(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                continue  # removed while we looked
    return total


def _pids_events(container_id: str) -> Path | None:
    """The pids cgroup's event file of a local engine's container (v1 or v2), if visible."""
    for candidate in (
        f"/sys/fs/cgroup/pids/docker/{container_id}/pids.events",
        f"/sys/fs/cgroup/pids/system.slice/docker-{container_id}.scope/pids.events",
        f"/sys/fs/cgroup/docker/{container_id}/pids.events",
        f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/pids.events",
    ):
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def _pids_refused(events: Path) -> bool:
    try:
        text = events.read_text()
    except OSError:
        return False
    return any(line.split()[1:] != ["0"] for line in text.splitlines() if line.startswith("max"))


_FORK_REFUSED = (b"Resource temporarily unavailable", b"can't start new thread",
                 b"fork: retry", b"Cannot allocate memory: fork")


def _forks_refused(log: bytes) -> bool:
    """Where the cgroup is not visible (a remote engine), the log tells the same story."""
    return any(marker in log for marker in _FORK_REFUSED)


# -- containers a killed factory left behind -----------------------------------------


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks


def owner_id(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '0'}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's container: not ours to judge
    return _start_time(int(pid)) == started


def reap_orphans(client: Any) -> list[str]:
    """Remove build containers whose factory process on this host is gone (kill -9,
    OOM, power cut): their result can never be collected. Returns their ids."""
    try:
        found = client.containers.list(all=True, filters={"label": f"{ROLE_LABEL}=build"})
    except DockerException:
        return []
    removed = []
    for container in found:
        owner = container.labels.get(OWNER_LABEL)
        if owner and not _owner_alive(owner):
            _remove(container)
            removed.append(container.id)
    return removed
