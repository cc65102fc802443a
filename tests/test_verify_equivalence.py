"""Equivalence with upstream: our pure-Python wheel against upstream's wheel of the version.

Every published pure wheel carries a signed statement (the fixture's lock found
no upstream wheel: ``no-upstream-wheel``). At publish time ``Comparer`` compares
with the wheel the lock pinned (here put in the cache by the test): equivalent,
then divergent after upstream's wheel changed (an alarm in the ledger and status).
The local upstream (tests.local_upstream) serves a wheel of alpha 1.0 holding
the same files as ours in another zip for ``verify --upstream``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from factory import ledger
from factory._internal.atomic import sha256_file
from factory.config import Settings
from factory.errors import VerificationError
from factory.lock import load_lock, save_lock
from factory.lock.backend import Backend
from factory.sign import open_signer
from factory.upstream.cache import cache_path
from factory.verify import compare_with_upstream, equivalence, verify
from factory.verify.equivalence import (
    DIVERGENT,
    EQUIVALENT,
    NO_UPSTREAM_WHEEL,
    SUFFIX,
    Comparer,
    compare_wheels,
    explain,
    read_statement,
    recheck,
)
from factory.verify.model import FAIL, PASS
from factory.watch import component_status
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


def test_a_wheel_unpacking_past_the_bound_is_not_compared(
        copy: PublishedIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = copy.wheel("alpha")
    bomb = repack(ours, tmp_path / "bomb" / ours.name, {"alpha/__init__.py": b"0" * 100_000})
    monkeypatch.setattr(equivalence, "MAX_UNPACKED", 50_000)
    with pytest.raises(VerificationError, match="unpacked; not compared"):
        compare_wheels(ours, bomb)


def _tamper(statement: Path, change: dict[str, object]) -> None:
    bundle = json.loads(statement.read_text())
    payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    payload["predicate"].update(change)
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    statement.write_text(json.dumps(bundle))


def test_every_published_pure_wheel_carries_a_statement(copy: PublishedIndex) -> None:
    """The fixture's lock found no upstream wheel: the verdict says so, signed, recorded
    beside the wheel, and verify checks it (a verdict other than equivalent passes)."""
    ours = copy.wheel("alpha")
    statement = ours.with_name(ours.name + SUFFIX)
    found = read_statement(statement)
    assert found is not None and found["predicate"]["verdict"] == NO_UPSTREAM_WHEEL
    assert found["subject"][0]["digest"]["sha256"] == copy.record("alpha").wheel_sha256
    report = verify(copy.settings, "alpha==1.0")
    check = report.artifacts[0].check("upstream")
    assert report.ok and check is not None and check.status == PASS
    assert "no upstream wheel" in check.message
    _tamper(statement, {"verdict": EQUIVALENT})  # a forged verdict is caught
    check = verify(copy.settings, "alpha==1.0").artifacts[0].check("upstream")
    assert check is not None and check.status == FAIL
    assert read_statement(copy.wheel("beta")) is None  # not a statement
    statement.write_bytes(b"{" * (2 << 20))
    assert read_statement(statement) is None  # bounded


def test_explain_says_why_per_file(copy: PublishedIndex, tmp_path: Path) -> None:
    ours = copy.wheel("alpha")
    with zipfile.ZipFile(ours) as archive:
        names = archive.namelist()
        wheel_name = next(n for n in names if n.endswith(".dist-info/WHEEL"))
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        wheel, meta = archive.read(wheel_name), archive.read(meta_name)
        record = archive.read(record_name) + b"alpha-1.0.dist-info/LICENSE,sha256=x,3\n"
    generator = wheel.decode().split("Generator: ")[1].split("\n")[0]
    theirs = repack(ours, tmp_path / "t" / ours.name, {
        wheel_name: wheel.replace(generator.encode(), b"flit 3.9.0"),
        meta_name: meta.replace(b"Name: alpha", b"Name: alpha\nLicense-File: LICENSE"),
        "alpha/__init__.py": b"X = 2\n", record_name: record})
    with zipfile.ZipFile(theirs, "a") as archive:
        archive.writestr("alpha-1.0.dist-info/LICENSE", b"MIT")
    found = {f["file"]: f for f in explain(ours, theirs)}
    assert found[wheel_name]["detail"] == f"Generator: ours {generator!r}, upstream 'flit 3.9.0'"
    assert found[meta_name]["detail"] == "fields that differ: license-file"
    assert found["alpha/__init__.py"] == {"file": "alpha/__init__.py", "why": "different bytes"}
    assert found["alpha-1.0.dist-info/LICENSE"]["why"] == "only upstream"
    assert found[record_name]["detail"].startswith("follows the other differences")


def _pin_upstream_wheel(settings: Settings, wheel: Path) -> None:
    """The lock row of alpha 1.0 names ``wheel`` as upstream's (put in the cache)."""
    digest = sha256_file(wheel)
    cached = cache_path(settings, digest, wheel.name)
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wheel, cached)
    lock = load_lock(settings)
    row = lock.get("alpha", "1.0")
    assert row is not None
    pin = {"filename": wheel.name, "url": f"https://files.invalid/{wheel.name}",
           "sha256": digest, "size": wheel.stat().st_size}
    backend = Backend("flit 3.9.0", "flit-core==3.9.0", "upstream's wheel was generated by "
                      "flit 3.9.0", pin)
    lock.components = [dataclasses.replace(c, backend=backend) if c is row else c
                       for c in lock.components]
    save_lock(settings, lock)


