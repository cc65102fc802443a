"""What every wheel carries: SLSA provenance, a CycloneDX SBOM, in-toto metadata.

Sidecars next to ``W`` (a wheel), all written by the control plane:

- ``W.cdx.json``: the SBOM, byte for byte ``sbom_bytes`` of the signed predicate;
- ``W.intoto.jsonl``: the DSSE-signed statements (written by factory.sign
  from ``Attestation.statements``);
- ``W.in-toto/``: ``root.layout`` and ``<step>.<keyid8>.link`` files.

Order in the pipeline: ``attest_wheel`` -> sign the statements -> ``write_intoto``
with the SBOM and the signed bundle as the attest step's products.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from factory.attest.wheel import Attestation, attest_wheel, ensure_no_key_material

__all__ = ["Attestation", "attest_wheel", "ensure_no_key_material"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: a verifier importing factory.attest.types must not pay
    # for the builders (CycloneDX's models, the build record).
    if name in __all__:
        return getattr(importlib.import_module("factory.attest.wheel"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
