"""Equivalence with upstream: our pure-Python wheel against upstream's wheel of the version.

The local upstream (tests.local_upstream) serves a wheel of alpha 1.0 holding
the same files as ours in another zip (other timestamps, member order, RECORD
line order): equivalent, and a signed statement is written next to our wheel,
which `verify` then checks. A wheel with one changed file is not equivalent
and leaves no statement.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import zipfile
from pathlib import Path

import pytest

from factory.verify import compare_with_upstream, verify
from factory.verify.equivalence import SUFFIX, compare_wheels
from factory.verify.model import FAIL, PASS
from tests.local_upstream import LocalUpstream
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)


def repack(wheel: Path, dest: Path, change: dict[str, bytes] | None = None) -> Path:
    """The same members in reverse order, new timestamps, RECORD lines reversed."""
    with zipfile.ZipFile(wheel) as source:
        members = [(i.filename, source.read(i)) for i in source.infolist()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as out:
        for name, data in reversed(members):
            if name.endswith(".dist-info/RECORD"):
                data = b"\n".join(reversed(data.strip().splitlines())) + b"\n"
            data = (change or {}).get(name, data)
            out.writestr(zipfile.ZipInfo(name, (2031, 5, 6, 7, 8, 10)), data)
    return dest


@pytest.fixture
def copy(published_index: PublishedIndex, tmp_path: Path) -> PublishedIndex:  # noqa: F811
    return clone(published_index, tmp_path / "copy")


def test_compare_wheels_ignores_container_and_record_order(copy: PublishedIndex,
                                                          tmp_path: Path) -> None:
    ours = copy.wheel("alpha")
    same = repack(ours, tmp_path / "same" / ours.name)
    assert same.read_bytes() != ours.read_bytes()
    count, differences = compare_wheels(ours, same)
    assert differences == [] and count == 5
    other = repack(ours, tmp_path / "other" / ours.name, {"alpha/__init__.py": b"X = 2\n"})
    assert compare_wheels(ours, other)[1] == ["alpha/__init__.py: different bytes"]


def test_equivalent_upstream_wheel_is_recorded_and_verified(
        copy: PublishedIndex, upstream: LocalUpstream, tmp_path: Path) -> None:
    ours = copy.wheel("alpha")
    upstream.add_file("alpha", repack(ours, tmp_path / "files" / ours.name))
    upstream.add("alpha", "1.0")  # the sdist is listed too; only wheels are compared
    settings = dataclasses.replace(copy.settings, upstream=upstream.url)
    (result,) = compare_with_upstream(settings, "alpha==1.0")
    assert result.equivalent, result.differences
    assert result.upstream_filename == ours.name and result.files_compared == 5
    statement = ours.with_name(ours.name + SUFFIX)
    assert result.statement == str(statement) and statement.is_file()
    report = verify(settings, "alpha==1.0")
    assert report.ok
    check = report.artifacts[0].check("upstream")
    assert check is not None and check.status == PASS and ours.name in check.message
    # The statement is signed: changing what it says is caught.
    bundle = json.loads(statement.read_text())
    payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    payload["predicate"]["filesCompared"] = 6
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    statement.write_text(json.dumps(bundle))
    tampered = verify(settings, "alpha==1.0")
    check = tampered.artifacts[0].check("upstream")
    assert check is not None and check.status == FAIL and not tampered.ok


def test_a_different_upstream_wheel_is_reported_and_not_recorded(
        copy: PublishedIndex, upstream: LocalUpstream, tmp_path: Path) -> None:
    ours = copy.wheel("alpha")
    upstream.add_file("alpha", repack(ours, tmp_path / "files" / ours.name,
                                      {"alpha/__init__.py": b"import os\n"}))
    settings = dataclasses.replace(copy.settings, upstream=upstream.url)
    (result,) = compare_with_upstream(settings, "alpha==1.0")
    assert not result.equivalent
    assert result.differences == ["alpha/__init__.py: different bytes"]
    assert result.statement is None
    assert not ours.with_name(ours.name + SUFFIX).exists()
    assert verify(settings, "alpha==1.0").artifacts[0].check("upstream") is None


def test_no_upstream_wheel(copy: PublishedIndex, upstream: LocalUpstream) -> None:
    upstream.add("alpha", "1.0")
    settings = dataclasses.replace(copy.settings, upstream=upstream.url)
    (result,) = compare_with_upstream(settings, "alpha==1.0")
    assert not result.equivalent and "no pure-Python wheel" in result.message
