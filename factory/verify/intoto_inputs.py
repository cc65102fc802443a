"""What one wheel's in-toto verdict is a function of, read once, without in-toto itself.

factory.verify.intoto verifies a wheel's layout and links from the files it reads in
the wheel's ``.in-toto`` directory (``LayoutFiles``: each read once, as a regular
file, never through a link, bounded, and kept with its sha256), the owner key, the
files the auditor holds (name -> sha256, the wheel's among them) and the wheel's name.
``verdict_key`` is the sha256 of all of them: the early child (factory.verify.early)
verifies in-toto while the parent imports the verifier and says its verdict under
that key; a worker re-reads the files the child read, and takes the verdict only
when its own key is the same, i.e. when it would verify exactly the same bytes with
the same key. This module imports nothing of in-toto, so a parent whose child
answered every wheel never loads it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from factory._internal.plainfile import NotPlain, read_plain
from factory.errors import VerificationError

METADATA_LIMIT = 64 << 20  # bytes of one layout or link file (the factory's: a few KiB)


class LayoutFiles:
    """The files of one ``.in-toto`` directory, each read at most once.

    in-toto's Metadata.load is open() and json.load: a FIFO planted as a link file
    blocked the worker for ever, a link to /proc/self/pagemap or /dev/zero read until
    memory ran out; here each file is read as a regular file, never through a link, up
    to METADATA_LIMIT bytes. ``plain`` is False once a name was something else (a link,
    a FIFO, too large): what verification then reports depends on more than bytes, so
    no verdict is keyed on it. ``beyond`` is set by a verifier that read more than these
    files (a sublayout's own directory): no verdict is keyed on that either.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.plain = not directory.is_symlink()
        self.beyond = False
        # The layout's expiry once a verifier found it unexpired (verifying later may
        # find it expired: a verdict kept for later holds only while still_valid).
        self.expires: str | None = None
        self._read: dict[str, bytes | None | VerificationError] = {}

    def read(self, name: str) -> bytes | None:
        """The bytes of ``name`` (None when absent), the same on every call; a
        VerificationError naming the file when it is not a regular file of at most
        METADATA_LIMIT bytes."""
        if name not in self._read:
            path = self.directory / name
            try:
                self._read[name] = read_plain(path, METADATA_LIMIT)
            except NotPlain as exc:
                self.plain = False
                self._read[name] = VerificationError(
                    f"{self.directory.name}/{name} is {exc.why}"
                    if exc.why.startswith(("a ", "not ", "larger"))
                    else f"{self.directory.name}/{name} {exc.why}")
        found = self._read[name]
        if isinstance(found, VerificationError):
            raise VerificationError(found.message)
        return found

    def names(self) -> list[str]:
        """The names read, in the order first read."""
        return list(self._read)

    def digests(self) -> list[tuple[str, str | None]]:
        """(name, sha256 of its bytes or None when absent) of every name read, in order;
        only meaningful while ``plain``."""
        return [(name, hashlib.sha256(data).hexdigest() if isinstance(data, bytes) else None)
                for name, data in self._read.items()]

    def reread(self, names: Iterable[str]) -> bool:
        """Read ``names`` (another reader's, in its order); whether each was a regular file
        or absent. A file read before keeps the bytes read then."""
        for name in names:
            try:
                self.read(name)
            except VerificationError:
                return False
        return self.plain


def still_valid(expires: str | None) -> bool:
    """Whether a verdict for which the layout was found unexpired, expiring at ``expires``,
    is still what verifying now gives (in-toto's verify_layout_expiration, compared the
    same way); None: the verdict did not depend on the time."""
    if expires is None:
        return True
    import datetime

    import iso8601

    try:
        return iso8601.parse_date(expires) > datetime.datetime.now(datetime.UTC)
    except Exception:  # (parsed when the verdict was found: no verdict then)
        return False


def verdict_key(files: LayoutFiles, owner_key: Mapping[str, Any], held: Mapping[str, str],
                wheel_name: str) -> str:
    """The sha256 of everything a verdict on ``files`` depends on (see the module)."""
    inputs = {"files": files.digests(), "owner": owner_key, "held": dict(held),
              "wheel": wheel_name}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()
