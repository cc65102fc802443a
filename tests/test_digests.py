"""File digests remembered per state of the file: hashed once, hashed again on any change."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from factory._internal import digests


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setattr(digests, "_MEMO", {})
    calls: list[Path] = []
    real = digests.sha256_file
    monkeypatch.setattr(digests, "sha256_file",
                        lambda path, *a: calls.append(path) or real(path, *a))
    return calls


def test_an_unchanged_file_is_hashed_once(tmp_path: Path, hashed: list[Path]) -> None:
    path = tmp_path / "a.whl"
    path.write_bytes(b"one")
    assert digests.sha256_of(path) == hashlib.sha256(b"one").hexdigest()
    assert digests.sha256_of(path) == hashlib.sha256(b"one").hexdigest()
    assert hashed == [path]


def test_a_change_of_the_same_size_with_its_old_times_put_back_is_seen(
        tmp_path: Path, hashed: list[Path]) -> None:
    path = tmp_path / "a.whl"
    path.write_bytes(b"one")
    digests.sha256_of(path)
    before = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"two")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert digests.sha256_of(path) == hashlib.sha256(b"two").hexdigest()


def test_a_file_replaced_by_rename_is_seen(tmp_path: Path, hashed: list[Path]) -> None:
    path, other = tmp_path / "a.whl", tmp_path / "b"
    path.write_bytes(b"one")
    digests.sha256_of(path)
    other.write_bytes(b"two")
    os.replace(other, path)
    assert digests.sha256_of(path) == hashlib.sha256(b"two").hexdigest()


def test_a_link_is_never_taken_for_a_file(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_bytes(b"x")
    (tmp_path / "l").symlink_to(target)
    assert digests.file_state(tmp_path / "l") is None
    assert digests.file_state(tmp_path / "missing") is None
