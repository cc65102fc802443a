"""Fixtures for the signing tests: an initialised embedded authority and signed files."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from factory.config import Settings
from factory.sign import init_authority, open_signer, publish_statement
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
