"""PEP 740 attestation objects and provenance files, via pypi-attestations.

An attestation object is a DSSE Sigstore bundle reshaped (certificate, one
Rekor v1 log entry, statement, signature); ``Attestation.from_bundle`` and
``to_bundle`` convert both ways. pypi-attestations' own ``verify`` knows only
the public Sigstore roots, so we verify the bundle form with our Verifier.
Its ``Provenance`` model accepts only the publishers PyPI knows (GitHub,
GitLab, Google, CircleCI); the factory is its own publisher kind, so the
provenance object is assembled here and validated piece by piece.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pypi_attestations import Attestation, AttestationBundle, AttestationError, Provenance
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle

from factory.attest.types import STATEMENT_TYPE
from factory.config import Settings
from factory.errors import SigningError, VerificationError
from factory.sign.bundles import check_subject, load_bundle, verify_statement_bundle

PUBLISH_PREDICATE = "https://docs.pypi.org/attestations/publish/v1"
PUBLISHER_KIND = "artifact-factory"
_KNOWN_KINDS = {"GitHub", "GitLab", "Google", "CircleCI"}


def publish_statement(filename: str, sha256: str) -> dict[str, Any]:
    """The PEP 740 publish attestation statement for one distribution file."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": filename, "digest": {"sha256": sha256}}],
        "predicateType": PUBLISH_PREDICATE,
        "predicate": None,
    }


def factory_publisher(settings: Settings) -> dict[str, Any]:
    """PEP 740 publisher object naming the factory's build identity."""
    return {
        "kind": PUBLISHER_KIND,
        "claims": {"identity": settings.identity, "issuer": settings.issuer},
    }


def to_pep740_attestation(bundle_json: str) -> dict[str, Any]:
    """Convert a DSSE bundle (as ``Signer.sign_statement`` returns) to a PEP 740 object."""
    try:
        bundle = load_bundle(bundle_json)
        attestation = Attestation.from_bundle(bundle)
    except (AttestationError, VerificationError, SigstoreError) as exc:
        raise SigningError(f"bundle cannot become a PEP 740 attestation: {exc}") from None
    return attestation.model_dump(mode="json")


def attestation_to_bundle(attestation: dict[str, Any]) -> Bundle:
    """The Sigstore bundle a PEP 740 attestation is made from (pypi-attestations'
    ``Attestation.to_bundle``, what its own verify checks)."""
    try:
        return Attestation.model_validate(attestation).to_bundle()
    except (ValidationError, AttestationError, SigstoreError, ValueError) as exc:
        raise VerificationError(f"not a valid PEP 740 attestation: {exc}") from None


def attestation_to_bundle_json(attestation: dict[str, Any]) -> str:
    return attestation_to_bundle(attestation).to_json()


def verify_attestation(
    attestation: dict[str, Any],
    dist: Path,
    sha256: str,
    trusted_root: Path,
    identity: str,
    issuer: str,
) -> dict[str, Any]:
    """Verify one PEP 740 attestation about ``dist``; return its statement."""
    bundle = load_bundle(attestation_to_bundle_json(attestation), "the attestation")
    statement = verify_statement_bundle(bundle, trusted_root, identity, issuer)
    check_subject(statement, dist.name, sha256)
    return statement


def provenance_object(
    attestations: list[dict[str, Any]], publisher: dict[str, Any]
) -> dict[str, Any]:
    """PEP 740 provenance file content: one attestation bundle under one publisher."""
    if not attestations:
        raise SigningError("a provenance object needs at least one attestation")
    if not isinstance(publisher.get("kind"), str):
        raise SigningError("a PEP 740 publisher needs a string 'kind'")
    try:
        checked = [Attestation.model_validate(a).model_dump(mode="json") for a in attestations]
    except ValidationError as exc:
        raise SigningError(f"not a PEP 740 attestation object: {exc}") from None
    bundle = {"publisher": dict(publisher), "attestations": checked}
    if publisher["kind"] in _KNOWN_KINDS:  # PyPI's own publisher shapes: validate them too
        try:
            Provenance(attestation_bundles=[AttestationBundle.model_validate(bundle)])
        except ValidationError as exc:
            raise SigningError(f"invalid {publisher['kind']} publisher: {exc}") from None
    return {"version": 1, "attestation_bundles": [bundle]}
