"""The per-build work directories under ``<state>/builds``: owned while used, swept after.

A build works in a directory of its own (``build-*``).
Its process holds an exclusive ``flock`` on the directory's ``.owner.lock`` for
as long as it uses it, and removes it when done. A process killed with -9 (or
by the OOM killer, or a power cut) cannot remove it, but the kernel drops its
lock: the next run that finds a work directory whose lock it can take removes
it. A live build, of this process or of another (on this host, or on another
host sharing the state directory over a filesystem with working locks), holds
its lock, so it is never swept. The lock file appears under its final name only
once it is locked, so a sweep never sees a live directory as unlocked.

Directories without a lock file (left by an older factory) are swept once
untouched for UNLOCKED_STALE_SECONDS.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from factory.build.confined import remove_tree

LOCK = ".owner.lock"
PREFIXES = ("build-",)
UNLOCKED_STALE_SECONDS = 3600.0


@contextlib.contextmanager
def work_dir(base: Path, prefix: str, owner: str) -> Iterator[Path]:
    """A fresh directory under ``base``, locked by this process until the block ends,
    then removed (a leftover that cannot be removed is the next sweep's)."""
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    fd = _hold(path, owner)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            remove_tree(path)
        os.close(fd)


def _hold(path: Path, owner: str) -> int:
    fd, staging = tempfile.mkstemp(prefix=".lock-", dir=path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{owner}\n".encode())  # for people looking; the lock is what counts
        os.rename(staging, path / LOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def sweep(base: Path, now: float | None = None) -> list[Path]:
    """Remove the work directories under ``base`` whose owner is gone; returns them."""
    if not base.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for entry in os.scandir(base):
        if not entry.name.startswith(PREFIXES) or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if _sweep_one(path, now):
            removed.append(path)
    return removed


def _sweep_one(path: Path, now: float) -> bool:
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return _sweep_unlocked(path, now)
    except OSError:
        return False  # not ours to judge
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held: a live build
        try:
            remove_tree(path)
        except OSError:
            return False  # tried again by the next sweep
        return True
    finally:
        os.close(fd)


def _sweep_unlocked(path: Path, now: float) -> bool:
    try:
        if now - path.lstat().st_mtime < UNLOCKED_STALE_SECONDS:
            return False
        if (path / LOCK).exists():  # locked meanwhile
            return False
        remove_tree(path)
    except OSError:
        return False
    return True
