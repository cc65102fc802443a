"""CycloneDX 1.6 strict schema validation, fast enough to check a whole index.

cyclonedx-python-lib's JsonStrictValidator checks the ``iri-reference``
format with rfc3987-syntax, an Earley parser that needs about 0.2 s per IRI
(over 0.5 s per SBOM). For ASCII strings the RFC 3987 IRI grammar is exactly
the RFC 3986 URI grammar (IRIs only add non-ASCII characters), which
rfc3986-validator checks with one regular expression, as jsonschema itself
does for ``uri``. So: the same schema and registry, the same format checker,
except that ASCII IRIs go to the URI regex; anything else still goes to
rfc3987-syntax. The result equals the library's validator.
"""

from __future__ import annotations

import functools
from typing import Any

from typing import TYPE_CHECKING

from rfc3986_validator import validate_rfc3986

from factory._internal.lazy import defer_rfc3987

if TYPE_CHECKING:
    from jsonschema import FormatChecker



@functools.lru_cache(maxsize=4096)
def _is_iri(value: str, rule: str) -> bool:
    if value.isascii():
        return bool(validate_rfc3986(value, rule="URI" if rule == "iri" else "URI_reference"))
    from factory._internal.lazy import _is_valid_syntax  # the real parser, loaded on first use

    return _is_valid_syntax(rule, value)


def _format_checker() -> FormatChecker:
    from jsonschema import FormatChecker
    from jsonschema.validators import Draft7Validator

    checker = FormatChecker(formats=())
    checker.checkers = dict(Draft7Validator.FORMAT_CHECKER.checkers)

    @checker.checks("iri", raises=ValueError)
    def iri(instance: object) -> bool:
        return not isinstance(instance, str) or _is_iri(instance, "iri")

    @checker.checks("iri-reference", raises=ValueError)
    def iri_reference(instance: object) -> bool:
        return not isinstance(instance, str) or _is_iri(instance, "iri_reference")

    return checker


@functools.cache
def _validator() -> Any:
    # jsonschema is imported here, never at module level, so that the stand-in is
    # always in place first (an import sorter cannot move a call between imports).
    defer_rfc3987()
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    base = JsonStrictValidator(SchemaVersion.V1_6)._validator  # schema + registry, built once
    return base.evolve(format_checker=_format_checker())


strict_validator = _validator  # also what publishing checks each SBOM with (factory.attest.sbom)


def schema_error(document: Any) -> str | None:
    """None when ``document`` is valid CycloneDX 1.6 (strict); else the first error."""
    error = next(iter(_validator().iter_errors(document)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:300]}"
