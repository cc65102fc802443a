"""Native wheels repaired to manylinux in the build container, through the plan (real sdists).

The project is this repository's own lock and recipes, plus one tiny pure
component; the locked sdists come from PyPI once (pinned by the lock's sha256,
kept in pytest's cache) and everything -- setuptools, auditwheel, pyelftools,
markupsafe -- is built from source in network-less containers, as the factory does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from factory.build.env import KIT_TOOLS
from factory.build.executor import build_one
from factory.build.record import BuildRecord, record_path_for
from factory.config import Settings
from factory.lock import Lock, load_lock, save_lock
from factory.plan import make_plan
from factory.upstream.cache import cache_path
from tests import factories
from tests.builders_fixtures import backend_sdist, download, lock_entry

pytestmark = [pytest.mark.docker, pytest.mark.network]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("repair")
    shutil.copytree(REPO / "recipes", root / "recipes")
    settings = factories.settings(root)
    lock = load_lock(factories.settings(REPO, state_dir=root / "unused"))
    tiny = lock_entry(settings, backend_sdist(root / "sdists", "puretiny", ""), "runtime",
                  "approved", ())
    (root / "recipes" / "puretiny.toml").write_text('name = "puretiny"\nversions = ">=0"\n')
    save_lock(settings, Lock([*lock.components, tiny]))
    cache = Path(request.config.cache.mkdir("factory-sdists"))  # type: ignore[union-attr]
    wanted = {*make_plan(settings, ["markupsafe", "puretiny"]).nodes, *KIT_TOOLS}
    for comp in lock.components:
        if comp.key in wanted or f"{comp.key}=={comp.version}" in wanted:
            got = download(cache, comp.sdist.url, comp.sdist.sha256)
            target = cache_path(settings, comp.sdist.sha256, comp.sdist.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(got, target)
    return settings


@pytest.fixture(scope="module")
def markupsafe(project: Settings) -> BuildRecord:
    return build_one(project, "markupsafe")


def test_markupsafe_is_repaired_to_a_manylinux_tag(project: Settings,
                                                   markupsafe: BuildRecord) -> None:
    repair = markupsafe.builder_settings["repair"]
    assert repair["action"] == "repaired", repair
    assert repair["policy"].startswith("manylinux_") and repair["policy"].endswith("_x86_64")
    assert repair["policy"] in markupsafe.wheel_filename
    # e.g. markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
    assert markupsafe.wheel_filename.startswith("markupsafe-3.0.4-cp311-cp311-manylinux")
    assert repair["original_wheel"]["filename"] == "markupsafe-3.0.4-cp311-cp311-linux_x86_64.whl"
    assert repair["patchelf"] and [t["name"] for t in repair["tools"]] == \
        ["auditwheel", "packaging", "pyelftools"]
    tools = {t.name: t for t in markupsafe.build_tools}
    assert tools["auditwheel"].version == "6.8.2" and "pyelftools" in tools
    wheel = project.wheels_dir / markupsafe.wheel_filename
    with zipfile.ZipFile(wheel) as zf:
        assert "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so" in zf.namelist()
        assert f"Tag: cp311-cp311-{repair['policy']}" in \
            zf.read("markupsafe-3.0.4.dist-info/WHEEL").decode()
    assert not list(project.wheels_dir.glob("*linux_x86_64.whl"))


def test_the_repaired_wheel_installs_and_imports_in_a_fresh_venv(
        project: Settings, markupsafe: BuildRecord, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    wheel = project.wheels_dir / markupsafe.wheel_filename
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    str(wheel)], check=True)
    out = subprocess.run([python, "-c", "from markupsafe import _speedups, escape; "
                          "print(escape('<a>'), _speedups.__name__)"],
                         check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["&lt;a&gt;", "markupsafe._speedups"]


def test_a_second_build_of_markupsafe_is_byte_identical(
        project: Settings, markupsafe: BuildRecord) -> None:
    wheel = project.wheels_dir / markupsafe.wheel_filename
    first = wheel.read_bytes()
    record_path_for(wheel).unlink()
    wheel.unlink()
    again = build_one(project, "markupsafe")  # the tools are up to date: one container
    assert again.invocation_id != markupsafe.invocation_id
    assert again.wheel_filename == markupsafe.wheel_filename
    assert (project.wheels_dir / again.wheel_filename).read_bytes() == first


def test_a_pure_wheel_is_not_touched(project: Settings, markupsafe: BuildRecord) -> None:
    record = build_one(project, "puretiny")
    assert record.wheel_filename == "puretiny-1.0-py3-none-any.whl"
    assert record.builder_settings["repair"]["action"] == "pure"
    assert "auditwheel" not in [t.name for t in record.build_tools]
