"""Signed answers to "may I use this, and if not, what instead?".

The library behind `factory mcp` and the policy API of `factory serve` (/api/v1/):
check one requirement (``NAME[==VERSION]`` or a PEP 508 line), check a whole
requirements list (each line answered on its own, a malformed line answered as
malformed), search the approved catalogue, and explain a refusal (the answer of
``factory.why``, with what upstream says of the name when asked). No printing; no
network unless the caller passes ``upstream``.

Every answer is wrapped in an in-toto Statement v1 whose subject is the text asked
(its canonical form, digest sha256), with a predicate in the style of the Simple
Verification Result (https://in-toto.io/attestation/svr/v0.1: ``verifier``,
``timeCreated``, ``properties``, plus the answer itself as an extension field),
signed as a DSSE envelope by the factory's ``answers`` key. ``verify_answer``
checks an envelope with the public key served at
/.well-known/factory/answers.pub.pem.

    advisor = Advisor(lambda: knowledge, signer, "http://factory:8700/api/v1/")
    signed = advisor.check("reqests")
    signed.answer["verdict"]          # "did-you-mean"
    verify_answer(signed.envelope, public_pem)   # the statement, or VerificationError

Input is bounded before any work: a requirement of at most 1,000 characters, a
list of at most 500 lines and 64 KiB, a search of at most 200 characters and 50
results; anything larger is one ``RequestError``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from securesystemslib.dsse import Envelope
from securesystemslib.signer import Signer, SSlibKey

from factory.errors import FactoryError, VerificationError
from factory.similar import fold
from factory.why import (
    DID_YOU_MEAN,
    NOT_APPROVED,
    SERVED,
    VERSION_BLOCKED,
    Answer,
    Knowledge,
    _offered,
    answer,
    clip,
    parse_request,
    version_order,
    with_upstream,
)

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/svr/v0.1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
KEY_ROLE = "answers"
KEY_FILE = "answers.pub.pem"  # under /.well-known/factory/
SCHEME = "ecdsa-sha2-nistp256"

MALFORMED = "malformed"  # a line that is no requirement (answered, never a crash)
MAX_REQUIREMENT = 1000  # characters of one requirement
MAX_LINES = 500
MAX_BYTES = 64 * 1024
MAX_QUERY = 200
MAX_RESULTS = 50
DEFAULT_RESULTS = 20
MAX_ENVELOPE = 4 * 1024 * 1024  # bytes of an envelope verify_answer reads
MAX_SAVED = 3 * MAX_ENVELOPE  # bytes of a saved answer (an envelope, its answer beside it)
SUBJECT_NAME = 400  # characters of a subject's name shown (its digest is of the whole)

# NAME or NAME==VERSION, in any script (confusable names must reach the matching).
_SIMPLE = re.compile(r"[^\s=<>!~;,\[\]@()'\"]+(\s*==\s*[^\s=<>!~;,*]+)?")
_NAME = re.compile(r"[A-Z0-9]([A-Z0-9._-]{0,198}[A-Z0-9])?", re.IGNORECASE)  # PEP 508
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class RequestError(FactoryError):
    """Input no answer is given for: too large, or not text. One bounded line."""

    default_hint = "see docs/policy-api.md for the limits"


@dataclass(frozen=True)
class Signed:
    """An answer (JSON-ready) and its DSSE envelope (None when no key signs)."""

    answer: dict[str, Any]
    envelope: dict[str, Any] | None
    statement: dict[str, Any] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "envelope": self.envelope}


def canonical(text: str) -> str:
    """The requirement as the statement's subject names it: the normalized PEP 508 form
    when it parses, else the text stripped. Never cut nor escaped: the subject's digest
    is of this exact text (two texts asked never share one); only the subject's
    ``name`` is made printable and cut, for display."""
    text = text.strip()
    if _NAME.fullmatch(text):  # a bare name (most asks): what parsing it would give
        return canonicalize_name(text)
    try:
        req = Requirement(text) if len(text) <= MAX_REQUIREMENT else None
    except InvalidRequirement:
        req = None
    if req is None:
        return text
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" \
        if req.extras else ""
    spec = ",".join(sorted(str(s) for s in req.specifier))
    url = f" @ {req.url}" if req.url else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{canonicalize_name(req.name)}{extras}{spec}{url}{marker}"


def subject_digest(subject: str) -> str:
    """The sha256 a statement's subject carries for ``subject`` (a ``canonical`` text)."""
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


