"""factory verify on an installed environment.

A fresh venv gets gamma (and with it beta and alpha) from the fixture index,
served by ``factory serve`` on 127.0.0.1 and installed by the real pip. It
passes; one more package installed from a local wheel makes it fail, naming
that package; a file changed after installation is caught too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from factory.verify import verify
from factory.verify.model import FAIL, PASS
from tests import factories
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    published_index,
    serve_index,
)

pytestmark = pytest.mark.slow


def _pip(target: Path, *args: str) -> None:
    """The test venv's pip installing into ``target`` (a venv made without pip)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"),
                    "install", "--no-cache-dir", "--quiet", *args],
                   env=env, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def installed(published_index: PublishedIndex,  # noqa: F811
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False).create(target)
    with serve_index(published_index.settings) as url:
        _pip(target, "--index-url", f"{url}/simple/", "gamma")
    return target


def test_venv_installed_from_the_index_passes(published_index: PublishedIndex,  # noqa: F811
                                              installed: Path) -> None:
    report = verify(published_index.settings, str(installed))
    assert report.ok, [(a.label, a.failures()) for a in report.artifacts]
    assert sorted(str(a.project) for a in report.artifacts) == ["alpha", "beta", "gamma"]
    for artifact in report.artifacts:
        assert artifact.check("installed").status == PASS  # type: ignore[union-attr]


def test_a_package_from_elsewhere_fails_and_is_named(published_index: PublishedIndex,  # noqa: F811
                                                     installed: Path, tmp_path: Path) -> None:
    wheel = factories.wheel(tmp_path / "local", "stranger", "0.1")
    _pip(installed, "--no-index", "--no-deps", str(wheel))
    try:
        report = verify(published_index.settings, str(installed))
        assert not report.ok
        failing = [a for a in report.artifacts if not a.ok]
        assert [a.project for a in failing] == ["stranger"]
        digest = failing[0].check("digest")
        assert digest is not None and digest.status == FAIL
        assert "stranger 0.1" in digest.message and "publishes no wheel" in digest.message
        ignored = verify(published_index.settings, str(installed), ignore=("stranger",))
        assert ignored.ok
    finally:
        subprocess.run([sys.executable, "-m", "pip", "--python",
                        str(installed / "bin" / "python"), "uninstall", "-y", "-q", "stranger"],
                       check=True, capture_output=True)


def test_same_name_and_version_built_elsewhere_fails(published_index: PublishedIndex,  # noqa: F811
                                                     installed: Path, tmp_path: Path) -> None:
    site = next(installed.glob("lib/python*/site-packages"))
    module = site / "alpha" / "__init__.py"
    original = module.read_bytes()
    module.write_bytes(original + b"import os  # injected\n")
    try:
        report = verify(published_index.settings, str(installed))
        alpha = next(a for a in report.artifacts if a.project == "alpha")
        check = alpha.check("installed")
        assert check is not None and check.status == FAIL
        assert "alpha/__init__.py: changed after installation" in check.message
    finally:
        module.write_bytes(original)
