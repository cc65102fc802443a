"""`factory sbom TARGET` as a new user found it: a requirement's --hash ignored, a venv's
distribution of the factory's name and version installed from elsewhere claimed as the
factory's wheel, no check that --index is a published index (a URL, a directory
without one), no --ignore for a stock venv's pip and setuptools, and a directory given
to --output blamed on the state directory.

Against one really released index (alpha and beta 1.0.0). A venv is made without pip
and a wheel "installed" by unzipping it into its site-packages, as an installer lays
it out (the installed RECORD is the wheel's own): what `factory verify` reads.
"""

from __future__ import annotations

import json
import venv
import zipfile
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from factory.config import Settings
from factory.environment import match, read_pins, vouched
from factory.errors import FactoryError
from factory.verify.view import IndexView
from tests import factories
from tests.security_fixtures import released_copy

ALPHA = f"alpha-1.0.0-{factories.PURE}.whl"
NOT_SERVED = "artifact-factory:not-served"
ZERO = "0" * 64


@pytest.fixture(name="site")
def site_fixture(released_base: Path, tmp_path: Path) -> Settings:
    """A private copy of the released alpha/beta index (the `site` fixture)."""
    return released_copy(released_base, tmp_path)


def _sbom(site: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    from factory.cli import app
    from factory.cli._app import _State

    monkeypatch.setattr(_State, "settings", site)
    return CliRunner().invoke(app, ["sbom", *args])


def _served(site: Settings, filename: str = ALPHA) -> str:
    [item] = [p for p in IndexView(site.index_dir).all() if p.filename == filename]
    return item.entry.sha256


def _component(out: Path, name: str) -> dict:
    [found] = [c for c in json.loads(out.read_text())["components"] if c["name"] == name]
    return found


def _refused(done: Result, *words: str) -> FactoryError:
    """The run stopped with a usage error (exit 2) in one line that says ``words``."""
    error = done.exception
    assert isinstance(error, FactoryError) and error.exit_code == 2, done.output
    line = error.diagnostics()
    assert "\n" not in line and all(word in line for word in words), line
    return error


def _venv(tmp_path: Path, *wheels: Path) -> Path:
    """A venv made without pip, each wheel unzipped into its site-packages."""
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    site_packages = next(target.glob("lib/python*/site-packages"))
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site_packages)
    return target


def _alpha(site: Settings) -> Path:
    return site.index_dir / "files" / "alpha" / ALPHA


# -- 1. a requirement's --hash ----------------------------------------------------------------
def test_a_hash_that_is_not_the_served_wheels_is_flagged(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"alpha==1.0.0 --hash=sha256:{ZERO}\nbeta==1.0.0\n")
    out = tmp_path / "env.cdx.json"
    done = _sbom(site, monkeypatch, str(requirements), "-o", str(out))
    assert done.exit_code == 1, done.output
    [line] = [x for x in done.stderr.splitlines() if "alpha" in x]
    assert f"sha256:{ZERO}" in line and f"sha256:{_served(site)}" in line
    assert "alpha==1.0.0 (requirements.txt:1)" in line
    alpha = _component(out, "alpha")
    assert "hashes" not in alpha and "externalReferences" not in alpha
    assert any(p["name"] == NOT_SERVED and ZERO in p["value"] for p in alpha["properties"])
    assert "hashes" in _component(out, "beta")  # a line without --hash: as before


