"""The authority's key material, kept in the state directory.

Four ECDSA keys, each with one job, so that any one can be rotated alone:
the CA key signs leaf certificates, the CT key signs SCTs, the log key signs
entry timestamps and checkpoints, and the token key signs the identity tokens
the CA accepts. Keys are created once and never overwritten; a missing piece
is created, an existing one is kept.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from factory._internal.atomic import write_bytes, write_json
from factory._internal.dirlock import locked
from factory.errors import SigningError
from factory.sign._authority.ca import make_ca_certificate

ORGANIZATION = "artifact-factory"
LOG_NAME = "factory-rekor"
META_FILE = "authority.json"
CA_CERT_FILE = "ca.pem"
_KEY_FILES = {
    "ca": "ca-key.pem",
    "ct": "ctlog-key.pem",
    "log": "tlog-key.pem",
    "token": "token-key.pem",
}


@dataclass(frozen=True)
class AuthorityKeys:
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate
    ct_key: ec.EllipticCurvePrivateKey
    log_key: ec.EllipticCurvePrivateKey
    token_key: ec.EllipticCurvePrivateKey
    tree_id: int
    created: datetime

    @property
    def origin(self) -> str:
        """The checkpoint origin line, shaped like Rekor's ``<name> - <tree id>``."""
        return f"{LOG_NAME} - {self.tree_id}"


def _curve(role: str) -> ec.EllipticCurve:
    return ec.SECP384R1() if role == "ca" else ec.SECP256R1()


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_bytes(path, pem)  # temp files are created 0600, so the key never is readable
    os.chmod(path, 0o600)


def _load_private(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningError(f"{path}: not an ECDSA private key", "restore the key from backup")
    return key


def _ensure_meta(directory: Path) -> dict[str, object]:
    path = directory / META_FILE
    if path.is_file():
        return dict(json.loads(path.read_text()))
    # Back-dated a minute so that a verifier whose clock lags slightly still
    # sees the keys as valid.
    created = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    meta: dict[str, object] = {
        "created": created.isoformat().replace("+00:00", "Z"),
        "tree_id": secrets.randbits(62),
    }
    write_json(path, meta)
    os.chmod(path, 0o644)
    return meta


def ensure_keys(directory: Path) -> AuthorityKeys:
    """Create whatever key material is missing; never replace what exists."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    with locked(directory):  # one process makes what is missing (factory._internal.dirlock)
        meta = _ensure_meta(directory)
        for role, name in _KEY_FILES.items():
            if not (directory / name).is_file():
                _write_private(directory / name, ec.generate_private_key(_curve(role)))
        cert_path = directory / CA_CERT_FILE
        if not cert_path.is_file():
            created = _parse_time(str(meta["created"]))
            cert = make_ca_certificate(
                _load_private(directory / _KEY_FILES["ca"]), ORGANIZATION, created
            )
            write_bytes(cert_path, cert.public_bytes(serialization.Encoding.PEM))
            os.chmod(cert_path, 0o644)
    return load_keys(directory)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def load_keys(directory: Path) -> AuthorityKeys:
    missing = [
        name
        for name in (META_FILE, CA_CERT_FILE, *_KEY_FILES.values())
        if not (directory / name).is_file()
    ]
    if missing:
        raise SigningError(
            f"no signing authority in {directory} (missing {', '.join(missing)})",
            "run `factory keys init`",
        )
    meta = json.loads((directory / META_FILE).read_text())
    ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())
    keys = {role: _load_private(directory / name) for role, name in _KEY_FILES.items()}
    if ca_cert.public_key() != keys["ca"].public_key():
        raise SigningError(
            f"{directory}: ca.pem does not belong to ca-key.pem", "restore both from backup"
        )
    return AuthorityKeys(
        ca_key=keys["ca"],
        ca_cert=ca_cert,
        ct_key=keys["ct"],
        log_key=keys["log"],
        token_key=keys["token"],
        tree_id=int(meta["tree_id"]),
        created=_parse_time(str(meta["created"])),
    )
