"""A wheel's evidence is read once: the zip inspection (in-toto's ``receive``) reads the
very bytes whose sha256 the checks hold (factory.verify.evidence.WheelBytes), in memory
or, past _IN_MEMORY, in a private copy; the path is never read again, whatever it holds
by then."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from factory.verify import evidence
from factory.verify.evidence import gather
from tests.intoto_fixtures import (  # noqa: F401  (two fixtures)
    copy_fixture,
    item_of,
    published_index,
)
from tests.pipeline_fixtures import PublishedIndex


@pytest.fixture(params=["in memory", "a private copy"])
def kept(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "a private copy":
        monkeypatch.setattr(evidence, "_IN_MEMORY", 16)
    return str(request.param)


def test_the_inspection_reads_the_bytes_gathered(copy: PublishedIndex, kept: str) -> None:
    item = item_of(copy, "alpha")
    good = item.wheel.read_bytes()
    ev = gather(item)
    assert ev.sha256 == hashlib.sha256(good).hexdigest() and ev.size == len(good)
    assert ev.content is not None
    assert (ev.content._spill is not None) == (kept == "a private copy")
    item.wheel.write_bytes(b"\0" * len(good))  # replaced after the digest was taken
    assert ev.zip_intact() is True
    assert ev.content.open().read() == good
    ev.close()


def test_bytes_gathered_that_are_no_zip_stay_no_zip(copy: PublishedIndex, kept: str,
                                                    tmp_path: Path) -> None:
    item = item_of(copy, "alpha")
    good = item.wheel.read_bytes()
    item.wheel.write_bytes(b"\0" * len(good))
    ev = gather(item)
    item.wheel.write_bytes(good)  # put back after the digest was taken
    assert ev.zip_intact() is False
    ev.close()


def test_a_private_copy_is_closed_with_the_evidence(copy: PublishedIndex,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidence, "_IN_MEMORY", 16)
    ev = gather(item_of(copy, "alpha"))
    assert ev.content is not None and ev.content._spill is not None
    spill = ev.content._spill
    ev.close()
    assert spill.closed


def test_given_bytes_keep_no_copy(copy: PublishedIndex) -> None:
    item = item_of(copy, "alpha")
    data = item.wheel.read_bytes()
    ev = gather(item, known=(hashlib.sha256(data).hexdigest(), len(data)))
    assert ev.content is None
