"""Release: turn a finished build into a signed, attested, published file.

For each build record: check the wheel against its record, write the SLSA
provenance and the CycloneDX SBOM (attest), sign the wheel and every statement
through Sigstore (sign), write the in-toto layout and links, and publish the
wheel with all of it (publish). Everything happens on the control plane, never
inside a build container. A rerun after a crash finishes what is missing: the
index refuses different bytes under a published name and accepts the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from factory import ledger
from factory.atomic import sha256_file, write_json, write_text
from factory.attest import attest_wheel
from factory.attest.intoto import intoto_dir_for, write_intoto
from factory.builders.record import BuildRecord, record_path_for
from factory.config import Settings
from factory.errors import IntegrityError
from factory.index.publish import PublishedFile, publish, publish_trust
from factory.index.records import Layout, load_record
from factory.index.store import publish_lock
from factory.keys import init_keys
from factory.signing import (
    Signer,
    factory_publisher,
    init_authority,
    open_signer,
    provenance_object,
    publish_statement,
    to_pep740_attestation,
)
from factory.sources import cache_path


def ensure_keys(settings: Settings) -> None:
    """Functionary keys and the embedded authority; idempotent, never overwrites."""
    init_keys(settings)
    if settings.signing_mode == "embedded":
        init_authority(settings)


def trust_files(settings: Settings) -> dict[str, Path]:
    """The public trust material served under /.well-known/factory/."""
    keys = settings.public_keys_dir
    files = {p.name: p for p in sorted(keys.glob("*.pub.pem"))}
    for name in ("fingerprints.json", "trusted_root.json"):
        if (keys / name).is_file():
            files[name] = keys / name
    return files


def is_published(settings: Settings, record: BuildRecord) -> bool:
    """True when the index already serves this exact wheel."""
    index_record = load_record(Layout(settings.index_dir), canonicalize_name(record.component))
    entry = index_record.find(record.wheel_filename) if index_record else None
    return entry is not None and entry.sha256 == record.wheel_sha256


@dataclass(frozen=True)
class Sidecars:
    files: dict[str, Path]


def _sign(settings: Settings, signer: Signer, record: BuildRecord, wheel: Path) -> Sidecars:
    attestation = attest_wheel(settings, record, wheel)
    bundle = signer.sign_artifact(wheel)
    statements = [*attestation.statements, publish_statement(wheel.name, record.wheel_sha256)]
    bundles = [signer.sign_statement(s) for s in statements]
    sigstore_path = wheel.with_name(wheel.name + ".sigstore.json")
    jsonl_path = wheel.with_name(wheel.name + ".intoto.jsonl")
    provenance_path = wheel.with_name(wheel.name + ".provenance")
    write_text(sigstore_path, bundle if bundle.endswith("\n") else bundle + "\n")
    write_text(jsonl_path, "".join(json.dumps(json.loads(b), sort_keys=True) + "\n"
                                   for b in bundles))
    write_json(provenance_path, provenance_object([to_pep740_attestation(b) for b in bundles],
                                                  factory_publisher(settings)))
    sdist = cache_path(settings, record.source.sha256, record.source.filename)
    in_toto = intoto_dir_for(wheel)
    write_intoto(settings, sdist, wheel, [attestation.sbom_path, jsonl_path], in_toto)
    return Sidecars({"provenance": provenance_path, "sigstore": sigstore_path,
                     "intoto": jsonl_path, "sbom": attestation.sbom_path,
                     "build": record_path_for(wheel), "in-toto": in_toto})


def release(settings: Settings, records: Iterable[BuildRecord],
            on_done: Callable[[BuildRecord, PublishedFile | None], None] | None = None,
            run_id: str | None = None) -> list[PublishedFile]:
    """Attest, sign and publish each record's wheel (skipping those already served)."""
    pending = [r for r in records if not is_published(settings, r)]
    published: list[PublishedFile] = []
    if not pending:
        return published
    ensure_keys(settings)
    publish_trust(settings, trust_files(settings))
    with open_signer(settings) as signer:
        for record in pending:
            # Two factory processes on one state dir would write the same sidecars
            # beside the wheel; one lock per wheel keeps each set whole, and the
            # second finds the wheel published and signs nothing twice.
            with publish_lock(settings.wheels_dir / ".locks" / record.wheel_filename):
                if is_published(settings, record):
                    continue
                published.append(_release_one(settings, signer, record, run_id))
            if on_done:
                on_done(record, published[-1])
    return published


def _release_one(settings: Settings, signer: Signer, record: BuildRecord,
                 run_id: str | None) -> PublishedFile:
    wheel = settings.wheels_dir / record.wheel_filename
    actual = sha256_file(wheel) if wheel.is_file() else "missing"
    if actual != record.wheel_sha256:
        raise IntegrityError(f"{record.wheel_filename}: sha256 {actual} does not match its "
                             f"build record ({record.wheel_sha256})",
                             "the built wheel changed after its build; rebuild it")
    sidecars = _sign(settings, signer, record, wheel)
    sdist = cache_path(settings, record.source.sha256, record.source.filename)
    result = publish(settings, wheel, sidecars.files, sdist if sdist.is_file() else None)
    ledger.record_decision(settings, record.component, "published", record.wheel_filename,
                           version=record.version, run_id=run_id)
    return result
