"""Atomic file writes: nothing half-written is ever visible.

Every file the factory writes goes to a temporary name in the same directory,
is flushed to disk, and is then renamed over its final name (rename is atomic
on POSIX within one filesystem).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"


@contextmanager
def atomic_writer(path: Path, mode: str = "wb",
                  permissions: int | None = None) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success fsync and rename it into place.

    The temp file is private (0600) until renamed. A file that replaces another
    keeps the mode of the one it replaces (recipes.lock stays as readable as the
    user made it); a new file stays private unless ``permissions`` widens it
    (files a web server must read, say).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _replaceable(path)
    if permissions is None:
        permissions = _mode_of(path)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if permissions is not None:
            os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _replaceable(path: Path) -> None:
    """OSError unless ``path`` is absent, a regular file or a link (a link is replaced,
    never followed): renaming over a device, a FIFO or a socket would put a file in its
    place (/dev/null, as root, for everyone), over a directory fails halfway."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        raise OSError(errno.EEXIST, "not a regular file: it is not replaced", str(path))


def _mode_of(path: Path) -> int | None:
    """The permission bits of an existing regular file, else None."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_shared(path: Path, data: bytes) -> None:
    """A file the user asked for to commit or hand on (a pylock.toml, an SBOM, a report):
    a new one gets the mode the user's umask gives, where the factory's own files start
    private; one replaced keeps its own mode. A character device or a FIFO the user
    names (/dev/null, /dev/stdout, a pipe) is written into, as a shell's ">" does, never
    replaced (a FIFO with no reader is an error, not a hang)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and (stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        _write_into(path, data)
        return
    mode = None if path.is_file() and not path.is_symlink() else 0o666 & ~_umask()
    with atomic_writer(path, "wb", permissions=mode) as handle:
        handle.write(data)


def _write_into(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW)
    try:
        if not (stat.S_ISCHR(os.fstat(fd).st_mode) or stat.S_ISFIFO(os.fstat(fd).st_mode)):
            raise OSError(errno.EEXIST, "not a device or FIFO any more", str(path))
        os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask, read from /proc where it can be: setting it to read it back
    would race another thread creating a file."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: Path, value: Any) -> None:
    write_text(path, canonical_json(value))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def clean_temporaries(directory: Path, older_than: float) -> int:
    """Remove the temp files a crash left under ``directory``; returns how many.

    Only those untouched for ``older_than`` seconds: a younger one may still have
    a writer (another process streaming into it).
    """
    horizon = time.time() - older_than
    removed = 0
    for leftover in directory.rglob(TMP_PREFIX + "*"):
        try:
            if not leftover.is_file() or leftover.stat().st_mtime > horizon:
                continue
            leftover.unlink()
        except OSError:  # gone already: its writer finished, or another sweeper was first
            continue
        removed += 1
    return removed
