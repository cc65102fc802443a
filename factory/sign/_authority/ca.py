"""A Fulcio-compatible certificate authority.

Leaf certificates follow the Fulcio profile that sigstore-python's verifier
demands: empty subject, critical SAN (the build identity), digitalSignature
key usage, codeSigning EKU, the OIDC issuer in extensions 1.3.6.1.4.1.57264.1.1
(raw UTF-8) and .1.8 (DER UTF8String), and exactly one embedded SCT signed by
the authority's CT key over the RFC 6962 precertificate entry.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
LEAF_LIFETIME = timedelta(minutes=10)
CA_LIFETIME = timedelta(days=3650)


def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 key ID: SHA-256 of the DER SubjectPublicKeyInfo (Sigstore's log ID)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


def make_ca_certificate(
    key: ec.EllipticCurvePrivateKey, organization: str, created: datetime
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} signing CA"),
        ]
    )
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(created)
        .not_valid_after(created + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA384())
    )


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def der_utf8string(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_length(len(raw)) + raw


def _san(identity: str) -> x509.GeneralName:
    # Tokens for people carry an e-mail address; machine identities are URIs.
    if "@" in identity and "://" not in identity:
        return x509.RFC822Name(identity)
    return x509.UniformResourceIdentifier(identity)


def _leaf_builder(
    ca_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    identity: str,
    issuer: str,
    now: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_cert.public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([_san(identity)]), critical=True)
        .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_OID, issuer.encode()), False)
        .add_extension(
            x509.UnrecognizedExtension(OIDC_ISSUER_V2_OID, der_utf8string(issuer)), False
        )
    )


def _signed_sct(
    ct_key: ec.EllipticCurvePrivateKey, issuer_key_hash: bytes, tbs: bytes, timestamp_ms: int
) -> bytes:
    """One TLS-encoded v1 SCT over a precertificate entry (RFC 6962 3.2)."""
    extensions = b""
    signed = (
        struct.pack("!BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, precert_entry
        + issuer_key_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack("!H", len(extensions))
        + extensions
    )
    signature = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return (
        struct.pack("!B", 0)
        + key_id(ct_key.public_key())
        + struct.pack("!QH", timestamp_ms, len(extensions))
        + extensions
        + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
        + signature
    )


def _sct_list_extension(sct: bytes) -> x509.UnrecognizedExtension:
    entry = struct.pack("!H", len(sct)) + sct
    tls_list = struct.pack("!H", len(entry)) + entry
    # The extension's value is an OCTET STRING wrapping the TLS-encoded list.
    return x509.UnrecognizedExtension(SCT_LIST_OID, b"\x04" + _der_length(len(tls_list)) + tls_list)


def issue_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ct_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    identity: str,
    issuer: str,
) -> x509.Certificate:
    """A short-lived code-signing certificate with one embedded SCT."""
    # Whole seconds: the SCT carries milliseconds, X.509 times carry seconds,
    # and verifiers convert through floats.
    now = datetime.now(UTC).replace(microsecond=0)
    builder = _leaf_builder(ca_cert, public_key, identity, issuer, now)
    precert = builder.sign(ca_key, hashes.SHA384())
    issuer_key_hash = key_id(ca_cert.public_key())  # type: ignore[arg-type]
    sct = _signed_sct(
        ct_key, issuer_key_hash, precert.tbs_certificate_bytes, int(now.timestamp()) * 1000
    )
    leaf = builder.add_extension(_sct_list_extension(sct), critical=False).sign(
        ca_key, hashes.SHA384()
    )
    # The SCT signs the TBS without the SCT list; both encodings must agree.
    if leaf.tbs_precertificate_bytes != precert.tbs_certificate_bytes:
        raise RuntimeError("precertificate and certificate disagree")
    return leaf
