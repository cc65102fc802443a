"""`factory add` against the real upstream (PyPI): a runtime closure and its build
tools found in one walk, with kinds and licenses read from the real metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from factory.approve import add, read_catalogue
from factory.config import load_settings

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.network


def test_add_walks_the_real_upstream(tmp_path: Path) -> None:
    """From the shipped approved set (its build tools' prebuilt files reviewed in their
    recipes), with cffi's Windows objects reviewed in catalogues/reviewed.toml."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "recipes", root / "recipes")
    (root / "factory.toml").write_text('[factory]\nstate_dir = "state"\n')
    settings = load_settings(root)
    reviewed = read_catalogue(REPO / "catalogues" / "reviewed.toml").reviewed
    report = add(settings, ["rich", "cffi<3"], dry_run=True, reviewed=reviewed)
    assert report.ok, report
    added = {p.key: p for p in report.added}
    # rich's runtime closure, cffi's (a native project) and the build tools they add
    assert {"rich", "markdown-it-py", "mdurl", "pygments", "cffi", "pycparser"} <= set(added)
    assert added["mdurl"].kind == "runtime" and added["pycparser"].kind == "runtime"
    assert "setuptools" in report.approved_already
    assert added["rich"].licenses == ("MIT",)
    assert added["cffi"].allow_prebuilt == reviewed["cffi"]
    assert not (root / "recipes" / "rich.toml").exists()  # a dry run writes nothing
