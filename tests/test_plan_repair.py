"""The plan makes native-capable builds wait for auditwheel, except auditwheel's own builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.config import Settings
from factory.errors import ConfigError
from factory.lock import Lock, LockedComponent, save_lock
from factory.plan import make_plan
from tests import factories
from tests.factories import locked
from tests.plan_fixtures import REAL

AUDITWHEEL = [
    locked("auditwheel", "6.8.2", ("setuptools>=61", "setuptools_scm>=8"),
           ("packaging>=20.9", "pyelftools>=0.24")),
    locked("pyelftools", "0.33", ("setuptools >= 46.4.0",)),
]
TOOLS = ["auditwheel==6.8.2", "packaging==26.3", "pyelftools==0.33"]


def _settings(tmp_path: Path, components: list[LockedComponent],
              repair: str = "auditwheel") -> Settings:
    settings = factories.settings(tmp_path, build_repair=repair)
    save_lock(settings, Lock(components))
    return settings


def test_components_wait_for_the_repair_tools(tmp_path: Path) -> None:
    plan = make_plan(_settings(tmp_path, [*REAL, *AUDITWHEEL]), ["markupsafe"])
    markupsafe = plan.nodes["markupsafe==3.0.4"]
    assert markupsafe.repair == TOOLS
    assert markupsafe.env == ["setuptools==84.2.1"]  # the build venv does not get them
    pos = {nid: i for i, nid in enumerate(plan.order)}
    assert all(pos[t] < pos["markupsafe==3.0.4"] for t in TOOLS)
    assert "repairs native wheels after their build (auditwheel)" in \
        plan.nodes["pyelftools==0.33"].reasons
    assert "with auditwheel==6.8.2, packaging==26.3, pyelftools==0.33" in plan.explain()


def test_what_builds_auditwheel_is_not_repaired_and_there_is_no_cycle(tmp_path: Path) -> None:
    plan = make_plan(_settings(tmp_path, [*REAL, *AUDITWHEEL]))
    for nid in ("setuptools==84.2.1", "setuptools-scm==10.3.4", "vcs-versioning==2.6.0",
                *TOOLS):
        assert plan.nodes[nid].repair == []
        assert "auditwheel, whose own build needs it" in plan.nodes[nid].repair_note
    # another setuptools than auditwheel's is an ordinary node: repaired
    assert plan.nodes["setuptools==84.0.0"].repair == TOOLS
    assert plan.nodes["hatchling==1.33.0"].repair == TOOLS


def test_no_repair_tools_when_repair_is_off(tmp_path: Path) -> None:
    plan = make_plan(_settings(tmp_path, [*REAL, *AUDITWHEEL], repair="none"), ["markupsafe"])
    assert list(plan.nodes) == ["markupsafe==3.0.4", "setuptools==84.2.1"]
    assert plan.nodes["markupsafe==3.0.4"].repair == []


def test_an_unlocked_auditwheel_is_noted_not_fatal(tmp_path: Path) -> None:
    plan = make_plan(_settings(tmp_path, REAL), ["markupsafe"])
    assert plan.nodes["markupsafe==3.0.4"].repair == []
    assert "auditwheel is not locked" in plan.nodes["markupsafe==3.0.4"].repair_note
    assert "recipes/auditwheel.toml" in plan.explain()


def test_an_unknown_repair_setting_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="build.repair"):
        make_plan(_settings(tmp_path, REAL, repair="delocate"))
