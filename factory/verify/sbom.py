"""CycloneDX 1.6 strict schema validation, fast enough to check a whole index.

cyclonedx-python-lib's JsonStrictValidator (jsonschema's Draft7Validator over
the CycloneDX schemas) gives the verdict; three of its costs are cut, each
without changing what it accepts:

- IRIs. The ``iri-reference`` format is checked with rfc3987-syntax, an Earley
  parser that needs about 0.2 s per IRI (over 0.5 s per SBOM). For ASCII
  strings the RFC 3987 IRI grammar is exactly the RFC 3986 URI grammar (IRIs
  only add non-ASCII characters), which rfc3986-validator checks with one
  regular expression, as jsonschema itself does for ``uri``. Anything else
  still goes to rfc3987-syntax.
- ``uniqueItems``. jsonschema compares every pair of items when they cannot be
  sorted (objects): quadratic, about 0.5 s for the 200 Debian packages of a
  builder image in the formulation. There each item becomes a hashable key that
  is equal exactly when jsonschema's ``equal`` says so (strings by value,
  numbers by value with 1 == 1.0, true and false only equal to themselves,
  arrays in order, objects by their keys and values), so a set finds a
  duplicate in linear time; a value of any other type (or NaN), and any array
  Python can sort, goes to jsonschema's own check.
- Repeated parts. Every SBOM of one builder image carries the same formulation
  (hundreds of components): a ``$ref`` that validated cleanly for a value is
  remembered, by the resolved schema and the value's sha256 over canonical
  JSON, and the same value under the same reference is not walked again in
  this process (``schema_error``: documents read from JSON text, whose keys are
  strings, as that JSON writes them; publishing validates documents built in
  Python without the memo).
  Draft 7 validation of a value against a schema depends on nothing else (the
  format checks are pure functions), so the verdict is the same; only a clean
  verdict is kept, so errors are always found afresh and reported the same way.

  The memo's key is the value's sha256 over its JSON text with sorted keys: written by
  orjson when the caller says the document holds no float, NaN or Infinity (orjson
  writes NaN as null, so it never keys a document that may hold one), else by the
  standard library.

In front of all this, ``schema_error`` asks jsonschema-rs (compiled, the same schemas
and registry, nothing fetched, every ``format`` answered by the Python checks above)
whether a float-free document is valid: about 1 ms against 10 to 30 for the walk
above. Its "valid" is final; for anything else jsonschema decides and words the error,
so the verdicts and messages stay the library's (see ``schema_error``).

The result equals the library's validator (tests/test_verify_sbom_schema.py).
``canonical_equals`` checks that a sidecar's bytes are the project's canonical JSON
of a value (factory._internal.atomic.canonical_json) the same way, fast.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import orjson

from factory._internal.atomic import canonical_json

from factory._internal.lazy import defer_rfc3987

if TYPE_CHECKING:
    from jsonschema import FormatChecker

# Clean ($ref, value) verdicts kept per process; past this many the memo starts afresh.
_MEMO_LIMIT = 1 << 16


# RFC 3987's ucschar and iprivate as rfc3987-syntax (jsonschema's own IRI checker) reads
# them: within the Basic Multilingual Plane only (it refuses U+10000 and above, which
# the RFC allows); the same verdicts, held equal by tests/test_verify_iri.py.
_UCSCHAR = ((0xA0, 0xD7FF), (0xF900, 0xFDCF), (0xFDF0, 0xFFEF))
_IPRIVATE = ((0xE000, 0xF8FF),)


@functools.lru_cache(maxsize=4096)
def _is_iri(value: str, rule: str) -> bool:
    """Whether ``value`` is an IRI (``rule`` "iri") or IRI reference ("iri_reference"),
    in time linear in its length: as RFC 3987 section 3.1 maps an IRI to a URI (each
    character it allows past ASCII percent-encoded) and checks that with the RFC 3986
    grammar. rfc3987-syntax's Earley parser took seconds for one IRI of a few thousand
    characters, whose document anyone who can write a sidecar or a feed chooses."""
    mapped = value if value.isascii() else _as_uri(value)
    if mapped is None:
        return False
    # Imported on first use (a large regular expression, about 25 ms): a run whose SBOMs
    # the early child checked never needs it (factory.verify.early).
    from rfc3986_validator import validate_rfc3986

    return bool(validate_rfc3986(mapped, rule="URI" if rule == "iri" else "URI_reference"))


def _as_uri(value: str) -> str | None:
    """``value`` with each character past ASCII percent-encoded (UTF-8), or None when one
    stands where an IRI allows none: ucschar anywhere the URI grammar then allows a
    %-escape (never in the scheme, an IP literal or the port: the escape fails there as
    the character would), iprivate in the query only (after the first "?", before the
    first "#": neither can stand earlier in an IRI). A final newline, which the URI
    regular expression lets through ("$"), is refused as rfc3987-syntax refuses it."""
    if value.endswith("\n"):
        return None
    head, hash_mark, fragment = value.partition("#")
    before, question_mark, query = head.partition("?")
    parts = []
    for part, private in ((before, False), (query, True), (fragment, False)):
        out = []
        for char in part:
            if char.isascii():
                out.append(char)
            elif _within(char, _UCSCHAR) or (private and _within(char, _IPRIVATE)):
                out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8")))
            else:
                return None
        parts.append("".join(out))
    return parts[0] + question_mark + parts[1] + hash_mark + parts[2]


def _within(char: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in ranges)


def _format_checker() -> FormatChecker:
    from jsonschema import FormatChecker
    from jsonschema.validators import Draft7Validator

    checker = FormatChecker(formats=())
    checker.checkers = dict(Draft7Validator.FORMAT_CHECKER.checkers)

    checker.checks("iri", raises=ValueError)(_iri)
    checker.checks("iri-reference", raises=ValueError)(_iri_reference_rule)
    return checker


def _iri(instance: object) -> bool:
    return not isinstance(instance, str) or _is_iri(instance, "iri")


def _iri_reference_rule(instance: object) -> bool:
    return not isinstance(instance, str) or _is_iri(instance, "iri_reference")


# Stand-ins for true and false in equality keys: equal only to themselves (never to 1 or 0).
_TRUE, _FALSE = object(), object()


def _equality_key(value: Any) -> Any:
    """A hashable key, equal for two JSON values exactly when jsonschema's ``equal`` holds.

    Strings and numbers are their own keys (1 == 1.0, as there), true and false become
    stand-ins, arrays tuples, objects frozensets of (key, value key) pairs: no two kinds
    ever compare equal. TypeError for anything that is not a JSON value."""
    kind = type(value)
    if kind is str:
        return value
    if kind is dict:
        return frozenset([(k, _equality_key(v)) for k, v in value.items()])
    if kind is list:
        return tuple([_equality_key(v) for v in value])
    if value is True or value is False:
        return _TRUE if value else _FALSE
    if kind is int or kind is float:
        if value != value:  # NaN: jsonschema compares it by identity; leave it to jsonschema
            raise TypeError("NaN")
        return value
    if value is None:
        return None
    raise TypeError(kind.__name__)  # a subclass or another type: jsonschema's own check


def _unique(items: Sequence[Any]) -> bool:
    """jsonschema's ``uniq``, with its pairwise fallback replaced by a set of equality keys.

    Items Python can sort go to jsonschema's own sorted check, as there (its verdict,
    quirks included); the rest (objects) are what it compares pair by pair, and here
    each becomes a key equal exactly when its ``equal`` holds."""
    from jsonschema._utils import unbool, uniq

    try:
        sorted(unbool(item) for item in items)
    except (NotImplementedError, TypeError):
        pass
    else:
        return bool(uniq(items))
    if _key_of.get() is _integral_key:  # no float, NaN or Infinity: equal exactly when
        try:  # their sorted texts are (orjson's text is one-to-one on such values)
            texts = [orjson.dumps(item, option=orjson.OPT_SORT_KEYS) for item in items]
        except TypeError:  # a big integer or a lone surrogate: the keys below
            pass
        else:
            return len(set(texts)) == len(texts)
    try:
        keys = [_equality_key(item) for item in items]
    except (TypeError, RecursionError):
        return bool(uniq(items))
    return len(set(keys)) == len(keys)


def _standard_key(instance: Any) -> bytes:
    text = json.dumps(instance, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return b"j" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _integral_key(instance: Any) -> bytes:
    """For a value with no float, NaN or Infinity in it: orjson's text is one-to-one on
    such values (big integers and lone surrogates raise: the standard key then)."""
    try:
        text = orjson.dumps(instance, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _standard_key(instance)
    return b"o" + hashlib.sha256(text).digest()


# The key function of the document being validated (schema_error sets it per document,
# per thread).
_key_of: ContextVar[Callable[[Any], bytes]] = ContextVar("sbom_memo_key", default=_standard_key)


def _keywords(remember: bool) -> dict[str, Any]:
    """The ``uniqueItems`` keyword of the fast validator, and with ``remember`` its
    ``$ref`` that keeps clean verdicts (module docstring)."""
    from jsonschema.exceptions import ValidationError

    clean: set[tuple[int, str, str, bytes]] = set()

    def unique_items(validator: Any, wanted: Any, instance: Any,
                     schema: Any) -> Iterator[ValidationError]:
        if wanted and validator.is_type(instance, "array") and not _unique(instance):
            yield ValidationError(f"{instance!r} has non-unique elements")

    def ref(validator: Any, reference: str, instance: Any,
            schema: Any) -> Iterator[ValidationError]:
        base = getattr(getattr(validator, "_resolver", None), "_base_uri", None)
        if not isinstance(base, str) or not isinstance(instance, dict | list):
            yield from validator._validate_reference(ref=reference, instance=instance)
            return
        try:  # NaN or infinity: no key (JSON has none, Python's reader takes them)
            digest = _key_of.get()(instance)
        except (TypeError, ValueError, RecursionError):
            yield from validator._validate_reference(ref=reference, instance=instance)
            return
        # The schema dict holding the $ref lives as long as the registry (and this memo).
        key = (id(schema), base, reference, digest)
        if key in clean:
            return
        errors = list(validator._validate_reference(ref=reference, instance=instance))
        if not errors:
            if len(clean) >= _MEMO_LIMIT:
                clean.clear()
            clean.add(key)
        yield from errors

    return {"$ref": ref, "uniqueItems": unique_items} if remember else {
        "uniqueItems": unique_items}


@functools.cache
def _library() -> Any:
    # jsonschema is imported here, never at module level, so that the stand-in is
    # always in place first (an import sorter cannot move a call between imports).
    defer_rfc3987()
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6)._validator  # schema + registry, built once


@functools.cache
def _validator(remember: bool = False) -> Any:
    """The library's validator with the fast keywords; ``remember``: with the memo of
    clean ``$ref`` verdicts, for documents read from JSON text (see schema_error)."""
    base = _library()  # first: it puts the IRI parser's stand-in in place
    from jsonschema.validators import extend

    fast = extend(type(base), validators=_keywords(remember))
    return fast(base.schema, registry=base._registry, format_checker=_format_checker())


def strict_validator() -> Any:
    """What publishing checks each SBOM with (factory.attest.sbom): built in Python, so
    no memo (a key that is not a string would be written as one in the memo's JSON)."""
    return _validator()


# -- the compiled validator: a fast "valid", never a verdict of its own -------------------------
def _formats_in(schema: Any, found: set[str]) -> set[str]:
    if isinstance(schema, dict):
        if isinstance(schema.get("format"), str):
            found.add(schema["format"])
        for value in schema.values():
            _formats_in(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _formats_in(value, found)
    return found


def _refuse(uri: str) -> Any:
    raise LookupError(f"{uri}: not in the CycloneDX schemas (nothing is fetched)")


# The formats the CycloneDX 1.6 schemas name, answered as _format_checker() answers them
# (the same functions jsonschema 4.26's Draft 7 checker calls with the libraries pinned
# here, and the IRI rule above) without importing jsonschema: the early child builds the
# compiled validator in about 0.03 s instead of 0.2 s (jsonschema, referencing and their
# metaschemas). tests/test_verify_sbom_schema.py holds each equal to the checker's
# ``conforms`` and the schemas equal to the library's; a schema naming any other format
# gets the checker itself (_compiled).
def _date_time(instance: object) -> bool:
    from rfc3339_validator import validate_rfc3339

    return not isinstance(instance, str) or bool(validate_rfc3339(instance.upper()))


def _email(instance: object) -> bool:
    return not isinstance(instance, str) or "@" in instance


def _uri(instance: object) -> bool:
    from rfc3986_validator import validate_rfc3986

    return not isinstance(instance, str) or bool(validate_rfc3986(instance, rule="URI"))


def _iri_reference(instance: object) -> bool:
    try:  # (the checker registers this rule with raises=ValueError: not conforming)
        return _iri_reference_rule(instance)
    except ValueError:
        return False


def _iri_standalone(instance: object) -> bool:
    try:  # (as _iri_reference: raises=ValueError is "not conforming")
        return _iri(instance)
    except ValueError:
        return False


_STANDALONE_FORMATS: dict[str, Callable[[object], bool]] = {
    "date-time": _date_time, "idn-email": _email, "uri": _uri,
    "iri-reference": _iri_reference, "iri": _iri_standalone}
_SCHEMA_PREFIX = "http://cyclonedx.org/schema/"


def _checker_uses_rfc3987() -> bool:
    """Whether jsonschema would answer ``uri`` with the rfc3987 package (it prefers it
    to rfc3986-validator when it can import it, jsonschema._format): then the
    standalone ``uri`` is not its answer, and the compiled validator asks the checker."""
    try:
        return importlib.util.find_spec("rfc3987") is not None
    except ValueError:  # a module of that name without a spec: importable all the same
        return True


def _schema_files() -> tuple[Any, list[tuple[str, Any]]]:
    """The strict CycloneDX 1.6 schema and the resources its $refs name, read from the
    files cyclonedx-python-lib's JsonStrictValidator reads, under the URIs it gives them
    (cyclonedx.validation.json), without importing jsonschema."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.schema._res import BOM_JSON_STRICT, CRYPTOGRAPHY_DEFS, JSF, SPDX_JSON

    def load(path: str | None) -> Any:
        assert path is not None
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    return load(BOM_JSON_STRICT[SchemaVersion.V1_6]), [
        (f"{_SCHEMA_PREFIX}spdx.SNAPSHOT.schema.json", load(SPDX_JSON)),
        (f"{_SCHEMA_PREFIX}cryptography-defs.SNAPSHOT.schema.json", load(CRYPTOGRAPHY_DEFS)),
        (f"{_SCHEMA_PREFIX}jsf-0.82.SNAPSHOT.schema.json", load(JSF))]


@functools.cache
def _compiled() -> Any | None:
    """jsonschema-rs's Draft 7 validator over the library's schemas (the same registry),
    offline, whose every ``format`` is answered as this module's format checker answers
    it (jsonschema's own checks and the IRI rule above): None when jsonschema-rs cannot
    be loaded."""
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - pinned; the jsonschema path decides alone
        return None
    schema, resources = _schema_files()
    formats: set[str] = set()
    for contents in [schema, *(contents for _, contents in resources)]:
        _formats_in(contents, formats)
    if formats <= _STANDALONE_FORMATS.keys() and not _checker_uses_rfc3987():
        answers: dict[str, Callable[[object], bool]] = {
            name: _STANDALONE_FORMATS[name] for name in sorted(formats)}
    else:  # a format this module does not answer alone: ask jsonschema's checker
        checker = _format_checker()

        def conforms(name: str) -> Callable[[object], bool]:
            return lambda instance: checker.conforms(instance, name)

        answers = {name: conforms(name) for name in sorted(formats)}
    return jsonschema_rs.Draft7Validator(
        schema, formats=answers, validate_formats=True,
        registry=jsonschema_rs.Registry(resources),
        retriever=_refuse)  # (its own retriever would fetch a missing $ref over HTTP)


def _fast_valid(document: Any) -> bool:
    """True only when the compiled validator finds ``document`` valid; False when it finds
    an error, cannot take the document, or is not there (jsonschema then decides).
    ``document``: JSON text's value with no float, NaN or Infinity (schema_error's
    ``integral``), whose numbers both validators compare exactly, big integers too."""
    compiled = _compiled()
    if compiled is None:
        return False
    try:
        return bool(compiled.is_valid(document))
    except Exception:  # a value it cannot convert (a lone surrogate), or its own failure
        return False


def schema_error(document: Any, *, integral: bool = False) -> str | None:
    """None when ``document`` is valid CycloneDX 1.6 (strict); else the first error.

    A document the compiled validator (jsonschema-rs, same schemas, the same format
    checks) finds valid is valid; anything else, an error included, is decided by
    jsonschema as before, so every error and its message are jsonschema's. The
    compiled validator is never laxer on these schemas: its patterns are the schemas'
    simple classes and anchors (its ``$`` and ``.`` match no newline where Python's
    may), its formats are the Python checks, and only documents with no float, NaN or
    Infinity reach it (``integral``; it compares integers exactly, however big):
    tests/test_verify_sbom_schema.py compares the two on valid, invalid and mutated SBOMs.

    ``document`` as ``json.loads`` reads it (string keys, lists, no tuples): the parts
    found clean are remembered by their JSON text. ``integral``: the caller knows the
    document holds no float, NaN or Infinity (its text had none), so orjson may key it."""
    if integral and _fast_valid(document):
        return None
    validator = _validator(remember=True)
    token = _key_of.set(_integral_key if integral else _standard_key)
    try:
        error = next(iter(validator.iter_errors(document)), None)
    finally:
        _key_of.reset(token)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:300]}"


def read_json(data: bytes) -> tuple[Any, bool]:
    """``data`` (UTF-8 JSON) as ``json.loads`` reads it, and whether its text held no
    float, NaN or Infinity (``schema_error``'s and ``canonical_equals``' ``integral``)."""
    inexact: list[str] = []

    def number(text: str) -> float:
        inexact.append(text)
        return float(text)  # what json.loads does for a float, NaN or Infinity

    value = json.loads(data.decode("utf-8"), parse_float=number, parse_constant=number)
    return value, not inexact


def warm_fast_path() -> None:
    """Build what ``schema_error`` asks first (jsonschema-rs over the CycloneDX schemas,
    with jsonschema's format checks), not the Python validator it falls back to."""
    _compiled()


def warm_schema() -> None:
    """Build the validator ``schema_error`` uses (imports jsonschema and loads the CycloneDX
    schemas): a process that forks workers calls it first, so that they share it."""
    _validator(remember=True)
    _compiled()


def canonical_equals(raw: bytes, value: Any, *, integral: bool = False) -> bool:
    """Whether ``raw`` is exactly ``canonical_json(value)`` in UTF-8.

    ``integral``: ``value`` holds no float, NaN or Infinity. On such values orjson's
    sorted, two-space-indented text is the standard library's ``json.dumps(indent=2,
    sort_keys=True, ensure_ascii=False)`` byte for byte (same escapes, key order by code
    point, empty containers; tests/test_verify_sbom_schema.py), about thirty times
    faster; whatever orjson cannot write (big integers, lone surrogates) and every
    mismatch is decided by canonical_json itself."""
    if integral:
        try:
            if orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n" \
                    == raw:
                return True
        except TypeError:
            pass
    return canonical_json(value).encode("utf-8") == raw
