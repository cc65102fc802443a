"""The authority's transparency log: append-only, persisted, crash-safe.

Entries live in one append-only file, one JSON line each. An entry is written
and fsync'ed before the log answers for it, so a crash can lose only an entry
nobody was told about: after a crash the log never signs a different entry at
an index it already vouched for (it never forks). A torn last line (a crash in
the middle of a write that was never acknowledged) is cut off on the next
append. An exclusive file lock serialises appends across processes, so several
factory processes may share one state directory.

Every answer carries an RFC 6962 inclusion proof, a signed checkpoint (a
signed note, as Rekor serves) and a signed entry timestamp (SET) over the
RFC 8785 form of ``{body, integratedTime, logID, logIndex}``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from factory._internal.atomic import write_text
from factory.errors import SigningError
from factory.sign._authority.ca import key_id
from factory.sign._authority.keys import LOG_NAME
from factory.sign._authority.merkle import MerkleTree, leaf_hash
from factory.sign._authority.static import write_static

ENTRIES_FILE = "entries.jsonl"
CHECKPOINT_FILE = "checkpoint"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class LogEntry:
    index: int
    integrated_time: int
    body: bytes


def sign_note(key: ec.EllipticCurvePrivateKey, note: str) -> str:
    """A signed note (checkpoint format): the text, a blank line, one signature line."""
    signature = key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
    hint = key_id(key.public_key())[:4]
    return f"{note}\n\u2014 {LOG_NAME} {base64.b64encode(hint + signature).decode()}\n"


class TransparencyLog:
    """The persisted log of one authority (thread- and process-safe appends)."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, origin: str) -> None:
        self.directory = directory
        self._key = key
        self._origin = origin
        self.log_id = key_id(key.public_key())
        self._tree = MerkleTree()
        self._entries: list[LogEntry] = []
        self._by_leaf: dict[bytes, int] = {}
        self._offset = 0  # bytes of the entries file already loaded
        self._mutex = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / ENTRIES_FILE
        with self._locked():
            self._refresh()

    # -- persistence -----------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex, (self.directory / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        """Load entries other processes appended; cut a torn last line."""
        if not self._path.exists():
            self._path.touch()
            _fsync_dir(self.directory)
        with self._path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            # Only an unacknowledged write can be torn: we hold the lock and
            # acknowledge after fsync. Dropping it cannot fork the log.
            os.truncate(self._path, self._offset + len(complete))
        for line in complete.splitlines():
            self._add(self._parse(line))
        self._offset += len(complete)

    def _parse(self, line: bytes) -> LogEntry:
        try:
            raw = json.loads(line)
            entry = LogEntry(
                int(raw["logIndex"]), int(raw["integratedTime"]), base64.b64decode(raw["body"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SigningError(
                f"{self._path}: corrupt log line {len(self._entries)} ({exc})",
                "restore the authority's log from backup; never edit it by hand",
            ) from None
        if entry.index != len(self._entries):
            raise SigningError(
                f"{self._path}: entry {entry.index} found at position {len(self._entries)}",
                "restore the authority's log from backup; never edit it by hand",
            )
        return entry

    def _add(self, entry: LogEntry) -> None:
        leaf = leaf_hash(entry.body)
        self._entries.append(entry)
        self._tree.append(leaf)
        self._by_leaf.setdefault(leaf, entry.index)

    def append(self, body: bytes) -> LogEntry:
        """Persist a new entry (durably) and return it."""
        with self._locked():
            self._refresh()
            entry = LogEntry(len(self._entries), int(time.time()), body)
            line = (
                json.dumps(
                    {
                        "logIndex": entry.index,
                        "integratedTime": entry.integrated_time,
                        "body": base64.b64encode(body).decode(),
                    },
                    separators=(",", ":"),
                ).encode()
                + b"\n"
            )
            with self._path.open("ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._offset += len(line)
            self._add(entry)
            # The latest signed tree head, for auditors who keep checkpoints.
            write_text(self.directory / CHECKPOINT_FILE, self._checkpoint(len(self._entries)))
            os.chmod(self.directory / CHECKPOINT_FILE, 0o644)
            return entry

    # -- answers ---------------------------------------------------------------
    @property
    def size(self) -> int:
        with self._locked():
            self._refresh()
            return len(self._entries)

    def _checkpoint(self, size: int) -> str:
        root = base64.b64encode(self._tree.root(size)).decode()
        return sign_note(self._key, f"{self._origin}\n{size}\n{root}\n")

    def _set(self, entry: LogEntry) -> str:
        payload = rfc8785.dumps(
            {
                "body": base64.b64encode(entry.body).decode(),
                "integratedTime": entry.integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": entry.index,
            }
        )
        return base64.b64encode(self._key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()

    def response(self, entry: LogEntry) -> dict[str, Any]:
        """The Rekor v1 ``{uuid: LogEntry}`` answer for an entry, in the current tree."""
        with self._locked():
            self._refresh()
            size = len(self._entries)
            proof = self._tree.inclusion_proof(entry.index, size)
            root = self._tree.root(size)
            checkpoint = self._checkpoint(size)
        return {
            leaf_hash(entry.body).hex(): {
                "body": base64.b64encode(entry.body).decode(),
                "integratedTime": entry.integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": entry.index,
                "verification": {
                    "inclusionProof": {
                        "checkpoint": checkpoint,
                        "hashes": [h.hex() for h in proof],
                        "logIndex": entry.index,
                        "rootHash": root.hex(),
                        "treeSize": size,
                    },
                    "signedEntryTimestamp": self._set(entry),
                },
            }
        }

    def entry(self, index: int) -> LogEntry:
        with self._locked():
            self._refresh()
            if not 0 <= index < len(self._entries):
                raise KeyError(index)
            return self._entries[index]

    def find(self, uuid: str) -> LogEntry:
        """The entry whose leaf hash (Rekor's UUID, optionally tree-prefixed) is ``uuid``."""
        wanted = bytes.fromhex(uuid[-64:])
        with self._locked():
            self._refresh()
            if wanted not in self._by_leaf:
                raise KeyError(uuid)
            return self._entries[self._by_leaf[wanted]]

    def info(self) -> dict[str, Any]:
        """Rekor's ``GET /api/v1/log``: the current signed tree head."""
        with self._locked():
            self._refresh()
            size = len(self._entries)
            return {
                "rootHash": self._tree.root(size).hex(),
                "treeSize": size,
                "signedTreeHead": self._checkpoint(size),
                "treeID": self._origin.rsplit(" ", 1)[-1],
            }

    def publish(self, directory: Path) -> int:
        """Bring the static copy of the log in ``directory`` (tlog-tiles, a signed
        checkpoint) up to the current size; returns that size. Appends wait meanwhile:
        no other publisher can write an older checkpoint over this one."""
        with self._locked():
            self._refresh()
            size = len(self._entries)
            write_static(directory, self._entries, self._tree, self._checkpoint(size), self._set)
            return size

    def consistency(self, first: int, last: int) -> dict[str, Any]:
        """Rekor's ``GET /api/v1/log/proof``: proof that tree ``first`` is a prefix of ``last``."""
        with self._locked():
            self._refresh()
            proof = self._tree.consistency_proof(first, last)
            return {"rootHash": self._tree.root(last).hex(), "hashes": [h.hex() for h in proof]}


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
