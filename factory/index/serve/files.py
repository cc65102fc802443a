"""How the server reads the published tree: never through a symbolic link, once per change.

Every file is opened without following a link, only if it is a regular file
inside the index directory; what is derived from a file (a parsed record, a
digest, a rendered page) is kept under the file's stat key and recomputed only
when that key changes. Small files whose bytes matched their published digest
are kept in memory within a byte budget, so a repeat request costs one stat.
A large file is streamed only if it is still the file whose digest was checked.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

# size, mtime, inode and ctime: a write can restore the size and the mtime, not the
# ctime (the kernel sets it on every change), so a file changed in place misses.
StatKey = tuple[int, int, int, int]

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def lstat(path: str) -> os.stat_result | None:
    """The path's own stat (a symbolic link is not followed), or None if there is none."""
    try:
        return os.lstat(path)
    except (OSError, ValueError):  # missing, or a name no file can have (too long, NUL)
        return None


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


@dataclass
class _Cached:
    key: Hashable
    value: Any


class StatCache:
    """Values derived from files, recomputed only when their stat keys change."""

    def __init__(self) -> None:
        self._items: dict[Hashable, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, name: Hashable, key: Hashable) -> Any | None:
        with self._lock:
            hit = self._items.get(name)
        return hit.value if hit and hit.key == key else None

    def put(self, name: Hashable, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[name] = _Cached(key, value)


class VerifiedBytes:
    """Small files whose bytes matched their published digest, by path and stat key;
    the least recently used go first once the budget is spent."""

    def __init__(self, budget: int) -> None:
        self._items: OrderedDict[str, tuple[StatKey, bytes]] = OrderedDict()
        self._size = 0
        self._budget = budget
        self._lock = threading.Lock()

    def get(self, path: str, key: StatKey) -> bytes | None:
        with self._lock:
            hit = self._items.get(path)
            if hit is None or hit[0] != key:
                return None
            self._items.move_to_end(path)
            return hit[1]

    def put(self, path: str, key: StatKey, body: bytes) -> None:
        with self._lock:
            old = self._items.pop(path, None)
            self._size -= len(old[1]) if old else 0
            self._items[path] = (key, body)
            self._size += len(body)
            while self._size > self._budget:
                _, (_, dropped) = self._items.popitem(last=False)
                self._size -= len(dropped)


class Refused(Exception):
    """A file that is there but is not one to read: a symbolic link, a FIFO or device,
    a file reached through a link out of the index, or one over its size limit."""


class Tree:
    """Opens files under the index directory, never through a symbolic link.

    The final component is opened with O_NOFOLLOW (a link is refused, not followed)
    and O_NONBLOCK (a FIFO cannot hang the server); what was opened must be a
    regular file whose real path, as the kernel names it, is inside the index
    directory (a directory above it replaced by a link leads nowhere). The index
    directory itself may be a link. Only done when a stat key changes.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, path: str) -> tuple[int, os.stat_result] | None:
        """A descriptor of the regular file at ``path`` and its stat; None if there is none."""
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:  # ELOOP: the name is a symbolic link
            raise Refused(getattr(exc, "strerror", None) or str(exc)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Refused("not a regular file")
            if not self._inside(fd, path):
                raise Refused("reached through a symbolic link out of the index")
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _inside(self, fd: int, path: str) -> bool:
        root = os.path.realpath(self.root).rstrip(os.sep) + os.sep
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc: resolve the name (its last component is no link)
            real = os.path.realpath(path)
        return real.startswith(root)

    def read(self, path: str, limit: int) -> tuple[bytes, StatKey] | None:
        """The bytes of the regular file at ``path`` (at most ``limit``) and their stat key."""
        opened = self.open(path)
        if opened is None:
            return None
        fd, st = opened
        with os.fdopen(fd, "rb") as handle:
            if st.st_size > limit:
                raise Refused(f"larger than {limit} bytes")
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise Refused(f"larger than {limit} bytes")
        return data, stat_key(st)

    def hash(self, path: str, key: StatKey) -> str | None:
        """The sha256 of the regular file at ``path`` if it still has stat key ``key``."""
        try:
            opened = self.open(path)
        except Refused:
            return None
        if opened is None:
            return None
        fd, st = opened
        with os.fdopen(fd, "rb") as handle:
            if stat_key(st) != key:
                return None
            digest = hashlib.sha256()
            while block := handle.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()


class PinnedFile(FileResponse):
    """Streams the file that was verified, and only it: opened without following a
    symbolic link, and only if its stat key is still the verified one (a file swapped
    since is not sent). Range requests are served by Starlette's FileResponse."""

    def __init__(self, path: str, st: os.stat_result, **kwargs: Any) -> None:
        super().__init__(path, stat_result=st, **kwargs)
        self._verified = stat_key(st)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions") or {}
        if "http.response.pathsend" in extensions:  # the server would open the name itself
            extensions = {k: v for k, v in extensions.items() if k != "http.response.pathsend"}
            scope = {**scope, "extensions": extensions}
        await super().__call__(scope, receive, send)

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        fd = await anyio.to_thread.run_sync(_open_pinned, self.path, self._verified)
        file = anyio.AsyncFile(os.fdopen(fd, "rb"))
        try:
            yield file
        finally:
            with anyio.CancelScope(shield=True):
                await file.aclose()


def _open_pinned(path: str | os.PathLike[str], key: StatKey) -> int:
    fd = os.open(path, _OPEN_FLAGS)
    if stat_key(os.fstat(fd)) != key:
        os.close(fd)
        raise OSError(f"{path} changed after its digest was checked; not sent")
    return fd