def _malformed(text: str, why: str) -> Answer:
    return Answer(MALFORMED, clip(text.strip(), 200) or "(empty)", f"malformed: {why}")


Lookup = Callable[[str], Answer]  # the answer for a bare name (a cache of ``answer``)


def check(knowledge: Knowledge, text: str, lookup: Lookup | None = None) -> Answer:
    """The answer for one requirement: ``NAME``, ``NAME==VERSION`` or a PEP 508 line
    (a range is answered with the newest served version it allows). Never raises for
    text of at most MAX_REQUIREMENT characters. ``lookup`` answers a bare name (the
    server's cache of the 404 answers); ``answer`` by default."""
    if len(text) > MAX_REQUIREMENT:
        return _malformed(text, f"longer than {MAX_REQUIREMENT} characters")
    stripped = text.strip()
    if not stripped:
        return _malformed(text, "empty")
    if _CONTROL.search(stripped):
        return _malformed(text, "it holds control or invisible format characters")
    if _SIMPLE.fullmatch(stripped):
        try:
            name, version = parse_request(stripped)
        except ValueError as exc:
            return _malformed(text, clip(str(exc), 200))
        if version is None and lookup is not None:
            return lookup(name)
        return answer(knowledge, name, version)
    try:
        req = Requirement(stripped)
    except InvalidRequirement as exc:
        first = (str(exc).strip().splitlines() or ["unparsable"])[0]
        return _malformed(text, f"not a PEP 508 requirement ({clip(first, 160)})")
    if req.url:
        return Answer(NOT_APPROVED, clip(req.name), "a direct URL reference: only this index's "
                      "approved components may be installed; ask for NAME or NAME==VERSION")
    pins = [s for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
    if len(pins) == 1 and len(req.specifier) == 1:
        return answer(knowledge, req.name, pins[0].version)
    found = answer(knowledge, req.name)
    if found.verdict != SERVED or not req.specifier:
        return found
    return _in_range(knowledge, found, req.specifier)


def _in_range(knowledge: Knowledge, found: Answer, spec: SpecifierSet) -> Answer:
    """``found`` (served) for a version range: the newest served version in it."""
    project = found.project or ""
    releases = knowledge.releases(project)
    component = knowledge.components[project]
    served = [r.version for r in releases if not r.yanked] if releases is not None \
        else [component.published] if component.published else []
    allowed = [v for v in served if _contains(spec, v)]
    if allowed:
        best = max(allowed, key=version_order)
        return replace(found, version=best, reason=f"served ({best} satisfies {spec})")
    newest = max(served, key=version_order, default=None)
    return replace(found, verdict=VERSION_BLOCKED, instead=newest,
                   reason=f"no version this index serves satisfies {clip(str(spec), 200)}")


def _contains(spec: SpecifierSet, version: str) -> bool:
    try:
        return spec.contains(version, prereleases=True)
    except Exception:  # an odd version on disk: it satisfies nothing
        return False


def explain(knowledge: Knowledge, text: str, upstream: Callable[[str], str] | None = None,
            lookup: Lookup | None = None) -> Answer:
    """``check``, and, for a name this index does not know, what upstream says of it
    (``upstream(name)``: "exists", "unknown", "unreachable"); no network without it."""
    found = check(knowledge, text, lookup)
    if upstream is not None and found.verdict in (NOT_APPROVED, DID_YOU_MEAN) \
            and found.project is None and found.reason.startswith("not an approved"):
        found = with_upstream(found, upstream(_name_of(text)))
    return found


def _name_of(text: str) -> str:
    stripped = text.strip()
    if _SIMPLE.fullmatch(stripped):
        return stripped.partition("==")[0].strip()
    return Requirement(stripped).name


# -- lists ------------------------------------------------------------------------
def requirement_lines(text: str | Sequence[str]) -> list[tuple[int, str]]:
    """The requirements of a requirements file (or a list of lines), with their line
    numbers: comments and blank lines dropped, continuations joined, ``--hash``
    options dropped. RequestError when it is larger than MAX_LINES or MAX_BYTES."""
    if isinstance(text, str):
        body = text
    elif isinstance(text, Sequence) and all(isinstance(t, str) for t in text):
        if len(text) > MAX_LINES:
            raise RequestError(f"the list has {len(text)} lines; at most {MAX_LINES} are "
                               "answered at once", "split it into smaller lists")
        body = "\n".join(text)
    else:
        raise RequestError("the requirements must be text or a list of strings")
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise RequestError(f"the list is {size} bytes; at most {MAX_BYTES} are answered at once",
                           "split it into smaller lists")
    raw = body.splitlines()
    if len(raw) > MAX_LINES:
        raise RequestError(f"the list has {len(raw)} lines; at most {MAX_LINES} are answered "
                           "at once", "split it into smaller lists")
    found: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, line in enumerate(raw, 1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        line = _uncomment(line).strip()
        if line:
            found.append((start, _without_hashes(line)))
    if pending.strip():
        found.append((start, _without_hashes(_uncomment(pending).strip())))
    return found


def _uncomment(line: str) -> str:
    if line.lstrip().startswith("#"):
        return ""
    return re.split(r"\s#", line, maxsplit=1)[0]


def _without_hashes(line: str) -> str:
    # Only a run of whitespace from its start (else each of n blanks rescans the run).
    head, *options = re.split(r"(?<!\s)\s+(?=--)", line)
    return head if options and all(o.startswith("--hash") for o in options) else line


def check_list(knowledge: Knowledge, text: str | Sequence[str],
               lookup: Lookup | None = None) -> list[dict[str, Any]]:
    """One answer per requirement line (``line``: its number), in order."""
    return _check_lines(knowledge, requirement_lines(text), lookup)


def _check_lines(knowledge: Knowledge, lines: Sequence[tuple[int, str]],
                 lookup: Lookup | None = None) -> list[dict[str, Any]]:
    answers = []
    for number, line in lines:
        if line.startswith("-"):
            found = _malformed(line, "an option line is not checked (an --index-url or "
                               "--extra-index-url would bypass this index)")
        else:
            found = check(knowledge, line, lookup)
        # Shown as a single answer's subject is (SUBJECT_NAME); its digest is of the whole.
        answers.append({"line": number, "requirement": clip(line, SUBJECT_NAME),
                        **found.to_dict()})
    return answers


# -- the catalogue ------------------------------------------------------------------
def search(knowledge: Knowledge, query: str, limit: int = DEFAULT_RESULTS) -> list[dict[str, Any]]:
    """Approved components whose name holds ``query`` (PEP 503 spelling) or is close to
    it (a typo, look-alike or confusable characters), best first, at most ``limit``."""
    if len(query) > MAX_QUERY:
        raise RequestError(f"the query is {len(query)} characters long; at most {MAX_QUERY} "
                           "are answered")
    if not 1 <= limit <= MAX_RESULTS:
        raise RequestError(f"limit must be 1 to {MAX_RESULTS}")
    key = fold(query.strip()) if query.strip() else ""
    offered = {name: c for name, c in knowledge.components.items() if _offered(c)}
    ranked: dict[str, str] = {}
    if key in offered:
        ranked[key] = "exact"
    for suggestion in knowledge.matcher.suggest(key, limit) if key else ():
        ranked.setdefault(suggestion.name, suggestion.why)
    if "?" not in key:
        for name in sorted(n for n in offered if key in n):
            if len(ranked) >= limit:
                break
            ranked.setdefault(name, "substring" if key else "listed")
    return [{"name": name, "match": why, "published": offered[name].published,
             "allowed": offered[name].allowed, "status": offered[name].status}
            for name, why in list(ranked.items())[:limit]]


# -- signing ------------------------------------------------------------------------
def statement(subjects: Sequence[str], verifier_id: str, properties: Sequence[str],
              extension: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """An in-toto Statement v1 about ``subjects`` (texts asked), with an SVR-style
    predicate; ``extension`` (the answer) is added to the predicate."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": clip(s, SUBJECT_NAME), "digest": {"sha256": subject_digest(s)}}
                    for s in subjects],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"verifier": {"id": verifier_id}, "timeCreated": when,
                      "properties": list(properties), **extension},
    }


def sign(statement_: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    """``statement_`` as a DSSE envelope signed by ``signer``."""
    payload = json.dumps(statement_, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False).encode("utf-8")
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    envelope.sign(signer)
    return envelope.to_dict()  # type: ignore[no-any-return]


def public_key(pem: bytes) -> SSlibKey:
    """The answers key from its SPKI PEM (as served under /.well-known/factory/)."""
    try:
        loaded = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise VerificationError("the answers key is not an SPKI PEM public key") from None
    return SSlibKey.from_crypto(loaded, scheme=SCHEME)


def verify_answer(envelope: Mapping[str, Any], pem: bytes) -> dict[str, Any]:
    """The statement ``envelope`` carries, if a signature on it verifies with the
    public key ``pem`` and it is an answer statement; else VerificationError."""
    if not isinstance(envelope, Mapping):
        raise VerificationError("the envelope is not a JSON object")
    encoded = envelope.get("payload")
    if isinstance(encoded, (str, bytes)) and len(encoded) > MAX_ENVELOPE * 4 // 3 + 4:
        raise VerificationError("the payload is too large for an answer")  # before decoding
    try:
        parsed = Envelope.from_dict(copy.deepcopy(dict(envelope)))
    except Exception:  # missing fields, bad base64, odd signature shapes
        raise VerificationError("not a DSSE envelope") from None
    if parsed.payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"payload type is not {PAYLOAD_TYPE}")
    if len(parsed.payload) > MAX_ENVELOPE:
        raise VerificationError("the payload is too large for an answer")
    try:
        parsed.verify([public_key(pem)], 1)
    except VerificationError:
        raise
    except Exception:
        raise VerificationError("the answer's signature does not verify with the answers "
                                "key") from None
    try:
        found = json.loads(parsed.payload)
    except (UnicodeDecodeError, ValueError):
        raise VerificationError("the signed payload is not JSON") from None
    if not isinstance(found, dict) or found.get("_type") != STATEMENT_TYPE \
            or found.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError("the signed payload is not an answer statement")
    return found


_PREDICATE_FIELDS = ("verifier", "timeCreated", "properties")


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it names a key twice (json keeps the last one)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(clip(key, 60))
        found[key] = value
    return found


def verify_saved(data: bytes, pem: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """A saved signed answer (``{"answer", "envelope"}`` as the API and MCP give it, or a
    bare envelope), checked: the envelope verifies with ``pem`` (``verify_answer``), and
    the answer beside it, if any, is the one signed. Returns (statement, answer signed);
    VerificationError otherwise; more than MAX_SAVED bytes are refused unread."""
    if len(data) > MAX_SAVED:
        raise VerificationError(f"the file is larger than {MAX_SAVED} bytes: no "
                                "answer is that large")
    try:
        saved = json.loads(data, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        # another reader (jq, a browser, a person) may take the other one of the two
        raise VerificationError(f"the file names {exc.args[0]!r} twice in one object: "
                                "which one is meant is up to each reader") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise VerificationError("the file is not JSON") from None
    if not isinstance(saved, dict):
        raise VerificationError("the file is not a JSON object")
    given = saved.get("answer") if "envelope" in saved else None
    envelope = saved.get("envelope") if "envelope" in saved else saved
    if envelope is None:
        raise VerificationError("the answer is not signed (its envelope is null: the "
                                "server had no answers key)")
    statement_ = verify_answer(envelope, pem)
    predicate = statement_.get("predicate")
    if not isinstance(predicate, dict):
        raise VerificationError("the signed statement has no predicate")
    extension = {k: v for k, v in predicate.items() if k not in _PREDICATE_FIELDS}
    signed = extension["answer"] if set(extension) == {"answer"} else extension
    if given is not None and given != signed:
        raise VerificationError("the answer beside the envelope is not the answer signed")
    return statement_, signed


def summary(signed: Mapping[str, Any]) -> str:
    """One line for a person of what an answer (as signed) says."""
    if isinstance(signed.get("verdict"), str):
        return clip(f"{signed['verdict']}: {signed.get('message', '')}", MAX_REQUIREMENT)
    if isinstance(signed.get("answers"), list):
        return f"{signed.get('served')} of {len(signed['answers'])} requirements served"
    if isinstance(signed.get("results"), list):
        return f"search {clip(signed.get('query', ''), 80)!r}: {len(signed['results'])} results"
    return "an answer"


def subject_matches(statement_: Mapping[str, Any], asked: str) -> bool:
    """Is ``asked`` (its canonical text) a subject of ``statement_``, by digest?"""
    digest = subject_digest(canonical(asked))
    return any(isinstance(s, dict) and s.get("digest", {}).get("sha256") == digest
               for s in statement_.get("subject", ()))


# -- the advisor: knowledge + signer -------------------------------------------------
def verifier_id(base_url: str) -> str:
    """The SVR ``verifier.id`` of this factory's answers: its policy API, versioned."""
    return base_url.rstrip("/") + "/api/v1/"


def fresh_for(seconds: float, make: Callable[[], Knowledge]) -> Callable[[], Knowledge]:
    """``make`` called at most once per ``seconds`` (one caller at a time): what a
    long-running server knows, read again when older than that."""
    lock = threading.Lock()
    held: list[tuple[float, Knowledge]] = []

    def current() -> Knowledge:
        with lock:
            now = time.monotonic()
            if not held or now - held[0][0] >= seconds:
                held[:] = [(now, make())]
            return held[0][1]

    return current


@dataclass
class Advisor:
    """Answers, signed: ``knowledge`` gives what the factory knows now (cached by the
    caller), ``signer`` the answers key (None: answers go unsigned, envelope None),
    ``upstream`` asks the upstream index (None: never), ``lookup`` answers a bare name
    from a cache (`factory serve`: the same cache as its 404 answers)."""

    knowledge: Callable[[], Knowledge]
    signer: Signer | None
    verifier_id: str
    upstream: Callable[[str], str] | None = None
    lookup: Lookup | None = None  # a cache of the answers for bare names

    def _signed(self, subjects: Sequence[str], properties: Sequence[str],
                extension: dict[str, Any], shown: dict[str, Any]) -> Signed:
        made = statement(subjects, self.verifier_id, properties, extension)
        envelope = sign(made, self.signer) if self.signer is not None else None
        return Signed(shown, envelope, made)

    def check(self, text: str) -> Signed:
        return self._one(text, check(self.knowledge(), _bounded(text), self.lookup))

    def explain(self, text: str) -> Signed:
        return self._one(text, explain(self.knowledge(), _bounded(text), self.upstream,
                                       self.lookup))

    def _one(self, text: str, found: Answer) -> Signed:
        shown = found.to_dict()
        return self._signed([canonical(text)], ["FACTORY_SERVED"] if found.installable else [],
                            {"answer": shown}, shown)

    def check_list(self, text: str | Sequence[str]) -> Signed:
        lines = requirement_lines(text)
        answers = _check_lines(self.knowledge(), lines, self.lookup)
        served = sum(a["verdict"] == SERVED for a in answers)
        shown = {"answers": answers, "served": served, "refused": len(answers) - served}
        properties = ["FACTORY_ALL_SERVED"] if answers and served == len(answers) else []
        # Each subject is the whole line asked (its "requirement" shown is cut).
        return self._signed([canonical(line) for _, line in lines] or [""],
                            properties, shown, shown)

    def attest(self, subject: str, shown: dict[str, Any],
               properties: Sequence[str] = ()) -> Signed:
        """``shown`` (an answer of another kind: a request's status) signed about
        ``subject``, as every answer is."""
        return self._signed([subject], properties, {"answer": shown}, shown)

    def search(self, query: str, limit: int = DEFAULT_RESULTS) -> Signed:
        if not isinstance(query, str):
            raise RequestError("the query must be text")
        results = search(self.knowledge(), query, limit)
        shown = {"query": clip(query, MAX_QUERY), "results": results}
        # The query exactly as searched (stripped): two queries folded apart never share one.
        return self._signed([query.strip()], [], shown, shown)


def _bounded(text: object) -> str:
    if not isinstance(text, str):
        raise RequestError("the requirement must be text")
    if len(text) > MAX_REQUIREMENT:
        raise RequestError(f"the requirement is {len(text)} characters long; at most "
                           f"{MAX_REQUIREMENT} are answered", "a project name has at most "
                           "200 characters")
    return text
