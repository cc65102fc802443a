from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from factory import fetch
from factory._internal.atomic import sha256_file
from factory.config import Settings
from factory.errors import IntegrityError, PolicyError
from factory.lock import lock_stage
from factory.upstream import cache
from tests import factories
from tests.local_upstream import LocalUpstream


@pytest.fixture
def locked(project: Settings, upstream: LocalUpstream) -> Settings:
    upstream.add("setuptools", "80.0.0", build_requires=[], backend="x")
    factories.recipe(project.root, "setuptools", 'kind = "build-tool"\n')
    upstream.add("demo", "1.0.0")
    factories.recipe(project.root, "demo", 'licenses = ["MIT"]\n')
    lock_stage(project)
    # lock reads pyproject.toml from the sdists; start fetch from an empty cache
    for path in project.sources_dir.rglob("*.tar.gz"):
        path.unlink()
    return project


def cached_files(settings: Settings) -> list[Path]:
    """What the cache holds (sdists and half downloads), but the memos lock left beside
    the sdists it verified (dot files: what was read from them, that they were verified)."""
    return sorted(p for p in settings.sources_dir.rglob("*") if p.is_file() and (
        not p.name.startswith(".") or p.name.startswith(".tmp-")))


def test_fetch_verifies_and_caches_by_content(locked: Settings, upstream: LocalUpstream) -> None:
    fetched = fetch.fetch_stage(locked)
    assert {f.component.name for f in fetched} == {"demo", "setuptools"}
    for item in fetched:
        assert item.path == cache.cache_path(locked, item.component.sdist.sha256,
                                               item.component.sdist.filename)
        assert item.path.is_file()
    served = len(upstream.requests)
    fetch.fetch_stage(locked)  # a second fetch is served from the cache
    assert len(upstream.requests) == served


def test_hash_mismatch_is_refused_and_nothing_kept(locked: Settings,
                                                   upstream: LocalUpstream) -> None:
    upstream.corrupt = True
    with pytest.raises(IntegrityError) as info:
        fetch.fetch_stage(locked, {"demo"})
    entry = next(c for c in fetch.load_lock(locked).components if c.name == "demo")
    assert f"expected {entry.sdist.sha256}, got " in info.value.message
    assert cached_files(locked) == []


def test_truncated_download_is_refused(locked: Settings, upstream: LocalUpstream) -> None:
    upstream.truncate = True
    with pytest.raises(IntegrityError, match="truncated"):
        fetch.fetch_stage(locked, {"demo"})
    assert cached_files(locked) == []


def test_corrupted_cache_entry_is_replaced(locked: Settings) -> None:
    (item,) = fetch.fetch_stage(locked, {"demo"})
    item.path.write_bytes(b"tampered")
    (again,) = fetch.fetch_stage(locked, {"demo"})
    assert sha256_file(again.path) == item.component.sdist.sha256


def test_license_outside_allowlist_is_refused(project: Settings,
                                              upstream: LocalUpstream) -> None:
    upstream.add("setuptools", "80.0.0", build_requires=[], backend="x")
    factories.recipe(project.root, "setuptools", 'kind = "build-tool"\n')
    upstream.add("gpl", "1.0.0", license="GPL-3.0-only")
    factories.recipe(project.root, "gpl", 'licenses = ["MIT", "BSD-3-Clause"]\n')
    lock_stage(project)
    with pytest.raises(PolicyError, match="license GPL-3.0-only is not in the recipe.s allowlist"):
        fetch.fetch_stage(project)


def test_a_download_a_crash_left_behind_is_swept_but_a_live_one_is_kept(
        locked: Settings) -> None:
    entry = next(c for c in fetch.load_lock(locked).components if c.name == "demo")
    folder = cache.cache_path(locked, entry.sdist.sha256, entry.sdist.filename).parent
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / f".tmp-{entry.sdist.filename}.dead"
    live = folder / f".tmp-{entry.sdist.filename}.live"
    stale.write_bytes(b"half a download")
    live.write_bytes(b"another fetcher, still writing")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    (item,) = fetch.fetch_stage(locked, {"demo"})
    assert item.path.is_file() and not stale.exists() and live.exists()


def _hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files hashed from now on, in a process that remembers nothing yet."""
    from factory._internal import digests

    monkeypatch.setattr(digests, "_MEMO", {})
    calls: list[str] = []
    real = digests.sha256_file

    def counted(path: Path, chunk: int = 1 << 20) -> str:
        calls.append(Path(path).name)
        return real(path, chunk)

    monkeypatch.setattr(digests, "sha256_file", counted)
    return calls


def test_a_second_fetch_in_a_new_process_hashes_nothing(
        locked: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch.fetch_stage(locked)
    hashed = _hashed(monkeypatch)  # as a new process would start
    again = fetch.fetch_stage(locked)
    assert hashed == [] and len(again) == 2


def test_a_cached_sdist_changed_in_place_is_hashed_and_replaced(
        locked: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same size, the old modification time put back: the change time still moved, so the
    stamp no longer holds and the bytes are hashed again (and the entry replaced)."""
    (item,) = fetch.fetch_stage(locked, {"demo"})
    before = item.path.stat()
    data = bytearray(item.path.read_bytes())
    data[-1] ^= 0xFF
    with item.path.open("r+b") as handle:
        handle.write(bytes(data))
    os.utime(item.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    hashed = _hashed(monkeypatch)
    (again,) = fetch.fetch_stage(locked, {"demo"})
    assert item.path.name in hashed
    assert sha256_file(again.path) == item.component.sdist.sha256


def test_a_forged_stamp_for_other_bytes_is_not_believed(
        locked: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    (item,) = fetch.fetch_stage(locked, {"demo"})
    stamp = item.path.with_name(f".verified-{item.path.name}.json")
    item.path.write_bytes(b"tampered")  # a new state; the old stamp still names the pin
    hashed = _hashed(monkeypatch)
    (again,) = fetch.fetch_stage(locked, {"demo"})
    assert hashed and stamp.is_file()
    assert sha256_file(again.path) == item.component.sdist.sha256
