"""The published form of a transparency log: C2SP tlog-tiles and signed checkpoints.

What the embedded log publishes (``factory.sign._authority.static``) and what
``factory log verify|monitor`` reads (``factory.sign.monitor``), under one
prefix (``/log/`` of the index):

- ``checkpoint``: the C2SP tlog-checkpoint, a signed note: the origin line, the
  tree size in decimal, the base64 RFC 6962 root hash, a blank line, then one
  signature line ``— <name> <base64(4-byte key hint || ECDSA signature)>`` by
  the log key of the trusted root (the key hint is the first four bytes of the
  RFC 6962 key ID, as Rekor v1 signs its checkpoints);
- ``tile/<L>/<N>[.p/<W>]``: Merkle tiles of height 8 (level L holds the hashes of
  the complete subtrees of 256^L leaves; ``N`` is written in three-digit groups,
  all but the last prefixed with ``x``: 1234067 is ``x001/x234/067``);
- ``tile/entries/<N>[.p/<W>]``: entry bundles, each entry (the Rekor body the
  log hashed) prefixed by its length as a big-endian uint16;
- ``timestamps/<N>[.p/<W>]`` (ours, outside the spec): per entry of the bundle
  one JSON line ``{"logIndex", "integratedTime", "signedEntryTimestamp"}``: the
  log's signed time of the entry (Rekor's SET), which the Merkle tree does not hold;
- ``checkpoints/<size>``: earlier checkpoints, kept.

Everything here is a pure function of bytes, bounded: a monitor parses what a
possibly hostile server sent with it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = 32
MAX_ENTRY_BYTES = 0xFFFF  # an entry's length is a uint16 in an entry bundle
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_ENTRY_BYTES)
MAX_TIMESTAMPS_BYTES = TILE_WIDTH * 1024
MAX_CHECKPOINT_BYTES = 8 * 1024
MAX_SIGNATURES = 16
MAX_TREE_SIZE = 1 << 40
MAX_LEVEL = 5  # 256^5 = 2^40 leaves

PREFIX = "log"  # the index's directory of the log, served at /log/
CHECKPOINT = "checkpoint"
CHECKPOINTS_DIR = "checkpoints"
EM_DASH = "\u2014"

_GROUP = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")
_SIZE = re.compile(r"0|[1-9][0-9]{0,12}")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_LEVEL = re.compile(f"[0-{MAX_LEVEL}]")


class TileFormatError(ValueError):
    """Published log data that does not have the tlog-tiles form."""


# -- paths -------------------------------------------------------------------------------------
def index_path(n: int) -> str:
    """``N`` as tlog-tiles path elements: 1234067 -> ``x001/x234/067``."""
    if n < 0:
        raise ValueError("a tile index is never negative")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def _suffix(width: int) -> str:
    if not 0 < width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is outside 1..{TILE_WIDTH}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, n: int, width: int) -> str:
    return f"tile/{level}/{index_path(n)}{_suffix(width)}"


def entries_path(n: int, width: int) -> str:
    return f"tile/entries/{index_path(n)}{_suffix(width)}"


def timestamps_path(n: int, width: int) -> str:
    return f"timestamps/{index_path(n)}{_suffix(width)}"


def checkpoint_path(size: int) -> str:
    return f"{CHECKPOINTS_DIR}/{size}"


@dataclass(frozen=True)
class Tile:
    """A tile of a tree: ``level`` (-1: the entry bundle), number ``n``, ``width``."""

    level: int
    n: int
    width: int


def tiles(size: int) -> Iterator[Tile]:
    """Every hash tile (levels 0 and up) a tree of ``size`` leaves publishes."""
    level = 0
    while size >> (TILE_HEIGHT * level):
        nodes = size >> (TILE_HEIGHT * level)  # complete subtrees of 256^level leaves
        for n in range(-(-nodes // TILE_WIDTH)):
            yield Tile(level, n, min(TILE_WIDTH, nodes - n * TILE_WIDTH))
        level += 1


def bundles(size: int) -> Iterator[Tile]:
    """The entry bundles of a tree of ``size`` leaves (level -1)."""
    for n in range(-(-size // TILE_WIDTH)):
        yield Tile(-1, n, min(TILE_WIDTH, size - n * TILE_WIDTH))


def parse_path(path: str) -> tuple[str, int, int, int] | None:
    """``(kind, level, n, width)`` of a path the log publishes, or None.

    kind is ``checkpoint`` (n = 0), ``checkpoints`` (n = the size), ``tile``,
    ``entries`` or ``timestamps``; the grammar is strict (no ``..``, no empty or
    extra element), so a server can map the path onto its tree without a lookup.
    """
    if path == CHECKPOINT:
        return ("checkpoint", 0, 0, 0)
    parts = path.split("/")
    if len(parts) == 2 and parts[0] == CHECKPOINTS_DIR and _SIZE.fullmatch(parts[1]):
        return ("checkpoints", 0, int(parts[1]), 0)
    if parts[:2] == ["tile", "entries"]:
        kind, level, rest = "entries", -1, parts[2:]
    elif parts[0] == "timestamps":
        kind, level, rest = "timestamps", -1, parts[1:]
    elif parts[0] == "tile" and len(parts) > 2 and _LEVEL.fullmatch(parts[1]):
        kind, level, rest = "tile", int(parts[1]), parts[2:]
    else:
        return None
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH.fullmatch(rest[-1]) or int(rest[-1]) >= TILE_WIDTH:
            return None
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
    if not rest or len(rest) > 5 or not _LAST.fullmatch(rest[-1]):
        return None
    if not all(_GROUP.fullmatch(g) for g in rest[:-1]) or (len(rest) > 1 and rest[0] == "x000"):
        return None
    n = int("".join(g.lstrip("x") for g in rest))
    return (kind, level, n, width)


# -- contents ----------------------------------------------------------------------------------
def hash_tile(hashes: list[bytes]) -> bytes:
    return b"".join(hashes)


def parse_hash_tile(data: bytes, width: int) -> list[bytes]:
    if len(data) != width * HASH_SIZE:
        raise TileFormatError(f"a hash tile of width {width} has {width * HASH_SIZE} bytes, "
                              f"not {len(data)}")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def entry_bundle(bodies: list[bytes]) -> bytes:
    out = bytearray()
    for body in bodies:
        if len(body) > MAX_ENTRY_BYTES:
            raise ValueError(f"an entry of {len(body)} bytes does not fit an entry bundle")
        out += len(body).to_bytes(2, "big") + body
    return bytes(out)


def parse_entry_bundle(data: bytes, width: int) -> list[bytes]:
    """The ``width`` entries of a bundle; anything else (short, long, trailing) is an error."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if len(entries) == width:
            raise TileFormatError(f"an entry bundle of width {width} has trailing bytes")
        if at + 2 > len(data):
            raise TileFormatError("an entry bundle ends inside a length prefix")
        size = int.from_bytes(data[at:at + 2], "big")
        if at + 2 + size > len(data):
            raise TileFormatError("an entry bundle ends inside an entry")
        entries.append(data[at + 2:at + 2 + size])
        at += 2 + size
    if len(entries) != width:
        raise TileFormatError(f"an entry bundle of width {width} holds {len(entries)} entries")
    return entries


