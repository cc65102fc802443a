"""The site license policy (factory.license): what `factory add` approves by itself."""

from __future__ import annotations

import pytest

from factory.config import DEFAULT_LICENSES
from factory.license import judge

MIT = "License :: OSI Approved :: MIT License"
BSD = "License :: OSI Approved :: BSD License"


@pytest.mark.parametrize(("expression", "text", "classifiers", "allowed", "ids"), [
    ("MIT", None, (), True, ("MIT",)),
    ("mit", None, (), True, ("MIT",)),
    ("MIT OR GPL-3.0-only", None, (), True, ("MIT", "GPL-3.0-only")),
    ("MIT AND GPL-3.0-only", None, (), False, ("MIT", "GPL-3.0-only")),
    ("Apache-2.0 WITH LLVM-exception", None, (), True, ("Apache-2.0",)),
    ("GPL-2.0-only WITH Classpath-exception-2.0", None, (), False, ("GPL-2.0-only",)),
    (None, "Apache 2.0", (), True, ("Apache-2.0",)),
    (None, "BSD 3-Clause OR Apache-2.0", (), True, ("BSD-3-Clause", "Apache-2.0")),
    (None, None, (MIT,), True, ("MIT",)),
    (None, None, ("License :: OSI Approved", MIT), True, ("MIT",)),
    (None, None, (MIT, "License :: OSI Approved :: Apache Software License"), True,
     ("Apache-2.0", "MIT")),
    (None, None, (BSD,), True, ("BSD-2-Clause", "BSD-3-Clause")),  # every reading allowed
    (None, "BSD-3-Clause", (BSD,), True, ("BSD-3-Clause",)),  # the text says which
    (None, "LGPL-2.1-or-later", (), False, ("LGPL-2.1-or-later",)),
])
def test_judged_against_the_default_policy(expression: str | None, text: str | None,
                                           classifiers: tuple[str, ...], allowed: bool,
                                           ids: tuple[str, ...]) -> None:
    verdict = judge(expression, text, classifiers, DEFAULT_LICENSES)
    assert verdict.allowed is allowed
    assert set(verdict.licenses) == set(ids)
    assert (verdict.problem is None) is allowed


@pytest.mark.parametrize(("expression", "text", "classifiers"), [
    (None, None, ()),
    (None, "MIT License\n\nCopyright (c) ... the whole text", ()),
    (None, "LGPL with exceptions", ()),
    (None, None, ("License :: OSI Approved :: GNU Library or Lesser General Public "
                  "License (LGPL)",)),
    ("Not-A-License-1.0", None, ()),
    (None, "x" * 5000, ()),
    (None, "MIT\x1b]0;owned\x07", ()),
])
def test_what_cannot_be_read_as_spdx_needs_a_human(expression: str | None, text: str | None,
                                                   classifiers: tuple[str, ...]) -> None:
    verdict = judge(expression, text, classifiers, DEFAULT_LICENSES)
    assert not verdict.allowed and verdict.expression is None
    assert verdict.problem is not None and "\x1b" not in verdict.problem
    assert len(verdict.problem) < 200


def test_an_ambiguous_name_needs_every_reading_allowed() -> None:
    assert not judge(None, None, (BSD,), ["BSD-3-Clause"]).allowed
    assert judge(None, None, (BSD,), ["BSD-3-Clause", "BSD-2-Clause"]).allowed


def test_a_recipes_reviewed_list_takes_one_reading_and_names_it_reads_as_spdx() -> None:
    # the shipped recipes: jinja2 reviewed as BSD-3-Clause under the vague classifier,
    # pyelftools as the text "Public domain"
    assert judge(None, None, (BSD,), ["BSD-3-Clause"], reviewed=True).allowed
    assert judge(None, "Public domain", (), ["Public domain"], reviewed=True).allowed
    assert not judge(None, None, (BSD,), ["MIT"], reviewed=True).allowed
    assert not judge("MIT AND GPL-3.0-only", None, (), ["MIT"], reviewed=True).allowed


@pytest.mark.parametrize(("text", "classifiers", "reviewed_as"), [
    # the metadata of sdists the shipped recipes approve, as upstream declares it
    ("Public domain", ("License :: Public Domain",), ["Public domain"]),  # pyelftools
    (None, (BSD,), ["BSD-3-Clause"]),  # jinja2, itsdangerous
])
def test_the_shipped_recipes_still_approve_their_sdists(
        text: str | None, classifiers: tuple[str, ...], reviewed_as: list[str]) -> None:
    assert judge(None, text, classifiers, reviewed_as, reviewed=True).allowed
