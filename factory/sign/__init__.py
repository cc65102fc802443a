"""Sigstore signing and verification, and the factory's embedded authority.

The pipeline calls:
- ``init_authority(settings)``: keys (once) and trust files (trust.py);
- ``open_signer(settings)``: a Signer for the configured mode (sign.py);
- ``verify_artifact`` / ``verify_statement`` / ``check_subject`` (verify.py);
- ``to_pep740_attestation`` / ``provenance_object`` (pep740.py).
"""

from factory.sign.bundles import check_subject, verify_artifact, verify_statement
from factory.sign.pep740 import (
    factory_publisher,
    provenance_object,
    publish_statement,
    to_pep740_attestation,
    verify_attestation,
)
from factory.sign.sign import Signer, open_signer
from factory.sign.trust import init_authority

__all__ = [
    "Signer",
    "check_subject",
    "factory_publisher",
    "init_authority",
    "open_signer",
    "provenance_object",
    "publish_statement",
    "to_pep740_attestation",
    "verify_artifact",
    "verify_attestation",
    "verify_statement",
]
