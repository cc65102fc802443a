"""Whether upstream offers what a requirement allows: one rule for `factory add` and the
lock's pass-over (they disagreed on pre-releases). A pre-release counts: policy takes one
only when a range names it, but a human may approve it, so the requirement is not one
that can never be met."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from factory.upstream.listing import ProjectListing, UpstreamFile


def _file(filename: str, yanked: bool = False) -> UpstreamFile:
    return UpstreamFile(filename, f"https://files.invalid/{filename}", "a" * 64, 1, None,
                        yanked, None, None)


LISTING = ProjectListing("demo", (
    _file("demo-1.0.tar.gz"), _file("demo-2.0.tar.gz", yanked=True),
    _file("demo-3.0b1.tar.gz"), _file("demo-4.0-py3-none-any.whl")))


@pytest.mark.parametrize(("spec", "offered"), [
    ("", True),
    (">=1", True),
    (">=2", True),  # 2.0 is yanked, but 3.0b1 is there for a human to approve
    ("==2.0", False),  # yanked
    ("==3.0b1", True),  # named: a pre-release is what was asked for
    (">=3.0b1", True),
    (">=4", False),  # a wheel only
    ("<1", False),
])
def test_an_unyanked_sdist_is_offered_pre_releases_included(
        spec: str, offered: bool) -> None:
    assert LISTING.offers(SpecifierSet(spec)) is offered
