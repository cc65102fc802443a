"""The checks of one artifact, each independent and named, each explaining itself.

An artifact's evidence (its digest and its sidecars) is read once; each check
then looks at the part it owns and returns a Check. A check never raises: a
tampered or malformed file is a failure with a message, not a crash, and the
other checks still run, so a reviewer sees everything that is wrong at once.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packageurl import PackageURL
from packaging.utils import canonicalize_name
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle
from sigstore_models.common.v1 import HashAlgorithm

from factory._internal.atomic import canonical_json
from factory.attest.types import BUILD_TYPE
from factory.attest.types import SBOM_PREDICATE_TYPE as SBOM_PREDICATE
from factory.attest.types import SLSA_PREDICATE_TYPE as SLSA_PREDICATE
from factory.errors import FactoryError, VerificationError
from factory.index.check import NotReadable, TooLarge, metadata_in, read_regular
from factory.index.records import FileEntry, StoredFile
from factory.lock import Lock
from factory.sign.bundles import IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE, check_subject
from factory.sign.pep740 import PUBLISH_PREDICATE, attestation_to_bundle_json
from factory.upstream.advisories import AdvisoryDatabase
from factory.verify import installed as installed_files
from factory.verify import intoto
from factory.verify.equivalence import PREDICATE_TYPE as EQUIVALENCE_PREDICATE
from factory.verify.equivalence import SUFFIX as EQUIVALENCE_SUFFIX
from factory.verify.model import (
    ADVISORIES,
    DIGEST,
    INSTALLED,
    INTOTO,
    METADATA,
    PEP740,
    PROVENANCE,
    SBOM,
    SIGNATURE,
    UPSTREAM,
    ArtifactReport,
    Check,
    failed,
    passed,
    skipped,
)
from factory.verify.sbom import schema_error
from factory.verify.targets import Item
from factory.verify.trust import Trust
from factory.verify.view import IndexView, same_version, sidecar

_CHUNK = 1 << 20
_SIDECAR_LIMIT = 256 << 20  # a sidecar larger than this is not one the factory wrote
_SIDECAR_KINDS = ("sigstore", "intoto", "provenance", "sbom", "build")
_SHORT = {PUBLISH_PREDICATE: "publish", SLSA_PREDICATE: "SLSA provenance",
          SBOM_PREDICATE: "CycloneDX SBOM"}


def sha256_and_size(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


@dataclass
class Evidence:
    """One wheel's digest and sidecars, read once."""

    wheel: Path
    sha256: str
    size: int
    base: Path  # the wheel path whose siblings hold the sidecars
    sidecars: dict[str, bytes | None] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # file name -> sha256 (for in-toto)
    # Verified statements by canonical bundle JSON: the PEP 740 attestations are the
    # same signed bundles as W.intoto.jsonl, so each is verified once.
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.wheel.name

    def text(self, kind: str) -> str:
        data = self.sidecars.get(kind)
        if data is None:
            raise VerificationError(f"no {sidecar(self.base, kind).name} next to the wheel")
        return data.decode("utf-8")

    def statements(self) -> list[tuple[str, dict[str, Any] | None]]:
        """(bundle JSON, unverified statement) for each line of W.intoto.jsonl."""
        out = []
        for line in self.text("intoto").splitlines():
            if line.strip():
                out.append((line, _unverified_statement(json.loads(line))))
        return out


def gather(item: Item) -> Evidence:
    wheel = item.wheel
    assert wheel is not None
    sha, size = sha256_and_size(wheel)
    base = wheel
    if not sidecar(wheel, "sigstore").is_file() and item.published is not None:
        base = item.published.path  # a bare wheel: its evidence is in the index
    evidence = Evidence(wheel, sha, size, base)
    for kind in _SIDECAR_KINDS:
        evidence.sidecars[kind] = _plain_bytes(sidecar(base, kind))
    evidence.held[wheel.name] = sha
    for path in base.parent.glob(base.name + ".*"):
        data = _plain_bytes(path)
        if data is not None:
            evidence.held[path.name] = hashlib.sha256(data).hexdigest()
    return evidence


