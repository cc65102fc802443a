"""`factory export pylock` as a new user met it: every pylock.toml it writes installs.

Against a really released index (alpha 1.0.0 and 2.0.0, beta 1.0.0, signed) whose
recipes.lock pins alpha twice (2.0.0 approved, 1.0.0 a build requirement of beta), as
the approved set pins flit-core: one entry per name; a requirement's marker carried
into its entry; a --hash the index does not serve refused; --index-url with or
without /simple/; the file written with the umask's mode. uv installs what it wrote
from the index served on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker

from factory.config import Settings
from factory.export import (
    HashMismatchError,
    MarkerConflictError,
    index_root,
    pylock_of,
    requirement_options,
)
from factory.lock import load_lock, save_lock
from factory.publish import release
from factory.sign.pep740 import factory_publisher
from factory.verify.view import IndexView
from tests import factories
from tests.security_fixtures import stage_build

REPO = Path(__file__).resolve().parents[1]
UV = REPO / ".venv" / "bin" / "uv"
URL = "http://index.example:8700"
BUILD_ONLY = "build requirement of beta 1.0.0 (alpha==1.0.0)"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """alpha 1.0.0 and 2.0.0, beta 1.0.0 released; the lock's alpha 1.0.0 row only a build
    requirement of beta (read only)."""
    settings = factories.settings(tmp_path_factory.mktemp("pylock"), project="project")
    factories.recipe(settings.root, "alpha")  # every version approved
    release(settings, [stage_build(settings, "alpha", "1.0.0"),
                       stage_build(settings, "alpha", "2.0.0"), stage_build(settings, "beta")])
    lock = load_lock(settings)
    lock.components = [dataclasses.replace(c, reason=BUILD_ONLY)
                       if (c.key, c.version) == ("alpha", "1.0.0") else c
                       for c in lock.components]
    save_lock(settings, lock)
    return settings


def _cli(site: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return factories.cli(site, "export", "pylock", *args, timeout=60,
                         FACTORY_STATE_DIR=str(site.state_dir))


def _requirements(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _export(site: Settings, target: Path, base: str = URL) -> dict[str, Any]:
    exported = pylock_of(target, IndexView(site.index_dir), base, factory_publisher(site))
    return tomllib.loads(exported.text)


def _entries(data: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(p["name"], p["version"], p.get("marker")) for p in data["packages"]]


def _served(site: Settings, name: str, version: str) -> str:
    [wheel] = IndexView(site.index_dir).by_version(name, version)
    return wheel.entry.sha256


# -- 1. the approved set: one entry per name ------------------------------------------------
def test_the_approved_set_has_one_entry_per_name_and_says_what_it_left_out(
        site: Settings, tmp_path: Path) -> None:
    done = _cli(site, "-o", str(tmp_path / "pylock.toml"), "--index-url", URL)
    assert done.returncode == 0, done.stderr
    data = tomllib.loads((tmp_path / "pylock.toml").read_text())
    assert _entries(data) == [("alpha", "2.0.0", None), ("beta", "1.0.0", None)]
    assert "left out 1 locked row" in done.stderr
    assert f"alpha 1.0.0 ({BUILD_ONLY}): the approved set installs alpha 2.0.0" in done.stderr
    assert "left out" in _cli(site, "--help").stdout  # the help says the rule


def test_uv_installs_the_approved_set_from_the_served_index(site: Settings,
                                                            tmp_path: Path) -> None:
    with _served_index(site) as base:
        done = _cli(site, "-o", str(tmp_path / "pylock.toml"), "--index-url", f"{base}/simple/")
        assert done.returncode == 0, done.stderr
        assert _uv_install(tmp_path, tmp_path / "pylock.toml") == {
            "alpha": "2.0.0", "beta": "1.0.0"}


# -- 2. environment markers ------------------------------------------------------------------
def test_a_requirements_marker_becomes_its_entry_marker(site: Settings, tmp_path: Path) -> None:
    target = _requirements(tmp_path, 'alpha==1.0.0 ; sys_platform == "win32"\nbeta==1.0.0\n')
    with _served_index(site) as base:
        done = _cli(site, "-r", str(target), "-o", str(tmp_path / "pylock.toml"),
                    "--index-url", base)
        assert done.returncode == 0, done.stderr
        data = tomllib.loads((tmp_path / "pylock.toml").read_text())
        assert _entries(data) == [("alpha", "1.0.0", 'sys_platform == "win32"'),
                                  ("beta", "1.0.0", None)]
        assert _uv_install(tmp_path, tmp_path / "pylock.toml") == {"beta": "1.0.0"}


def test_lines_of_one_version_or_their_markers(site: Settings, tmp_path: Path) -> None:
    both = 'alpha==1.0.0 ; os_name == "nt"\nalpha==1.0.0 ; python_version < "3.9"\n'
    [entry] = _entries(_export(site, _requirements(tmp_path, both)))
    assert Marker(entry[2] or "") == Marker('os_name == "nt" or python_version < "3.9"')
    anywhere = both + "alpha==1.0.0\n"  # one line without a marker: everywhere
    assert _entries(_export(site, _requirements(tmp_path, anywhere))) == [
        ("alpha", "1.0.0", None)]


def test_two_versions_of_one_name_need_markers_that_never_hold_together(
        site: Settings, tmp_path: Path) -> None:
    split = ('alpha==1.0.0 ; python_version < "3.11"\n'
             'alpha==2.0.0 ; python_version >= "3.11"\n')
    with _served_index(site) as base:
        data = _export(site, _requirements(tmp_path, split), base)
        assert [e[:2] for e in _entries(data)] == [("alpha", "1.0.0"), ("alpha", "2.0.0")]
        (tmp_path / "pylock.toml").write_text(_dumps(data))
        assert _uv_install(tmp_path, tmp_path / "pylock.toml") == {"alpha": "2.0.0"}
    overlapping = ('alpha==1.0.0 ; python_version <= "3.11"\n'
                   'alpha==2.0.0 ; python_version >= "3.11"\n')
    with pytest.raises(MarkerConflictError, match="python_version='3.11'"):
        _export(site, _requirements(tmp_path, overlapping))
    with pytest.raises(MarkerConflictError, match="no marker"):
        _export(site, _requirements(tmp_path, "alpha==1.0.0\nalpha==2.0.0 ; os_name == 'nt'\n"))
    done = _cli(site, "-r", str(_requirements(tmp_path, "alpha==1.0.0\nalpha==2.0.0\n")), "-o", "-")
    assert done.returncode != 0 and "alpha is pinned at 1.0.0" in done.stderr


# -- 3. --hash -------------------------------------------------------------------------------
def test_a_hash_the_index_does_not_serve_is_refused_in_one_line(site: Settings,
                                                                tmp_path: Path) -> None:
    wrong = "0" * 64
    target = _requirements(tmp_path, f"alpha==1.0.0 --hash=sha256:{wrong}\nbeta==1.0.0\n")
    done = _cli(site, "-r", str(target), "-o", str(tmp_path / "pylock.toml"))
    assert done.returncode != 0
    [line] = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert "alpha==1.0.0" in line and wrong in line and _served(site, "alpha", "1.0.0") in line
    assert not (tmp_path / "pylock.toml").exists()
    with pytest.raises(HashMismatchError, match="no sha256"):
        _export(site, _requirements(tmp_path, "alpha==1.0.0 --hash=md5:abcd\n"))


def test_a_served_hash_exports_that_wheel(site: Settings, tmp_path: Path) -> None:
    digest = _served(site, "alpha", "1.0.0")
    data = _export(site, _requirements(tmp_path, f"Alpha==1.0.0 --hash=sha256:{digest.upper()}\n"))
    assert [w["hashes"] for w in data["packages"][0]["wheels"]] == [{"sha256": digest}]


def test_continued_lines_keep_their_marker_and_hashes() -> None:
    text = ("# pip-compile --generate-hashes\nalpha==1.0.0 ; os_name == 'nt' \\\n"
            "    --hash=sha256:AB \\\n    --hash=sha256:cd\nbeta==1.0.0\n")
    options = requirement_options(text, "r.txt")
    assert set(options) == {"r.txt:2", "r.txt:5"}
    assert str(options["r.txt:2"].marker) == 'os_name == "nt"'
    assert options["r.txt:2"].hashes == ("sha256:ab", "sha256:cd")
    assert options["r.txt:5"].marker is None and options["r.txt:5"].hashes is None


# -- 4. --index-url ---------------------------------------------------------------------------
@pytest.mark.parametrize("given", [URL, f"{URL}/", f"{URL}/simple", f"{URL}/simple/"])
def test_the_index_url_may_name_the_simple_page(given: str) -> None:
    assert index_root(given) == URL


def test_wheel_urls_are_on_the_index_root(site: Settings, tmp_path: Path) -> None:
    data = _export(site, _requirements(tmp_path, "beta==1.0.0\n"), f"{URL}/simple/")
    [package] = data["packages"]
    assert package["index"] == f"{URL}/simple/"
    assert [w["url"] for w in package["wheels"]] == [
        f"{URL}/files/beta/{w['name']}" for w in package["wheels"]]


# -- the file's mode -------------------------------------------------------------------------
def test_the_pylock_gets_the_umask_mode_and_a_replaced_one_keeps_its_own(
        site: Settings, tmp_path: Path) -> None:
    target = _requirements(tmp_path, "beta==1.0.0\n")
    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        out = tmp_path / f"{umask:o}" / "pylock.toml"
        with _umask(umask):
            assert _cli(site, "-r", str(target), "-o", str(out)).returncode == 0
        assert stat.S_IMODE(out.stat().st_mode) == mode
    out.chmod(0o600)
    with _umask(0o022):
        assert _cli(site, "-r", str(target), "-o", str(out)).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


# -- helpers -------------------------------------------------------------------------------------
@contextmanager
def _served_index(site: Settings) -> Iterator[str]:
    """`factory serve` of the site on a free 127.0.0.1 port (skipped without uv)."""
    from tests.pipeline_fixtures import serve_index

    if not UV.is_file():
        pytest.skip("uv is not in the venv")
    with serve_index(site) as base:
        yield base


@contextmanager
def _umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _dumps(data: dict[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(data)


def _uv_install(tmp_path: Path, lock: Path) -> dict[str, str]:
    """What uv installs from ``lock`` into a new venv: {name: version}."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(UV_NO_CONFIG="1")
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "-q", "--no-config", "--python", sys.executable, str(venv)],
                   check=True, env=env)
    python = str(venv / "bin" / "python")
    done = subprocess.run([str(UV), "pip", "install", "--no-config", "--no-cache", "--python",
                           python, "-r", str(lock)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([str(UV), "pip", "list", "--no-config", "--format", "json",
                             "--python", python], capture_output=True, text=True, env=env,
                            check=True)
    return {p["name"]: p["version"] for p in json.loads(listed.stdout)}
