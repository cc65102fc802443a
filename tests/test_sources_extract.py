"""Hostile sdists: every escape is refused and nothing lands outside the cache."""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factory.errors import UnsafeArchiveError
from factory.upstream.archive import Limits, extract, read_member
from tests import factories
from tests.factories import tar_member as member


def make_tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None,
             mode: str = "w:gz") -> Path:
    """``members``, each holding its ``data`` by name (nothing when not given)."""
    return factories.tar(path, [(info, (data or {}).get(info.name, b"")) for info in members], mode)


def files_outside(tmp_path: Path, dest: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if not p.is_relative_to(dest)
            and p.name not in ("evil.tar.gz", "evil.zip") and p != dest.parent]


HOSTILE = [
    ([member("pkg-1/../../escape.txt")], "climbs out"),
    ([member("/etc/evil")], "absolute path"),
    ([member("pkg-1/link", tarfile.SYMTYPE, "../../outside")], "points outside"),
    ([member("pkg-1/link", tarfile.SYMTYPE, "/etc/passwd")], "points outside"),
    ([member("pkg-1/hard", tarfile.LNKTYPE, "/etc/passwd")], "absolute path"),
    ([member("pkg-1/hard", tarfile.LNKTYPE, "pkg-1/missing")], "no target"),
    ([member("pkg-1/x", tarfile.SYMTYPE, "y/../.."), member("pkg-1/y", tarfile.SYMTYPE, ".")],
     "through other links"),
    ([member("pkg-1/dev", tarfile.CHRTYPE)], "device or special"),
    ([member("pkg-1/fifo", tarfile.FIFOTYPE)], "device or special"),
    ([member("pkg-1/run", mode=0o4755)], "setuid"),
    ([member("pkg-1/bad\x1bname")], "control characters"),
    # found by the fuzzer: tarfile's link fallback chased these into endless recursion
    ([member("a\\/.", tarfile.SYMTYPE, "")], "backslash"),
    ([member("pkg-1/", tarfile.DIRTYPE), member("pkg-1/.", tarfile.SYMTYPE, "x")],
     "'.' components"),
    ([member("pkg-1/empty", tarfile.SYMTYPE, "")], "has no target"),
]


@pytest.mark.parametrize(("members", "words"), HOSTILE)
def test_hostile_tar_is_refused(tmp_path: Path, members: list[tarfile.TarInfo],
                                words: str) -> None:
    archive = make_tar(tmp_path / "evil.tar.gz", [member("pkg-1/ok.py")] + members)
    dest = tmp_path / "cache" / "unpacked"
    with pytest.raises(UnsafeArchiveError, match=words):
        extract(archive, dest)
    assert not dest.exists()
    assert not (tmp_path / "escape.txt").exists()
    assert list((tmp_path / "cache").iterdir()) == []  # no half-unpacked staging left


def test_symlink_inside_the_tree_is_allowed(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "ok.tar.gz", [
        member("pkg-1/a/real.py"), member("pkg-1/b/link.py", tarfile.SYMTYPE, "../a/real.py"),
    ], {"pkg-1/a/real.py": b"x = 1\n"})
    root = extract(archive, tmp_path / "out")
    assert root.name == "pkg-1"
    link = root / "b" / "link.py"
    assert link.is_symlink() and link.read_text() == "x = 1\n"


def test_member_count_limit(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "many.tar.gz", [member(f"pkg-1/f{i}") for i in range(50)])
    with pytest.raises(UnsafeArchiveError, match="over the limit of 20"):
        extract(archive, tmp_path / "out", Limits(max_members=20))


def test_decompression_bomb(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "bomb.tar.gz", [member("pkg-1/zeros")],
                       {"pkg-1/zeros": bytes(8 << 20)})
    with pytest.raises(UnsafeArchiveError, match="decompression bomb"):
        extract(archive, tmp_path / "out")


def test_total_size_limit(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "big.tar", [member("pkg-1/a"), member("pkg-1/b")],
                       {"pkg-1/a": b"x" * 3000, "pkg-1/b": b"y" * 3000}, mode="w")
    with pytest.raises(UnsafeArchiveError, match="unpacks to 6000 bytes"):
        extract(archive, tmp_path / "out", Limits(max_total_bytes=5000))


def test_not_an_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "pkg-1.tar.gz"
    bogus.write_bytes(b"this is not gzip")
    with pytest.raises(UnsafeArchiveError, match="not a readable archive"):
        extract(bogus, tmp_path / "out")


def test_hostile_zip(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg-1/ok.py", "x")
        zf.writestr("pkg-1/../../escape.txt", "x")
    with pytest.raises(UnsafeArchiveError, match="climbs out"):
        extract(archive, tmp_path / "out")
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("pkg-1/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="link or special"):
        extract(link, tmp_path / "out2")


def test_read_member_reads_root_files_only(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "p.tar.gz", [member("pkg-1/pyproject.toml"),
                                               member("pkg-1/sub/pyproject.toml")],
                       {"pkg-1/pyproject.toml": b"[x]\n", "pkg-1/sub/pyproject.toml": b"no"})
    assert read_member(archive, "pyproject.toml") == b"[x]\n"
    assert read_member(archive, "PKG-INFO") is None


_names = st.lists(st.text(alphabet=st.sampled_from(list("ab./\\\x00\x1b~-")), min_size=1,
                          max_size=12), min_size=1, max_size=6)
_links = st.text(alphabet=st.sampled_from(list("ab./")), max_size=12)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=_names, link=_links, kind=st.sampled_from([tarfile.REGTYPE, tarfile.SYMTYPE,
                                                        tarfile.LNKTYPE, tarfile.DIRTYPE]))
def test_fuzz_nothing_escapes(tmp_path_factory: pytest.TempPathFactory, names: list[str],
                              link: str, kind: bytes) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    members = [member(n) for n in names[:-1]] + [member(names[-1], kind, link)]
    try:
        archive = make_tar(base / "evil.tar.gz", members)
    except (ValueError, tarfile.TarError, UnicodeError):
        return  # tarfile itself refused to write such a member
    dest = base / "cache" / "out"
    try:
        root = extract(archive, dest)
    except UnsafeArchiveError:
        assert not dest.exists()
        return
    top = os.path.realpath(dest)
    for path in dest.rglob("*"):
        real = os.path.realpath(path)
        assert real == top or real.startswith(top + os.sep), path
    assert root.is_relative_to(dest)
    assert sorted(p.name for p in base.iterdir()) == ["cache", "evil.tar.gz"]
