"""Verification with sigstore-python's Verifier, plus what it leaves to the caller.

The trusted root always comes from an explicit path the caller chose (the
index's published root, keys/trusted_root.json): never from an environment
variable, so a test setting cannot redirect an auditor's trust.
The identity policy is the configured build identity and OIDC issuer.
``verify_dsse`` does not look at the statement's subjects; ``check_subject``
does, and callers must use it to tie a statement to their file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity
from sigstore_models.common.v1 import HashAlgorithm
from sigstore_models.trustroot import v1 as trustroot_v1

from factory._internal.atomic import sha256_file
from factory._internal.plainfile import NotPlain, read_plain
from factory.attest.types import STATEMENT_TYPE
from factory.errors import VerificationError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


# Parsed trusted roots by the sha256 of their bytes: a root is parsed once per process,
# and a file that now holds other bytes (replaced in place, its mtime set back) is
# another root. At most _VERIFIERS_KEPT are kept (the oldest is dropped).
_VERIFIERS: dict[bytes, Verifier] = {}
_VERIFIERS_KEPT = 8
_ROOT_LIMIT = 16 << 20  # bytes of a trusted root file (Sigstore's public one: 7 KiB)


def verifier_for(trusted_root: Path) -> Verifier:
    path = Path(trusted_root).resolve()
    hint = "pass the trusted_root.json the index publishes (keys/trusted_root.json)"
    try:  # without blocking (a FIFO), a regular file only, bounded
        raw = read_plain(path, _ROOT_LIMIT, follow_links=True)
    except NotPlain as exc:
        raise VerificationError(f"cannot read the trusted root {path}: {exc.why}",
                                hint) from None
    if raw is None:
        raise VerificationError(f"cannot read the trusted root {path}: no such file", hint)
    key = hashlib.sha256(raw).digest()
    known = _VERIFIERS.get(key)
    if known is not None:
        return known
    try:
        made = Verifier(trusted_root=TrustedRoot(trustroot_v1.TrustedRoot.from_json(raw)))
    except (ValueError, SigstoreError) as exc:
        raise VerificationError(f"cannot load the trusted root {path}: {exc}", hint) from None
    if len(_VERIFIERS) >= _VERIFIERS_KEPT:
        del _VERIFIERS[next(iter(_VERIFIERS))]
    _VERIFIERS[key] = made
    return made


def load_bundle(bundle_json: str, what: str = "bundle") -> Bundle:
    try:
        return Bundle.from_json(bundle_json)
    except (ValueError, SigstoreError) as exc:
        raise VerificationError(f"{what} is not a valid Sigstore bundle: {exc}") from None


def _file_digest(path: Path) -> bytes:
    try:
        return bytes.fromhex(sha256_file(path))
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc}") from None


def verify_artifact(
    path: Path, bundle_json: str, trusted_root: Path, identity: str, issuer: str
) -> None:
    """Raise VerificationError unless the bundle signs exactly this file for this identity."""
    bundle = load_bundle(bundle_json, f"the bundle of {path.name}")
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=_file_digest(path))
    try:
        verifier_for(trusted_root).verify_artifact(
            hashed, bundle, Identity(identity=identity, issuer=issuer)
        )
    except (SigstoreError, ValueError) as exc:
        raise VerificationError(f"{path.name}: signature check failed: {exc}") from None


def verify_statement_bundle(
    bundle: Bundle, trusted_root: Path, identity: str, issuer: str
) -> dict[str, Any]:
    try:
        payload_type, payload = verifier_for(trusted_root).verify_dsse(
            bundle, Identity(identity=identity, issuer=issuer)
        )
    except (SigstoreError, ValueError) as exc:
        raise VerificationError(f"attestation check failed: {exc}") from None
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(f"attestation carries {payload_type!r}, not an in-toto statement")
    try:
        statement = json.loads(payload)
    except ValueError:
        raise VerificationError("attestation payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"attestation payload is not an in-toto {STATEMENT_TYPE}")
    return statement


def verify_statement(
    bundle_json: str, trusted_root: Path, identity: str, issuer: str
) -> dict[str, Any]:
    """Verify a DSSE bundle and return its in-toto statement (subjects NOT checked)."""
    return verify_statement_bundle(load_bundle(bundle_json), trusted_root, identity, issuer)


def check_subject(statement: dict[str, Any], filename: str, sha256: str) -> None:
    """Raise VerificationError unless the statement names this file with this digest."""
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        raise VerificationError("statement has no subjects")
    names = []
    for subject in subjects:
        if not isinstance(subject, dict):
            continue
        names.append(subject.get("name"))
        digest = (subject.get("digest") or {}).get("sha256")
        if subject.get("name") == filename and digest == sha256.lower():
            return
    if filename in names:
        raise VerificationError(f"statement's sha256 for {filename} does not match the file")
    raise VerificationError(f"statement is about {names}, not {filename}")
