"""Sigstore signing and verification, and the factory's embedded authority.

The pipeline calls:
- ``init_authority(settings)``: keys (once) and trust files (trust.py);
- ``open_signer(settings)``: a Signer for the configured mode (sign.py);
- ``verify_artifact`` / ``verify_statement`` / ``check_subject`` (verify.py);
- ``to_pep740_attestation`` / ``provenance_object`` (pep740.py).
"""

from typing import TYPE_CHECKING

from factory._internal.lazy import lazy_attributes

if TYPE_CHECKING:
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

# Imported on first use: the log's published format (factory.sign.tiles), read by the
# index server, must not load sigstore.
_LAZY = {
    "check_subject": "factory.sign.bundles",
    "verify_artifact": "factory.sign.bundles",
    "verify_statement": "factory.sign.bundles",
    "factory_publisher": "factory.sign.pep740",
    "provenance_object": "factory.sign.pep740",
    "publish_statement": "factory.sign.pep740",
    "to_pep740_attestation": "factory.sign.pep740",
    "verify_attestation": "factory.sign.pep740",
    "Signer": "factory.sign.sign",
    "open_signer": "factory.sign.sign",
    "init_authority": "factory.sign.trust",
}
__getattr__ = lazy_attributes(__name__, _LAZY)

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
