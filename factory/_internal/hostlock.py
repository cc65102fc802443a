"""A lock held across processes on this host, for work that is made once per machine.

The builder image lives in the Docker Engine's store, which every factory on the host
shares: two runs that find it missing at the same moment must not both debootstrap it
(the second would re-tag another image under the first's feet). The lock file sits in
the user's own cache directory (private, never a shared /tmp path another user could
hold or replace).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from factory.errors import FileSystemError, one_line

_log = logging.getLogger(__name__)

_HINT = ("point XDG_CACHE_HOME at a directory of your own (or remove the odd entry); "
         "the factory keeps its host locks in <cache>/factory/locks")


def _cache_home() -> Path:
    """XDG_CACHE_HOME when it is an absolute path (the XDG spec has relative ones
    ignored: they would name a directory under wherever the run was started), else
    ~/.cache."""
    given = os.environ.get("XDG_CACHE_HOME") or ""
    return Path(given) if os.path.isabs(given) else Path.home() / ".cache"


def _private(path: Path, follow: bool, others: int = 0o022) -> None:
    """FileSystemError unless ``path`` is a directory of this user that no one else may
    write into (one they could, or a link put there, would let them hold or swap the
    lock; ``others``: the mode bits that say they could). ``follow``: a link to such a
    directory is fine (~/.cache often is one)."""
    info = os.stat(path) if follow else os.lstat(path)
    why = ("is a symbolic link" if stat.S_ISLNK(info.st_mode) else
           "is not a directory" if not stat.S_ISDIR(info.st_mode) else
           f"belongs to uid {info.st_uid}, not this user ({os.getuid()})"
           if info.st_uid != os.getuid() else
           f"is writable by others (mode {stat.S_IMODE(info.st_mode):o})"
           if info.st_mode & others else None)
    if why is not None:
        raise FileSystemError(f"the host lock directory {one_line(str(path), 200)} {why}",
                              _HINT)


def _locks_dir() -> Path:
    where = _cache_home() / "factory" / "locks"
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private(where.parent, follow=True, others=0o002)  # umask 002: group is ours
        _private(where, follow=False)
    except OSError as exc:
        raise FileSystemError(f"the host lock directory {one_line(str(where), 200)} cannot "
                              f"be made: {exc.strerror or exc}", _HINT) from None
    return where


@contextlib.contextmanager
def host_lock(name: str) -> Iterator[None]:
    """Held by one process of this user on this host at a time (blocks until free).
    FileSystemError (one line) when its file is not a private regular file of ours."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120]
    path = _locks_dir() / f"{safe}.lock"
    try:  # O_NONBLOCK: a FIFO put in its place must not hold the open
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        what = ("is a symbolic link" if exc.errno == errno.ELOOP else
                f"cannot be opened: {exc.strerror or exc}")
        raise FileSystemError(f"the host lock {one_line(str(path), 200)} {what}",
                              _HINT) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise FileSystemError(f"the host lock {one_line(str(path), 200)} is not a "
                                  "regular file of this user", _HINT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # say why the run stands still (it may be minutes)
            _log.warning("waiting for another run on this host that is making %s", name)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
