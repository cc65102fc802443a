"""A signed OpenVEX feed of what the factory knows about advisories for what it serves.

For every advisory that touches a served project (from the advisory database when
one is configured, else from what the index records of each version's check), one
OpenVEX v0.2.0 statement per status, its products the served versions as purls:

- ``affected``: the advisory's ranges hold the version; the index yanked it (the
  action statement says so, and names the fixed versions);
- ``fixed``: checked, not affected, and at or above a version that fixed it;
- ``not_affected``: checked and outside the advisory's ranges (justification
  ``vulnerable_code_not_present``: the code the advisory names is not in it).

A version never checked is left out: the feed says only what the factory knows
(and with nothing checked there is no feed: OpenVEX needs one statement at least).
Every document is checked against the OpenVEX JSON schema (vendored:
factory._internal.openvex_schema) before it is served, and when it is verified.
It is rewritten by `watch` and after every publish (factory.publish.refresh_vex).
The document is written to ``/.well-known/factory/vex.json``; an in-toto Statement
v1 (predicate type OpenVEX, subject that file's sha256) signed as a DSSE envelope
with the factory's ``answers`` key sits beside it as ``vex.intoto.json``
(``verify_vex`` checks it against the key served at ``answers.pub.pem``).

    document = vex_document(index, AdvisoryDatabase(settings.advisories), base_url)
    envelope = sign_vex(document, load_signer(settings, "answers"))
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from factory import __version__
from factory.attest.provenance import pypi_purl
from factory.errors import SigningError, VerificationError
from factory.index.records import ProjectRecord

if TYPE_CHECKING:
    from securesystemslib.signer import Signer

    from factory.config import Settings
    from factory.index import Index
    from factory.upstream.advisories import AdvisoryDatabase

CONTEXT = "https://openvex.dev/ns/v0.2.0"
PREDICATE_TYPE = CONTEXT  # the predicate type OpenVEX documents carry in in-toto
VEX_FILE = "vex.json"
ENVELOPE_FILE = "vex.intoto.json"
NOT_PRESENT = "vulnerable_code_not_present"
EPOCH = "1970-01-01T00:00:00Z"  # the timestamp of a feed with nothing checked


@dataclass(frozen=True)
class _Known:
    """One advisory as the feed states it: its id, aliases, fixed versions, summary."""

    id: str
    aliases: tuple[str, ...]
    fixed: tuple[str, ...]
    summary: str


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _checked(record: ProjectRecord) -> dict[str, tuple[list[dict[str, Any]], bool, str]]:
    """Each checked version: (the advisories recorded, yanked, when checked)."""
    found: dict[str, tuple[list[dict[str, Any]], bool, str]] = {}
    for entry in record.files:
        if entry.advisories is not None and entry.advisories_checked:
            found.setdefault(entry.version, (entry.advisories, entry.yanked,
                                             entry.advisories_checked))
    return found


@dataclass(frozen=True)
class History:
    """One advisory known for a project: the served versions it stands for, by VEX status
    (``affected``, ``fixed``, ``not_affected``; each in version order, checked ones only)."""

    advisory: _Known
    statuses: dict[str, list[str]]

    @property
    def id(self) -> str:
        return self.advisory.id


def history(record: ProjectRecord, db: AdvisoryDatabase | None = None) -> list[History]:
    """What the feed says of ``record``'s advisories, in advisory id order (the project
    page shows it): from ``db`` when given, else from each version's recorded check."""
    checked = _checked(record)
    known: dict[str, _Known] = {}
    affected: dict[str, set[str]] = {}
    if db is not None:
        for osv in db.for_package(record.name):
            if osv.data.get("withdrawn"):
                continue
            known[osv.id] = _Known(osv.id, tuple(sorted(osv.aliases)), tuple(
                str(v) for v in osv.fixed_versions(record.name)), osv.summary)
            affected[osv.id] = {v for v in checked if osv.affects(record.name, v)}
    else:
        for version, (advisories, _, _) in checked.items():
            for a in advisories:
                ident = str(a.get("id", ""))
                if not ident:
                    continue
                fixed = tuple(f.strip() for f in str(a.get("fixed", "")).split(",") if f.strip())
                known.setdefault(ident, _Known(ident, tuple(sorted(map(str, a.get("aliases", [])))),
                                               fixed, str(a.get("summary", ""))))
                affected.setdefault(ident, set()).add(version)
    out = []
    for ident in sorted(known):
        advisory = known[ident]
        lowest_fix = min((v for f in advisory.fixed if (v := _version(f))), default=None)
        by_status: dict[str, list[str]] = {"affected": [], "fixed": [], "not_affected": []}
        for version in checked:
            parsed = _version(version)
            if version in affected.get(ident, set()):
                by_status["affected"].append(version)
            elif lowest_fix is not None and parsed is not None and parsed >= lowest_fix:
                by_status["fixed"].append(version)
            else:
                by_status["not_affected"].append(version)
        out.append(History(advisory, {status: _ordered(versions)
                                      for status, versions in by_status.items()}))
    return out


