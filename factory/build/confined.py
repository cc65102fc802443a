"""What a build leaves on the host, read as hostile input.

The build owns its output directory (``/out``, the one writable mount) and may
leave anything there: a symlink to ``/dev/zero`` or to a host secret, a FIFO that
blocks whoever opens it, a socket, a sparse or huge file, 40,000 empty
directories, nesting deeper than any path can name. Every host access to such a
tree goes through this module, which

- never follows a link: names are looked up relative to a directory descriptor
  with ``O_NOFOLLOW``, and a name is opened only after ``lstat`` says it is a
  regular file (FIFOs, sockets and devices are refused without being opened; the
  open itself is ``O_NONBLOCK`` and ``fstat`` must agree, so nothing can block);
- reads at most a cap from each file, counting what it read, not what
  ``st_size`` claimed;
- measures a tree without recursion limits or unbounded cost: each entry costs at
  least one block, and the walk stops as soon as the bytes, the number of entries
  or the depth pass their limit;
- removes a tree of any depth with two descriptors at most (``shutil.rmtree``
  recurses, and a deep enough tree makes it raise RecursionError).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.errors import BuildError

MAX_ENTRIES = 1024  # files, directories and links a build may leave; it needs four
MAX_DEPTH = 16  # directory levels under the root; it needs one
BLOCK = 4096  # what any entry costs at least: an inode and a directory slot
JSON_LIMIT = 4 << 20  # bytes of one JSON report the front end writes
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 1 << 20


class OutputRefused(BuildError):
    """Something a build left behind is not what the host is willing to read."""

    default_hint = ("the build's output is refused; read its log, and report the sdist "
                    "if it is not yours")


# -- measuring ---------------------------------------------------------------------

@dataclass(frozen=True)
class Usage:
    """What a tree holds, as far as it was walked; ``problem`` says why it is refused."""

    bytes: int = 0
    entries: int = 0
    problem: str = ""
    limit: str = ""  # which limit it passed: "bytes", "entries", "depth" or "read"


class _Stop(Exception):
    pass


class _Tally:
    def __init__(self, max_bytes: int, max_entries: int, max_depth: int) -> None:
        self.max_bytes, self.max_entries, self.max_depth = max_bytes, max_entries, max_depth
        self.bytes = self.entries = 0
        self.problem = self.limit = ""

    def stop(self, limit: str, problem: str) -> None:
        self.limit, self.problem = limit, problem
        raise _Stop

    def add(self, st: os.stat_result) -> None:
        self.entries += 1
        self.bytes += cost(st)
        if self.entries > self.max_entries:
            self.stop("entries", f"it left more than {self.max_entries} entries (files, "
                      "directories, links) in its output")
        if self.bytes > self.max_bytes:
            self.stop("bytes", f"it wrote {self.bytes} bytes of output, over the limit of "
                      f"{self.max_bytes}")

    def walk(self, fd: int, depth: int) -> None:
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while we looked
                self.add(st)
                if stat.S_ISDIR(st.st_mode):
                    self.descend(fd, entry.name, depth)

    def descend(self, parent: int, name: str, depth: int) -> None:
        if depth >= self.max_depth:
            self.stop("depth", f"it nested directories more than {self.max_depth} levels deep "
                      "in its output")
        try:
            sub = os.open(name, _DIR, dir_fd=parent)
        except PermissionError:
            self.stop("read", f"its output holds a directory the factory cannot read ({name!r})")
        except OSError:
            return  # gone, or replaced by a link or a file while we looked: counted already
        try:
            self.walk(sub, depth + 1)
        finally:
            os.close(sub)


def cost(st: os.stat_result) -> int:
    """Bytes an entry is charged: its apparent size (a sparse file is charged whole),
    its allocated blocks, and never less than one block."""
    size = st.st_size if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) else 0
    return max(size, st.st_blocks * 512, BLOCK)


def measure(root: Path, max_bytes: int, max_entries: int = MAX_ENTRIES,
            max_depth: int = MAX_DEPTH) -> Usage:
    """Walk ``root`` without following links or opening anything but directories.

    Stops at the first limit passed, so a walk costs at most ``max_entries`` entries
    and ``max_depth`` descriptors, whatever the tree holds. A missing root is empty.
    """
    tally = _Tally(max_bytes, max_entries, max_depth)
    try:
        top = os.open(root, _DIR)
    except FileNotFoundError:
        return Usage()
    except OSError as exc:
        return Usage(problem=f"its output directory cannot be read ({exc.strerror})",
                     limit="read")
    try:
        tally.walk(top, 1)
    except _Stop:
        pass
    except OSError as exc:  # EACCES, EIO: whatever it hides is not read on trust
        tally.limit, tally.problem = "read", f"its output cannot be read ({exc.strerror})"
    finally:
        os.close(top)
    return Usage(tally.bytes, tally.entries, tally.problem, tally.limit)


# -- reading -----------------------------------------------------------------------

def kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISLNK, "symbolic link"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


class Confined:
    """One directory a build could write, read without trusting anything in it.

    ``what`` names the build in messages (``"six 1.16.0"``); ``where`` is appended
    to them (the log's path, say). Only names directly in the directory are read.
    """

    def __init__(self, root: Path, what: str, where: str = "") -> None:
        self.root, self.what, self.where = root, what, where

    def refuse(self, message: str, hint: str | None = None) -> OutputRefused:
        return OutputRefused(f"{self.what}: {message}{self.where}", hint)

    def names(self, limit: int = MAX_ENTRIES) -> list[str]:
        """The names directly in the directory (refused when there are more than ``limit``)."""
        found: list[str] = []
        with self._directory() as top, os.scandir(top) as entries:
            for entry in entries:
                found.append(entry.name)
                if len(found) > limit:
                    raise self.refuse(f"its output holds more than {limit} entries")
        return sorted(found)

    def exists(self, name: str) -> bool:
        with self._directory() as top:
            try:
                os.stat(self._checked(name), dir_fd=top, follow_symlinks=False)
            except FileNotFoundError:
                return False
        return True

    def read(self, name: str, limit: int) -> bytes | None:
        """The bytes of regular file ``name`` (None when absent); refused above ``limit``."""
        with self._open(name, limit) as fd:
            if fd is None:
                return None
            chunks, total = [], 0
            while block := os.read(fd, min(_CHUNK, limit + 1 - total)):
                chunks.append(block)
                total += len(block)
                if total > limit:
                    raise self.refuse(f"{name!r} grew past the limit of {limit} bytes")
            return b"".join(chunks)

    def read_json(self, name: str, limit: int = JSON_LIMIT) -> Any:
        """The JSON document in ``name`` (None when absent); malformed JSON is refused."""
        data = self.read(name, limit)
        if data is None:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise self.refuse(f"{name!r} is not valid JSON") from None

    def copy(self, name: str, dest: Path, limit: int) -> str:
        """Copy regular file ``name`` to a new file ``dest``; its sha256 (refused when absent)."""
        digest, total = hashlib.sha256(), 0
        with self._open(name, limit) as fd:
            if fd is None:
                raise self.refuse(f"{name!r} vanished from its output")
            target = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600)
            with os.fdopen(target, "wb") as sink:
                while block := os.read(fd, min(_CHUNK, limit + 1 - total)):
                    total += len(block)
                    if total > limit:
                        raise self.refuse(f"{name!r} grew past the limit of {limit} bytes")
                    digest.update(block)
                    sink.write(block)
        return digest.hexdigest()

    # -- plumbing --------------------------------------------------------------------

    def _checked(self, name: str) -> str:
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise self.refuse(f"{name!r} is not a plain name in its output")
        return name

    @contextlib.contextmanager
    def _directory(self) -> Iterator[int]:
        try:
            top = os.open(self.root, _DIR)
        except OSError as exc:
            raise self.refuse(f"its output directory cannot be opened ({exc.strerror})") \
                from None
        try:
            yield top
        finally:
            os.close(top)

    @contextlib.contextmanager
    def _open(self, name: str, limit: int) -> Iterator[int | None]:
        """A descriptor of regular file ``name``, or None when there is no such name."""
        name = self._checked(name)
        with self._directory() as top:
            try:
                before = os.stat(name, dir_fd=top, follow_symlinks=False)
            except FileNotFoundError:
                yield None
                return
            self._regular(name, before, limit)
            try:
                fd = os.open(name, _FILE, dir_fd=top)
            except OSError as exc:  # replaced since the lstat: a link (ELOOP), a socket (ENXIO)
                raise self.refuse(f"{name!r} cannot be opened safely "
                                  f"({errno.errorcode.get(exc.errno or 0, exc)})") from None
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
                raise self.refuse(f"{name!r} was replaced while the factory read it")
            self._regular(name, now, limit)
            yield fd
        finally:
            os.close(fd)

    def _regular(self, name: str, st: os.stat_result, limit: int) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise self.refuse(f"{name!r} in its output is a {kind(st.st_mode)}, not a regular "
                              "file")
        if st.st_size > limit:
            raise self.refuse(f"{name!r} is {st.st_size} bytes, over the limit of {limit}")


# -- removing ----------------------------------------------------------------------

def remove_tree(root: Path) -> None:
    """Remove ``root`` and everything under it, however deep, without following links.

    Raises OSError when something cannot be removed (the caller decides whether a
    leftover matters: the next run's sweep tries again).
    """
    try:
        top = os.open(root, _DIR)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        os.unlink(root)  # a link or a file where a directory was expected: remove the name
        return
    try:
        _clear(top)
    finally:
        os.close(top)
    os.rmdir(root)


def _batch(fd: int, size: int = 4096) -> list[tuple[str, bool]]:
    """Up to ``size`` (name, is-a-real-directory) pairs from directory ``fd``."""
    found: list[tuple[str, bool]] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            found.append((entry.name, is_dir))
            if len(found) >= size:
                break
    return found


def _clear(top: int) -> None:
    """Empty directory ``top``. Files go at once; a subdirectory's own subdirectories
    are first moved up into ``top`` (so the tree flattens as it goes, and no more than
    two descriptors are ever open), then the emptied subdirectory goes."""
    fresh = (f".rm-{os.getpid()}-{n}" for n in itertools.count())
    while batch := _batch(top):
        for name, is_dir in batch:
            if not is_dir:
                _unlink(top, name)
                continue
            sub = _open_writable(top, name)
            try:
                while inner := _batch(sub):
                    for child, child_is_dir in inner:
                        if child_is_dir:
                            _hoist(sub, child, top, fresh)
                        else:
                            _unlink(sub, child)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=top)


def _unlink(parent: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=parent)


def _hoist(parent: int, name: str, top: int, fresh: Iterator[str]) -> None:
    while True:
        try:
            os.rename(name, next(fresh), src_dir_fd=parent, dst_dir_fd=top)
            return
        except OSError as exc:  # the fresh name is taken (by the build's own names, say)
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise


def _open_writable(parent: int, name: str) -> int:
    """A descriptor of directory ``name``, made readable and writable by us first when
    a build took those rights away (it runs as our uid when we are not root)."""
    try:
        fd = os.open(name, _DIR, dir_fd=parent)
    except PermissionError:
        os.chmod(name, 0o700, dir_fd=parent)  # checked a directory just before; the build is gone
        fd = os.open(name, _DIR, dir_fd=parent)
    mode = os.fstat(fd).st_mode
    if mode & 0o700 != 0o700 and os.geteuid() != 0:
        os.fchmod(fd, stat.S_IMODE(mode) | 0o700)
    return fd
