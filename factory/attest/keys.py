"""Functionary keys: one ECDSA P-256 key per in-toto role.

Roles: ``owner`` signs the in-toto layout; ``fetcher``, ``builder`` and
``attestor`` sign the links of the steps they perform; ``answers`` signs the
policy answers of ``factory mcp`` and of ``factory serve``'s /api/v1/ (an online
key: it can sign nothing a wheel's verification trusts); ``tuf_root`` signs the
root metadata of the index's TUF repository and ``tuf_online`` its timestamp,
snapshot and targets (factory.sign.tuf_repo). Private keys stay in the
state directory (PKCS#8 PEM, mode 0600); the project's ``keys/`` directory gets
only the public halves (SPKI PEM) and ``fingerprints.json``, which may be
committed. ECDSA P-256 rather than Ed25519 because the cloud KMS signers of
securesystemslib only do ECDSA/RSA, so any role can later move to a KMS.

A role's private key may instead be a securesystemslib signer URI (``gcpkms:``,
``awskms:``, ``azurekms:``, ``hsm:``, ``file2:`` ...), given by the environment
variable ``FACTORY_KEY_<ROLE>`` or by a one-line file ``<role>.uri`` in the
private keys directory. The public key then has to be in ``keys/``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner, Signer, SSlibKey

from factory._internal.atomic import TMP_PREFIX, canonical_json, write_bytes
from factory._internal.dirlock import locked
from factory.config import Settings
from factory.errors import SigningError, one_line

ROLES = ("owner", "fetcher", "builder", "attestor", "answers", "tuf_root", "tuf_online")
SCHEME = "ecdsa-sha2-nistp256"
PRIVATE_SUFFIX = ".pem.key"  # matched by .gitignore as a second line of defence
PUBLIC_SUFFIX = ".pub.pem"
# The owner's public key as published (keys/ and the index's trust/): what verifiers pin.
OWNER_KEY = f"owner{PUBLIC_SUFFIX}"
ANSWERS_KEY = f"answers{PUBLIC_SUFFIX}"
URI_SUFFIX = ".uri"
FINGERPRINTS = "fingerprints.json"
ENV_PREFIX = "FACTORY_KEY_"


@dataclass(frozen=True)
class KeyInfo:
    """What may be said in public about one role's key."""

    role: str
    keyid: str  # securesystemslib/in-toto key ID (sha256 of the canonical key)
    spki_sha256: str  # sha256 of the DER SubjectPublicKeyInfo, as tools print it
    scheme: str
    public_key_path: Path


def private_key_path(settings: Settings, role: str) -> Path:
    return settings.private_keys_dir / f"{role}{PRIVATE_SUFFIX}"


def public_key_path(settings: Settings, role: str) -> Path:
    return settings.public_keys_dir / f"{role}{PUBLIC_SUFFIX}"


def in_toto_key(pem: bytes) -> dict[str, Any]:
    """A public key (SPKI PEM) in the dict form in-toto's verifylib expects, with its keyid;
    ValueError or TypeError for bytes that are no such key."""
    public = serialization.load_pem_public_key(pem)
    key = SSlibKey.from_crypto(public, scheme=SCHEME)  # type: ignore[arg-type]
    data: dict[str, Any] = key.to_dict()
    data["keyid"] = key.keyid
    return data


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise SigningError(f"unknown key role {role!r}", f"roles are: {', '.join(ROLES)}")


