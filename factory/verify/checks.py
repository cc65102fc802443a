"""The checks of one artifact: one row each in CHECKS, each named and explaining itself.

A check is a row (name, title, the method that runs it, when it applies) and
one method of the Auditor; ALL_CHECKS and CHECK_TITLES are read off the rows,
so a new check is one row plus one method. An artifact's evidence is read
once (factory.verify.evidence); each check then looks at the part it owns and
returns a Verdict. A check never raises: a tampered or malformed file is a
failure with a message, not a crash, and the other checks still run, so a
reviewer sees everything that is wrong at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
from packageurl import PackageURL
from packaging.utils import canonicalize_name
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle
from sigstore_models.common.v1 import HashAlgorithm

from factory._internal.plainfile import NotPlain, read_plain
from factory.attest.types import BUILD_TYPE
from factory.attest.types import SBOM_PREDICATE_TYPE as SBOM_PREDICATE
from factory.attest.types import SLSA_PREDICATE_TYPE as SLSA_PREDICATE
from factory.errors import FactoryError, VerificationError
from factory.index.records import FileEntry, StoredFile
from factory.index.tree import NotReadable, TooLarge, metadata_in, read_regular
from factory.lock import Lock, LockedComponent
from factory.sign.bundles import IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE
from factory.sign.pep740 import PUBLISH_PREDICATE, attestation_to_bundle
from factory.upstream.advisories import AdvisoriesUnavailable, AdvisoryDatabase
from factory.verify import installed as installed_files
from factory.verify.early import Facts
from factory.verify.equivalence import (
    DIVERGENT,
    EQUIVALENT,
    NO_UPSTREAM_WHEEL,
    VERDICTS,
    verdict_of,
)
from factory.verify.equivalence import PREDICATE_TYPE as EQUIVALENCE_PREDICATE
from factory.verify.equivalence import SUFFIX as EQUIVALENCE_SUFFIX
from factory.verify.evidence import (
    Evidence,
    attestations,
    bind,
    gather,
    parse_bundle,
    sha256_and_size,
)
from factory.verify.intoto_inputs import LayoutFiles, still_valid, verdict_key
from factory.verify.model import (
    FAIL,
    IGNORED,
    PASS,
    SKIP,
    ArtifactReport,
    Check,
    failed,
    skipped,
)
from factory.verify.sbom import canonical_equals, schema_error, warm_schema
from factory.verify.targets import Item
from factory.verify.trust import Trust
from factory.verify.view import IndexView, same_version, sidecar

_STATEMENT_LIMIT = 16 << 20  # bytes of an equivalence statement (a few KiB when written)
_SHORT = {PUBLISH_PREDICATE: "publish", SLSA_PREDICATE: "SLSA provenance",
          SBOM_PREDICATE: "CycloneDX SBOM"}


@dataclass(frozen=True)
class Verdict:
    """What a check found, before the row it belongs to names it."""

    status: str
    message: str


def ok(message: str) -> Verdict:
    return Verdict(PASS, message)


def fail(message: str) -> Verdict:
    return Verdict(FAIL, message)


def skip(message: str) -> Verdict:
    return Verdict(SKIP, message)


class Auditor:
    """Verifies artifacts against one pinned trust, one index, one advisory database."""

    def __init__(self, index: IndexView, trust: Trust, advisories: AdvisoryDatabase | None,
                 lock: Lock | None = None, advisories_problem: str | None = None) -> None:
        self.index, self.trust, self.advisories, self.lock = index, trust, advisories, lock
        # The lock's rows by (name, version), the first of each as Lock.get finds it: a
        # lookup per wheel, not a scan of every row (quadratic over a whole index).
        self._locked: dict[tuple[str, str], LockedComponent] = {}
        for component in lock.components if lock else ():
            self._locked.setdefault((component.key, component.version), component)
        # Why advisories are not checked, when they are not (said in every artifact's row).
        self.advisories_problem = advisories_problem or "no advisory source configured"
        # What the early child found, by the sha256 of the bytes it is about (early.Facts).
        self.facts = Facts()

    def prepare(self) -> None:
        """Load now what the checks would load on first use (the advisories' YAML reader;
        the SBOM schema validator, with jsonschema and the CycloneDX schemas; in-toto):
        called before the workers fork, so that they inherit it instead of each building
        its own. Not what the early child answered for every wheel (``facts.sboms_done``,
        ``in_toto_done``): then no worker needs it unless a file changed since, and that
        worker loads it for itself."""
        if self.advisories is not None:
            self.advisories.prepare()
        if not self.facts.sboms_done:
            warm_schema()
        if not self.facts.in_toto_done:
            from factory.verify import intoto  # noqa: F401

    def verify(self, item: Item) -> ArtifactReport:
        """Every row of CHECKS that applies to ``item``, in order."""
        start = time.perf_counter()
        report = ArtifactReport(label=item.label, filename=item.filename, project=item.project,
                                version=item.version, sha256=None)
        if item.ignored:  # one row says so, under the first check
            report.checks.append(skipped(CHECKS[0].name, f"{IGNORED} (--ignore)"))
            return report
        evidence = None
        try:
            if item.wheel is not None and item.wheel.is_file():
                evidence = gather(item)
                report.sha256 = evidence.sha256
            elif item.wheel is not None and not item.problem:
                item.problem = f"{item.wheel} does not exist"
        except OSError as exc:  # not one regular file (sha256_and_size), a name too long
            assert item.wheel is not None
            item.problem = f"{item.wheel.name} cannot be read ({exc.strerror or exc})"
        try:
            self._checks(item, evidence, report)
        finally:
            if evidence is not None:
                evidence.close()
        if item.published is not None and item.published.entry.yanked:
            reason = item.published.entry.yanked_reason or "no reason given"
            report.notes.append(f"yanked from the index ({reason})")
        report.seconds = time.perf_counter() - start
        return report

    def _checks(self, item: Item, evidence: Evidence | None, report: ArtifactReport) -> None:
        for spec in CHECKS:
            try:  # nothing an artifact's files do stops the run: a failed row at worst
                applies = spec.applies(item, evidence)
            except Exception as exc:
                report.checks.append(failed(spec.name, f"malformed evidence: "
                                            f"{type(exc).__name__}: {exc}"[:400]))
                continue
            if applies is True:
                report.checks.append(self._run(spec, item, evidence))
            elif applies:
                report.checks.append(skipped(spec.name, applies))

    def _run(self, spec: Spec, item: Item, evidence: Evidence | None) -> Check:
        try:
            # applies() let through only the artifacts with evidence to the checks that read it
            verdict = spec.run(self, item, cast(Evidence, evidence))
        except FactoryError as exc:
            return failed(spec.name, exc.message)
        except Exception as exc:  # a tampered file may break any parser: report, never crash
            return failed(spec.name, f"malformed evidence: {type(exc).__name__}: {exc}"[:400])
        return Check(spec.name, verdict.status, verdict.message)

    # -- digest ------------------------------------------------------------------------------
    def digest(self, item: Item, ev: Evidence | None) -> Verdict:
        if item.problem:
            return fail(item.problem)
        if ev is None or item.published is None:
            return fail(f"{item.label}: not a file the index publishes")
        entry = item.published.entry
        if ev.sha256 != entry.sha256 or ev.size != entry.size:
            return fail(f"sha256 {ev.sha256} ({ev.size} bytes) differs from the "
                        f"index record's {entry.sha256} ({entry.size} bytes)")
        if item.pinned_sha256 and item.pinned_sha256.lower() != ev.sha256:
            return fail(f"the target pins sha256 {item.pinned_sha256}, the file is {ev.sha256}")
        if ev.base == item.published.path:  # the index's own sidecars: as recorded?
            changed = [s.path.rsplit("/", 1)[-1] for s in _siblings(item.published.entry)
                       if ev.held.get(s.path.rsplit("/", 1)[-1]) != s.sha256]
            if changed:
                return fail(f"{', '.join(changed)} differ(s) from the index record "
                            "(or is not a regular file)")
        count = self._subjects(ev)
        return ok(f"sha256 {ev.sha256[:16]}… equals the index record and "
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
                bind(statement, ev, "a statement in " + sidecar(ev.base, "intoto").name)
                count += 1
        if ev.sidecars.get("provenance"):
            for attestation in attestations(ev.sidecar_json("provenance")):
                raw = base64.b64decode(attestation["envelope"]["statement"])
                bind(ev.parse(raw), ev, "a PEP 740 attestation")
                count += 1
        if ev.sidecars.get("build"):
            record = json.loads(ev.text("build"))
            if (record.get("wheel_filename"), record.get("wheel_sha256")) != (ev.filename,
                                                                              ev.sha256):
                raise VerificationError("the build record names another file or digest")
            count += 1
        return count

    # -- core metadata (PEP 658) ------------------------------------------------------------
    def metadata(self, item: Item, ev: Evidence) -> Verdict:
        """The .metadata installers read before the wheel is the wheel's own METADATA, and
        has the recorded digest (the one the pages give: the pages check holds them equal)."""
        if item.published is None:
            return skip("not a file the index publishes")
        stored = item.published.entry.metadata
        name = stored.path.rsplit("/", 1)[-1]
        try:
            served = read_regular(self.index.root, stored.path, stored.size)
        except TooLarge:
            return fail(f"{name} is larger than the record says ({stored.size} bytes)")
        except NotReadable as exc:
            return fail(f"{name} {exc}")
        digest = hashlib.sha256(served).hexdigest()
        if digest != stored.sha256 or len(served) != stored.size:
            return fail(f"{name} has sha256 {digest}, the record (and the pages' "
                        f"PEP 658 hash) {stored.sha256}")
        try:
            with ev.wheel.open("rb") as handle:
                inside: bytes | None = metadata_in(handle, len(served))
        except TooLarge:
            inside = None
        except NotReadable as exc:
            return fail(f"{ev.filename} {exc}")
        if inside != served:
            return fail(f"{name} is not the METADATA inside {ev.filename}")
        return ok(f"{name} is the wheel's own METADATA (sha256 {digest[:16]}…, as recorded)")

    # -- signature ---------------------------------------------------------------------------
    def signature(self, item: Item, ev: Evidence) -> Verdict:
        bundle = parse_bundle(ev.text("sigstore"), "the Sigstore bundle")
        hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(ev.sha256))
        policy = self.trust.policy
        try:
            self.trust.verifier.verify_artifact(hashed, bundle, policy.sigstore())
        except (SigstoreError, ValueError) as exc:
            return fail(f"Sigstore bundle does not verify: {exc}")
        return ok(f"signed by {policy.identity} ({policy.issuer}); chains to "
                  f"the pinned root, logged with a signed timestamp")

    def _verified(self, ev: Evidence, predicate_type: str) -> dict[str, Any]:
        """The signed statement of this type in W.intoto.jsonl, verified and bound to the file."""
        for line, statement in ev.statements():
            if statement and statement.get("predicateType") == predicate_type:
                verified = self._dsse_once(ev, line, f"the {predicate_type} bundle")
                bind(verified, ev, f"the signed {predicate_type} statement")
                return verified
        raise VerificationError(f"no signed {predicate_type} statement in "
                                f"{sidecar(ev.base, 'intoto').name}")

    def _dsse_once(self, ev: Evidence, bundle_json: str, what: str,
                   bundle: Bundle | None = None) -> dict[str, Any]:
        """``bundle_json``'s statement, verified once per wheel; ``bundle``: the bundle
        that JSON was written from (not parsed again)."""
        key = _bundle_key(bundle_json)
        if key not in ev.verified:
            ev.verified[key] = self._dsse_payload(bundle or parse_bundle(bundle_json, what),
                                                  ev.parse)
        # Parsed once per wheel (Evidence.parse): the checks only read statements.
        return _statement(ev.verified[key], ev.parse)

    def _dsse(self, bundle: Bundle) -> dict[str, Any]:
        return _statement(self._dsse_payload(bundle))

    def _dsse_payload(self, bundle: Bundle,
                      parse: Callable[[bytes], Any] = json.loads) -> bytes:
        """The signed payload of a verified in-toto DSSE bundle (JSON)."""
        try:
            payload_type, payload = self.trust.verifier.verify_dsse(
                bundle, self.trust.policy.sigstore())
        except (SigstoreError, ValueError) as exc:
            raise VerificationError(f"signature does not verify: {exc}") from None
        if payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise VerificationError(f"signed payload is {payload_type!r}, not in-toto")
        _statement(payload, parse)
        return payload

    # -- provenance --------------------------------------------------------------------------
    def provenance(self, item: Item, ev: Evidence) -> Verdict:
        statement = self._verified(ev, SLSA_PREDICATE)
        predicate = statement["predicate"]
        definition, details = predicate["buildDefinition"], predicate["runDetails"]
        builder = details["builder"]["id"]
        if builder not in self.trust.policy.builder_ids:
            return fail(f"builder id {builder!r} is not allowed (allowed: "
                        f"{', '.join(sorted(self.trust.policy.builder_ids))})")
        if definition["buildType"] != BUILD_TYPE:
            return fail(f"unknown buildType {definition['buildType']!r}")
        source = definition["externalParameters"]["source"]
        self._source_matches(item, source, definition["resolvedDependencies"])
        network = _network_modes(definition, details)
        if not network or any(mode != "none" for mode in network):
            seen = ", ".join(sorted(set(network))) or "not recorded"
            return fail(f"the build's network was {seen}, not none")
        sha = source["digest"]["sha256"]
        where = self._source_witnesses(item, sha)
        return ok(f"built by {builder} from {source['filename']} (sha256 "
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
        locked = self._locked.get((canonicalize_name(item.project), item.version)) if (
            item.project and item.version) else None
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
    def sbom(self, item: Item, ev: Evidence) -> Verdict:
        raw = ev.sidecars.get("sbom")
        if raw is None:
            return fail(f"no {sidecar(ev.base, 'sbom').name} next to the wheel")
        document = ev.parse(raw)  # read only: the checks share what Evidence parsed
        error = self._schema_error(raw, document, ev.integral(document))
        if error:
            return fail(f"not valid CycloneDX 1.6: {error}")
        component = document["metadata"]["component"]
        hashes = {h.get("alg"): h.get("content") for h in component.get("hashes", [])}
        if hashes.get("SHA-256") != ev.sha256:
            return fail(f"the SBOM describes sha256 {hashes.get('SHA-256')}, not this wheel")
        purl = PackageURL.from_string(component["purl"])
        if purl.qualifiers.get("file_name") != ev.filename:  # type: ignore[union-attr]
            return fail(f"the SBOM's purl {component['purl']} names another file")
        signed = self._verified(ev, SBOM_PREDICATE)
        if not canonical_equals(raw, signed["predicate"], integral=ev.integral(signed)):
            return fail(f"{sidecar(ev.base, 'sbom').name} differs from the signed SBOM statement")
        count = len(document.get("components", []))
        return ok(f"valid CycloneDX 1.6; binds to the wheel; equals the signed SBOM "
                  f"({count} components)")

    def _schema_error(self, raw: bytes, document: Any, integral: bool) -> str | None:
        """schema_error for the SBOM ``document`` parsed from ``raw``: the early child's
        answer for these exact bytes when it gave one (it asked the same question of
        them, factory.verify.early), else asked here."""
        known = self.facts.sbom_error
        digest = hashlib.sha256(raw).hexdigest() if known else ""
        if digest in known:
            return known[digest]
        return schema_error(document, integral=integral)

    # -- PEP 740 -----------------------------------------------------------------------------
    def pep740(self, item: Item, ev: Evidence) -> Verdict:
        document = ev.sidecar_json("provenance")
        if document.get("version") != 1:
            return fail("not a PEP 740 provenance object (version != 1)")
        kinds = []
        for attestation in attestations(document):
            bundle = attestation_to_bundle(attestation)
            statement = self._dsse_once(ev, bundle.to_json(), "a PEP 740 attestation", bundle)
            bind(statement, ev, "a PEP 740 attestation")
            kinds.append(str(statement.get("predicateType")))
        if PUBLISH_PREDICATE not in kinds:
            return fail("no PEP 740 publish attestation")
        names = ", ".join(sorted(_SHORT.get(k, k) for k in kinds))
        return ok(f"{len(kinds)} attestations verify ({names})")

    # -- in-toto -----------------------------------------------------------------------------
    def in_toto(self, item: Item, ev: Evidence) -> Verdict:
        files = LayoutFiles(sidecar(ev.base, "in-toto"))
        known = self.facts.in_toto.get(ev.sha256)
        # The early child's verdict when this would verify the very bytes it verified,
        # with the same owner key and held files (factory.verify.intoto_inputs), while
        # the layout it found unexpired still is.
        if known is not None and files.reread(known.names) and verdict_key(
                files, self.trust.owner_key, ev.held, ev.filename) == known.key \
                and still_valid(known.expires):
            return Verdict(PASS if known.passed else FAIL, known.message)
        from factory.verify import intoto  # (in-toto's import: only when the child did not)

        # The inspection of the very bytes ``held`` names: the child's answer for them, or
        # the bytes gather read (tested when the inspection runs), never the path again.
        zip_ok: intoto.ZipOk = self.facts.zip_ok.get(ev.sha256)
        if zip_ok is None and ev.content is not None:
            zip_ok = ev.zip_intact
        return ok(intoto.verify(files.directory, ev.wheel, self.trust.owner_key,
                                self.trust.owner_key_path, ev.held, files=files,
                                zip_ok=zip_ok))

    # -- equivalence with upstream ------------------------------------------------------------
    def upstream(self, item: Item, ev: Evidence) -> Verdict:
        path = _equivalence_path(ev)
        try:  # as every sidecar: a regular file, never through a link, bounded
            raw = read_plain(path, _STATEMENT_LIMIT)
        except NotPlain as exc:
            return fail(f"{path.name} cannot be read ({exc.why})")
        if raw is None:
            return fail(f"{path.name} is missing")
        statement = self._dsse(parse_bundle(raw.decode("utf-8"), path.name))
        bind(statement, ev, path.name)
        if statement.get("predicateType") != EQUIVALENCE_PREDICATE:
            return fail(f"{path.name} is not an upstream-equivalence statement")
        # Whatever its verdict, a statement that verifies passes: divergence is a fact
        # the statement reports (per file), not a failure of the wheel.
        return verdict_line(statement["predicate"])

    # -- advisories --------------------------------------------------------------------------
    def advisory(self, item: Item, ev: Evidence | None) -> Verdict:
        if self.advisories is None:
            return skip(f"NOT CHECKED: {self.advisories_problem}")
        if not item.project or not item.version:
            return skip("no name and version to look up")
        try:
            found = self.advisories.affecting(item.project, item.version)
        except AdvisoriesUnavailable as exc:  # the OSV API, asked per package, failed
            return skip(f"NOT CHECKED: {exc.message}")
        if not found and self.advisories.stale:  # an old copy's silence is not a PASS
            return skip(f"NOT CHECKED: {self.advisories.stale} (it names none for "
                        f"{item.project} {item.version})")
        if not found:
            known = len(self.advisories.for_package(item.project))
            return ok(f"none affects {item.project} {item.version} "
                      f"({known} known for {item.project})")
        parts = []
        for adv in found:
            fixed = [str(v) for v in adv.fixed_versions(item.project)]
            aka = f" aka {', '.join(adv.aliases)}" if adv.aliases else ""
            parts.append(f"{adv.id}{aka}" + (f" (fixed in {', '.join(fixed)})" if fixed else ""))
        return fail("affected by " + "; ".join(parts))

    # -- installed distributions ---------------------------------------------------------------
    def installed(self, item: Item, ev: Evidence | None) -> Verdict:
        dist = item.installed
        assert dist is not None
        if item.wheel is None or item.problem:
            return fail(item.problem or "no published wheel to compare with")
        problems = installed_files.compare(dist, item.wheel)
        if problems:
            more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
            return fail(f"{dist.name} {dist.version} is not the published "
                        f"{item.filename}: {'; '.join(problems[:5])}{more}")
        return ok(f"every file of {item.filename} is installed unchanged")


# -- the rows ----------------------------------------------------------------------------------
# When a check applies to an artifact: True (it runs), False (it is not part of this
# artifact's report), or why it is skipped.
Applies = Callable[[Item, Evidence | None], bool | str]


def always(item: Item, ev: Evidence | None) -> bool | str:
    return True


def with_evidence(item: Item, ev: Evidence | None) -> bool | str:
    return ev is not None or "nothing to verify"


def with_equivalence(item: Item, ev: Evidence | None) -> bool | str:
    """Only a wheel someone compared with upstream carries a signed equivalence statement."""
    try:
        return ev is not None and _equivalence_path(ev).is_file()
    except OSError:  # a name past the file system's bound: no statement can be there
        return False


def when_installed(item: Item, ev: Evidence | None) -> bool | str:
    return item.installed is not None


@dataclass(frozen=True)
class Spec:
    """One check: its name in reports, what it establishes, the method, when it applies."""

    name: str
    title: str
    run: Callable[[Auditor, Item, Evidence], Verdict]
    applies: Applies = with_evidence
    # Shown in the last column of the table and last among the titles, wherever it runs.
    last_column: bool = False


# In the order they run and appear in each artifact's report.
CHECKS: tuple[Spec, ...] = (
    Spec("digest", "sha256 matches the index record and every attestation subject",
         Auditor.digest, always),
    Spec("metadata", ".metadata (PEP 658) is the wheel's own METADATA, with the recorded sha256",
         Auditor.metadata),
    Spec("signature", "Sigstore bundle verifies against the pinned root and identity policy",
         Auditor.signature),
    Spec("provenance", "signed SLSA provenance: allowed builder, locked source, network none",
         Auditor.provenance),
    Spec("sbom", "CycloneDX 1.6 SBOM is valid, binds to the wheel, equals the signed one",
         Auditor.sbom),
    Spec("pep740", "PEP 740 attestations (publish, provenance, SBOM) verify for this file",
         Auditor.pep740),
    Spec("in-toto", "in-toto layout (owner key) and fetch/build/attest links verify",
         Auditor.in_toto),
    Spec("upstream", "signed statement: same files as upstream's wheel of this version",
         Auditor.upstream, with_equivalence, last_column=True),
    Spec("advisories", "no known advisory affects this version", Auditor.advisory, always),
    Spec("installed", "installed files match the published wheel's RECORD", Auditor.installed,
         when_installed),
)

# In the order of the table's columns (a stable sort keeps the rows' order otherwise).
CHECK_TITLES = {spec.name: spec.title for spec in sorted(CHECKS, key=lambda s: s.last_column)}
ALL_CHECKS = tuple(CHECK_TITLES)


# -- helpers ---------------------------------------------------------------------------------
def _statement(payload: bytes, parse: Callable[[bytes], Any] = json.loads) -> dict[str, Any]:
    statement = parse(payload)
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise VerificationError("signed payload is not an in-toto Statement v1")
    return statement


def _bundle_key(bundle_json: str) -> str:
    """The bundle's JSON value as text with sorted keys: equal for two texts of the same
    bundle (orjson, the standard library for what orjson will not read or write)."""
    try:
        return orjson.dumps(orjson.loads(bundle_json), option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONDecodeError, TypeError):
        return "\0" + json.dumps(json.loads(bundle_json), sort_keys=True)


def _siblings(entry: FileEntry) -> list[StoredFile]:
    """The recorded files published beside the wheel (not inside its .in-toto/)."""
    out = [entry.metadata]
    for kind, group in entry.sidecars.items():
        if kind != "in-toto":
            out.extend(group)
    return out


def verdict_line(predicate: dict[str, Any]) -> Verdict:
    """What a verified equivalence statement says, in one line."""
    verdict = verdict_of(predicate)
    upstream = predicate.get("upstream") or {}
    when = predicate.get("verifiedOn", "?")
    if verdict == EQUIVALENT:
        return ok(f"equivalent: same {predicate.get('filesCompared')} files as upstream's "
                  f"{upstream.get('filename')} (sha256 "
                  f"{str(upstream.get('digest', {}).get('sha256'))[:16]}…), compared {when}")
    if verdict == DIVERGENT:
        files = predicate.get("differences") or []
        shown = "; ".join(f"{d.get('file')} ({d.get('why')})" for d in files[:3]
                          if isinstance(d, dict))
        backend = predicate.get("backend") or {}
        return ok(f"divergent from upstream's {upstream.get('filename')}: {len(files)} "
                  f"file(s) differ ({shown}{', …' if len(files) > 3 else ''}); backend "
                  f"{'matched' if backend.get('matched') else 'not matched'}: "
                  f"{backend.get('reason', '?')} (compared {when})")
    if verdict == NO_UPSTREAM_WHEEL:
        return ok(f"no upstream wheel to compare with: {predicate.get('message', '')}")
    return fail(f"the statement's verdict {str(predicate.get('verdict'))[:40]!r} is not one "
                f"of {', '.join(VERDICTS)}")


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