def test_publish_time_verdicts_and_the_alarm(copy: PublishedIndex, tmp_path: Path) -> None:
    settings = copy.settings
    ours = copy.wheel("alpha")
    sha = copy.record("alpha").wheel_sha256
    _pin_upstream_wheel(settings, repack(ours, tmp_path / "same" / ours.name))
    target = tmp_path / "out" / (ours.name + SUFFIX)
    target.parent.mkdir()
    with open_signer(settings) as signer, Comparer(settings) as comparer:
        result = comparer.write(signer, "alpha", "1.0", ours, sha, target)
        assert result is not None and result.verdict == EQUIVALENT and result.alarm is None
        assert comparer.summary() == "1 equivalent, 0 divergent, 0 no-upstream-wheel"
    found = read_statement(target)
    assert found is not None and found["predicate"]["verdict"] == EQUIVALENT
    assert found["predicate"]["backend"]["reason"] == ("upstream's wheel was generated by "
                                                       "flit 3.9.0")
    # upstream replaced its wheel (or a rebuild differs): divergent now, an alarm
    _pin_upstream_wheel(settings, repack(ours, tmp_path / "other" / ours.name,
                                         {"alpha/__init__.py": b"import os\n"}))
    with open_signer(settings) as signer, Comparer(settings) as comparer:
        result = comparer.write(signer, "alpha", "1.0", ours, sha, target)
        assert result is not None and result.verdict == DIVERGENT
        assert comparer.alarms and "was equivalent to upstream's wheel and now diverges" \
            in comparer.alarms[0] and "alpha/__init__.py (different bytes)" in comparer.alarms[0]
    predicate = (read_statement(target) or {})["predicate"]
    assert predicate["verdict"] == DIVERGENT and predicate["backend"]["matched"] is False
    assert {"file": "alpha/__init__.py", "why": "different bytes"} in predicate["differences"]
    assert ("alpha", "1.0") in ledger.open_equivalence_alarms(settings)
    rows = {r.name: r for r in component_status(settings, offline=True)}
    assert rows["alpha"].equivalence_alarm is not None
    # verify accepts a divergent statement (it reports it, signed), whatever the verdict
    statement = ours.with_name(ours.name + SUFFIX)
    shutil.copyfile(target, statement)
    check = verify(settings, "alpha==1.0").artifacts[0].check("upstream")
    assert check is not None and check.status == PASS and "divergent" in check.message


