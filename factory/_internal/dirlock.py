"""An exclusive lock, across processes, on a private directory of the state.

Key material is made once (the embedded authority's keys and meta, the functionary
keys): "create whatever is missing" is check-then-create, and two processes that find
it missing at the same moment (two releases started at once on a fresh state) each made
their own, so one process's trusted root and the other's trust config disagreed and a
release failed. Whoever holds this lock makes what is missing; the other then finds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s lock (its file ``.lock``, made 0600, never through a link)
    for the block; blocks while another process holds it, released when the block ends
    or the process dies."""
    fd = os.open(directory / LOCK_NAME,
                 os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (closing the descriptor releases the lock)
