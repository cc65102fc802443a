"""Immutable file placement and the publisher's lock.

A file is copied to a temporary name in its final directory, hashed while
copied, flushed, and renamed into place. A file that a record already names is
immutable: different bytes under its name are refused. A file no record names
is an orphan of an interrupted publish and may be replaced.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from factory._internal.atomic import TMP_PREFIX, atomic_writer, sha256_file
from factory.errors import PublishError
from factory.index.records import StoredFile

SERVED = 0o644  # published files: readable by any web server in front of the tree

LOCK_TIMEOUT = 600.0


@contextmanager
def publish_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive lock across processes; the kernel drops it if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise PublishError(
                        f"another publish has held {path} for over {timeout:.0f} s",
                        "wait for it to finish; a crashed publisher releases the lock itself",
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_leftovers(*directories: Path) -> None:
    """Remove temporary files an interrupted publish left (non-recursive)."""
    for directory in directories:
        if directory.is_dir():
            for leftover in directory.glob(TMP_PREFIX + "*"):
                if leftover.is_file():
                    leftover.unlink(missing_ok=True)


def place_file(src: Path, dest: Path, rel: str, protected: bool) -> StoredFile:
    """Put ``src`` at ``dest`` (unless the same bytes are there) and describe it."""
    if dest.is_file():
        digest = sha256_file(dest)
        if digest == sha256_file(src):
            return StoredFile(rel, digest, dest.stat().st_size)
        if protected:
            raise PublishError(
                f"{rel} is already published with different bytes",
                "published files are immutable: publish a new version (or build number) instead",
            )
    return _copy_in(src, dest, rel)


def place_bytes(data: bytes, dest: Path, rel: str, protected: bool) -> StoredFile:
    digest = hashlib.sha256(data).hexdigest()
    if dest.is_file():
        existing = sha256_file(dest)
        if existing == digest:
            return StoredFile(rel, digest, len(data))
        if protected:
            raise PublishError(
                f"{rel} is already published with different bytes",
                "published files are immutable: publish a new version instead",
            )
    with atomic_writer(dest, "wb", SERVED) as out:
        out.write(data)
    return StoredFile(rel, digest, len(data))


def _copy_in(src: Path, dest: Path, rel: str) -> StoredFile:
    digest = hashlib.sha256()
    size = 0
    with atomic_writer(dest, "wb", SERVED) as out, src.open("rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
            out.write(block)
            size += len(block)
    return StoredFile(rel, digest.hexdigest(), size)
