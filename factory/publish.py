"""Publish: turn a finished build into a signed, attested, published file.

For each build record: check the wheel against its record and against what was
approved (factory.admission: the lock's pin, names, requirements, members,
prebuilt files), write the SLSA provenance and the CycloneDX SBOM (attest), sign
the wheel and every statement through Sigstore (sign), write the in-toto layout
and links, and publish the wheel with all of it (publish). Everything happens on
the control plane, never inside a build container. A rerun after a crash
finishes what is missing: the index refuses different bytes under a published
name and accepts the same.

One bad wheel never stops the rest: a wheel refused by the gate, the attester,
the signer or the index is recorded (ledger decision "refused", with the reason)
and the others are still published; ``release`` raises ``RefusedError`` at the
end, naming each refused wheel on its own line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from factory import ledger
from factory._internal.atomic import sha256_file, write_json, write_text
from factory.admission import Allowance, Approvals, admit
from factory.attest import attest_wheel
from factory.attest.intoto import write_intoto
from factory.attest.keys import init_keys
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.errors import FactoryError, IntegrityError, PublishError, SigningError, printable
from factory.index import Index, PublishedFile
from factory.index.records import Sidecars
from factory.index.store import publish_lock
from factory.project_status import Policy, apply_statuses
from factory.sign import (
    Signer,
    factory_publisher,
    init_authority,
    open_signer,
    provenance_object,
    publish_statement,
    to_pep740_attestation,
)
from factory.sign.trust import TRUST_CONFIG, TRUSTED_ROOT, public_trust_config
from factory.sign.tuf_repo import TufState, refresh, targets_from_config
from factory.upstream.cache import cache_path
from factory.verify.equivalence import SIDECAR_KIND, Comparer


def ensure_keys(settings: Settings) -> None:
    """Functionary keys and the embedded authority; idempotent, never overwrites."""
    init_keys(settings)
    if settings.signing_mode == "embedded":
        init_authority(settings)


def trust_files(settings: Settings) -> dict[str, Path]:
    """The public trust material served under /.well-known/factory/."""
    keys = settings.public_keys_dir
    files = {p.name: p for p in sorted(keys.glob("*.pub.pem"))}
    for name in ("fingerprints.json", TRUSTED_ROOT):
        if (keys / name).is_file():
            files[name] = keys / name
    config = keys / TRUST_CONFIG  # for `sigstore --trust-config`: public material only
    if config.is_file() and TRUSTED_ROOT in files:
        try:
            public_trust_config(config, files[TRUSTED_ROOT])
        except (OSError, ValueError) as exc:
            raise PublishError(f"not publishing {config}: {exc}",
                               "run `factory keys init` to rewrite it from the trusted "
                               "root") from None
        files[TRUST_CONFIG] = config
    return files


def publish_tuf(settings: Settings, index: Index,
                files: dict[str, Path] | None = None) -> TufState | None:
    """Bring the index's TUF repository (/tuf/, for `sigstore --instance URL`) up to date
    with the published trust config (``files``: ``trust_files``); None when there is no
    trust config to distribute (an organisation's own Sigstore has its own TUF)."""
    files = trust_files(settings) if files is None else files
    if TRUST_CONFIG not in files or TRUSTED_ROOT not in files:
        return None
    targets = targets_from_config(json.loads(files[TRUST_CONFIG].read_bytes()),
                                  files[TRUSTED_ROOT].read_bytes())
    with index.tuf_directory() as directory:
        return refresh(settings, targets, directory)


@dataclass(frozen=True)
class Refusal:
    """A wheel that was not signed or published, and why (one line each)."""

    component: str
    version: str
    filename: str
    reason: str
    hint: str

    def line(self) -> str:
        return f"refused {self.filename}: {self.reason}"


@dataclass
class ReleaseReport:
    published: list[PublishedFile] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    # equivalence with upstream (factory.verify.equivalence): the verdicts of the pure
    # wheels published, why one has no statement, and releases that diverge now
    equivalence: str = ""
    equivalence_notes: list[str] = field(default_factory=list)
    equivalence_alarms: list[str] = field(default_factory=list)
    # after a publish: why its advisories were NOT CHECKED or the VEX feed not rewritten
    advisories_problem: str | None = None
    # why the TUF repository (/tuf/) was not re-signed by this publish (it goes on)
    tuf_problem: str | None = None

    def raise_for_refusals(self) -> None:
        if self.refused:
            raise RefusedError(self)


class RefusedError(FactoryError):
    """Some wheels were refused; every other one was published."""

    def __init__(self, report: ReleaseReport) -> None:
        super().__init__(
            f"{len(report.refused)} wheel(s) refused, {len(report.published)} published",
            "each refusal is recorded in the ledger with its reason; fix its cause "
            "(rebuild, recipe, lock) and publish again")
        self.report = report

    def diagnostics(self) -> str:
        """The summary line, then one line per refused wheel."""
        return "\n".join([super().diagnostics(), *(f"  {r.line()}" for r in self.report.refused)])


def is_published(index: Index, record: BuildRecord) -> bool:
    """True when the index already serves this exact wheel."""
    return index.serves(canonicalize_name(record.component), record.wheel_filename,
                        record.wheel_sha256)


def _sign(settings: Settings, signer: Signer, record: BuildRecord, wheel: Path,
          allowances: tuple[Allowance, ...], comparer: Comparer | None = None,
          run_id: str | None = None) -> dict[str, Path]:
    """Attest and sign ``wheel``; every sidecar the index publishes beside it, by kind.

    The build wrote the build record, attest the SBOM; this writes the rest, and the
    signed equivalence statement of a pure wheel when upstream could be compared."""
    attestation = attest_wheel(settings, record, wheel, allowances)
    bundle = signer.sign_artifact(wheel)
    statements = [*attestation.statements, publish_statement(wheel.name, record.wheel_sha256)]
    bundles = [signer.sign_statement(s) for s in statements]
    sidecars = Sidecars(wheel)
    write_text(sidecars.path("sigstore"), bundle if bundle.endswith("\n") else bundle + "\n")
    write_text(sidecars.path("intoto"), "".join(json.dumps(json.loads(b), sort_keys=True) + "\n"
                                                for b in bundles))
    write_json(sidecars.path("provenance"),
               provenance_object([to_pep740_attestation(b) for b in bundles],
                                 factory_publisher(settings)))
    sdist = cache_path(settings, record.source.sha256, record.source.filename)
    write_intoto(settings, sdist, wheel, [attestation.sbom_path, sidecars.path("intoto")],
                 sidecars.path("in-toto"))
    files = sidecars.files()
    statement = files.pop(SIDECAR_KIND)
    if comparer is not None and comparer.write(signer, record.component, record.version, wheel,
                                               record.wheel_sha256, statement, run_id):
        files[SIDECAR_KIND] = statement
    return files


def release(settings: Settings, records: Iterable[BuildRecord],
            on_done: Callable[[BuildRecord, PublishedFile | None], None] | None = None,
            run_id: str | None = None) -> list[PublishedFile]:
    """Attest, sign and publish each record's wheel (skipping those already served).

    Raises RefusedError at the end when any wheel was refused, after publishing
    every other one.
    """
    report = release_all(settings, records, on_done, run_id)
    report.raise_for_refusals()
    return report.published


def release_all(settings: Settings, records: Iterable[BuildRecord],
                on_done: Callable[[BuildRecord, PublishedFile | None], None] | None = None,
                run_id: str | None = None) -> ReleaseReport:
    """Like ``release``, but returns the refusals instead of raising for them."""
    report = ReleaseReport()
    index = Index.of(settings)
    # PEP 792 status from the recipes and upstream (factory.project_status): applied
    # before anything is signed (a quarantine hides the files at once) and again after
    # (projects published for the first time).
    policy = Policy.load(settings)
    apply_statuses(settings, index, policy)
    pending: list[BuildRecord] = []
    served: list[BuildRecord] = []
    for record in records:
        (served if _served(index, record) else pending).append(record)
    # Asked first, so that a ledger that cannot record a decision fails the run before
    # anything is signed, not after.
    refusals = ledger.open_refusals(settings)
    _close_refusals(settings, served, refusals, run_id)
    if not pending:
        return report
    try:
        return _release_pending(settings, index, pending, report, policy, on_done, run_id)
    finally:
        if report.published:
            apply_statuses(settings, index, policy)
            report.advisories_problem = refresh_vex(
                settings, index, {p.project for p in report.published}, run_id)


def refresh_vex(settings: Settings, index: Index, projects: Iterable[str],
                run_id: str | None = None) -> str | None:
    """After a publish: check ``projects`` against the advisory source and record it (as
    `watch` does, yanking an affected version), then rewrite the signed OpenVEX feed
    (factory.vex), so it never lags the served set. Never stops the publish: returns why
    the advisories were NOT CHECKED or the feed not rewritten (the last one stands), or
    None."""
    from factory.upstream.advisories import for_settings
    from factory.vex import publish_vex
    from factory.watch import check_advisories

    db, problem = for_settings(settings)
    try:
        if db is not None:
            check_advisories(settings, index, run_id, db, projects)
        if db is not None or not settings.advisories:
            publish_vex(settings, index, db)  # never from a source that could not be read
    except FactoryError as exc:
        return exc.message
    return problem


def _release_pending(settings: Settings, index: Index, pending: list[BuildRecord],
                     report: ReleaseReport, policy: Policy,
                     on_done: Callable[[BuildRecord, PublishedFile | None], None] | None,
                     run_id: str | None) -> ReleaseReport:
    ensure_keys(settings)
    trust = trust_files(settings)
    index.publish_trust(trust)
    try:  # the timestamp is re-signed here, when due
        publish_tuf(settings, index, trust)
    except SigningError as exc:  # a damaged or planted tuf/ never stops the wheels
        report.tuf_problem = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
    approvals = Approvals.load(settings)
    with open_signer(settings) as signer, Comparer(settings) as comparer:
        try:
            _publish_each(settings, index, signer, comparer, approvals, pending, report,
                          policy, on_done, run_id)
        finally:
            report.equivalence = comparer.summary()
            report.equivalence_notes, report.equivalence_alarms = comparer.notes, comparer.alarms
    return report


def _publish_each(settings: Settings, index: Index, signer: Signer, comparer: Comparer,
                  approvals: Approvals, pending: list[BuildRecord], report: ReleaseReport,
                  policy: Policy,
                  on_done: Callable[[BuildRecord, PublishedFile | None], None] | None,
                  run_id: str | None) -> None:
    for record in pending:
        # Two factory processes on one state dir would write the same sidecars
        # beside the wheel; one lock per wheel keeps each set whole, and the
        # second finds the wheel published and signs nothing twice.
        result: PublishedFile | None = None
        with publish_lock(settings.wheels_dir / ".locks" / record.wheel_filename):
            try:
                if is_published(index, record):
                    continue
                held = policy.held(canonicalize_name(record.component))
                if held is not None:
                    raise PublishError(f"{record.wheel_filename}: {held}",
                                       f"`factory why {record.component}` says why; "
                                       "published versions stay as they are")
                result = _release_one(settings, index, signer, approvals, record, run_id,
                                      comparer)
                report.published.append(result)
            except FactoryError as exc:  # this wheel only: the others go on
                report.refused.append(_refuse(settings, record, exc, run_id))
            except Exception as exc:  # a library's own error on this wheel's data
                # (a model, a schema, a zip): still this wheel alone.
                report.refused.append(_refuse(settings, record, _unexpected(exc), run_id))
        if on_done:
            on_done(record, result)


def _close_refusals(settings: Settings, served: list[BuildRecord],
                    refusals: dict[tuple[str, str | None], dict[str, Any]],
                    run_id: str | None) -> None:
    """A served wheel whose version the ledger still calls refused: a run killed
    between publishing it and recording that. Record the publication now."""
    for record in served:
        refusal = refusals.get((record.component, record.version))
        if refusal is not None and ledger.closes(record.wheel_filename, refusal["reason"]):
            ledger.record_decision(settings, record.component, ledger.PUBLISHED,
                                   record.wheel_filename, version=record.version, run_id=run_id)


def _served(index: Index, record: BuildRecord) -> bool:
    try:
        return is_published(index, record)
    except FactoryError:
        return False  # the loop tries again and records the refusal for this wheel alone


def _release_one(settings: Settings, index: Index, signer: Signer, approvals: Approvals,
                 record: BuildRecord, run_id: str | None,
                 comparer: Comparer | None = None) -> PublishedFile:
    wheel = settings.wheels_dir / record.wheel_filename
    actual = sha256_file(wheel) if wheel.is_file() else "missing"
    if actual != record.wheel_sha256:
        raise IntegrityError(f"{record.wheel_filename}: sha256 {actual} does not match its "
                             f"build record ({record.wheel_sha256})",
                             "the built wheel changed after its build; rebuild it")
    admission = admit(settings, approvals, record, wheel)
    sidecars = _sign(settings, signer, record, wheel, admission.allowances, comparer, run_id)
    sdist = cache_path(settings, record.source.sha256, record.source.filename)
    result = index.add(wheel, sidecars, sdist if sdist.is_file() else None)
    ledger.record_decision(settings, record.component, ledger.PUBLISHED, record.wheel_filename,
                           version=record.version, run_id=run_id)
    return result


# -- refusals ----------------------------------------------------------------------------------
REFUSED = ledger.REFUSED


def _unexpected(exc: Exception) -> PublishError:
    error = PublishError(f"unexpected {type(exc).__name__} while attesting, signing or "
                         f"publishing it: {exc}",
                         "a bug in the factory or a library it uses: report it with this "
                         "line; the other wheels were published")
    error.__cause__ = exc  # the traceback stays reachable (--debug)
    return error


def _refuse(settings: Settings, record: BuildRecord, exc: FactoryError,
            run_id: str | None) -> Refusal:
    """Record the refusal once (a rerun that refuses the same again adds nothing)."""
    cause = exc.message.removeprefix(f"{record.wheel_filename}: ")  # the line names it
    refusal = Refusal(record.component, record.version, record.wheel_filename,
                      _one_line(cause), _one_line(exc.hint))
    reason = f"{refusal.filename}: {refusal.reason} (hint: {refusal.hint})"
    previous = ledger.open_refusals(settings, record.component).get(
        (record.component, record.version))
    if previous is None or previous["reason"] != reason:
        ledger.record_decision(settings, record.component, REFUSED, reason,
                               version=record.version, run_id=run_id)
    return refusal


def _one_line(text: str, limit: int = 400) -> str:
    """Printable and one line: a reason may quote what an attacker wrote."""
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def refused_wheels(settings: Settings) -> list[dict[str, Any]]:
    """Ledger rows of the versions whose newest release decision is a refusal: a
    wheel refused and not published since. Each row has component, version,
    reason (``<wheel>: <cause> (hint: ...)``), at."""
    return list(ledger.open_refusals(settings).values())
