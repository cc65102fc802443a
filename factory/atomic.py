"""Atomic file writes: nothing half-written is ever visible.

Every file the factory writes goes to a temporary name in the same directory,
is flushed to disk, and is then renamed over its final name (rename is atomic
on POSIX within one filesystem).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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

    The temp file is private (0600) until renamed; ``permissions`` widens it first
    (files a web server must read, say).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
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


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


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


def clean_temporaries(directory: Path, older_than: float | None = None) -> int:
    """Remove temp files and directories a crash left behind; returns how many.

    ``older_than`` (seconds) spares those touched more recently: another process
    may still be writing them.
    """
    removed = 0
    if not directory.is_dir():
        return 0
    horizon = None if older_than is None else time.time() - older_than
    for leftover in sorted(directory.rglob(TMP_PREFIX + "*"), reverse=True):
        try:
            if horizon is not None and leftover.lstat().st_mtime > horizon:
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        except OSError:  # gone already (another sweeper, or its owner finished)
            continue
        removed += 1
    return removed
