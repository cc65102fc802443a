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
soon as the output directory as a whole grows past it, holds too many entries or
nests too deep (factory.build.confined measures it). Its log is bounded
twice: the engine keeps at most LOG_ENGINE_FILES files of LOG_ENGINE_SIZE (the
json-file driver rotates), and the factory keeps the first LOG_HEAD and the last
LOG_TAIL bytes of the stream, with a line saying how much it left out between.
Every container is labelled with the process that owns it, so containers a
killed factory process left behind are removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from docker.errors import DockerException, NotFound
from docker.types import LogConfig, Mount, Ulimit

from factory.build.confined import Usage, measure
from factory.build.engine import connect
from factory.config import Settings
from factory.errors import EngineError, one_line

BUILD_UID = 1000
TMPFS_OPTIONS = "rw,exec,mode=1777,size=4g"
ROLE_LABEL = "org.factory.role"
OWNER_LABEL = "org.factory.owner"  # host:pid:start-time of the factory process
WATCH_INTERVAL = 0.25
LOG_HEAD = 256 << 10  # bytes of a build's log kept from its start ...
LOG_TAIL = 4 << 20  # ... and from its end; what lies between is left out, and said so
LOG_ENGINE_SIZE = "16m"  # what the engine itself keeps meanwhile (json-file, rotated)
LOG_ENGINE_FILES = "2"
LOG_DRAIN_SECONDS = 60  # after the exit, for the engine to hand over the rest of the log

# The build containers this process has running (Ctrl-C stops them: stop_running), and
# whether it is stopping (a build thread about to start one must not).
_running: set[Any] = set()
_running_lock = threading.Lock()
_stopping = threading.Event()
LOG_TAIL_ENTRIES = 4096  # log entries (16 KiB at most each) read again for the true tail


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
    output_refused: Usage | None = None  # the output the watcher killed it for, if it did
    pids_limit_hit: bool = False  # the kernel refused a fork or clone (pids limit)
    log_omitted: int = 0  # bytes of the log left out of ``log`` (kept: head and tail)

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
            log_config=LogConfig(type=LogConfig.types.JSON,
                                 config={"max-size": LOG_ENGINE_SIZE,
                                         "max-file": LOG_ENGINE_FILES}),
            **hardening(settings),
        )
    except DockerException as exc:
        raise EngineError(f"cannot create the build container: {one_line(str(exc), 300)}") \
            from None
    outputs = [b.source for b in binds if not b.read_only]
    watcher = _Watcher(container, outputs, max_output(settings))
    keeper = LogKeeper()
    started = time.monotonic()
    with _running_lock:
        if _stopping.is_set():
            _remove(container)
            raise EngineError("the run was stopped: no new build container is started",
                              "run it again to build what is left")
        _running.add(container)
    try:
        container.start()
        if _stopping.is_set():  # stopped between the registry and the start: the kill
            _kill(container)    # found it created, not running, and could not stop it
        keeper.follow(container)
        watcher.start()
        exit_code, timed_out = _wait(container, timeout)
        watcher.stop()
        log = keeper.finish(container, LOG_DRAIN_SECONDS)
        container.reload()
        return ContainerRun(exit_code, timed_out, log, time.monotonic() - started, container.attrs,
                            watcher.refused, watcher.pids_hit or _forks_refused(log),
                            keeper.omitted)
    finally:
        with _running_lock:
            _running.discard(container)
        watcher.stop()
        _remove(container)


def running_builds() -> int:
    """How many build containers this process has running."""
    with _running_lock:
        return len(_running)


def stop_running() -> int:
    """Kill every build container this process has running, and return how many: on
    Ctrl-C the builds under way are stopped, not waited for (a build may run for its
    whole time limit); each one's thread then sees its exit and removes it."""
    with _running_lock:
        _stopping.set()
        found = list(_running)
    interrupted: BaseException | None = None
    for container in found:
        try:
            _kill(container)
        except BaseException as exc:  # noqa: BLE001 - Ctrl-C again: the others still die
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted
    return len(found)


def _kill(container: Any) -> None:
    """Kill ``container``; one already gone, or an engine that does not answer, is no
    error (the stop is best effort: its thread removes it, reap_orphans what is left)."""
    with contextlib.suppress(DockerException, requests.exceptions.RequestException, OSError):
        container.kill()


def allow_new() -> None:
    """After a stop: this process may start build containers again (a caller that goes
    on, such as a test or a long-lived flow worker; each executor run begins with it)."""
    _stopping.clear()


