"""Attest one built wheel: its provenance statement and its SBOM, checked for secrets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet

from factory.attest.keys import find_key_material
from factory.attest.provenance import build_statement
from factory.attest.sbom import Pins, build_sbom, sbom_statement, write_sbom
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.errors import LockError, SigningError

if TYPE_CHECKING:
    from factory.admission.model import Allowance


@dataclass(frozen=True)
class Attestation:
    provenance: dict[str, Any]  # in-toto Statement v1, SLSA provenance v1 predicate
    sbom_statement: dict[str, Any]  # in-toto Statement v1, CycloneDX predicate
    sbom_path: Path  # W.cdx.json

    @property
    def statements(self) -> list[dict[str, Any]]:
        return [self.provenance, self.sbom_statement]


def ensure_no_key_material(document: Any, settings: Settings, what: str) -> None:
    """Refuse to publish anything that carries a private key or its path."""
    found = find_key_material(json.dumps(document), settings)
    if found:
        raise SigningError(
            f"{what} would carry private key material or a private key path",
            "a build record or setting leaks a secret; fix it before attesting",
        )


def approved_pins(settings: Settings) -> Pins | None:
    """The versions recipes.lock pins (the newest locked one that meets a requirement),
    or None without a readable lock (the SBOM's dependencies are then unversioned)."""
    from factory.lock.model import load_lock  # the lock stage sits above attest

    try:
        lock = load_lock(settings)
    except LockError:
        return None

    def pinned(name: str, specifier: SpecifierSet) -> str | None:
        found = lock.find(name, specifier)
        return found.version if found is not None else None

    return pinned


def attest_wheel(settings: Settings, record: BuildRecord, wheel: Path,
                 allowances: Sequence[Allowance] = ()) -> Attestation:
    """Build the provenance and SBOM of ``wheel``; write ``W.cdx.json``.

    ``allowances``: files the admission gate let through only by a recipe allowance;
    both documents list them.
    """
    provenance = build_statement(record, settings, allowances)
    sbom = build_sbom(wheel, record, allowances, approved_pins(settings))
    ensure_no_key_material(provenance, settings, "the provenance")
    ensure_no_key_material(sbom, settings, "the SBOM")
    path = write_sbom(wheel, sbom)
    return Attestation(provenance, sbom_statement(wheel, sbom), path)