def key_uri(settings: Settings, role: str) -> str | None:
    """The signer URI configured for ``role``, if its key is not a local file."""
    env = os.environ.get(ENV_PREFIX + role.upper())
    if env:
        return env.strip()
    ref = settings.private_keys_dir / f"{role}{URI_SUFFIX}"
    if ref.is_file():
        return ref.read_text(encoding="utf-8").strip() or None
    return None


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Create ``path`` with ``key`` unless it exists; never replace a key.

    The key goes to a 0600 temp file that is hard-linked to its name, which
    fails if the name exists: two concurrent inits end with one key, not two.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_private(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(
            f"{path}: not an unencrypted PKCS#8 PEM private key ({one_line(str(exc), 200)})",
            "restore the key from backup, or rotate the role (see keys/README.md)",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SigningError(f"{path}: not an ECDSA P-256 key", "functionary keys are P-256")
    return key


def load_public_key(settings: Settings, role: str) -> SSlibKey:
    """The role's public key as securesystemslib/in-toto see it."""
    _check_role(role)
    path = public_key_path(settings, role)
    if not path.is_file():
        raise SigningError(f"no public key for role {role} at {path}", "run `factory keys init`")
    public = serialization.load_pem_public_key(path.read_bytes())
    return SSlibKey.from_crypto(public, scheme=SCHEME)


def _init_role(settings: Settings, role: str) -> None:
    pub_path = public_key_path(settings, role)
    if key_uri(settings, role):
        if not pub_path.is_file():
            raise SigningError(
                f"role {role} uses a key URI but {pub_path} is missing",
                "export the KMS key's public half as SPKI PEM into keys/",
            )
        return
    priv_path = private_key_path(settings, role)
    if priv_path.is_file():
        private = _load_private(priv_path)
    elif pub_path.is_file():
        # Never replace a published key silently: that is a rotation.
        raise SigningError(
            f"{pub_path} exists but its private key {priv_path} is missing",
            "restore the private key into the state directory, or rotate the role "
            "(see keys/README.md)",
        )
    else:
        _write_private(priv_path, ec.generate_private_key(ec.SECP256R1()))
        private = _load_private(priv_path)  # ours, or a concurrent init's
    expected = _public_pem(private.public_key())
    if pub_path.is_file():
        if pub_path.read_bytes() != expected:
            raise SigningError(
                f"{pub_path} does not match the private key {priv_path}",
                "restore the matching pair, or rotate the role (see keys/README.md)",
            )
    else:
        write_bytes(pub_path, expected)


def key_info(settings: Settings, role: str) -> KeyInfo:
    key = load_public_key(settings, role)
    path = public_key_path(settings, role)
    der = serialization.load_pem_public_key(path.read_bytes()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyInfo(role, key.keyid, hashlib.sha256(der).hexdigest(), key.scheme, path)


def _write_fingerprints(settings: Settings) -> None:
    path = settings.public_keys_dir / FINGERPRINTS
    old: dict[str, Any] = {}
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8")).get("keys", {})
    keys: dict[str, Any] = {}
    for role in ROLES:
        info = key_info(settings, role)
        entry = {"keyid": info.keyid, "spki_sha256": info.spki_sha256, "scheme": info.scheme}
        previous = old.get(role, {})
        # keep the creation date of a key we already listed: idempotent output
        same = previous.get("keyid") == info.keyid
        entry["added"] = previous["added"] if same and "added" in previous else _today()
        keys[role] = entry
    doc = {"version": 1, "keys": keys}
    if not path.is_file() or path.read_text(encoding="utf-8") != canonical_json(doc):
        write_bytes(path, canonical_json(doc).encode("utf-8"))


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def init_keys(settings: Settings) -> None:
    """Create the missing role keys; never overwrite one. Safe to run again."""
    settings.private_keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.private_keys_dir, 0o700)
    settings.public_keys_dir.mkdir(parents=True, exist_ok=True)
    with locked(settings.private_keys_dir):  # one process makes a missing key pair
        for role in ROLES:
            _init_role(settings, role)
        _write_fingerprints(settings)


def load_signer(settings: Settings, role: str) -> Signer:
    """A securesystemslib Signer for ``role``: a KMS/HSM URI or the local PEM file."""
    _check_role(role)
    public = load_public_key(settings, role)
    uri = key_uri(settings, role)
    if uri is None:
        path = private_key_path(settings, role)
        if not path.is_file():
            raise SigningError(f"no private key for role {role} at {path}")
        return CryptoSigner(_load_private(path), public)
    try:
        return Signer.from_priv_key_uri(uri, public)
    except Exception as exc:  # the signer modules raise many unrelated types
        raise SigningError(
            f"cannot load the {role} signer from {uri.split(':', 1)[0]}: URI "
            f"({one_line(str(exc), 200)})",
            "check the key URI and the KMS credentials of this process",
        ) from None


def secret_markers(settings: Settings) -> list[str]:
    """Strings whose presence in a text would reveal a private key or its location.

    Used to refuse writing attestations (and, in tests, build records, container
    environments) that carry key material.
    """
    markers = ["PRIVATE KEY-----", str(settings.private_keys_dir)]
    for role in ROLES:
        path = private_key_path(settings, role)
        if not path.is_file():
            continue
        key = _load_private(path)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        scalar = key.private_numbers().private_value
        markers += [
            base64.b64encode(der).decode()[:48],
            f"{scalar:064x}",
            str(scalar),
            base64.b64encode(scalar.to_bytes(32, "big")).decode().rstrip("="),
        ]
    return markers


def find_key_material(text: str, settings: Settings) -> list[str]:
    """Which secret markers occur in ``text`` (empty when it is clean)."""
    lowered = text.lower()
    return [m for m in secret_markers(settings) if m.lower() in lowered]
