"""What an sdist declares about itself: PKG-INFO, and an old setuptools sdist's
egg-info/requires.txt when PKG-INFO lists no Requires-Dist."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.upstream import archive
from tests import factories


@pytest.mark.parametrize(("text", "lines"), [
    ("six\nbotocore>=1.0\n", ("six", "botocore>=1.0")),
    ('[:python_version < "3.5"]\ntyping\n', ('typing; (python_version < "3.5")',)),
    ("[Socks_Extra]\nPySocks>=1.5.6\n", ('PySocks>=1.5.6; extra == "socks-extra"',)),
    ('[dev:sys_platform == "win32"]\nx; python_version >= "3"\n',
     ('x; (python_version >= "3") and extra == "dev" and (sys_platform == "win32")',)),
    ("[bad:::]\nx\n[ok]\ny\n", ('y; extra == "ok"',)),  # a section that does not parse
    ("not a requirement !!\n# a comment\n\nz\n", ("z",)),
    ("a\na\n", ("a",)),
])
def test_requires_txt_becomes_requires_dist(text: str, lines: tuple[str, ...]) -> None:
    assert archive.requires_txt(text.encode()) == lines


def _old(tmp_path: Path, files: dict[str, str | bytes | None]) -> Path:
    return factories.sdist(tmp_path, "alpha", "1.0", files=files)


def test_an_old_sdist_declares_what_its_egg_info_lists(tmp_path: Path) -> None:
    meta = archive.read_metadata(_old(tmp_path, {"alpha.egg-info/requires.txt": "six\n"}))
    assert meta is not None and meta.requires_dist == ("six",)


def test_a_src_layout_egg_info_is_read(tmp_path: Path) -> None:
    meta = archive.read_metadata(_old(tmp_path, {"src/alpha.egg-info/requires.txt": "six\n"}))
    assert meta is not None and meta.requires_dist == ("six",)


@pytest.mark.parametrize("files", [
    {"other.egg-info/requires.txt": "evil\n"},  # another project's
    {"alpha.egg-info/requires.txt": "a\n", "src/alpha.egg-info/requires.txt": "b\n"},  # two
    {"deep/er/alpha.egg-info/requires.txt": "evil\n"},  # not where setuptools puts it
    {"alpha.egg-info/requires.txt": b"x" * (archive.MAX_MEMBER_READ + 1)},  # too large
])
def test_an_egg_info_that_is_not_unambiguously_the_projects_declares_nothing(
        tmp_path: Path, files: dict[str, str | bytes | None]) -> None:
    meta = archive.read_metadata(_old(tmp_path, files))
    assert meta is not None and meta.requires_dist == ()


def test_pkg_info_requires_dist_is_never_overridden(tmp_path: Path) -> None:
    sdist = factories.sdist(tmp_path, "alpha", "1.0", requires=["six"],
                            files={"alpha.egg-info/requires.txt": "evil\n"})
    meta = archive.read_metadata(sdist)
    assert meta is not None and meta.requires_dist == ("six",)
