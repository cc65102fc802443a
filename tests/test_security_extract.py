"""Hostile sdists beyond tests/test_sources_extract.py: header tricks, Unicode
tricks, streaming member counts, bombs by ratio (tar.gz and zip), lying zips.

Each is refused with an UnsafeArchiveError (a clear, one-line cause), and
nothing is written outside the cache: the sentinel tree beside it is unchanged.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factory.errors import UnsafeArchiveError
from factory.upstream.archive import Limits, extract
from tests import factories
from tests.factories import tar_member as info


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def refused(tmp_path: Path, archive: Path, words: str, limits: Limits | None = None) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "keep.txt").write_text("keep")
    before = snapshot(tmp_path)
    dest = tmp_path / "cache" / "unpacked"
    with pytest.raises(UnsafeArchiveError, match=words) as caught:
        extract(archive, dest, limits or Limits())
    assert "\n" not in caught.value.message  # one line
    assert not dest.exists()
    assert snapshot(tmp_path) - before <= {"cache"}  # nothing new but the (empty) cache dir
    assert (outside / "keep.txt").read_text() == "keep"


def test_a_pax_header_that_renames_a_member_out_of_the_tree(tmp_path: Path) -> None:
    member = info("pkg-1/harmless.py")
    member.pax_headers = {"path": "pkg-1/../../../outside/pwned.py"}
    archive = factories.tar(tmp_path / "evil.tar.gz", [(member, b"x")])
    refused(tmp_path, archive, "climbs out")


def test_a_pax_linkpath_that_points_out_of_the_tree(tmp_path: Path) -> None:
    member = info("pkg-1/link", tarfile.SYMTYPE, "ok")
    member.pax_headers = {"linkpath": "../../outside"}
    archive = factories.tar(tmp_path / "evil.tar.gz",
                            [(info("pkg-1/ok"), b""), (member, b"")])
    refused(tmp_path, archive, "points outside")


def test_a_gnu_long_name_that_climbs_out(tmp_path: Path) -> None:
    deep = "pkg-1/" + "d/" * 80 + "../" * 90 + "outside/pwned.py"  # > 100 chars: ././@LongLink
    archive = factories.tar(tmp_path / "evil.tar.gz", [(info(deep), b"x")],
                            fmt=tarfile.GNU_FORMAT)
    refused(tmp_path, archive, "climbs out")


def test_a_gnu_long_link_target_that_is_absolute(tmp_path: Path) -> None:
    target = "/" + "a/" * 60 + "etc/passwd"
    archive = factories.tar(tmp_path / "evil.tar.gz",
                            [(info("pkg-1/link", tarfile.SYMTYPE, target), b"")],
                            fmt=tarfile.GNU_FORMAT)
    refused(tmp_path, archive, "points outside")


@pytest.mark.parametrize("name", [
    "pkg-1/evil\u202egnp.py",  # right-to-left override: displays as "evilyp.png"
    "pkg-1/\u2066hidden\u2069.py",  # bidi isolate
    "pkg-1/c1\u0085control.py",  # C1 control (NEL)
    "pkg-1/c1\u009bcsi.py",  # C1 CSI: a terminal escape without ESC
    "pkg-1/line\nbreak.py",
])
def test_names_with_unicode_tricks_are_refused(tmp_path: Path, name: str) -> None:
    archive = factories.tar(tmp_path / "evil.tar.gz", [(info(name), b"x")])
    refused(tmp_path, archive, "control characters")


def test_a_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    archive = factories.tar(tmp_path / "evil.tar", [(info("pkg-1/latin\udce9.py"), b"x")],
                            fmt=tarfile.GNU_FORMAT, mode="w")
    refused(tmp_path, archive, "not valid UTF-8|control characters")


def test_visually_similar_but_harmless_names_are_kept(tmp_path: Path) -> None:
    # Fullwidth and division slashes are ordinary characters on POSIX: no traversal.
    names = ["pkg-1/\uff0e\uff0e\u2215etc", "pkg-1/caf\u00e9.py", "pkg-1/\u0441\u043e\u0434.py"]
    archive = factories.tar(tmp_path / "ok.tar.gz", [(info(n), b"x") for n in names])
    root = extract(archive, tmp_path / "cache" / "ok")
    assert sorted(p.name for p in root.iterdir()) == sorted(n.split("/")[1] for n in names)
    assert snapshot(tmp_path / "cache" / "ok") == {"pkg-1", *names}


def test_a_huge_member_count_is_refused_while_streaming(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = 30_000  # default limit: 20 000
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for n in range(count):
            tar.addfile(info(f"pkg-1/f{n}"), io.BytesIO(b""))
    # "While streaming" counted, not timed: the member headers read before the refusal.
    read = [0]
    real_next = tarfile.TarFile.next

    def next_(self: tarfile.TarFile) -> tarfile.TarInfo | None:
        read[0] += 1
        return real_next(self)

    monkeypatch.setattr(tarfile.TarFile, "next", next_)
    refused(tmp_path, archive, "over the limit of 20000")
    # 20,001 members and the first again (tarfile.open reads it), never the 30,000
    assert read[0] <= 20_002, read[0]


def test_a_gzip_bomb_is_refused_by_its_ratio(tmp_path: Path) -> None:
    # 64 MiB of zeros compresses about 1000:1, under every absolute size limit.
    archive = factories.tar(tmp_path / "bomb.tar.gz",
                            [(info("pkg-1/zeros"), bytes(64 << 20))])
    assert archive.stat().st_size < 200 << 10
    refused(tmp_path, archive, "decompression bomb")


def test_a_zip_bomb_is_refused_by_its_ratio(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg-1/zeros", bytes(64 << 20))
    refused(tmp_path, archive, "decompression bomb")


def test_a_zip_whose_header_understates_a_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("pkg-1/a.py", b"A" * 5000)
    data = bytearray(archive.read_bytes())
    # Rewrite the central directory's uncompressed size (offset 24 of its entry) to 10.
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError):
        extract(archive, tmp_path / "cache" / "unpacked")
    assert not (tmp_path / "cache" / "unpacked").exists()


def test_a_member_over_the_size_limit_is_refused_before_it_is_written(tmp_path: Path) -> None:
    archive = factories.tar(tmp_path / "big.tar", [(info("pkg-1/big"), os.urandom(3 << 20))],
                            mode="w")
    refused(tmp_path, archive, "over the limit of 1048576",
            Limits(max_member_bytes=1 << 20))


@pytest.mark.parametrize("target", ["..", "../..", "../../..", "."])
def test_a_symlinked_directory_then_a_file_through_it(tmp_path: Path, target: str) -> None:
    # "pkg-1/d -> <target>" then "pkg-1/d/escape.txt": each name is fine alone; the
    # pair must never write outside the unpacked tree.
    archive = factories.tar(tmp_path / "evil.tar.gz", [
        (info("pkg-1/d", tarfile.SYMTYPE, target), b""),
        (info("pkg-1/d/escape.txt"), b"x")])
    dest = tmp_path / "cache" / "unpacked"
    try:
        extract(archive, dest)
    except UnsafeArchiveError:
        assert not dest.exists()
    else:
        top = os.path.realpath(dest)
        assert all(os.path.realpath(p).startswith(top) for p in dest.rglob("*"))
    assert not (tmp_path / "cache" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()


def _seed_archives() -> dict[str, bytes]:
    out = {}
    for kind in (".tar.gz", ".tar", ".zip"):
        buffer = io.BytesIO()
        if kind == ".zip":
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("pkg-1/a.py", "x = 1\n" * 20)
                zf.writestr("pkg-1/sub/b.txt", "b")
        else:
            with tarfile.open(fileobj=buffer, mode="w:gz" if kind == ".tar.gz" else "w") as tar:
                tar.addfile(info("pkg-1/sub", tarfile.DIRTYPE))
                data = b"x = 1\n" * 20
                item = info("pkg-1/a.py")
                item.size = len(data)
                tar.addfile(item, io.BytesIO(data))
                tar.addfile(info("pkg-1/sub/link", tarfile.SYMTYPE, "../a.py"))
        out[kind] = buffer.getvalue()
    return out


SEEDS = _seed_archives()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(SEEDS)),
       flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(min_value=0)))
def test_corrupted_archives_are_refused_cleanly(tmp_path_factory: pytest.TempPathFactory,
                                                kind: str, flips: list[tuple[int, int]],
                                                cut: int | None) -> None:
    """Random byte damage (as atheris found: a zip whose offsets lie raised OSError)."""
    data = bytearray(SEEDS[kind])
    for where, value in flips:
        data[where % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    base = tmp_path_factory.mktemp("damaged")
    archive = base / f"pkg-1{kind}"
    archive.write_bytes(bytes(data))
    dest = base / "cache" / "out"
    try:
        extract(archive, dest)
    except UnsafeArchiveError:
        assert not dest.exists()
        return
    top = os.path.realpath(dest)
    assert all(os.path.realpath(p).startswith(top) for p in dest.rglob("*"))
    assert sorted(p.name for p in base.iterdir()) == ["cache", archive.name]


# Found by fuzz/fuzz_extract.py (atheris): a zip whose local header offset points past
# the end made zipfile raise a raw OSError (EINVAL) instead of a refusal.
ATHERIS_ZIP = (
    "UEsDBBQAAAAAACS7dl07ifaLBgAAAAYAAAAKAAAAcGtnLTEvYS5weXggPSAxClBLAwQUAAAAAAAku3Zd+e++cQEA"
    "AAABAAAAdHh0YlBLAQIUAxQAAAAAACS7dl07ifaLBgAAAAYAAAAKAAAAAAAAAAAAAACAAQAAAABwa2ctMS9hLnB5"
    "UEsBAhQDFAAAAAAAJLt2XfnvvnMBAAAAAQAAAA8AAAAAAAAAAAAAAIABLgAAAHBrZy0xL3N1Yi9iLnR4dFBLBQYA"
    "AAAAAgACAHUAAABcAAAAAAA="
)


# And one whose central directory gives a member an empty name (IndexError in zipfile).
ATHERIS_EMPTY_NAME = (
    "UEsDBBQAAAAAACS7dl07ifaLBgAAAAYAAAAKAAAAcGtnLTEvYS5weXggPSAxClBLAwQUAAAAAAAku3Zd+e++cQEA"
    "AAABAAAADwAAAHBrZy0xL3N1Yi9iLnR4dGJQSwECFAMUAAAAAAAku3ZdO4n2iwYAAAAGAAAACgAAAAAAAAAAAAAA"
    "gAEAAAAAcGtnLTEvYS5weVBLAQIUAxQAAAAAACS7dl35775xAQAAAAEAAAAPAAAAAAAAAAAAAACAAS4AAGcAa3At"
    "MS9zdWIvYi50eHRQSwUGAAAAAAIAAgB1AAAAXAAAAAAA"
)


@pytest.mark.parametrize(("encoded", "words"), [(ATHERIS_ZIP, "not a readable zip"),
                                                (ATHERIS_EMPTY_NAME, "empty name")])
def test_the_zips_atheris_found_are_refused(tmp_path: Path, encoded: str, words: str) -> None:
    import base64

    archive = tmp_path / "pkg-1.zip"
    archive.write_bytes(base64.b64decode(encoded))
    refused(tmp_path, archive, words)
