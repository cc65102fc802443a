"""Reading a file that something untrusted may have replaced: the one primitive.

Whoever could write a directory the factory reads (a build's output, the index tree, a
published log, evidence beside a wheel) could put a link, a FIFO or a device where a
file was meant, or a huge file. ``read_plain`` opens without following a link and
without blocking, reads only a regular file, and never more than ``limit`` bytes; the
caller decides what a refusal means to it (an error line, or "no such evidence").
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO


class NotPlain(Exception):
    """Why the file was not read, in words for a message ("a symbolic link", ...)."""

    def __init__(self, why: str, code: int | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.errno = code  # the OSError's, when it was one (ENOTDIR: a part is a file)


class NotRegular(OSError):
    """What ``open_plain`` found is not a regular file (a FIFO, device, directory)."""

    def __init__(self) -> None:
        super().__init__(errno.EINVAL, "not a regular file")


def open_plain(path: str | os.PathLike[str], *, follow_links: bool = False) -> BinaryIO:
    """The regular file at ``path``, open for reading: without blocking (a FIFO swapped
    in) and, unless ``follow_links``, never through a link (ELOOP). OSError otherwise;
    NotRegular for anything but a regular file. For a reader that streams; ``read_plain``
    reads a bounded whole."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses a directory
        os.close(fd)
        raise NotRegular()
    return os.fdopen(fd, "rb")


def read_plain(path: str | os.PathLike[str], limit: int, *,
               follow_links: bool = False) -> bytes | None:
    """The bytes of the regular file at ``path`` (at most ``limit``); None when there is
    nothing there (a part of the path that is a file is NotPlain: something is wrong);
    NotPlain for a link, anything but a regular file, more than ``limit``
    bytes, or a file that cannot be read. ``follow_links``: a link is followed (a path
    the operator chose, e.g. a pinned trust file), the rest holds for what it names."""
    try:
        handle = open_plain(path, follow_links=follow_links)
    except FileNotFoundError:
        return None
    except NotRegular:
        raise NotPlain("not a regular file") from None
    except OSError as exc:
        raise NotPlain("a symbolic link" if exc.errno == errno.ELOOP
                       else f"cannot be read ({exc.strerror})", exc.errno) from None
    with handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise NotPlain(f"cannot be read ({exc.strerror})") from None
    if len(data) > limit:
        raise NotPlain(f"larger than {limit} bytes")
    return data
