"""Reading files under the index directory, never through a symbolic link.

What `factory index check` and `factory verify` read of the tree: every
component of a path is opened relative to its parent with O_NOFOLLOW (a link
anywhere below the index directory is refused, not followed), only a regular
file is read (a FIFO or device is refused without blocking), and every read is
bounded. ``walk`` lists the tree the same way.
"""

from __future__ import annotations

import errno
import os
import stat
import zipfile
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

from factory.index.validation import clip

_CHUNK = 1 << 20


class NotReadable(Exception):
    """Why a path under the index cannot be read as a regular file (a few words)."""


class TooLarge(NotReadable):
    """Longer than the caller's limit."""


def open_regular(root: Path, rel: str) -> int:
    """A descriptor of the regular file ``rel`` under ``root``.

    Every component is opened relative to its parent with O_NOFOLLOW: a symbolic
    link anywhere below ``root`` is refused, not followed; a FIFO or device is
    refused without blocking.
    """
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise NotReadable("is not a plain path under the index")
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise NotReadable(f"cannot be read (index directory: {exc.strerror})") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, flags | os.O_DIRECTORY, dir_fd=directory)
            os.close(directory)
            directory = inner
        fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=directory)
    except FileNotFoundError:
        raise NotReadable("is missing") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotReadable("is reached through a symbolic link (or a non-directory)") from None
        raise NotReadable(f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotReadable("is not a regular file")
    return fd


def read_regular(root: Path, rel: str, limit: int) -> bytes:
    """The bytes of ``rel`` (see open_regular); NotReadable past ``limit`` bytes."""
    with os.fdopen(open_regular(root, rel), "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"is larger than {limit} bytes")
    return data


def digest_regular(root: Path, rel: str) -> tuple[str, int]:
    digest, size = sha256(), 0
    with os.fdopen(open_regular(root, rel), "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def wheel_metadata(root: Path, wheel_rel: str, limit: int) -> bytes:
    """The wheel's ``*.dist-info/METADATA``, read no further than ``limit`` bytes.

    NotReadable when the wheel is not a zip with exactly one such member, or the
    member is larger than ``limit`` (a member's declared size is not trusted).
    """
    with os.fdopen(open_regular(root, wheel_rel), "rb") as handle:
        return metadata_in(handle, limit)


def metadata_in(handle: Any, limit: int) -> bytes:
    """``wheel_metadata`` of an open wheel file."""
    try:
        with zipfile.ZipFile(handle) as archive:
            names = [n for n in archive.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise NotReadable(f"holds {len(names)} .dist-info/METADATA files, not 1")
            with archive.open(names[0]) as member:
                data: bytes = member.read(limit + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError,
            NotImplementedError, RuntimeError, OSError) as exc:
        raise NotReadable(f"is not a readable wheel ({type(exc).__name__})") from None
    if len(data) > limit:
        raise TooLarge(f"holds a METADATA larger than {limit} bytes")
    return data


def walk(root: Path) -> Iterator[tuple[str, tuple[str, int]]]:
    """(path, (kind, size)) of every entry below ``root``, never through a link; dot
    names skipped (no server sends them: temporary files, the publish lock). A path
    that is not printable is reported as shown, and not descended into."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(root / rel if rel else root) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = f"{rel}/{entry.name}" if rel else entry.name
            shown_path = clip(path, 300)
            try:
                if entry.is_symlink():
                    yield shown_path, ("a symbolic link", 0)
                elif entry.is_dir(follow_symlinks=False):
                    yield shown_path, ("dir", 0)
                    if shown_path == path:
                        stack.append(path)
                elif entry.is_file(follow_symlinks=False):
                    yield shown_path, ("file", entry.stat(follow_symlinks=False).st_size)
                else:
                    yield shown_path, ("a special file (FIFO, device or socket)", 0)
            except OSError:
                yield shown_path, ("unreadable", 0)
