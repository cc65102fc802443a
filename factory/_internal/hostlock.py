"""A lock held across processes on this host, for work that is made once per machine.

The builder image lives in the Docker Engine's store, which every factory on the host
shares: two runs that find it missing at the same moment must not both debootstrap it
(the second would re-tag another image under the first's feet). The lock file sits in
the user's own cache directory (private, never a shared /tmp path another user could
hold or replace).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path


def _locks_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    where = base / "factory" / "locks"
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    return where


@contextlib.contextmanager
def host_lock(name: str) -> Iterator[None]:
    """Held by one process of this user on this host at a time (blocks until free)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120]
    fd = os.open(_locks_dir() / f"{safe}.lock",
                 os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
