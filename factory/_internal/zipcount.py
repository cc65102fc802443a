"""What a zip's end record declares, read before zipfile parses its members.

``zipfile.ZipFile`` builds a ZipInfo for every central-directory entry when it
opens an archive, walking the central directory by its size (not by the count the
end record claims): a 64 MiB file of empty members holds some 800,000 of them
(about 0.7 GiB and tens of seconds on a loaded machine) before any caller can
count them. An upstream-controlled zip is checked with ``too_large`` first.
"""

from __future__ import annotations

import zipfile
from typing import BinaryIO

# Bytes of central directory a wheel may have: 100,000 members of names of about 34
# characters; zipfile's memory for it stays under about 100 MiB.
MAX_CENTRAL_DIRECTORY = 8 << 20


def too_large(handle: BinaryIO, max_members: int,
              max_directory: int = MAX_CENTRAL_DIRECTORY) -> str | None:
    """Why the zip in ``handle`` is not opened (its end record declares more than
    ``max_members`` members or a central directory above ``max_directory`` bytes), or
    None (including when there is no end record: zipfile then says it is not a zip).
    Leaves the handle's position anywhere."""
    record = zipfile._EndRecData(handle)  # type: ignore[attr-defined]  # stable since 2.x
    if not record:
        return None
    members = int(record[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]
    directory = int(record[zipfile._ECD_SIZE])  # type: ignore[attr-defined]
    if members > max_members:
        return f"its end record declares {members} members (more than {max_members})"
    if directory > max_directory:
        return (f"its central directory is {directory} bytes (more than "
                f"{max_directory >> 20} MiB)")
    return None
