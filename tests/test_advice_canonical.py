"""`factory.advice.canonical`'s shortcut for a bare name gives what parsing it as a PEP 508
requirement gives (the subject's digest depends on it)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from factory.advice import canonical


def _parsed(text: str) -> str:
    text = text.strip()
    try:
        return canonicalize_name(Requirement(text).name) if text else text
    except InvalidRequirement:
        return text


@hsettings(max_examples=2000, deadline=None)
@given(st.text("aZ09._-  \u0435\t[]=;", max_size=30))
def test_a_bare_name_is_canonical_as_parsed(text: str) -> None:
    try:
        req = Requirement(text.strip())
    except InvalidRequirement:
        req = None
    if req is not None and (req.extras or req.specifier or req.url or req.marker):
        return  # not a bare name: the parsing path, unchanged
    assert canonical(text) == _parsed(text)


def test_names_the_shortcut_takes() -> None:
    assert canonical("  Foo.Bar_baz ") == "foo-bar-baz"
    assert canonical("r\u0435quests") == "r\u0435quests"  # not a PEP 508 name: kept
    assert canonical("a" * 300) == "a" * 300  # longer than a name: kept (as parsing did)
    assert canonical("requests==2.32.3") == "requests==2.32.3"
