"""The authority's operations, independent of HTTP: tokens, certificates, log entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from factory.sign._authority.ca import issue_leaf
from factory.sign._authority.entries import EntryError, canonical_body
from factory.sign._authority.keys import AuthorityKeys, load_keys
from factory.sign._authority.log import TransparencyLog
from factory.sign._authority.tokens import TokenError, issue_token, verify_token

LOG_DIR = "log"


class RequestError(Exception):
    """A client request the authority refuses (HTTP 400/401)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Authority:
    """A private Sigstore: CA with CT key, transparency log, token issuer."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.keys: AuthorityKeys = load_keys(directory)
        self.log = TransparencyLog(directory / LOG_DIR, self.keys.log_key, self.keys.origin)

    def issue_token(self, identity: str, issuer: str) -> str:
        return issue_token(self.keys.token_key, identity, issuer)

    def signing_certificate(self, token: str, csr_pem: bytes) -> list[str]:
        """Fulcio's signingCert: check token and proof of possession, issue a leaf."""
        try:
            identity, issuer = verify_token(self.keys.token_key.public_key(), token)
        except TokenError as exc:
            raise RequestError(str(exc), 401) from None
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise RequestError(f"malformed certificate signing request: {exc}") from None
        if not csr.is_signature_valid:  # proof that the caller holds the private key
            raise RequestError("certificate signing request signature is invalid")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise RequestError("only ECDSA keys are supported")
        leaf = issue_leaf(
            self.keys.ca_key, self.keys.ca_cert, self.keys.ct_key, public_key, identity, issuer
        )
        return [_pem(leaf), _pem(self.keys.ca_cert)]

    def trust_bundle(self) -> dict[str, Any]:
        return {"chains": [{"certificates": [_pem(self.keys.ca_cert)]}]}

    def add_entry(self, proposed: dict[str, Any]) -> dict[str, Any]:
        try:
            body = canonical_body(proposed, self.keys.ca_cert)
        except EntryError as exc:
            raise RequestError(str(exc)) from None
        return self.log.response(self.log.append(body))


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