# -- checkpoints -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Note:
    """A parsed (not yet verified) checkpoint: its fields, the signed text and signatures."""

    origin: str
    size: int
    root: bytes
    signed: bytes  # the note's text, final newline included: what each signature covers
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (name, key hint, signature)
    text: str


def parse_checkpoint(data: bytes) -> Note:
    """The C2SP signed-note checkpoint in ``data``; TileFormatError if it is not one."""
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise TileFormatError(f"checkpoint larger than {MAX_CHECKPOINT_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TileFormatError("checkpoint is not UTF-8") from None
    note, sep, sigs = text.partition("\n\n")
    if not sep or not sigs.endswith("\n") or "\r" in text:
        raise TileFormatError("checkpoint is not a signed note (text, blank line, signatures)")
    lines = note.split("\n")
    if len(lines) < 3 or not lines[0] or not lines[0].isprintable():
        raise TileFormatError("checkpoint lacks an origin, a tree size and a root hash")
    if not _SIZE.fullmatch(lines[1]) or int(lines[1]) > MAX_TREE_SIZE:
        raise TileFormatError(f"checkpoint tree size is not a decimal up to {MAX_TREE_SIZE}")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        root = b""
    if len(root) != HASH_SIZE:
        raise TileFormatError("checkpoint root hash is not 32 base64-encoded bytes")
    signatures = []
    for line in sigs[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH or not parts[1]:
            raise TileFormatError("checkpoint signature line is not '— <name> <signature>'")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise TileFormatError("checkpoint signature is not base64") from None
        if len(raw) < 5:
            raise TileFormatError("checkpoint signature is too short")
        signatures.append((parts[1], raw[:4], raw[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise TileFormatError(f"checkpoint carries {len(signatures)} signatures "
                              f"(1 to {MAX_SIGNATURES})")
    return Note(lines[0], int(lines[1]), root, (note + "\n").encode(), tuple(signatures), text)


__all__ = [
    "CHECKPOINT",
    "MAX_ENTRY_BYTES",
    "PREFIX",
    "TILE_WIDTH",
    "Note",
    "Tile",
    "TileFormatError",
    "bundles",
    "checkpoint_path",
    "entries_path",
    "entry_bundle",
    "hash_tile",
    "index_path",
    "parse_checkpoint",
    "parse_entry_bundle",
    "parse_hash_tile",
    "parse_path",
    "tile_path",
    "tiles",
    "timestamps_path",
]