def test_the_served_hash_passes_and_each_other_is_named(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = tmp_path / "requirements.txt"
    other = ZERO[:-1] + "1"
    requirements.write_text(f"alpha==1.0.0 --hash=sha256:{_served(site).upper()} "
                            f"--hash=sha256:{other}  # and another file\n")
    [pin] = read_pins(requirements)[1]
    assert pin.origin == "requirements.txt:1" and len(pin.hashes) == 2
    [found] = vouched(match(IndexView(site.index_dir), [pin]))
    # a digest the index does not serve: an installer may take it from elsewhere, as
    # `factory verify` says; the served wheel the file allows is still the factory's
    assert [f.filename for f in found.files] == [ALPHA] and other in (found.problem or "")
    requirements.write_text(f"alpha==1.0.0 --hash=sha256:{_served(site)}\n")
    out = tmp_path / "env.cdx.json"
    done = _sbom(site, monkeypatch, str(requirements), "-o", str(out))
    assert done.exit_code == 0, done.output
    assert _component(out, "alpha")["hashes"][0]["content"] == _served(site)


def test_hashes_without_a_sha256_name_no_served_wheel(site: Settings, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha==1.0.0 --hash=sha512:abcd\n")
    [found] = vouched(match(IndexView(site.index_dir), read_pins(requirements)[1]))
    assert not found.files and "no sha256" in (found.problem or "")


# -- 2. a venv's distribution installed from elsewhere --------------------------------------
def test_the_factorys_wheel_installed_is_listed_with_its_digest(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _venv(tmp_path, _alpha(site))
    out = tmp_path / "env.cdx.json"
    done = _sbom(site, monkeypatch, str(target), "-o", str(out))
    assert done.exit_code == 0, done.output
    assert _component(out, "alpha")["hashes"][0]["content"] == _served(site)


def test_same_name_and_version_from_elsewhere_is_not_the_factorys(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = factories.wheel(tmp_path / "upstream", "alpha", "1.0.0",
                               files={"alpha/__init__.py": b"VALUE = 2  # not ours\n"})
    target = _venv(tmp_path, upstream)
    out = tmp_path / "env.cdx.json"
    done = _sbom(site, monkeypatch, str(target), "-o", str(out))
    assert done.exit_code == 1, done.output
    [line] = [x for x in done.stderr.splitlines() if "alpha" in x]
    assert f"is not the published {ALPHA}" in line and "RECORD hash differs" in line
    alpha = _component(out, "alpha")
    assert "hashes" not in alpha and "externalReferences" not in alpha
    assert any(p["name"] == NOT_SERVED and "is not the published" in p["value"]
               for p in alpha["properties"])


def test_a_file_changed_after_installation_is_not_the_factorys(site: Settings,
                                                                 tmp_path: Path) -> None:
    target = _venv(tmp_path, _alpha(site))
    module = next(target.glob("lib/python*/site-packages/alpha/__init__.py"))
    module.write_bytes(module.read_bytes() + b"import os  # injected\n")
    [found] = vouched(match(IndexView(site.index_dir), read_pins(target)[1]))
    assert not found.files and "alpha/__init__.py: changed after installation" in (
        found.problem or "")


# -- 3. the index: a published one, not a URL ---------------------------------------------------
@pytest.mark.parametrize("index", ["http://127.0.0.1:8700/", "nowhere"])
def test_an_index_that_is_not_a_published_one_is_refused(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: str) -> None:
    index = index if index.startswith("http") else str(tmp_path / index)
    out = tmp_path / "env.cdx.json"
    done = _sbom(site, monkeypatch, str(site.lock_path), "--index", index, "-o", str(out))
    _refused(done, index, "--index PATH")
    assert not out.exists()


def test_no_index_in_the_state_is_refused(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    empty = factories.settings(tmp_path / "empty")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha==1.0.0\n")
    out = tmp_path / "env.cdx.json"
    done = _sbom(empty, monkeypatch, str(requirements), "-o", str(out))
    _refused(done, f"no published index at {empty.index_dir}")
    assert not out.exists()


# -- 4. --ignore ---------------------------------------------------------------------------------
def test_ignored_names_are_left_out_and_said(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pip = factories.wheel(tmp_path / "upstream", "pip", "23.2.1")
    target = _venv(tmp_path, _alpha(site), pip)
    out = tmp_path / "env.cdx.json"
    assert _sbom(site, monkeypatch, str(target), "-o", str(out)).exit_code == 1
    done = _sbom(site, monkeypatch, str(target), "--ignore", "PIP", "--ignore", "nothere",
                 "-o", str(out))
    assert done.exit_code == 0, done.output
    assert [c["name"] for c in json.loads(out.read_text())["components"]] == ["alpha"]
    assert "ignored on request (--ignore): pip==23.2.1 (venv)" in done.stderr
    assert "--ignore nothere: nothing of that name" in done.stderr


# -- 5. --output -----------------------------------------------------------------------------------
def test_a_directory_output_is_refused_up_front(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha==1.0.0\n")
    folder = tmp_path / "out"
    folder.mkdir()
    done = _sbom(site, monkeypatch, str(requirements), "-o", str(folder))
    error = _refused(done, f"--output {folder} is a directory")
    assert "state directory" not in error.diagnostics()
    assert list(folder.iterdir()) == []
    deeper = tmp_path / "new" / "env.cdx.json"  # as `export pylock -o`: parents are made
    assert _sbom(site, monkeypatch, str(requirements), "-o", str(deeper)).exit_code == 0
    assert deeper.is_file()


def test_the_sbom_file_gets_the_umask_mode(site: Settings, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    """A document to hand on is written as the user's other files are (it was 0600, while
    verify --html wrote 0644); one replaced keeps its mode."""
    import os
    import stat

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha==1.0.0\n")
    out = tmp_path / "env.cdx.json"
    old = os.umask(0o022)
    try:
        assert _sbom(site, monkeypatch, str(requirements), "-o", str(out)).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        out.chmod(0o600)
        assert _sbom(site, monkeypatch, str(requirements), "-o", str(out)).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
    finally:
        os.umask(old)
