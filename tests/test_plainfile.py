"""factory._internal.plainfile.read_plain: what a reader of an untrusted directory gets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from factory._internal.plainfile import NotPlain, read_plain


def test_a_regular_file_within_the_limit_is_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    assert read_plain(tmp_path / "f", 5) == b"12345"
    assert read_plain(tmp_path / "absent", 5) is None
    with pytest.raises(NotPlain) as refused:  # a part of the path is a file: not absent
        read_plain(tmp_path / "f" / "under-a-file", 5)
    assert refused.value.why == "cannot be read (Not a directory)"


@pytest.mark.parametrize(("make", "why"), [
    (lambda p: p.symlink_to("/etc/hostname"), "a symbolic link"),
    (lambda p: p.symlink_to(p.parent / "nowhere"), "a symbolic link"),
    (lambda p: os.mkfifo(p), "not a regular file"),  # would block a plain open()
    (lambda p: p.mkdir(), "not a regular file"),
    (lambda p: p.write_bytes(b"x" * 6), "larger than 5 bytes"),
])
def test_anything_else_is_refused_saying_why(tmp_path: Path, make: object, why: str) -> None:
    path = tmp_path / "f"
    make(path)  # type: ignore[operator]
    with pytest.raises(NotPlain) as refused:
        read_plain(path, 5)
    assert refused.value.why == why


def test_a_link_the_operator_chose_is_followed_only_when_asked(tmp_path: Path) -> None:
    """A pinned trust file may be a link the auditor made; what it names must still be a
    regular file within the limit (a FIFO behind the link never blocks the reader)."""
    (tmp_path / "root.json").write_bytes(b"{}")
    (tmp_path / "link").symlink_to(tmp_path / "root.json")
    with pytest.raises(NotPlain, match="symbolic link"):
        read_plain(tmp_path / "link", 10)
    assert read_plain(tmp_path / "link", 10, follow_links=True) == b"{}"
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to-fifo").symlink_to(tmp_path / "fifo")
    with pytest.raises(NotPlain, match="not a regular file"):
        read_plain(tmp_path / "to-fifo", 10, follow_links=True)
    (tmp_path / "dangling").symlink_to(tmp_path / "absent")
    assert read_plain(tmp_path / "dangling", 10, follow_links=True) is None
