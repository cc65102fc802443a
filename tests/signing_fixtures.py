"""Fixtures for the signing tests: an initialised embedded authority and signed files."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from factory.config import Settings
from factory.sign import init_authority, open_signer, publish_statement
from factory.sign._authority.ca import key_id
from factory.sign._authority.log import LogEntry, sign_note
from factory.sign._authority.merkle import MerkleTree, leaf_hash
from factory.sign.monitor import LogKey, TrustedRoot
from tests import factories

IDENTITY = "https://factory.invalid/builders/docker"
ISSUER = "https://factory.invalid/oidc"
WHEEL = "demo_pkg-1.0.0-py3-none-any.whl"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Signed:
    settings: Settings
    wheel: Path
    bundle: str  # over the wheel
    statement_bundle: str  # DSSE publish statement about the wheel
    trusted_root: Path  # the public copy in keys/

    @property
    def sha256(self) -> str:
        return sha256(self.wheel)


@pytest.fixture(name="authority")
def authority_fixture(tmp_path: Path) -> Settings:
    settings = factories.settings(tmp_path, project="project")
    init_authority(settings)
    return settings


@pytest.fixture(name="signed")
def signed_fixture(authority: Settings, tmp_path: Path) -> Signed:
    wheel = tmp_path / WHEEL
    wheel.write_bytes(b"PK\x03\x04 not really a zip, but bytes to sign " * 100)
    with open_signer(authority) as signer:
        # A few earlier entries, so that inclusion proofs have hashes to tamper with.
        for n in range(3):
            other = tmp_path / f"other-{n}.txt"
            other.write_text(f"other {n}")
            signer.sign_artifact(other)
        bundle = signer.sign_artifact(wheel)
        statement_bundle = signer.sign_statement(publish_statement(wheel.name, sha256(wheel)))
    return Signed(
        authority, wheel, bundle, statement_bundle, authority.public_keys_dir / "trusted_root.json"
    )


def edit_bundle(bundle_json: str, edit: Any) -> str:
    """Apply ``edit(dict)`` to a copy of the bundle and return the new JSON."""
    data = json.loads(bundle_json)
    edit(data)
    return json.dumps(data)


def flip_b64(value: str, index: int = -6) -> str:
    """Flip one bit of base64-encoded bytes."""
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# -- a transparency log without the authority (factory.sign._authority.static) --------------------
def synthetic_log(key: ec.EllipticCurvePrivateKey, bodies: list[bytes]
                  ) -> tuple[list[LogEntry], MerkleTree, str]:
    """The entries, tree and signed checkpoint of a log of ``bodies`` signed by ``key``
    (arguments of ``write_static``, with ``entry_timestamps(key)``): no fsync per entry."""
    entries = [LogEntry(i, 1_700_000_000 + i, body) for i, body in enumerate(bodies)]
    tree = MerkleTree()
    for body in bodies:
        tree.append(leaf_hash(body))
    root = base64.b64encode(tree.root(len(bodies))).decode()
    return entries, tree, sign_note(key, f"test-log - 1\n{len(bodies)}\n{root}\n")


def entry_timestamps(key: ec.EllipticCurvePrivateKey) -> Callable[[LogEntry], str]:
    """Each entry's SET, as the log signs it."""
    def timestamp(entry: LogEntry) -> str:
        payload = rfc8785.dumps({"body": base64.b64encode(entry.body).decode(),
                                 "integratedTime": entry.integrated_time,
                                 "logID": key_id(key.public_key()).hex(),
                                 "logIndex": entry.index})
        return base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    return timestamp


def log_root(key: ec.EllipticCurvePrivateKey) -> TrustedRoot:
    """A trusted root naming ``key`` as its log key (and no CA)."""
    kid = key_id(key.public_key())
    return TrustedRoot({kid[:4]: LogKey(kid, key.public_key())}, ())
