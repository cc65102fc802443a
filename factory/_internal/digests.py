"""File digests, hashed once per state of the file.

A no-op build must not hash a gigabyte of sources and wheels again to learn that
nothing changed. A digest is remembered under the state of the file it was
taken from: device, inode, size, and modification and change times in
nanoseconds. Any write to a file, or a rename over it, changes its change time,
which no unprivileged process can set back (``utime`` sets only the access and
modification times), so a changed file is hashed again. This is how git's
index and make tell an unchanged file; it guards against mistakes and crashes,
not against someone who can already write the state directory (see
docs/threat-model.md, "state on disk").
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from factory._internal.atomic import sha256_file

_MEMO: dict[str, tuple[str, str]] = {}  # path -> (state, sha256), for this process
_LOCK = threading.Lock()
_MAX_MEMO = 100_000  # paths; a long-running server forgets the lot rather than grow


def file_state(path: Path) -> str | None:
    """The identity of ``path``'s current bytes as the filesystem tells it, or None
    when it is not a regular file (a link is never followed)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:"
            f"{info.st_ctime_ns}")


def sha256_of(path: Path) -> str:
    """``sha256_file(path)``, hashed at most once per state of the file in a process."""
    key = os.fspath(path)
    before = file_state(path)
    with _LOCK:
        known = _MEMO.get(key)
    if before is not None and known is not None and known[0] == before:
        return known[1]
    digest = sha256_file(path)
    # Remembered only when nothing changed while it was read.
    if before is not None and file_state(path) == before:
        with _LOCK:
            if len(_MEMO) >= _MAX_MEMO:
                _MEMO.clear()
            _MEMO[key] = (before, digest)
    return digest
