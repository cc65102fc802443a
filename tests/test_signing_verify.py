"""Bundles from the embedded authority verify with stock tools; tampering is caught."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity

from factory.config import Settings
from factory.errors import VerificationError
from factory.sign import (
    check_subject,
    init_authority,
    open_signer,
    verify_artifact,
    verify_statement,
)
from factory.sign._authority import Authority, serve
from factory.sign.authority import issue_token
from factory.sign.trust import client_trust_config
from tests import factories
from tests.signing_fixtures import (
    IDENTITY,
    ISSUER,
    Signed,
    authority_fixture,  # noqa: F401 - fixture
    edit_bundle,
    flip_b64,
    signed_fixture,  # noqa: F401 - fixture
)

SIGSTORE = Path(sys.executable).parent / "sigstore"


def test_bundle_verifies_with_stock_verifier_and_published_root(signed: Signed) -> None:
    # The plain sigstore-python API, fed only the public root from keys/.
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(signed.trusted_root)))
    bundle = Bundle.from_json(signed.bundle)
    verifier.verify_artifact(
        signed.wheel.read_bytes(), bundle, Identity(identity=IDENTITY, issuer=ISSUER)
    )
    verify_artifact(signed.wheel, signed.bundle, signed.trusted_root, IDENTITY, ISSUER)


def _cli(signed: Signed, bundle: str, identity: str = IDENTITY) -> subprocess.CompletedProcess[str]:
    bundle_path = signed.wheel.parent / "bundle.sigstore.json"
    bundle_path.write_text(bundle)
    trust_config = signed.settings.authority_dir / "trust_config.json"
    return subprocess.run(
        [
            str(SIGSTORE),
            "--trust-config",
            str(trust_config),
            "verify",
            "identity",
            "--offline",
            "--bundle",
            str(bundle_path),
            "--cert-identity",
            identity,
            "--cert-oidc-issuer",
            ISSUER,
            str(signed.wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(signed.wheel.parent)},  # no network needed
    )


def test_stock_sigstore_cli_verifies_offline(signed: Signed) -> None:
    ok = _cli(signed, signed.bundle)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stderr + ok.stdout

    wrong = _cli(signed, signed.bundle, identity="https://factory.invalid/builders/other")
    assert wrong.returncode != 0
    assert "SANs do not match" in wrong.stderr


def test_stock_cli_rejects_tampered_wheel(signed: Signed) -> None:
    signed.wheel.write_bytes(signed.wheel.read_bytes() + b"\x00")
    result = _cli(signed, signed.bundle)
    assert result.returncode != 0
    assert "FAIL" in result.stderr


def test_tampered_wheel_is_rejected(signed: Signed) -> None:
    data = bytearray(signed.wheel.read_bytes())
    data[10] ^= 0x20
    signed.wheel.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="digest mismatch|Signature is invalid"):
        verify_artifact(signed.wheel, signed.bundle, signed.trusted_root, IDENTITY, ISSUER)


def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


def _set_checkpoint_line(bundle: dict[str, Any], line: int, value: str) -> None:
    proof = _entry(bundle)["inclusionProof"]
    lines = proof["checkpoint"]["envelope"].split("\n")
    lines[line] = value
    proof["checkpoint"]["envelope"] = "\n".join(lines)


def _resign_leaf_identity(bundle: dict[str, Any]) -> None:
    # Change the identity inside the certificate, keeping the DER well-formed.
    cert = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    forged = cert.replace(b"builders/docker", b"builders/dockex")
    assert forged != cert
    bundle["verificationMaterial"]["certificate"]["rawBytes"] = base64.b64encode(forged).decode()


def _swap_proof_hash(bundle: dict[str, Any]) -> None:
    hashes = _entry(bundle)["inclusionProof"]["hashes"]
    assert hashes, "the fixture must produce a proof with hashes"
    hashes[0] = flip_b64(hashes[0])


def _edit_checkpoint_root(bundle: dict[str, Any]) -> None:
    proof = _entry(bundle)["inclusionProof"]
    fake_root = flip_b64(proof["rootHash"])
    proof["rootHash"] = fake_root  # consistent proof root and checkpoint line, but unsigned
    _set_checkpoint_line(bundle, 2, fake_root)


def _edit_checkpoint_size(bundle: dict[str, Any]) -> None:
    _set_checkpoint_line(bundle, 1, "1000")


def _edit_checkpoint_signature(bundle: dict[str, Any]) -> None:
    proof = _entry(bundle)["inclusionProof"]
    note, _, sig_line = proof["checkpoint"]["envelope"].partition("\n\n")
    dash, name, sig = sig_line.strip().split(" ")
    proof["checkpoint"]["envelope"] = f"{note}\n\n{dash} {name} {flip_b64(sig)}\n"


TAMPERINGS = {
    "signature": (
        lambda b: b["messageSignature"].update(
            signature=flip_b64(b["messageSignature"]["signature"])
        ),
        "Signature is invalid",
    ),
    "certificate": (_resign_leaf_identity, "certificate|chain|signature"),
    "inclusion-proof": (_swap_proof_hash, "inclusion proof"),
    "checkpoint-root": (_edit_checkpoint_root, "checkpoint|root hash"),
    "checkpoint-size": (_edit_checkpoint_size, "checkpoint"),
    "checkpoint-signature": (_edit_checkpoint_signature, "checkpoint"),
    "log-body": (
        lambda b: _entry(b).update(canonicalizedBody=flip_b64(_entry(b)["canonicalizedBody"], 30)),
        "log entry|inclusion|invalid|inconsistent",
    ),
    "signed-entry-timestamp": (
        lambda b: _entry(b)["inclusionPromise"].update(
            signedEntryTimestamp=flip_b64(_entry(b)["inclusionPromise"]["signedEntryTimestamp"])
        ),
        "SET|inclusion promise",
    ),
    "integrated-time": (
        lambda b: _entry(b).update(integratedTime=str(int(_entry(b)["integratedTime"]) + 1)),
        "SET|inclusion promise",
    ),
}


@pytest.mark.parametrize("part", sorted(TAMPERINGS))
def test_tampered_bundle_is_rejected(signed: Signed, part: str) -> None:
    edit, message = TAMPERINGS[part]
    tampered = edit_bundle(signed.bundle, edit)
    with pytest.raises(VerificationError, match=message) as caught:
        verify_artifact(signed.wheel, tampered, signed.trusted_root, IDENTITY, ISSUER)
    assert signed.wheel.name in caught.value.message


def test_bundle_from_another_authority_is_rejected(signed: Signed, tmp_path: Path) -> None:
    # same identity and issuer, different keys
    rogue = factories.settings(tmp_path / "rogue", project="project")
    init_authority(rogue)
    with open_signer(rogue) as signer:
        rogue_bundle = signer.sign_artifact(signed.wheel)
    rogue_root = rogue.public_keys_dir / "trusted_root.json"
    verify_artifact(signed.wheel, rogue_bundle, rogue_root, IDENTITY, ISSUER)  # sanity
    with pytest.raises(VerificationError, match="chain|certificate"):
        verify_artifact(signed.wheel, rogue_bundle, signed.trusted_root, IDENTITY, ISSUER)


@pytest.mark.parametrize(
    ("identity", "issuer", "message"),
    [
        ("https://factory.invalid/builders/other", ISSUER, "SANs do not match"),
        (IDENTITY, "https://accounts.google.com", "OIDCIssuer does not match"),
    ],
)
def test_wrong_identity_policy_is_rejected(
    signed: Signed, identity: str, issuer: str, message: str
) -> None:
    with pytest.raises(VerificationError, match=message):
        verify_artifact(signed.wheel, signed.bundle, signed.trusted_root, identity, issuer)


def test_statement_verifies_and_subject_is_checked(signed: Signed) -> None:
    statement = verify_statement(signed.statement_bundle, signed.trusted_root, IDENTITY, ISSUER)
    assert statement["predicateType"] == "https://docs.pypi.org/attestations/publish/v1"
    check_subject(statement, signed.wheel.name, signed.sha256)
    with pytest.raises(VerificationError, match="does not match"):
        check_subject(statement, signed.wheel.name, "0" * 64)
    with pytest.raises(VerificationError, match="not other"):
        check_subject(statement, "other-1.0-py3-none-any.whl", signed.sha256)


def test_tampered_statement_is_rejected(signed: Signed) -> None:
    def swap_payload(bundle: dict[str, Any]) -> None:
        envelope = bundle["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["subject"][0]["digest"]["sha256"] = "1" * 64
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    tampered = edit_bundle(signed.statement_bundle, swap_payload)
    with pytest.raises(VerificationError, match="attestation check failed"):
        verify_statement(tampered, signed.trusted_root, IDENTITY, ISSUER)


def test_artifact_bundle_is_not_a_statement(signed: Signed) -> None:
    with pytest.raises(VerificationError, match="DSSE"):
        verify_statement(signed.bundle, signed.trusted_root, IDENTITY, ISSUER)


def test_garbage_inputs_are_verification_errors(signed: Signed, tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="not a valid Sigstore bundle"):
        verify_artifact(signed.wheel, "{}", signed.trusted_root, IDENTITY, ISSUER)
    with pytest.raises(VerificationError, match="trusted root"):
        verify_artifact(signed.wheel, signed.bundle, tmp_path / "missing.json", IDENTITY, ISSUER)


def test_stock_sigstore_cli_signs_against_the_embedded_authority(
    authority: Settings, tmp_path: Path
) -> None:
    # The other direction: the stock `sigstore sign` talks to our authority.
    service = Authority(authority.authority_dir)
    target = tmp_path / "demo_pkg-1.0.0-py3-none-any.whl"
    target.write_bytes(b"signed by the stock CLI")
    bundle_path = tmp_path / "stock.sigstore.json"
    with serve(service) as url:
        config = tmp_path / "live-trust-config.json"
        config.write_text(json.dumps(client_trust_config(service.keys, url)))
        result = subprocess.run(
            [
                str(SIGSTORE),
                "--trust-config",
                str(config),
                "sign",
                "--identity-token",
                issue_token(authority),
                "--bundle",
                str(bundle_path),
                str(target),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
    assert result.returncode == 0, result.stderr
    root = authority.public_keys_dir / "trusted_root.json"
    verify_artifact(target, bundle_path.read_text(), root, IDENTITY, ISSUER)
