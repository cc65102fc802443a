"""Outputs a user names (-o, --html) and the factory's own atomic writes never put a
file in place of a device, a FIFO or a socket: `-o /dev/null` as root replaced
/dev/null with a regular file for everyone (seen here while attacking the new writer)."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from factory._internal.atomic import write_bytes, write_shared
from factory.errors import FileSystemError


def test_dev_null_is_written_into_not_replaced() -> None:
    before = os.stat("/dev/null")
    write_shared(Path("/dev/null"), b"discarded\n")
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_fifo_with_a_reader_gets_the_bytes(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    for _ in range(200):  # the writer needs the reader's open (no reader: ENXIO)
        try:
            write_shared(fifo, b"lock text\n")
            break
        except OSError:
            threading.Event().wait(0.01)
    reader.join(10)
    assert got == [b"lock text\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_fifo_with_no_reader_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as refused:
        write_shared(fifo, b"x")
    error = FileSystemError.from_os_error(refused.value, None)
    assert "start the reader of that pipe" in error.hint
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_the_factorys_own_writes_never_rename_over_a_fifo_or_socket(tmp_path: Path) -> None:
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        write_bytes(fifo, b"{}")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    where = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(where))
        with pytest.raises(OSError, match="not a regular file"):
            write_bytes(where, b"{}")
        assert stat.S_ISSOCK(os.lstat(where).st_mode)
    finally:
        server.close()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_link_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "out.json"
    link.symlink_to(victim)
    write_shared(link, b"new")
    assert victim.read_bytes() == b"keep" and not link.is_symlink()
    assert link.read_bytes() == b"new"


def test_a_user_path_error_is_not_blamed_on_the_state(tmp_path: Path) -> None:
    class Settings:
        state_dir = tmp_path / "state"

    outside = OSError(13, "Permission denied", str(tmp_path / "out.json"))
    inside = OSError(13, "Permission denied", str(tmp_path / "state" / "ledger.db"))
    assert "state directory" not in FileSystemError.from_os_error(outside, Settings()).hint
    assert "state directory" in FileSystemError.from_os_error(inside, Settings()).hint
