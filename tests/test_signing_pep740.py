"""PEP 740 attestation objects and provenance files from our DSSE bundles."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pypi_attestations import Attestation

from factory.errors import SigningError, VerificationError
from factory.sign import (
    factory_publisher,
    provenance_object,
    to_pep740_attestation,
    verify_attestation,
)
from tests.signing_fixtures import (
    IDENTITY,
    ISSUER,
    Signed,
    authority_fixture,  # noqa: F401 - fixture
    signed_fixture,  # noqa: F401 - fixture
)


def _attestation(signed: Signed) -> dict[str, Any]:
    return to_pep740_attestation(signed.statement_bundle)


def test_attestation_object_has_the_pep740_shape(signed: Signed) -> None:
    attestation = _attestation(signed)
    assert attestation["version"] == 1
    assert set(attestation["verification_material"]) == {"certificate", "transparency_entries"}
    assert len(attestation["verification_material"]["transparency_entries"]) == 1
    statement = json.loads(base64.b64decode(attestation["envelope"]["statement"]))
    assert statement["subject"] == [
        {"name": signed.wheel.name, "digest": {"sha256": signed.sha256}}
    ]
    # pypi-attestations reads it back, and it survives a JSON round trip.
    assert Attestation.model_validate(json.loads(json.dumps(attestation))).statement == statement


def test_attestation_verifies_against_our_root(signed: Signed) -> None:
    statement = verify_attestation(
        _attestation(signed), signed.wheel, signed.sha256, signed.trusted_root, IDENTITY, ISSUER
    )
    assert statement["predicateType"] == "https://docs.pypi.org/attestations/publish/v1"


def test_attestation_for_another_file_is_rejected(signed: Signed, tmp_path: Path) -> None:
    other = tmp_path / "demo_pkg-2.0.0-py3-none-any.whl"
    other.write_bytes(b"other")
    with pytest.raises(VerificationError, match="not demo_pkg-2.0.0"):
        verify_attestation(
            _attestation(signed), other, signed.sha256, signed.trusted_root, IDENTITY, ISSUER
        )


def test_tampered_attestation_is_rejected(signed: Signed) -> None:
    attestation = _attestation(signed)
    statement = json.loads(base64.b64decode(attestation["envelope"]["statement"]))
    statement["subject"][0]["digest"]["sha256"] = "f" * 64
    attestation["envelope"]["statement"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(VerificationError, match="attestation check failed"):
        verify_attestation(
            attestation, signed.wheel, "f" * 64, signed.trusted_root, IDENTITY, ISSUER
        )


def test_provenance_object(signed: Signed) -> None:
    attestation = _attestation(signed)
    publisher = factory_publisher(signed.settings)
    provenance = provenance_object([attestation], publisher)
    assert provenance == {
        "version": 1,
        "attestation_bundles": [{"publisher": publisher, "attestations": [attestation]}],
    }
    assert publisher == {
        "kind": "artifact-factory",
        "claims": {"identity": IDENTITY, "issuer": ISSUER},
    }
    json.dumps(provenance)  # the index serves it as JSON


def test_provenance_object_validates_its_inputs(signed: Signed) -> None:
    attestation = _attestation(signed)
    with pytest.raises(SigningError, match="at least one"):
        provenance_object([], {"kind": "artifact-factory"})
    with pytest.raises(SigningError, match="kind"):
        provenance_object([attestation], {"claims": {}})
    with pytest.raises(SigningError, match="not a PEP 740 attestation"):
        provenance_object([{"version": 1}], {"kind": "artifact-factory"})
    # PyPI's own publisher kinds are checked against pypi-attestations' models.
    with pytest.raises(SigningError, match="invalid GitHub publisher"):
        provenance_object([attestation], {"kind": "GitHub"})
    github = {"kind": "GitHub", "repository": "org/repo", "workflow": "release.yml"}
    assert provenance_object([attestation], github)["attestation_bundles"][0]["publisher"] == github


def test_artifact_bundle_cannot_become_an_attestation(signed: Signed) -> None:
    with pytest.raises(SigningError, match="DSSE"):
        to_pep740_attestation(signed.bundle)
