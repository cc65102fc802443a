"""A private PostgreSQL cluster from the system's packages, for the distributed mode.

With ``[server] database = "postgresql"`` the embedded Prefect server
(``flows.server``) and the ledger keep their state in a cluster that this module
makes and starts with the system's own PostgreSQL (Debian's ``postgresql``
package: ``initdb`` and ``postgres`` from ``/usr/lib/postgresql/<major>/bin``)::

    address = ensure_cluster(settings.cluster_dir)  # starts it, or finds it running
    address.url("prefect", "asyncpg")               # the Prefect server's database
    stop_cluster(settings.cluster_dir)

The directory holds ``data/`` (the data directory), ``server.log`` (the server's
output), ``password`` (0600, the role's generated password) and, while the
server runs, ``address.json`` (factory._internal.cluster). The server listens on
127.0.0.1 only, on a port free when it starts, with its unix socket inside the
data directory, and takes password (SCRAM) logins only. PostgreSQL refuses to
run as root: as root the server runs as Debian's ``postgres`` user (else
``nobody``), which owns ``data/`` and must be able to reach the directory.

Nothing here imports prefect; the driver (psycopg) is imported when first used.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory._internal.cluster import (
    DATABASES,
    ROLE,
    Address,
    forget_address,
    read_address,
    read_password,
    write_address,
    write_password,
)
from factory.errors import FactoryError, one_line

HOST = "127.0.0.1"
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SERVER_USERS = ("postgres", "nobody")  # who runs the server when we are root
LOG_FILE = "server.log"
_SOCKET_PATH_LIMIT = 107  # sun_path holds 108 bytes with its NUL
_TAIL = 4096  # bytes of the server log read for an error message

__all__ = ["Address", "PostgresError", "binaries", "ensure_cluster", "running",
           "stop_cluster"]


class PostgresError(FactoryError):
    default_hint = ("install Debian's postgresql package (scripts/setup-system.sh does), or "
                    "point the factory at an existing server (docs/distributed.md)")


# -- the server's programs and user -------------------------------------------------------

def binaries(major: str | None = None) -> Path:
    """The directory of ``initdb`` and ``postgres``: Debian's newest (or ``major``), else
    the one on PATH."""
    found: dict[int, Path] = {}
    for pg_ctl in DEBIAN_BINARIES.glob("*/bin/pg_ctl"):
        with contextlib.suppress(ValueError):
            found[int(pg_ctl.parent.parent.name)] = pg_ctl.parent
    if major is not None:
        if major.isdigit() and int(major) in found:
            return found[int(major)]
        raise PostgresError(
            f"the data directory was made by PostgreSQL {major}, whose programs are not "
            f"installed (found: {', '.join(map(str, sorted(found))) or 'none'})",
            f"install postgresql-{major}, or move the cluster's directory aside for a new one")
    if found:
        return found[max(found)]
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    raise PostgresError(f"no PostgreSQL server programs (initdb, postgres) in "
                        f"{DEBIAN_BINARIES}/*/bin or on PATH")


@dataclass(frozen=True)
class _User:
    name: str
    uid: int
    gid: int

    @property
    def popen(self) -> dict[str, Any]:
        """subprocess arguments that run a program as this user (none when it is us)."""
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _server_user() -> _User:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return _User(entry.pw_name, entry.pw_uid, entry.pw_gid)
    for name in SERVER_USERS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return _User(name, entry.pw_uid, entry.pw_gid)
    raise PostgresError("PostgreSQL refuses to run as root, and neither user "
                        f"{' nor '.join(SERVER_USERS)} exists to run it",
                        "install Debian's postgresql package (it adds the postgres user)")


def _blocked(directory: Path, user: _User) -> Path | None:
    """The first directory from / down to ``directory`` that ``user`` cannot enter."""
    groups = {user.gid, *os.getgrouplist(user.name, user.gid)}
    for path in (*reversed(directory.parents), directory):
        info = path.stat()
        if info.st_uid == user.uid:
            bit = 0o100
        elif info.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not info.st_mode & bit:
            return path
    return None


# -- the data directory's lock file ------------------------------------------------------

@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int
    ready: bool


def _postmaster(data: Path) -> _Postmaster | None:
    """What ``postmaster.pid`` says: the server's pid, port and whether it is ready."""
    try:
        lines = (data / "postmaster.pid").read_text(errors="replace")[:_TAIL].splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return _Postmaster(pid, port, len(lines) > 7 and lines[7].strip() == "ready")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not; one that is our child is reaped)."""
    with contextlib.suppress(ChildProcessError, OSError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


# -- starting, finding and stopping --------------------------------------------------------

def running(directory: Path) -> Address | None:
    """The address of the cluster under ``directory`` if its server runs and answers.

    A server that runs on the data directory but does not take our login is an error
    (another server, or a changed password), not something to start again.
    """
    data = directory / "data"
    found = _postmaster(data)
    if found is None or not _alive(found.pid):
        return None
    password = read_password(directory)
    if password is None:
        raise PostgresError(f"a PostgreSQL server (pid {found.pid}) runs on {data}, but "
                            f"{directory / 'password'} is missing",
                            "stop that server, or move the directory aside for a new cluster")
    address = Address(HOST, found.port, ROLE, password)
    try:
        _databases(address, timeout=5)
    except PostgresError as exc:
        raise PostgresError(f"the PostgreSQL server (pid {found.pid}) on {data} does not "
                            f"answer: {exc.message}",
                            f"stop it (factory prefect stop), or read "
                            f"{directory / LOG_FILE}") from None
    if read_address(directory) != address:
        write_address(directory, address)
    return address


def ensure_cluster(directory: Path, wait: float = 30.0, durable: bool = True) -> Address:
    """The address of the cluster under ``directory``: the running one, or one this call
    makes (the first time) and starts, with the databases ``prefect`` and ``ledger``.

    ``durable=False`` starts it without fsync (tests and benchmarks: a crash of the
    machine may lose the cluster, and Prefect's schema migrations take half the time).
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _check_directory(directory)
    with _locked(directory, wait):
        address = running(directory)
        if address is not None:
            return address
        user = _server_user()
        if user.uid != os.geteuid():
            blocked = _blocked(directory, user)
            if blocked is not None:
                raise PostgresError(
                    f"PostgreSQL runs as user {user.name}, who cannot enter {blocked} "
                    f"(mode {blocked.stat().st_mode & 0o777:o})",
                    f"put the cluster where {user.name} can reach it ([server] postgres_dir "
                    f"in factory.toml), or allow it: chmod o+x {blocked}")
        data = directory / "data"
        if not (data / "PG_VERSION").is_file():
            _initdb(directory, data, user)
        major = (data / "PG_VERSION").read_text(errors="replace").strip()[:10]
        address = _start(directory, data, user, binaries(major), wait, durable)
        _databases(address, timeout=min(wait, 10.0), create=True)
        write_address(directory, address)
        return address


def stop_cluster(directory: Path, wait: float = 30.0) -> bool:
    """Stop the server of the cluster under ``directory`` (a fast shutdown: sessions are
    ended, everything committed is kept); True when one ran."""
    directory = directory.resolve()
    if not directory.is_dir():
        return False
    _check_directory(directory)
    forget_address(directory)
    found = _postmaster(directory / "data")
    if found is None or not _alive(found.pid) or not _runs_on(found.pid, directory / "data"):
        return False
    for sig, seconds in ((signal.SIGINT, wait), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(found.pid, sig)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not _alive(found.pid):
                return True
            time.sleep(0.05)
    raise PostgresError(f"the PostgreSQL server (pid {found.pid}) did not stop",
                        f"read {directory / LOG_FILE}")


def _check_directory(directory: Path) -> None:
    """The cluster's directory is this user's and no one else may write it; its data
    directory and password file are not links. Else another local user could plant a
    password, a postmaster.pid (whose pid stop_cluster would signal) or a data link."""
    info = directory.stat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise PostgresError(
            f"the cluster's directory {directory} is owned by uid {info.st_uid} with mode "
            f"{info.st_mode & 0o7777:o}: another user could change the cluster",
            "use a directory of your own that only you may write ([server] postgres_dir), "
            f"or chown/chmod go-w {directory}")
    for name in ("data", "password", LOG_FILE):
        path = directory / name
        if path.is_symlink():
            raise PostgresError(f"{path} is a symbolic link", f"remove it; the cluster keeps "
                                f"its {name} in {directory} itself")
    password = directory / "password"
    with contextlib.suppress(FileNotFoundError):
        pinfo = password.lstat()
        if pinfo.st_uid != os.geteuid() or pinfo.st_mode & 0o077 or \
                not stat.S_ISREG(pinfo.st_mode):
            raise PostgresError(f"{password} is not a file only you may read (mode "
                                f"{pinfo.st_mode & 0o7777:o}, uid {pinfo.st_uid})",
                                f"move {directory} aside for a new cluster")


def _runs_on(pid: int, data: Path) -> bool:
    """Whether ``pid`` runs as the owner of ``data`` (a postmaster.pid names its server;
    a stale or planted one may name any process)."""
    try:
        return Path(f"/proc/{pid}").stat().st_uid == data.stat().st_uid
    except OSError:
        return False


@contextlib.contextmanager
def _locked(directory: Path, wait: float) -> Iterator[None]:
    """One process at a time makes or starts the cluster of ``directory``."""
    with (directory / ".lock").open("a") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PostgresError(f"another process has been starting the cluster in "
                                        f"{directory} for {wait:.0f} s",
                                        f"read {directory / LOG_FILE}") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _initdb(directory: Path, data: Path, user: _User) -> None:
    if data.exists() and any(data.iterdir()):
        raise PostgresError(f"{data} is not a PostgreSQL data directory (no PG_VERSION) "
                            "and is not empty",
                            f"move {data} aside; a new cluster is made in its place")
    data.mkdir(mode=0o700, exist_ok=True)
    os.chown(data, user.uid, user.gid)
    password = read_password(directory)
    if password is None:
        password = secrets.token_urlsafe(32)
        write_password(directory, password)
    # initdb reads the password from a file the server's user can open; it lives only
    # for the call, beside the data directory, readable by that user alone.
    pwfile = directory / f".pwfile-{secrets.token_hex(8)}"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchown(fd, user.uid, user.gid)
        os.write(fd, password.encode() + b"\n")
        os.close(fd)
        fd = -1
        command = [str(binaries() / "initdb"), "-D", str(data), "-U", ROLE,
                   "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                   "--locale=C.UTF-8", "--no-instructions"]
        done = subprocess.run(command, cwd=directory, capture_output=True, text=True,
                              errors="replace", stdin=subprocess.DEVNULL, timeout=120,
                              check=False, **user.popen)
    finally:
        if fd >= 0:
            os.close(fd)
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise PostgresError(f"initdb could not make a cluster in {data}: "
                            f"{_last_line(done.stderr or done.stdout)}",
                            f"check that {user.name} may write {data}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _start(directory: Path, data: Path, user: _User, bin_dir: Path, wait: float,
           durable: bool) -> Address:
    password = read_password(directory)
    if password is None:
        raise PostgresError(f"{directory / 'password'} is missing: the cluster's role "
                            "cannot log in", f"move {directory} aside for a new cluster")
    port = _free_port()
    socket_dir = str(data) if len(f"{data}/.s.PGSQL.{port}") <= _SOCKET_PATH_LIMIT else ""
    log_path = directory / LOG_FILE
    offset = log_path.stat().st_size if log_path.exists() else 0
    command = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
               "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={socket_dir}",
               "-c", "unix_socket_permissions=0700"]
    if not durable:
        command += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off"]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(command, cwd=directory, stdin=subprocess.DEVNULL,
                                   stdout=fd, stderr=fd, start_new_session=True, **user.popen)
    finally:
        os.close(fd)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PostgresError(f"PostgreSQL did not start on {data} (exit code "
                                f"{process.returncode}): {_log_tail(log_path, offset)}",
                                f"read {log_path}; move {directory} aside for a new cluster")
        found = _postmaster(data)
        if found is not None and found.pid == process.pid and found.ready:
            return Address(HOST, port, ROLE, password)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGQUIT)
    raise PostgresError(f"PostgreSQL did not become ready on {data} within {wait:.0f} s: "
                        f"{_log_tail(log_path, offset)}", f"read {log_path}")


_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _databases(address: Address, timeout: float, create: bool = False) -> None:
    """Log in (the health check); with ``create``, make the missing databases."""
    import psycopg

    try:
        # require_auth: a process on a stale port that asks for the password in clear
        # text (or for none) is refused by libpq before the password is sent
        with psycopg.connect(host=address.host, port=address.port, user=address.role,
                             password=address.password, dbname="postgres",
                             require_auth="scram-sha-256",
                             connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
            have = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in DATABASES if create else ():
                if name not in have and _NAME.fullmatch(name):
                    conn.execute(f'CREATE DATABASE "{name}"')  # a constant name, checked
    except psycopg.Error as exc:
        raise PostgresError(f"cannot log in to PostgreSQL on {address.host}:{address.port}: "
                            f"{one_line(str(exc), 200)}") from None


def _log_tail(path: Path, offset: int) -> str:
    """The last line the server wrote after ``offset``, bounded and printable."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, size - _TAIL))
            text = handle.read(_TAIL).decode("utf-8", "replace")
    except OSError:
        return "no server log"
    return _last_line(text)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return one_line(lines[-1], 240) if lines else "no output"
