"""Publishing the transparency log as static files (C2SP tlog-tiles, factory.sign.tiles).

``write_static`` brings a directory (the index's ``log/``, served at ``/log/``) up
to the log's current size: the hash tiles, entry bundles and signed timestamps
that are missing, then the signed checkpoint of that size, kept also as
``checkpoints/<size>``. The checkpoint is written last, so it never names data
that is not there yet. A tile (full, or partial of a given width) never changes
once written, so one that is there is skipped; a tile's partials are removed
once it is full. Nothing is rewritten when the size has not changed.
Called with the log's lock held, so two publishers never write a
smaller checkpoint over a larger one; a published checkpoint this log does not
extend (another log's directory, or a log restored from an old backup) is refused.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from factory._internal.atomic import write_bytes
from factory.errors import SigningError
from factory.sign.tiles import (
    CHECKPOINT,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileFormatError,
    bundles,
    checkpoint_path,
    entries_path,
    entry_bundle,
    hash_tile,
    index_path,
    parse_checkpoint,
    tile_path,
    tiles,
    timestamps_path,
)

if TYPE_CHECKING:
    from factory.sign._authority.log import LogEntry
    from factory.sign._authority.merkle import MerkleTree

PUBLIC = 0o644  # read by any web server serving the tree (docs/nginx.md)


def published(directory: Path) -> tuple[int, bytes | None]:
    """The tree size and root of the checkpoint published in ``directory`` ((0, None)
    when none is)."""
    try:
        note = parse_checkpoint((directory / CHECKPOINT).read_bytes())
    except (OSError, TileFormatError):
        return 0, None
    return note.size, note.root


def write_static(directory: Path, entries: Sequence[LogEntry], tree: MerkleTree,
                 checkpoint: str, timestamp: Callable[[LogEntry], str]) -> int:
    """Publish the log of ``entries`` (``tree`` holds their leaves) with ``checkpoint``
    (signed, of ``len(entries)``); ``timestamp(entry)`` is the entry's SET. Returns
    the number of files written (0: the published copy is of this size already)."""
    size = len(entries)
    before, root = published(directory)
    if before > size or (root is not None and tree.root(before) != root):
        raise SigningError(
            f"{directory} publishes a log of {before} entries that this log ({size} entries) "
            "does not extend",
            "the published log is not this one (or the log was restored from an older "
            "backup): restore the log; never publish over a log that is not its prefix")
    if root is not None and before == size:
        return 0
    written = 0
    for tile in tiles(size):
        path = directory / tile_path(tile.level, tile.n, tile.width)
        if not path.is_file():
            start = tile.n * TILE_WIDTH
            height = TILE_HEIGHT * tile.level
            _write(path, hash_tile([tree.node(height, start + j) for j in range(tile.width)]))
            written += 1
    for bundle in bundles(size):
        part = entries[bundle.n * TILE_WIDTH:bundle.n * TILE_WIDTH + bundle.width]
        path = directory / entries_path(bundle.n, bundle.width)
        if not path.is_file():
            _write(path, entry_bundle([e.body for e in part]))
            written += 1
        path = directory / timestamps_path(bundle.n, bundle.width)
        if not path.is_file():
            _write(path, b"".join(_timestamp_line(e, timestamp(e)) for e in part))
            written += 1
    _drop_partials(directory, before, size)
    kept = directory / checkpoint_path(size)
    if not kept.is_file():
        _write(kept, checkpoint.encode())
        written += 1
    _write(directory / CHECKPOINT, checkpoint.encode())
    return written + 1


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, data)
    os.chmod(path, PUBLIC)


def _timestamp_line(entry: LogEntry, set_b64: str) -> bytes:
    return (f'{{"integratedTime":{entry.integrated_time},"logIndex":{entry.index},'
            f'"signedEntryTimestamp":"{set_b64}"}}\n').encode()


def _drop_partials(directory: Path, before: int, size: int) -> None:
    """Remove the partial tiles of the tiles that became full between ``before`` and
    ``size`` (tlog-tiles lets a log drop a partial once its full tile is there; the
    narrower partials of a tile still partial stay, for the checkpoints that name them)."""
    levels = [("tile/entries", before, size), ("timestamps", before, size)]
    level = 0
    while size >> (TILE_HEIGHT * level):
        levels.append((f"tile/{level}", before >> (TILE_HEIGHT * level),
                       size >> (TILE_HEIGHT * level)))
        level += 1
    for prefix, old, new in levels:
        for n in range(old // TILE_WIDTH, new // TILE_WIDTH):
            partials = directory / prefix / f"{index_path(n)}.p"
            if partials.is_dir() and not partials.is_symlink():
                shutil.rmtree(partials, ignore_errors=True)


__all__ = ["published", "write_static"]
