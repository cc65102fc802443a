"""Against the real upstream (PyPI's Simple API): lock and fetch two real packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory import fetch
from factory.config import load_settings
from factory.lock import check_stage, lock_stage
from factory.upstream.client import Upstream
from tests import factories

pytestmark = pytest.mark.network


def test_lock_and_fetch_real_packages(tmp_path: Path) -> None:
    root = tmp_path / "project"
    factories.recipe(root, "idna", 'versions = ">=3.7,<4"\nlicenses = ["BSD-3-Clause"]\n')
    factories.recipe(root, "flit-core", 'kind = "build-tool"\n')
    (root / "factory.toml").write_text('[factory]\nstate_dir = "state"\n')
    settings = load_settings(root)
    try:
        with Upstream(settings.upstream, retries=1, timeout=10) as upstream:
            upstream.project("idna")
    except Exception as exc:  # noqa: BLE001 - any failure here means no registry access
        pytest.skip(f"the real upstream is not reachable here: {exc}")
    lock, _ = lock_stage(settings)
    idna = lock.primary("idna")
    assert idna is not None and idna.sdist.url.startswith("https://")
    assert len(idna.sdist.sha256) == 64 and idna.sdist.upload_time
    assert any(r.startswith("flit_core") for r in idna.build_requires)
    fetched = fetch.fetch_stage(settings)
    assert {f.component.name for f in fetched} >= {"idna", "flit-core"}
    assert all(f.path.stat().st_size == f.component.sdist.size for f in fetched)
    assert check_stage(settings) == []
