"""The build plan from a lock: order, environments, several versions, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.config import Settings
from factory.lock import Lock, LockedComponent, load_lock, save_lock
from factory.plan import PlanError, make_plan, regrow
from tests import factories
from tests.factories import locked
from tests.plan_fixtures import REAL


def _settings(tmp_path: Path, components: list[LockedComponent]) -> Settings:
    settings = factories.settings(tmp_path)
    save_lock(settings, Lock(components))
    return settings


def test_build_tools_come_before_what_they_build(tmp_path: Path) -> None:
    plan = make_plan(_settings(tmp_path, REAL))
    pos = {nid: i for i, nid in enumerate(plan.order)}
    for nid, node in plan.nodes.items():
        for dep in node.env:
            assert pos[dep] < pos[nid], (dep, nid)
    assert len(plan.order) == len(REAL)


def test_two_versions_of_setuptools_coexist(tmp_path: Path) -> None:
    plan = make_plan(_settings(tmp_path, REAL))
    assert plan.nodes["charset-normalizer==3.5.2"].env == ["setuptools==84.0.0"]
    assert plan.nodes["markupsafe==3.0.4"].env == ["setuptools==84.2.1"]


def test_a_build_env_holds_the_runtime_deps_of_its_tools(tmp_path: Path) -> None:
    plan = make_plan(_settings(tmp_path, REAL))
    env = plan.nodes["urllib3==2.8.0"].env
    for needed in ("hatchling==1.33.0", "hatch-vcs==0.5.0", "setuptools-scm==10.3.4",
                   "vcs-versioning==2.6.0", "packaging==26.3", "pluggy==1.7.0",
                   "trove-classifiers==2026.9.21.13", "tomlkit==0.15.2", "pathspec==1.1.1"):
        assert needed in env
    assert "rich" not in " ".join(env)  # an extra nobody asked for stays out
    assert "flit-core==4.2.0" not in env  # build deps of tools are not runtime deps


def test_only_what_a_component_needs_is_planned(tmp_path: Path) -> None:
    plan = make_plan(_settings(tmp_path, REAL), ["flask"])
    assert plan.order == ["flit-core==3.12.0", "flask==3.1.3"]
    assert plan.nodes["flask==3.1.3"].reasons == ["asked for"]
    assert "in the build environment of flask 3.1.3" in plan.nodes["flit-core==3.12.0"].reasons


def test_the_explanation_says_why_each_node_is_there(tmp_path: Path) -> None:
    text = make_plan(_settings(tmp_path, REAL), ["charset-normalizer"]).explain()
    assert "1. setuptools 84.0.0 [build-tool]" in text
    assert "why: in the build environment of charset-normalizer 3.5.2" in text
    assert "2. charset-normalizer 3.5.2 [runtime]" in text


def test_an_unlocked_build_requirement_is_named_with_its_component(tmp_path: Path) -> None:
    components = [*REAL, locked("needs-cython", "1.0", ("Cython>=3",), kind="runtime")]
    plan = make_plan(_settings(tmp_path, components), ["needs-cython"])
    problem = plan.problems["needs-cython==1.0"]
    assert "needs-cython 1.0 needs Cython>=3" in problem
    assert "factory add \"cython>=3\"" in problem
    assert "cannot be built: needs-cython 1.0 needs Cython>=3" in plan.explain()


def test_a_requirement_no_locked_version_satisfies_fails_that_node_alone(
        tmp_path: Path) -> None:
    components = [*REAL, locked("old", "1.0", ("setuptools<60",), kind="runtime"),
                  locked("fine", "1.0", ("setuptools>=61",), kind="runtime")]
    plan = make_plan(_settings(tmp_path, components), ["old", "fine"])
    assert list(plan.problems) == ["old==1.0"] and "setuptools<60" in plan.problems["old==1.0"]
    assert plan.nodes["fine==1.0"].env  # the rest is planned


def test_a_cycle_is_reported_with_its_members(tmp_path: Path) -> None:
    components = [locked("egg", "1.0", ("hen",)), locked("hen", "1.0", ("egg",))]
    with pytest.raises(PlanError) as caught:
        make_plan(_settings(tmp_path, components))
    assert "cycle" in caught.value.message
    assert "egg==1.0" in caught.value.message and "hen==1.0" in caught.value.message
    assert "upstream_wheel" in caught.value.hint


def test_an_unknown_component_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="nope is not in the lock"):
        make_plan(_settings(tmp_path, REAL), ["nope"])


def test_two_builds_that_learnt_at_once_both_grow(tmp_path: Path) -> None:
    """Both builds reported their dynamic requirements before either was collected: the
    first regrow grows both nodes, and the second must not call that a build that lies
    (the catalogue run lost hatchling, and 87 components behind it, this way)."""
    components = [*REAL, locked("one", "1.0", kind="runtime"), locked("two", "1.0",
                                                                     kind="runtime")]
    settings = _settings(tmp_path, components)
    plan = make_plan(settings, ["one", "two"])
    one, two = plan.nodes["one==1.0"], plan.nodes["two==1.0"]
    ran_one, ran_two = list(one.env), list(two.env)
    one.dynamic, two.dynamic = ["flit-core>=4"], ["poetry-core"]  # both learnt
    lock = load_lock(settings)
    regrow(settings, lock, plan, one, ran_one)
    assert two.env == ["poetry-core==2.5.0"]  # grown already, by one's regrow
    regrow(settings, lock, plan, two, ran_two)  # progress: its build had none of it
    assert one.env == ["flit-core==4.2.0"]
    assert plan.order.index("poetry-core==2.5.0") < plan.order.index("two==1.0")
    # A build that ran with what it asked for, and says it still lacks it, is refused.
    with pytest.raises(PlanError, match="locked but still not met"):
        regrow(settings, lock, plan, two, list(two.env))