def _ordered(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=lambda v: (_version(v) is None, _version(v) or v, v))


def _statements(record: ProjectRecord, db: AdvisoryDatabase | None) -> list[dict[str, Any]]:
    checked = _checked(record)
    return [_statement(record, known.advisory, status, versions, checked)
            for known in history(record, db)
            for status, versions in known.statuses.items() if versions]


def _statement(record: ProjectRecord, advisory: _Known, status: str, versions: list[str],
               checked: Mapping[str, tuple[list[dict[str, Any]], bool, str]]) -> dict[str, Any]:
    ordered = _ordered(versions)
    vulnerability: dict[str, Any] = {"name": advisory.id}
    if advisory.aliases:
        vulnerability["aliases"] = list(advisory.aliases)
    if advisory.summary:
        vulnerability["description"] = advisory.summary[:500]
    statement: dict[str, Any] = {
        "vulnerability": vulnerability,
        "products": [{"@id": pypi_purl(record.name, v),
                      "identifiers": {"purl": pypi_purl(record.name, v)}} for v in ordered],
        "status": status,
        "timestamp": max(checked[v][2] for v in ordered),
    }
    if status == "affected":
        yanked = all(checked[v][1] for v in ordered)
        fix = f"upgrade to {', '.join(advisory.fixed)}" if advisory.fixed else "no fix is known"
        statement["action_statement"] = (
            ("the index yanked these versions; " if yanked else "") + fix)
    elif status == "not_affected":
        statement["justification"] = NOT_PRESENT
        statement["impact_statement"] = "outside the advisory's affected ranges (OSV)"
    return statement


def vex_document(records: Iterable[ProjectRecord], db: AdvisoryDatabase | None,
                 base_url: str) -> dict[str, Any]:
    """The OpenVEX v0.2.0 document of the served projects; the same records and
    advisories give the same bytes (its time is the newest check's)."""
    statements: list[dict[str, Any]] = []
    for record in sorted(records, key=lambda r: r.name):
        statements.extend(_statements(record, db))
    timestamp = max((s["timestamp"] for s in statements), default=EPOCH)
    body = json.dumps(statements, sort_keys=True).encode("utf-8")
    return {
        "@context": CONTEXT,
        "@id": f"{base_url.rstrip('/')}/.well-known/factory/{VEX_FILE}"
               f"#sha256:{hashlib.sha256(body).hexdigest()}",
        "author": f"artifact-factory at {base_url.rstrip('/')}",
        "role": "the index that builds and serves these packages",
        "timestamp": timestamp,
        "version": 1,
        "tooling": f"artifact-factory {__version__}",
        "statements": statements,
    }


def vex_bytes(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode("utf-8")


@functools.cache
def _validator() -> Any:
    from factory._internal.lazy import defer_rfc3987

    defer_rfc3987()
    from jsonschema import Draft202012Validator

    from factory._internal.openvex_schema import SCHEMA_JSON
    from factory.verify.sbom import _format_checker

    # The SBOM's format checker: an ASCII IRI is checked with the RFC 3986 grammar, not
    # jsonschema's default Earley parser (seconds for the first IRI, ~0.2 s each after).
    return Draft202012Validator(json.loads(SCHEMA_JSON), format_checker=_format_checker())


@functools.cache
def _compiled() -> Any | None:
    """jsonschema-rs over the same schema, each ``format`` answered by the functions
    jsonschema's checker above calls (factory.verify.sbom's stand-ins, held equal to it by
    tests/test_verify_sbom_schema.py), without importing jsonschema (about 0.2 s a
    verify --all would pay for a feed that holds); None when that cannot be had."""
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - pinned
        return None
    from factory._internal.openvex_schema import SCHEMA_JSON
    from factory.verify.sbom import _STANDALONE_FORMATS, _checker_uses_rfc3987, _formats_in

    schema = json.loads(SCHEMA_JSON)
    formats: set[str] = set()
    _formats_in(schema, formats)
    if not formats <= _STANDALONE_FORMATS.keys() or _checker_uses_rfc3987():
        return None
    return jsonschema_rs.Draft202012Validator(
        schema, formats={name: _STANDALONE_FORMATS[name] for name in sorted(formats)},
        validate_formats=True)


def schema_errors(document: Any, *, integral: bool = False) -> list[str]:
    """Where ``document`` breaks the OpenVEX v0.2.0 JSON schema (vendored in
    factory._internal.openvex_schema), one line each; empty when it holds. ``integral``:
    the document was read from JSON text with no float, NaN or Infinity (sbom.read_json);
    only then does the compiled validator answer one it finds valid (it compares a float
    and an integer of the same value as unequal, jsonschema as equal: two statements
    differing so are unique to one, not to the other). jsonschema decides the rest."""
    data = json.loads(json.dumps(document))  # what is written: JSON types only
    compiled = _compiled() if integral else None
    try:
        if compiled is not None and compiled.is_valid(data):
            return []
    except Exception:  # noqa: BLE001 (whatever it cannot take, jsonschema decides)
        pass
    from factory.attest.sbom import schema_summary  # (CycloneDX's library: 0.15 s to import)

    return [schema_summary(e) for e in sorted(_validator().iter_errors(data),
                                              key=lambda e: list(map(str, e.absolute_path)))]


def check_schema(document: Any, *, integral: bool = False) -> None:
    """VerificationError unless ``document`` is valid OpenVEX v0.2.0 (``schema_errors``)."""
    errors = schema_errors(document, integral=integral)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise VerificationError(f"the VEX feed is not valid OpenVEX v0.2.0: {errors[0]}{more}",
                                "nothing was served; this is a bug of the factory's feed")


def vex_statement(data: bytes) -> dict[str, Any]:
    """The in-toto Statement v1 over the served vex.json bytes, the document its predicate."""
    from factory.advice import STATEMENT_TYPE

    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": VEX_FILE, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}],
            "predicateType": PREDICATE_TYPE, "predicate": json.loads(data)}


