"""Real installers against `factory serve`: pip (fresh venv) and uv.

The index holds alpha 1.0 and 1.1 (1.1 yanked), beta 2.0 (needs alpha) and
gamma 0.1 (needs beta). Both installers must install from it with hashes
required, skip the yanked release, and fail on a typo'd name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from factory.config import load_settings
from factory.index import Index
from factory.index.serve import create_app
from tests.index_fixtures import RELEASES, RequestLog, publish_all, running

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _uv() -> str | None:
    local = REPO / ".venv" / "bin" / "uv"
    return str(local) if local.is_file() else shutil.which("uv")


def _clean_env() -> dict[str, str]:
    """No pip/uv configuration of this machine may add another index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_NO_CONFIG="1",
    )
    return env


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RequestLog, dict]]:
    root = tmp_path_factory.mktemp("index")
    settings = load_settings(root=root)
    published = publish_all(settings, root / "work", (*RELEASES, ("gamma", "0.1", ["beta==2.0"])),
                            requires_python=">=3.8")
    Index.of(settings).yank("alpha", "1.1", "broken release")
    log = RequestLog(create_app(Index.of(settings)))
    with running(log) as url:
        yield url, log, published


@pytest.fixture(scope="module")
def pip_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the pip that ensurepip bundles (no site packages)."""
    path = tmp_path_factory.mktemp("pip-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def _installed(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "--isolated", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    )
    return {p["name"]: p["version"] for p in json.loads(out.stdout)}


def _requirements(tmp_path: Path, published: dict) -> Path:
    lines = [
        f"{name}=={version} --hash=sha256:{published[(name, version)].sha256}"
        for name, version in [("alpha", "1.0"), ("beta", "2.0"), ("gamma", "0.1")]
    ]
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _pip_install(python: Path, url: str) -> list[str]:
    """pip install from the index under test alone, no cache, no user configuration."""
    return [str(python), "-m", "pip", "--isolated", "--disable-pip-version-check", "install",
            "--no-cache-dir", "--index-url", f"{url}/simple/"]


def test_pip_installs_with_required_hashes_and_skips_yanked(index, pip_python, tmp_path: Path):
    url, log, published = index
    python = pip_python
    pip = _pip_install(python, url)
    hashed = subprocess.run(
        [*pip, "--require-hashes", "-r", str(_requirements(tmp_path, published))],
        capture_output=True,
        text=True,
        env=_clean_env(),
    )
    assert hashed.returncode == 0, hashed.stdout + hashed.stderr
    assert _installed(python)["gamma"] == "0.1"
    subprocess.run(
        [str(python), "-m", "pip", "--isolated", "uninstall", "-y", "alpha"],
        check=True,
        capture_output=True,
        env=_clean_env(),
    )
    log.seen.clear()
    plain = subprocess.run([*pip, "alpha"], capture_output=True, text=True, env=_clean_env())
    assert plain.returncode == 0, plain.stderr
    assert _installed(python)["alpha"] == "1.0"  # 1.1 is yanked
    assert "/files/alpha/alpha-1.1-py3-none-any.whl" not in log.paths()
    assert "/files/alpha/alpha-1.0-py3-none-any.whl.metadata" in log.paths()  # PEP 658


def test_pip_gets_404_for_a_typo(index, pip_python):
    url, log, _ = index
    python = pip_python
    typo = subprocess.run(
        [*_pip_install(python, url), "gama"],
        capture_output=True,
        text=True,
        env=_clean_env(),
    )
    assert typo.returncode != 0
    assert ("GET", "/simple/gama/", 404) in log.seen


@pytest.mark.skipif(_uv() is None, reason="uv is not installed (pip install uv==0.13.9)")
def test_uv_installs_with_hashes_fetches_metadata_and_skips_yanked(index, tmp_path: Path):
    url, log, published = index
    uv = str(_uv())
    env = _clean_env()
    subprocess.run([uv, "venv", "--no-config", "-q", str(tmp_path / "venv")], check=True, env=env)
    python = tmp_path / "venv" / "bin" / "python"
    base = [
        uv,
        "pip",
        "install",
        "--no-config",
        "--no-cache",
        "--python",
        str(python),
        "--index-url",
        f"{url}/simple/",
    ]
    log.seen.clear()
    plain = subprocess.run([*base, "gamma"], capture_output=True, text=True, env=env)
    assert plain.returncode == 0, plain.stderr
    paths = log.paths()
    assert "/files/alpha/alpha-1.0-py3-none-any.whl.metadata" in paths
    assert "/files/alpha/alpha-1.1-py3-none-any.whl" not in paths  # yanked: skipped
    assert "/files/alpha/alpha-1.1-py3-none-any.whl.metadata" not in paths
    versions = subprocess.run(
        [uv, "pip", "list", "--no-config", "--python", str(python), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    installed = {p["name"]: p["version"] for p in json.loads(versions.stdout)}
    assert installed == {"alpha": "1.0", "beta": "2.0", "gamma": "0.1"}
    hashed = subprocess.run(
        [*base, "--reinstall", "--require-hashes", "-r", str(_requirements(tmp_path, published))],
        capture_output=True,
        text=True,
        env=env,
    )
    assert hashed.returncode == 0, hashed.stderr
    typo = subprocess.run([*base, "gama"], capture_output=True, text=True, env=env)
    assert typo.returncode != 0 and ("GET", "/simple/gama/", 404) in log.seen
