"""What the admission gate finds and refuses: errors, allowances, members, file kinds."""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from typing import IO

from factory.errors import FactoryError


class AdmissionError(FactoryError):
    """A wheel is not what was approved: it is neither signed nor published."""

    default_hint = "the wheel was not signed or published; rebuild it or fix its recipe"

    def __init__(self, message: str, hint: str | None = None) -> None:
        # One line, whatever a library's message (packaging's carets) or a name holds.
        super().__init__(" ".join(line.strip() for line in message.splitlines()), hint)


@dataclass(frozen=True)
class Limits:
    """Bounds of what the gate reads (a bomb is refused, never read to the end)."""

    max_members: int = 200_000
    max_total_bytes: int = 4 << 30  # uncompressed, per archive, as its headers declare
    max_inner_archive_bytes: int = 256 << 20  # an archive inside the sdist, read whole


DEFAULT_LIMITS = Limits()
_CHUNK = 1 << 20
_HEAD = 4096
STRONG_HASHES = frozenset({"sha256", "sha384", "sha512"})
ALLOW_PTH, ALLOW_PREBUILT = "allow_pth", "allow_prebuilt"


@dataclass(frozen=True)
class Allowance:
    """One file admitted only because the recipe allows it (recorded in provenance)."""

    rule: str  # the recipe key: allow_pth | allow_prebuilt
    allowed_by: str  # the glob that matched, or "true"
    location: str  # sdist | wheel
    path: str  # in the sdist (below its top directory) or in the wheel
    sha256: str
    what: str  # e.g. "ELF object", "start-up hook (.pth)", "copy of sdist file x.so"


@dataclass(frozen=True)
class Admission:
    allowances: tuple[Allowance, ...] = ()


@dataclass(frozen=True)
class Member:
    """One regular file of an archive, hashed."""

    name: str
    sha256: str
    size: int
    kind: str | None  # binary_kind() of its first bytes and name


def is_dir(info: zipfile.ZipInfo) -> bool:
    return info.filename.endswith("/")


def hash_stream(stream: IO[bytes]) -> tuple[str, bytes]:
    """(sha256, first bytes) of a stream, read in chunks and closed."""
    digest, head = hashlib.sha256(), b""
    with stream:
        while chunk := stream.read(_CHUNK):
            if len(head) < _HEAD:
                head += chunk[:_HEAD - len(head)]
            digest.update(chunk)
    return digest.hexdigest(), head


_MAGIC = (
    (b"\x7fELF", "ELF object"),
    (b"\xfe\xed\xfa\xce", "Mach-O object"), (b"\xfe\xed\xfa\xcf", "Mach-O object"),
    (b"\xce\xfa\xed\xfe", "Mach-O object"), (b"\xcf\xfa\xed\xfe", "Mach-O object"),
    (b"\xca\xfe\xba\xbe", "Mach-O universal binary or Java class"),
    (b"\xca\xfe\xba\xbf", "Mach-O universal binary"),
    (b"!<arch>\n", "ar archive (static library)"),
    (b"PK\x03\x04", "zip archive"), (b"PK\x05\x06", "zip archive"), (b"PK\x07\x08", "zip archive"),
    (b"\x00asm", "WebAssembly module"),
    (b"BC\xc0\xde", "LLVM bitcode"), (b"\xde\xc0\x17\x0b", "LLVM bitcode"),
)
_SUFFIX = re.compile(r"\.(so(\.\d+)*|o|a|lib|obj|pyd|dll|dylib|exe|whl|egg|jar|zip|pyc|pyo|wasm)$",
                     re.IGNORECASE)


def binary_kind(head: bytes, name: str) -> str | None:
    """What compiled or archived thing a file is, by its first bytes and its name."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:2] == b"MZ" and len(head) >= 0x40:
        offset = int.from_bytes(head[0x3C:0x40], "little")
        if head[offset:offset + 4] == b"PE\0\0":
            return "PE executable"
    found = _SUFFIX.search(name)
    return f"{found.group(0).lower()} file" if found else None

