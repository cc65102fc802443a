"""Whether a wheel's bytes are an intact zip (the in-toto layout's ``receive`` inspection),
with work bounded by the archive's size, not by what its central directory claims.

The stock inspection (factory.attest.intoto._ZIP_CHECK) is ``ZipFile(path).testzip()``,
which inflates every member the central directory names. A served wheel's central
directory is the attacker's: it can name the same deflated bytes many times, or place
one member's header inside another's data, and every CRC still checks. 65 KiB naming a
64 MiB member 8 times inflate 512 MiB; 6 MB naming it 100,000 times, some 6 TB (hours),
and `verify --all` waited on it in its early child and in a worker. An archive the
factory writes names each member once, in disjoint byte ranges, and unpacks to far less
than MAX_UNPACKED. So the central directory is read first (the end record's member count
before zipfile parses it, factory._internal.zipcount) and the archive is not intact,
without inflating a byte, when members' byte ranges overlap or their declared sizes add
up to more than MAX_UNPACKED; zipfile inflates no member past its declared size, so the
rest is bounded. Stdlib only: the early child uses it before any heavy import.
"""

from __future__ import annotations

import zipfile
from typing import BinaryIO

from factory._internal.zipcount import too_large

MAX_MEMBERS = 100_000
MAX_UNPACKED = 4 << 30  # bytes a wheel's members may declare in all (inflated, at most)
_LOCAL_HEADER = 30  # bytes of a local file header before its name


def intact(handle: BinaryIO) -> bool:
    """Whether the zip in ``handle`` holds members in disjoint byte ranges, declaring at
    most MAX_UNPACKED bytes in all, each of which inflates to its CRC (testzip); raises
    what testzip raises (zlib.error for a member that does not inflate)."""
    try:
        if too_large(handle, MAX_MEMBERS) is not None:
            return False
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            if not _bounded(archive):
                return False
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _bounded(archive: zipfile.ZipFile) -> bool:
    members = sorted(archive.infolist(), key=lambda m: m.header_offset)
    if sum(m.file_size for m in members) > MAX_UNPACKED:
        return False
    ends = [m.header_offset for m in members[1:]] + [archive.start_dir]  # type: ignore[attr-defined]
    for member, end in zip(members, ends, strict=True):
        name = member.orig_filename.encode("utf-8" if member.flag_bits & 0x800 else "cp437")
        # The least its local header and data occupy; the next member (or the central
        # directory) must start past it: overlapping ranges mean bytes counted twice.
        if member.header_offset + _LOCAL_HEADER + len(name) + member.compress_size > end:
            return False
    return True
