"""Checking the transparency log from outside: checkpoints and their consistency.

A bundle carries a signed checkpoint (the log's size and root when it
answered). An auditor who kept an older checkpoint can ask the log for a
consistency proof and check that the newer checkpoint extends the older one:
had the log been rewritten or forked, no such proof exists. Only the public
trusted root is needed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from factory.config import Settings
from factory.errors import VerificationError
from factory.sign._authority.merkle import verify_consistency
from factory.sign._authority.service import Authority


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    text: str


def _tlog_keys(trusted_root: Path) -> dict[bytes, ec.EllipticCurvePublicKey]:
    """Log keys of the trusted root by their 4-byte note key hint."""
    try:
        root = json.loads(Path(trusted_root).read_text(encoding="utf-8"))
        keys = {}
        for tlog in root["tlogs"]:
            key_id = base64.b64decode(tlog["logId"]["keyId"])
            key = serialization.load_der_public_key(base64.b64decode(tlog["publicKey"]["rawBytes"]))
            if isinstance(key, ec.EllipticCurvePublicKey):
                keys[key_id[:4]] = key
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"cannot read log keys from {trusted_root}: {exc}") from None
    return keys


def verify_checkpoint(text: str, trusted_root: Path) -> Checkpoint:
    """Parse a signed checkpoint and check its signature by a log of the trusted root."""
    note, sep, signatures = text.partition("\n\n")
    lines = note.split("\n")
    if not sep or len(lines) < 3:
        raise VerificationError("malformed checkpoint: expected origin, size, root and signatures")
    try:
        size, root = int(lines[1]), base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error):
        raise VerificationError("malformed checkpoint: bad size or root hash") from None
    keys = _tlog_keys(trusted_root)
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014":
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            continue
        key = keys.get(raw[:4])
        if key is None:
            continue
        try:
            key.verify(raw[4:], (note + "\n").encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise VerificationError("checkpoint signature is invalid") from None
        return Checkpoint(lines[0], size, root, text)
    raise VerificationError("checkpoint is not signed by a log of the trusted root")


def checkpoint_of(bundle_json: str) -> str:
    """The signed checkpoint inside a Sigstore bundle."""
    try:
        entry = json.loads(bundle_json)["verificationMaterial"]["tlogEntries"][0]
        return str(entry["inclusionProof"]["checkpoint"]["envelope"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise VerificationError("bundle carries no checkpoint") from None


def check_consistency(
    older: str, newer: str, proof: list[str], trusted_root: Path
) -> tuple[Checkpoint, Checkpoint]:
    """Raise VerificationError unless ``newer`` extends ``older`` (both signed)."""
    old, new = verify_checkpoint(older, trusted_root), verify_checkpoint(newer, trusted_root)
    if old.origin != new.origin:
        raise VerificationError(f"checkpoints of different logs: {old.origin} / {new.origin}")
    try:
        hashes_ = [bytes.fromhex(h) for h in proof]
        verify_consistency(old.size, old.root, new.size, new.root, hashes_)
    except ValueError as exc:
        raise VerificationError(f"log is not consistent with the older checkpoint: {exc}") from None
    return old, new


def consistency_proof(settings: Settings, first: int, last: int | None = None) -> list[str]:
    """From the embedded authority's persisted log: proof that size ``first`` prefixes ``last``."""
    log = Authority(settings.authority_dir).log
    size = log.size if last is None else last
    try:
        return list(log.consistency(first, size)["hashes"])
    except ValueError as exc:
        raise VerificationError(f"no consistency proof: {exc}") from None


def current_checkpoint(settings: Settings) -> str:
    return str(Authority(settings.authority_dir).log.info()["signedTreeHead"])
