"""Real backends from real sdists (pinned, hashed, from PyPI once; cached by pytest).

The front end runs from the pyproject-hooks/packaging/installer sdists, and the
build tools are built from source in this session (flit_core and setuptools
bootstrap themselves through backend-path), exactly as the factory does.
Measured here: flit_core ~1 s, setuptools ~4 s, markupsafe ~4 s per build.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from factory.build import job as builder
from factory.build.env import Kit
from factory.build.image import ImageRef, bootstrap_image
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.errors import BuildError
from tests import factories
from tests.builders_fixtures import PINNED, download, inputs_for, kit_from_sdists, unpack

pytestmark = [pytest.mark.docker, pytest.mark.network]


@pytest.fixture(scope="session")
def sdists(request: pytest.FixtureRequest) -> dict[str, Path]:
    cache = Path(request.config.cache.mkdir("factory-sdists"))  # type: ignore[union-attr]
    return {name: download(cache, url, sha) for name, (url, sha) in PINNED.items()}


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real")


@pytest.fixture(scope="session")
def image(session_dir: Path) -> ImageRef:
    return bootstrap_image(factories.settings(session_dir / "img"))


@pytest.fixture(scope="session")
def kit(sdists: dict[str, Path], session_dir: Path) -> Kit:
    chosen = {n: sdists[n] for n in ("pyproject-hooks", "packaging", "installer")}
    return kit_from_sdists(chosen, session_dir / "kit")


def _build_sdist(settings: Settings, sdist: Path, kit: Kit, image: ImageRef,
                 tools: tuple[Path, ...] = ()) -> BuildRecord:
    tree = unpack(sdist, settings.root / "trees" / sdist.name)
    return builder.build(settings, inputs_for(sdist, tree, kit, image, tools))


@pytest.fixture(scope="session")
def tools(sdists: dict[str, Path], kit: Kit, image: ImageRef,
          session_dir: Path) -> dict[str, Path]:
    """flit_core and setuptools wheels, built from source once per session."""
    settings = factories.settings(session_dir / "tools")
    built = {}
    for name in ("flit-core", "setuptools"):
        record = _build_sdist(settings, sdists[name], kit, image)
        built[name] = settings.wheels_dir / record.wheel_filename
    return built


def test_pure_python_builds_are_byte_identical(
        sdists: dict[str, Path], kit: Kit, image: ImageRef, tools: dict[str, Path],
        tmp_path: Path) -> None:
    project = factories.sdist(tmp_path / "src", "tiny", "1.0", bare=True, files={
        "pyproject.toml": '[build-system]\nrequires = ["flit_core>=3.4,<4"]\n'
                          'build-backend = "flit_core.buildapi"\n\n[project]\nname = "tiny"\n'
                          'version = "1.0"\ndescription = "t"\n',
        "tiny/__init__.py": "VALUE = 1\n",
        "PKG-INFO": "Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n",
    })
    outputs = []
    for attempt in ("one", "two"):
        settings = factories.settings(tmp_path / attempt)
        flit = _build_sdist(settings, sdists["flit-core"], kit, image)
        tiny = _build_sdist(settings, project, kit, image, (tools["flit-core"],))
        outputs.append([(settings.wheels_dir / r.wheel_filename).read_bytes()
                        for r in (flit, tiny)])
        assert [t.name for t in tiny.build_tools][0] == "flit-core"
    assert outputs[0] == outputs[1]


def test_markupsafe_c_extension_builds_with_the_right_tag(
        sdists: dict[str, Path], kit: Kit, image: ImageRef, tools: dict[str, Path],
        tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    record = _build_sdist(settings, sdists["markupsafe"], kit, image, (tools["setuptools"],))
    assert record.wheel_filename == "markupsafe-3.0.4-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(settings.wheels_dir / record.wheel_filename) as zf:
        assert "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so" in zf.namelist()
    used = {t.name: t for t in record.build_tools}
    assert used["setuptools"].filename == tools["setuptools"].name
    assert used["pyproject-hooks"].filename == "pyproject_hooks-1.3.3.tar.gz"
    assert record.builder_settings["environment"]["SOURCE_DATE_EPOCH"].isdigit()
    # No auditwheel was given: the wheel keeps its tag, and the record says why.
    assert record.builder_settings["repair"]["action"] == "unavailable"


def test_a_setup_py_that_connects_out_fails(
        kit: Kit, image: ImageRef, tools: dict[str, Path], tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    sdist = factories.sdist(tmp_path / "src", "callhome", "1.0", bare=True, files={
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=68"]\n'
                          'build-backend = "setuptools.build_meta"\n',
        "setup.py": "import urllib.request\n"
                    "urllib.request.urlopen('https://pypi.org/simple/', timeout=5)\n"
                    "from setuptools import setup\nsetup(name='callhome', version='1.0')\n",
        "PKG-INFO": "Metadata-Version: 2.1\nName: callhome\nVersion: 1.0\n",
    })
    with pytest.raises(BuildError) as caught:
        _build_sdist(settings, sdist, kit, image, (tools["setuptools"],))
    assert "URLError" in caught.value.message or "Errno" in caught.value.message
    assert not list(settings.wheels_dir.glob("*.whl")) if settings.wheels_dir.exists() else True
