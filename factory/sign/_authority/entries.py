"""Rekor v1 entry kinds: check a proposed entry and produce its canonical body.

Two kinds, the ones sigstore-python submits: ``hashedrekord`` 0.0.1 (a
signature over an artifact digest) and ``dsse`` 0.0.1 (a signed in-toto
envelope). Like Rekor, the log checks the signature before admitting the entry;
unlike public Rekor it also requires the certificate to come from its own CA,
so the log only ever holds the factory's signatures.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import rekor_types
import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pydantic import ValidationError

from factory.sign.tiles import MAX_ENTRY_BYTES

DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EntryError(Exception):
    """The proposed entry is malformed or its signature does not verify."""


def _certificate(b64_pem: str, ca_cert: x509.Certificate) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(b64_pem))
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise EntryError(f"certificate not issued by this authority: {exc}") from None
    return cert


def _ec_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise EntryError("only ECDSA signing keys are supported")
    return key


def _hashedrekord(entry: dict[str, Any], ca_cert: x509.Certificate) -> dict[str, Any]:
    try:
        model = rekor_types.Hashedrekord.model_validate(entry)
        spec = model.spec.root
        hashed, sig, key = spec.data.hash, spec.signature, spec.signature.public_key
        if hashed is None or sig.content is None or key is None or key.content is None:
            raise ValueError("hash, signature and public key are required")
        digest = bytes.fromhex(hashed.value)
        signature = base64.b64decode(sig.content)
        cert_b64 = key.content
    except (ValidationError, ValueError, AttributeError) as exc:
        raise EntryError(f"malformed hashedrekord entry: {exc}") from None
    if hashed.algorithm.value != "sha256" or len(digest) != 32:
        raise EntryError("hashedrekord entries must carry a SHA-256 digest")
    cert = _certificate(cert_b64, ca_cert)
    try:
        _ec_key(cert).verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise EntryError("signature does not verify against the certificate") from None
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _dsse(entry: dict[str, Any], ca_cert: x509.Certificate) -> dict[str, Any]:
    try:
        model = rekor_types.Dsse.model_validate(entry)
        proposed = model.spec.root.proposed_content
        if proposed is None:
            raise ValueError("missing proposedContent")
        envelope = json.loads(proposed.envelope)
        payload = base64.b64decode(envelope["payload"])
        payload_type = envelope["payloadType"]
        sigs = [base64.b64decode(s["sig"]) for s in envelope["signatures"]]
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        raise EntryError(f"malformed dsse entry: {exc}") from None
    if payload_type != DSSE_PAYLOAD_TYPE or not sigs:
        raise EntryError("dsse entries must be signed in-toto statements")
    verifiers = [(v, _ec_key(_certificate(v, ca_cert))) for v in proposed.verifiers]
    signatures = []
    for sig in sigs:
        signatures.append(
            {
                "signature": base64.b64encode(sig).decode(),
                "verifier": _verifier_of(sig, payload_type, payload, verifiers),
            }
        )
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(proposed.envelope.encode()).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": sorted(signatures, key=lambda s: s["signature"]),
        },
    }


def _verifier_of(
    sig: bytes,
    payload_type: str,
    payload: bytes,
    verifiers: list[tuple[str, ec.EllipticCurvePublicKey]],
) -> str:
    pae = _pae(payload_type, payload)
    for encoded, key in verifiers:
        try:
            key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
            return encoded
        except InvalidSignature:
            continue
    raise EntryError("dsse signature does not verify against any given certificate")


def canonical_body(entry: dict[str, Any], ca_cert: x509.Certificate) -> bytes:
    """The RFC 8785 body the log stores and hashes, after checking the entry."""
    kind = entry.get("kind") if isinstance(entry, dict) else None
    if kind == "hashedrekord":
        body = _hashedrekord(entry, ca_cert)
    elif kind == "dsse":
        body = _dsse(entry, ca_cert)
    else:
        raise EntryError(f"unsupported entry kind: {kind!r}")
    if body.get("apiVersion") != "0.0.1":
        raise EntryError("only apiVersion 0.0.1 entries are supported")
    data = rfc8785.dumps(body)
    if len(data) > MAX_ENTRY_BYTES:  # the published entry bundles prefix it with a uint16
        raise EntryError(f"entry of {len(data)} bytes; the log takes at most {MAX_ENTRY_BYTES}")
    return data