def sign_vex(data: bytes, signer: Signer) -> dict[str, Any]:
    """The DSSE envelope over ``vex_statement(data)``, signed like every answer."""
    from factory.advice import sign

    return sign(vex_statement(data), signer)


def verify_vex(data: bytes, envelope: Mapping[str, Any], pem: bytes) -> dict[str, Any]:
    """The OpenVEX document in ``data`` if ``envelope`` signs exactly those bytes with the
    key ``pem``; else VerificationError."""
    from securesystemslib.dsse import Envelope

    from factory.advice import PAYLOAD_TYPE, STATEMENT_TYPE, public_key
    from factory.verify.sbom import read_json

    try:
        # a copy: from_dict takes the dict apart (the caller's stays whole); the feed
        # and its envelope are read bounded (256 KiB, factory.verify.wholeindex)
        parsed = Envelope.from_dict(json.loads(json.dumps(dict(envelope))))
        parsed.verify([public_key(pem)], 1)
        statement = json.loads(parsed.payload)
    except VerificationError:
        raise
    except Exception:
        raise VerificationError("the VEX envelope does not verify with the answers key") from None
    if (parsed.payload_type != PAYLOAD_TYPE or not isinstance(statement, dict)
            or statement.get("_type") != STATEMENT_TYPE
            or statement.get("predicateType") != PREDICATE_TYPE):
        raise VerificationError("the envelope does not carry an OpenVEX statement")
    digest = hashlib.sha256(data).hexdigest()
    if statement.get("subject") != [{"name": VEX_FILE, "digest": {"sha256": digest}}]:
        raise VerificationError(f"the signed statement is about another {VEX_FILE}")
    try:
        document, integral = read_json(data)
    except (ValueError, RecursionError):
        raise VerificationError(f"{VEX_FILE} is not JSON") from None
    check_schema(document, integral=integral)
    return document  # type: ignore[no-any-return]


def publish_vex(settings: Settings, index: Index, db: AdvisoryDatabase | None) -> bool:
    """Write, sign and serve the feed under /.well-known/factory/ (each file replaced
    atomically), after checking it against the OpenVEX schema; False (nothing written)
    when there is no answers key to sign it with or nothing checked to state (OpenVEX
    needs one statement at least). VerificationError when the document breaks the
    schema: the feed served before stands."""
    from factory._internal.atomic import write_bytes
    from factory.attest.keys import load_signer

    try:
        signer = load_signer(settings, "answers")
    except SigningError:
        return False
    records = [r for p in index.projects() if (r := index.record(p)) is not None]
    document = vex_document(records, db, settings.index_url)
    if not document["statements"]:
        return False
    check_schema(document)
    data = vex_bytes(document)
    work = settings.state_dir / "vex"
    work.mkdir(parents=True, exist_ok=True)
    write_bytes(work / VEX_FILE, data)
    write_bytes(work / ENVELOPE_FILE,
                (json.dumps(sign_vex(data, signer), sort_keys=True) + "\n").encode("utf-8"))
    index.publish_trust({VEX_FILE: work / VEX_FILE, ENVELOPE_FILE: work / ENVELOPE_FILE})
    return True


__all__ = ["check_schema", "history", "publish_vex", "schema_errors", "sign_vex", "verify_vex",
           "vex_bytes", "vex_document"]
