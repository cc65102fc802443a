"""The "iri" and "iri-reference" formats (factory.verify.sbom._is_iri) give the verdicts
of rfc3987-syntax, jsonschema's own IRI checker, in time linear in the length: its
Earley parser took seconds for one IRI of a few thousand characters (a helper's attack
on the VEX feed; the same held for any SBOM sidecar planted beside a wheel)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from factory._internal.lazy import _is_valid_syntax
from factory.verify.sbom import _is_iri

_EDGES = [
    "http://ä.example/", "http://example/ä?ä#ä", "http://example/?\ue000",
    "http://example/\ue000", "http://example/#\ue000", "ä:x", "http://[::ä]/",
    "http://[v1.ä]/", "http://x:8ä/", "http://u\u00e4@x/", "//ä", "ä", "a/ä", "?ä", "#ä",
    "http://x/ä%", "http://x/ä%zz", "http://x/\ufdd0", "http://x/\ufdcf", "http://x/\ufdf0",
    "http://x/\ud800", "http://x/\U0001f600", "http://x/\U000e1000", "x:\U000f0000",
    "x:?\U000f0000", "x:?\U0010fffd", "http://x/\u00a0", "http://x/\u009f", "x:?#\ue000",
    "x:#?\ue000", "x:/a?b?\ue000", "http://ex ample/ä", "http://x/ä\n", "mailto:ä@x",
    "urn:ä:ä", "http://x/\uffef", "http://x/\ufff0", "http://x/\ud7ff", "http://x/\uf900",
]
_ALPHABET = list("ab:/?#[]@!$&'()*+,;=%-._~09AFv ") + [
    "ä", "\u00a0", "\ue000", "\uf8ff", "\ufdd0", "\ud800", "中", "\uffff", "\U0001f600",
    "\U000e1000", "\U000f0000", "\u0085", "\u2028"]


def _reference(value: str, rule: str) -> bool:
    try:
        return bool(_is_valid_syntax(rule, value))
    except ValueError:
        return False


@pytest.mark.parametrize("rule", ["iri", "iri_reference"])
def test_the_edges_agree_with_rfc3987_syntax(rule: str) -> None:
    for value in _EDGES:
        assert _is_iri(value, rule) == _reference(value, rule), (value, rule)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.sampled_from(["http://", "x:", "//", "/", "", "?"]),
       st.lists(st.sampled_from(_ALPHABET), min_size=1, max_size=12),
       st.sampled_from(["iri", "iri_reference"]))
def test_random_strings_agree_with_rfc3987_syntax(prefix: str, chars: list[str],
                                                  rule: str) -> None:
    value = prefix + "".join(chars)
    assert _is_iri(value, rule) == _reference(value, rule), (value, rule)


def test_a_long_iri_never_reaches_the_earley_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 IRIs of 3,000 characters took the Earley parser about a minute; none goes to it
    now (the check is a mapping and a regular expression)."""
    import factory._internal.lazy as lazy

    def refuse(rule: str, value: str) -> bool:
        raise AssertionError("the Earley parser was asked")

    monkeypatch.setattr(lazy, "_is_valid_syntax", refuse)
    rng = random.Random(7)
    values = [f"https://x.invalid/{i}/" + "".join(rng.choice("äé中\u00a0") for _ in range(3000))
              for i in range(40)]
    assert all(_is_iri(value, "iri") for value in values)
    assert not _is_iri("https://x.invalid/" + "ä" * 100_000 + "\ufdd0", "iri")