def _plain_bytes(path: Path) -> bytes | None:
    """The bytes of a regular file; None for a link, FIFO, device, directory or absence
    (evidence is never read through a link, and a FIFO never blocks the verifier)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(_SIDECAR_LIMIT + 1)
    return data if len(data) <= _SIDECAR_LIMIT else None


def _unverified_statement(bundle: dict[str, Any]) -> dict[str, Any] | None:
    try:
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
        statement = json.loads(payload)
    except (KeyError, TypeError, ValueError):
        return None
    return statement if isinstance(statement, dict) else None


# -- the checks ------------------------------------------------------------------------------
class Auditor:
    """Verifies artifacts against one pinned trust, one index, one advisory database."""

    def __init__(self, index: IndexView, trust: Trust, advisories: AdvisoryDatabase | None,
                 lock: Lock | None = None) -> None:
        self.index, self.trust, self.advisories, self.lock = index, trust, advisories, lock

    def verify(self, item: Item) -> ArtifactReport:
        start = time.perf_counter()
        report = ArtifactReport(label=item.label, filename=item.filename, project=item.project,
                                version=item.version, sha256=None)
        if item.ignored:
            report.checks.append(skipped(DIGEST, "ignored on request (--ignore)"))
            return report
        evidence = None
        if item.wheel is not None and item.wheel.is_file():
            evidence = gather(item)
            report.sha256 = evidence.sha256
        elif item.wheel is not None and not item.problem:
            item.problem = f"{item.wheel} does not exist"
        report.checks.append(_run(DIGEST, lambda: self.digest(item, evidence)))
        if evidence is None:
            report.checks += [skipped(n, "nothing to verify") for n in
                              (METADATA, SIGNATURE, PROVENANCE, SBOM, PEP740, INTOTO)]
        else:
            ev = evidence
            report.checks += [
                _run(METADATA, lambda: self.metadata(item, ev)),
                _run(SIGNATURE, lambda: self.signature(ev)),
                _run(PROVENANCE, lambda: self.provenance(item, ev)),
                _run(SBOM, lambda: self.sbom(item, ev)),
                _run(PEP740, lambda: self.pep740(ev)),
                _run(INTOTO, lambda: self.in_toto(ev)),
            ]
            if _equivalence_path(ev).is_file():
                report.checks.append(_run(UPSTREAM, lambda: self.upstream(ev)))
        report.checks.append(_run(ADVISORIES, lambda: self.advisory(item)))
        if item.installed is not None:
            report.checks.append(_run(INSTALLED, lambda: self.installed(item)))
        if item.published is not None and item.published.entry.yanked:
            reason = item.published.entry.yanked_reason or "no reason given"
            report.notes.append(f"yanked from the index ({reason})")
        report.seconds = time.perf_counter() - start
        return report

    # -- digest ------------------------------------------------------------------------------
    def digest(self, item: Item, ev: Evidence | None) -> Check:
        if item.problem:
            return failed(DIGEST, item.problem)
        if ev is None or item.published is None:
            return failed(DIGEST, f"{item.label}: not a file the index publishes")
        entry = item.published.entry
        if ev.sha256 != entry.sha256 or ev.size != entry.size:
            return failed(DIGEST, f"sha256 {ev.sha256} ({ev.size} bytes) differs from the "
                                  f"index record's {entry.sha256} ({entry.size} bytes)")
        if item.pinned_sha256 and item.pinned_sha256.lower() != ev.sha256:
            return failed(DIGEST, f"the target pins sha256 {item.pinned_sha256}, the file is "
                                  f"{ev.sha256}")
        if ev.base == item.published.path:  # the index's own sidecars: as recorded?
            changed = [s.path.rsplit("/", 1)[-1] for s in _siblings(item.published.entry)
                       if ev.held.get(s.path.rsplit("/", 1)[-1]) != s.sha256]
            if changed:
                return failed(DIGEST, f"{', '.join(changed)} differ(s) from the index record "
                                      "(or is not a regular file)")
        count = self._subjects(ev)
        return passed(DIGEST, f"sha256 {ev.sha256[:16]}… equals the index record and "
                              f"{count} attestation subjects")

    def _subjects(self, ev: Evidence) -> int:
        count = 0
        if ev.sidecars.get("sigstore"):
            signed = json.loads(ev.text("sigstore"))["messageSignature"]["messageDigest"]
            if base64.b64decode(signed["digest"]).hex() != ev.sha256:
                raise VerificationError("the Sigstore bundle signs another digest than the file")
            count += 1
        if ev.sidecars.get("intoto"):
            for _, statement in ev.statements():
                _subject(statement, ev, "a statement in " + sidecar(ev.base, "intoto").name)
                count += 1
        if ev.sidecars.get("provenance"):
            for attestation in _attestations(json.loads(ev.text("provenance"))):
                raw = base64.b64decode(attestation["envelope"]["statement"])
                _subject(json.loads(raw), ev, "a PEP 740 attestation")
                count += 1
        if ev.sidecars.get("build"):
            record = json.loads(ev.text("build"))
            if (record.get("wheel_filename"), record.get("wheel_sha256")) != (ev.filename,
                                                                              ev.sha256):
                raise VerificationError("the build record names another file or digest")
            count += 1
        return count

    # -- core metadata (PEP 658) ------------------------------------------------------------
    def metadata(self, item: Item, ev: Evidence) -> Check:
        """The .metadata installers read before the wheel is the wheel's own METADATA, and
        has the recorded digest (the one the pages give: the pages check holds them equal)."""
        if item.published is None:
            return skipped(METADATA, "not a file the index publishes")
        stored = item.published.entry.metadata
        name = stored.path.rsplit("/", 1)[-1]
        try:
            served = read_regular(self.index.root, stored.path, stored.size)
        except TooLarge:
            return failed(METADATA, f"{name} is larger than the record says ({stored.size} "
                                    "bytes)")
        except NotReadable as exc:
            return failed(METADATA, f"{name} {exc}")
        digest = hashlib.sha256(served).hexdigest()
        if digest != stored.sha256 or len(served) != stored.size:
            return failed(METADATA, f"{name} has sha256 {digest}, the record (and the pages' "
                                    f"PEP 658 hash) {stored.sha256}")
        try:
            with ev.wheel.open("rb") as handle:
                inside: bytes | None = metadata_in(handle, len(served))
        except TooLarge:
            inside = None
        except NotReadable as exc:
            return failed(METADATA, f"{ev.filename} {exc}")
        if inside != served:
            return failed(METADATA, f"{name} is not the METADATA inside {ev.filename}")
        return passed(METADATA, f"{name} is the wheel's own METADATA (sha256 {digest[:16]}…, "
                                "as recorded)")

    # -- signature ---------------------------------------------------------------------------
    def signature(self, ev: Evidence) -> Check:
        bundle = _bundle(ev.text("sigstore"), "the Sigstore bundle")
        hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(ev.sha256))
        policy = self.trust.policy
        try:
            self.trust.verifier.verify_artifact(hashed, bundle, policy.sigstore())
        except (SigstoreError, ValueError) as exc:
            return failed(SIGNATURE, f"Sigstore bundle does not verify: {exc}")
        return passed(SIGNATURE, f"signed by {policy.identity} ({policy.issuer}); chains to "
                                 f"the pinned root, logged with a signed timestamp")

    def _verified(self, ev: Evidence, predicate_type: str) -> dict[str, Any]:
        """The signed statement of this type in W.intoto.jsonl, verified and bound to the file."""
        for line, statement in ev.statements():
            if statement and statement.get("predicateType") == predicate_type:
                verified = self._dsse_once(ev, line, f"the {predicate_type} bundle")
                _subject(verified, ev, f"the signed {predicate_type} statement")
                return verified
        raise VerificationError(f"no signed {predicate_type} statement in "
                                f"{sidecar(ev.base, 'intoto').name}")

    def _dsse_once(self, ev: Evidence, bundle_json: str, what: str) -> dict[str, Any]:
        key = json.dumps(json.loads(bundle_json), sort_keys=True)
        if key not in ev.verified:
            ev.verified[key] = self._dsse(_bundle(bundle_json, what))
        return copy.deepcopy(ev.verified[key])

    def _dsse(self, bundle: Bundle) -> dict[str, Any]:
        try:
            payload_type, payload = self.trust.verifier.verify_dsse(
                bundle, self.trust.policy.sigstore())
        except (SigstoreError, ValueError) as exc:
            raise VerificationError(f"signature does not verify: {exc}") from None
        if payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise VerificationError(f"signed payload is {payload_type!r}, not in-toto")
        statement = json.loads(payload)
        if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
            raise VerificationError("signed payload is not an in-toto Statement v1")
        return statement

    # -- provenance --------------------------------------------------------------------------
    def provenance(self, item: Item, ev: Evidence) -> Check:
        statement = self._verified(ev, SLSA_PREDICATE)
        predicate = statement["predicate"]
        definition, details = predicate["buildDefinition"], predicate["runDetails"]
        builder = details["builder"]["id"]
        if builder not in self.trust.policy.builder_ids:
            return failed(PROVENANCE, f"builder id {builder!r} is not allowed (allowed: "
                                      f"{', '.join(sorted(self.trust.policy.builder_ids))})")
        if definition["buildType"] != BUILD_TYPE:
            return failed(PROVENANCE, f"unknown buildType {definition['buildType']!r}")
        source = definition["externalParameters"]["source"]
        self._source_matches(item, source, definition["resolvedDependencies"])
        network = _network_modes(definition, details)
        if not network or any(mode != "none" for mode in network):
            seen = ", ".join(sorted(set(network))) or "not recorded"
            return failed(PROVENANCE, f"the build's network was {seen}, not none")
        sha = source["digest"]["sha256"]
        where = self._source_witnesses(item, sha)
        return passed(PROVENANCE, f"built by {builder} from {source['filename']} (sha256 "
                                  f"{sha[:16]}… = {', '.join(where)}); network none")

    def _source_matches(self, item: Item, source: dict[str, Any],
                        dependencies: list[dict[str, Any]]) -> None:
        if item.project and canonicalize_name(source["name"]) != item.project:
            raise VerificationError(f"provenance names source {source['name']!r}, not "
                                    f"{item.project}")
        if item.version and not same_version(source["version"], item.version):
            raise VerificationError(f"provenance names source version {source['version']}, "
                                    f"not {item.version}")
        sha = source["digest"]["sha256"]
        roles = [d for d in dependencies if d.get("annotations", {}).get("role") == "source"]
        if not roles or any(d.get("digest", {}).get("sha256") != sha for d in roles):
            raise VerificationError("the resolved source dependency disagrees with the "
                                    "external parameters")

    def _source_witnesses(self, item: Item, sha: str) -> list[str]:
        """Where else the source digest is recorded; raises on any disagreement."""
        where = []
        entry = item.published.entry if item.published else None
        if entry is not None and entry.source is not None:
            if entry.source.sha256 != sha:
                raise VerificationError(f"provenance names source sha256 {sha}, the index "
                                        f"records {entry.source.sha256} (upstream's digest)")
            where.append("index record")
        stored = self.index.source_path(item.published) if item.published else None
        if stored is not None:
            if not stored.is_file():
                raise VerificationError(f"the stored sdist {stored} is missing")
            actual, _ = sha256_and_size(stored)
            if actual != sha:
                raise VerificationError(f"the stored sdist {stored.name} has sha256 {actual}, "
                                        f"provenance names {sha}")
            where.append("stored sdist")
        locked = self.lock.get(item.project, item.version) if (
            self.lock and item.project and item.version) else None
        if locked is not None:
            if locked.sdist.sha256 != sha:
                raise VerificationError(f"recipes.lock pins {locked.sdist.sha256} for "
                                        f"{item.project} {item.version}, provenance names {sha}")
            where.append("recipes.lock")
        if not where:
            raise VerificationError("nothing records the upstream sdist's digest to compare "
                                    "with (no index record source, no stored sdist, no lock)")
        return where

    # -- SBOM ------------------------------------------------------------------------------------
    def sbom(self, item: Item, ev: Evidence) -> Check:
        raw = ev.sidecars.get("sbom")
        if raw is None:
            return failed(SBOM, f"no {sidecar(ev.base, 'sbom').name} next to the wheel")
        document = json.loads(raw)
        error = schema_error(document)
        if error:
            return failed(SBOM, f"not valid CycloneDX 1.6: {error}")
        component = document["metadata"]["component"]
        hashes = {h.get("alg"): h.get("content") for h in component.get("hashes", [])}
        if hashes.get("SHA-256") != ev.sha256:
            return failed(SBOM, f"the SBOM describes sha256 {hashes.get('SHA-256')}, not this "
                                "wheel")
        purl = PackageURL.from_string(component["purl"])
        if purl.qualifiers.get("file_name") != ev.filename:  # type: ignore[union-attr]
            return failed(SBOM, f"the SBOM's purl {component['purl']} names another file")
        signed = self._verified(ev, SBOM_PREDICATE)
        if canonical_json(signed["predicate"]).encode("utf-8") != raw:
            return failed(SBOM, f"{sidecar(ev.base, 'sbom').name} differs from the signed SBOM "
                                "statement")
        count = len(document.get("components", []))
        return passed(SBOM, f"valid CycloneDX 1.6; binds to the wheel; equals the signed SBOM "
                            f"({count} components)")

    # -- PEP 740 -----------------------------------------------------------------------------
    def pep740(self, ev: Evidence) -> Check:
        document = json.loads(ev.text("provenance"))
        if document.get("version") != 1:
            return failed(PEP740, "not a PEP 740 provenance object (version != 1)")
        kinds = []
        for attestation in _attestations(document):
            statement = self._dsse_once(ev, attestation_to_bundle_json(attestation),
                                        "a PEP 740 attestation")
            _subject(statement, ev, "a PEP 740 attestation")
            kinds.append(str(statement.get("predicateType")))
        if PUBLISH_PREDICATE not in kinds:
            return failed(PEP740, "no PEP 740 publish attestation")
        names = ", ".join(sorted(_SHORT.get(k, k) for k in kinds))
        return passed(PEP740, f"{len(kinds)} attestations verify ({names})")

    # -- in-toto -----------------------------------------------------------------------------
    def in_toto(self, ev: Evidence) -> Check:
        layout_dir = sidecar(ev.base, "in-toto")
        summary = intoto.verify(layout_dir, ev.wheel, self.trust.owner_key,
                                self.trust.owner_key_path, ev.held)
        return passed(INTOTO, summary)

    # -- equivalence with upstream ------------------------------------------------------------
    def upstream(self, ev: Evidence) -> Check:
        path = _equivalence_path(ev)
        statement = self._dsse(_bundle(path.read_text(encoding="utf-8"), path.name))
        _subject(statement, ev, path.name)
        if statement.get("predicateType") != EQUIVALENCE_PREDICATE:
            return failed(UPSTREAM, f"{path.name} is not an upstream-equivalence statement")
        predicate = statement["predicate"]
        upstream = predicate["upstream"]
        return passed(UPSTREAM, f"same {predicate['filesCompared']} files as upstream's "
                                f"{upstream['filename']} (sha256 "
                                f"{upstream['digest']['sha256'][:16]}…), compared "
                                f"{predicate['verifiedOn']}")

    # -- advisories --------------------------------------------------------------------------
    def advisory(self, item: Item) -> Check:
        if self.advisories is None:
            return skipped(ADVISORIES, "no advisory database configured")
        if not item.project or not item.version:
            return skipped(ADVISORIES, "no name and version to look up")
        found = self.advisories.affecting(item.project, item.version)
        if not found:
            known = len(self.advisories.for_package(item.project))
            return passed(ADVISORIES, f"none affects {item.project} {item.version} "
                                      f"({known} known for {item.project})")
        parts = []
        for adv in found:
            fixed = [str(v) for v in adv.fixed_versions(item.project)]
            aka = f" aka {', '.join(adv.aliases)}" if adv.aliases else ""
            parts.append(f"{adv.id}{aka}" + (f" (fixed in {', '.join(fixed)})" if fixed else ""))
        return failed(ADVISORIES, "affected by " + "; ".join(parts))

    # -- installed distributions ---------------------------------------------------------------
    def installed(self, item: Item) -> Check:
        dist = item.installed
        assert dist is not None
        if item.wheel is None or item.problem:
            return failed(INSTALLED, item.problem or "no published wheel to compare with")
        problems = installed_files.compare(dist, item.wheel)
        if problems:
            more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
            return failed(INSTALLED, f"{dist.name} {dist.version} is not the published "
                                     f"{item.filename}: {'; '.join(problems[:5])}{more}")
        return passed(INSTALLED, f"every file of {item.filename} is installed unchanged")


# -- helpers ---------------------------------------------------------------------------------
def _siblings(entry: FileEntry) -> list[StoredFile]:
    """The recorded files published beside the wheel (not inside its .in-toto/)."""
    out = [entry.metadata]
    for kind, group in entry.sidecars.items():
        if kind != "in-toto":
            out.extend(group)
    return out


def _run(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except FactoryError as exc:
        return failed(name, exc.message)
    except Exception as exc:  # a tampered file may break any parser: report, never crash
        return failed(name, f"malformed evidence: {type(exc).__name__}: {exc}"[:400])


def _bundle(text: str, what: str) -> Bundle:
    try:
        return Bundle.from_json(text)
    except (SigstoreError, ValueError) as exc:
        raise VerificationError(f"{what} is not a valid Sigstore bundle: {exc}") from None


def _subject(statement: dict[str, Any] | None, ev: Evidence, what: str) -> None:
    if statement is None:
        raise VerificationError(f"{what} has no readable in-toto statement")
    try:
        check_subject(statement, ev.filename, ev.sha256)
    except VerificationError as exc:
        raise VerificationError(f"{what}: {exc.message}") from None


def _attestations(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = [a for b in document.get("attestation_bundles", []) for a in b.get("attestations", [])]
    if not found:
        raise VerificationError("the PEP 740 provenance object holds no attestation")
    return found


def _equivalence_path(ev: Evidence) -> Path:
    return ev.base.with_name(ev.base.name + EQUIVALENCE_SUFFIX)


def _network_modes(definition: dict[str, Any], details: dict[str, Any]) -> list[str]:
    modes = [str(b.get("annotations", {}).get("mode")) for b in details.get("byproducts", [])
             if b.get("annotations", {}).get("role") == "isolation"]
    builder = definition.get("internalParameters", {}).get("builder", {})
    container = builder.get("container", {}) if isinstance(builder, dict) else {}
    if isinstance(container, dict) and "network_mode" in container:
        modes.append(str(container["network_mode"]))
    return modes