def _wait(container: Any, timeout: float) -> tuple[int | None, bool]:
    try:
        result = container.wait(timeout=timeout)
    except (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout):
        container.kill()
        container.wait(timeout=60)
        return None, True
    return int(result.get("StatusCode", -1)), False


class LogKeeper:
    """Keeps a bounded log of a stream: its first ``head`` and last ``tail`` bytes.

    What lies between is counted, not kept, and the log says so where it was left
    out, so memory and the saved file stay bounded whatever the build prints.

    The head is read as the build writes it. A reader that falls behind a flood
    loses what the engine rotated away meanwhile, and may see the stream end
    before the end of the log, so after a flood the tail is read again, from the
    last LOG_TAIL_ENTRIES entries the engine kept (the count of bytes left out is
    then a lower bound).
    """

    def __init__(self, head: int = LOG_HEAD, tail: int = LOG_TAIL) -> None:
        self.head_limit, self.tail_limit = head, tail
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_size = 0
        self.omitted = 0
        self.problem = ""
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            room = self.head_limit - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if not chunk:
                return
            self.tail.append(chunk)
            self.tail_size += len(chunk)
            while self.tail_size - len(self.tail[0]) >= self.tail_limit:
                self.tail_size -= len(self.tail[0])
                self.omitted += len(self.tail.popleft())

    def follow(self, container: Any) -> None:
        """Read the container's log in a thread until the container stops."""
        self._thread = threading.Thread(target=self._follow, args=(container,),
                                        name="build-log", daemon=True)
        self._thread.start()

    def _follow(self, container: Any) -> None:
        try:
            for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
                self.feed(chunk)
        except (DockerException, requests.exceptions.RequestException, OSError) as exc:
            self.problem = f"the engine stopped sending the log: {type(exc).__name__}"

    def finish(self, container: Any, timeout: float) -> bytes:
        """The kept log, once the stream ended (or ``timeout`` seconds passed)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.problem = f"the engine did not finish sending the log in {timeout:g} s"
                return self.value()
        if self.problem:  # the stream broke: read again all the engine kept
            self._reread(container, LogKeeper(self.head_limit, self.tail_limit), "all")
        elif self.omitted:  # a flood: the followed tail may stop short of the end
            self._reread(container, LogKeeper(0, self.tail_limit), LOG_TAIL_ENTRIES)
        return self.value()

    def _reread(self, container: Any, fresh: LogKeeper, entries: int | str) -> None:
        try:
            for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=False,
                                        tail=entries):
                fresh.feed(chunk)
        except (DockerException, requests.exceptions.RequestException, OSError):
            return  # keep the log as followed
        with self._lock:
            if fresh.head_limit:  # read again whole: that replaces the broken stream
                self.head, self.omitted = fresh.head, max(self.omitted, fresh.omitted)
                self.problem = ""
            self.tail, self.tail_size = fresh.tail, fresh.tail_size

    def value(self) -> bytes:
        with self._lock:
            tail = b"".join(self.tail)
            excess = max(0, len(tail) - self.tail_limit)
            omitted = self.omitted + excess
            parts = [bytes(self.head)]
            if omitted:
                parts.append(f"\n[factory] ... {omitted} bytes of this log left out here (or "
                             "more: the engine rotates what it keeps): the log is truncated to "
                             f"its first {self.head_limit} and last {self.tail_limit} bytes "
                             "...\n".encode())
            parts.append(tail[excess:])
            if self.problem:
                parts.append(f"\n[factory] the log may be incomplete: {self.problem}\n"
                             .encode())
            return b"".join(parts)


def _remove(container: Any) -> None:
    try:
        container.remove(force=True)
    except NotFound:
        pass
    except DockerException:
        pass  # removal is housekeeping; a leftover container holds no secrets


# -- limits the engine cannot enforce alone -----------------------------------------


class _Watcher:
    """Polls a running build: kills it when its output outgrows the limits (bytes,
    entries, depth), and notes whether the kernel refused it processes (the pids
    cgroup's counter)."""

    def __init__(self, container: Any, outputs: list[Path], limit: int) -> None:
        self.container, self.outputs, self.limit = container, outputs, limit
        self.refused: Usage | None = None
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
            refused = next((u for u in (measure(p, self.limit) for p in self.outputs)
                            if u.problem), None)
            if refused is not None:
                self.refused = refused
                with contextlib.suppress(DockerException):  # gone already: exit code says
                    self.container.kill()
                return
            if events is not None and not self.pids_hit:
                self.pids_hit = _pids_refused(events)




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


def owner_alive(owner: str) -> bool:
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
        if owner and not owner_alive(owner):
            _remove(container)
            removed.append(container.id)
    return removed