def test_unreachable_upstream_leaves_no_statement(copy: PublishedIndex, tmp_path: Path) -> None:
    settings = dataclasses.replace(copy.settings, http_retries=0, http_timeout=2.0)
    ours = copy.wheel("alpha")
    other = repack(ours, tmp_path / "x" / ours.name)
    _pin_upstream_wheel(settings, other)
    cache_path(settings, sha256_file(other), other.name).unlink()  # not cached: fetched
    target = tmp_path / (ours.name + SUFFIX)
    target.write_text("stale")
    with open_signer(settings) as signer, Comparer(settings) as comparer:
        result = comparer.write(signer, "alpha", "1.0", ours, copy.record("alpha").wheel_sha256,
                                target)
        assert result is None and not target.exists()
        assert comparer.notes and "could not be read" in comparer.notes[0]


def test_compare_with_upstream_reports_and_keeps_the_recorded_statement(
        copy: PublishedIndex, upstream: LocalUpstream, tmp_path: Path) -> None:
    ours = copy.wheel("alpha")
    upstream.add_file("alpha", repack(ours, tmp_path / "files" / ours.name))
    upstream.add("alpha", "1.0")  # the sdist is listed too; only wheels are compared
    settings = dataclasses.replace(copy.settings, upstream=upstream.url)
    statement = ours.with_name(ours.name + SUFFIX)
    before = statement.read_bytes()
    (result,) = compare_with_upstream(settings, "alpha==1.0")
    assert result.equivalent and result.verdict == EQUIVALENT, result.differences
    assert result.upstream_filename == ours.name and result.files_compared == 5
    assert result.statement is None and statement.read_bytes() == before  # recorded: kept
    (result,) = compare_with_upstream(settings, "alpha==1.0", out_dir=tmp_path)
    assert result.statement == str(tmp_path / (ours.name + SUFFIX))
    assert verify(settings, "alpha==1.0").ok


def test_a_different_upstream_wheel_is_reported(
        copy: PublishedIndex, upstream: LocalUpstream, tmp_path: Path) -> None:
    ours = copy.wheel("alpha")
    upstream.add_file("alpha", repack(ours, tmp_path / "files" / ours.name,
                                      {"alpha/__init__.py": b"import os\n"}))
    settings = dataclasses.replace(copy.settings, upstream=upstream.url)
    (result,) = compare_with_upstream(settings, "alpha==1.0", out_dir=tmp_path)
    assert not result.equivalent and result.verdict == DIVERGENT
    assert result.differences == ["alpha/__init__.py: different bytes"]
    assert (read_statement(tmp_path / (ours.name + SUFFIX)) or {})["predicate"][
        "verdict"] == DIVERGENT


def test_no_upstream_wheel(copy: PublishedIndex, upstream: LocalUpstream) -> None:
    upstream.add("alpha", "1.0")
    settings = dataclasses.replace(copy.settings, upstream=upstream.url)
    (result,) = compare_with_upstream(settings, "alpha==1.0")
    assert not result.equivalent and "no pure-Python wheel" in result.message
    assert result.verdict == NO_UPSTREAM_WHEEL


def test_recheck_alarms_when_upstream_replaced_its_wheel(copy: PublishedIndex,
                                                         tmp_path: Path) -> None:
    settings = copy.settings
    ours = copy.wheel("alpha")
    statement = ours.with_name(ours.name + SUFFIX)
    _pin_upstream_wheel(settings, repack(ours, tmp_path / "same" / ours.name))
    assert recheck(settings) == ([], [])  # the statement says no-upstream-wheel: not redone
    with open_signer(settings) as signer, Comparer(settings) as comparer:
        comparer.write(signer, "alpha", "1.0", ours, copy.record("alpha").wheel_sha256,
                       statement)  # stands for a publish that found it equivalent
    assert recheck(settings) == ([], [])  # the same upstream wheel: nothing to do
    _pin_upstream_wheel(settings, repack(ours, tmp_path / "new" / ours.name,
                                         {"alpha/__init__.py": b"evil = 1\n"}))
    notes, alarms = recheck(settings)
    assert notes == [] and len(alarms) == 1 and "alpha 1.0 was equivalent" in alarms[0]
    assert ("alpha", "1.0") in ledger.open_equivalence_alarms(settings)
