"""One refused component never stops the others, and is never built (issue 17): a lock
row its recipe no longer approves, or a license the recipe does not allow, fails that
component's node before anything is built; the rest are fetched and built."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from factory import fetch
from factory.build.executor import run_plan
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.errors import LockError
from factory.lock import lock_stage
from factory.plan import Node, make_plan
from tests import factories
from tests.local_upstream import LocalUpstream, build_tool


def never(node: Node, build: Callable[[], BuildRecord]) -> BuildRecord:
    raise AssertionError(f"{node.id} was built")


def test_a_recipe_changed_since_locking_refuses_only_that_component(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tool(upstream, project)
    upstream.add("demo", "1.0.0")
    upstream.add("other", "1.0.0")
    factories.recipe(project.root, "demo")
    factories.recipe(project.root, "other")
    lock_stage(project)
    factories.recipe(project.root, "demo", 'versions = ">=0.1"\n')  # not locked again
    with pytest.raises(LockError, match="demo.toml changed since it was locked"):
        fetch.fetch_stage(project)
    refused: dict[str, str] = {}
    fetched = fetch.fetch_stage(project, failed=refused)
    assert {f.component.key for f in fetched} == {"other", "setuptools"}
    assert list(refused) == ["demo==1.0.0"] and "factory lock" in refused["demo==1.0.0"]


def test_a_license_refused_at_fetch_is_never_built(project: Settings,
                                                   upstream: LocalUpstream) -> None:
    build_tool(upstream, project)
    upstream.add("gpl", "1.0.0", license="GPL-3.0-only")
    factories.recipe(project.root, "gpl", 'licenses = ["MIT"]\n')
    lock_stage(project)
    refused: dict[str, str] = {}
    fetch.fetch_stage(project, failed=refused)
    assert "gpl==1.0.0" in refused
    plan = make_plan(project, ["gpl"])
    outcome = run_plan(project, plan, wrap=never, refused=refused)
    assert "not in the recipe's allowlist" in outcome.failed["gpl==1.0.0"]
    assert outcome.records == []


def test_a_node_whose_environment_cannot_be_planned_fails_alone(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tool(upstream, project)
    upstream.add("needs-missing", "1.0.0", build_requires=["setuptools>=61"])
    factories.recipe(project.root, "needs-missing")
    lock_stage(project)
    # a build learnt (and remembered) a dynamic requirement nothing approves
    from factory.lock import load_lock
    from factory.plan import remember_dynamic

    locked = load_lock(project).primary("needs-missing")
    assert locked is not None
    remember_dynamic(project, locked, ["not-approved>=1"], "sha256:" + "0" * 64)
    plan = make_plan(project)  # used to raise for the whole catalogue
    assert "factory add" in plan.problems["needs-missing==1.0.0"]
    outcome = run_plan(project, plan, wrap=never_for("needs-missing==1.0.0"))
    assert "not-approved>=1" in outcome.failed["needs-missing==1.0.0"]


def never_for(nid: str) -> Callable[[Node, Callable[[], BuildRecord]], BuildRecord]:
    def wrap(node: Node, build: Callable[[], BuildRecord]) -> BuildRecord:
        assert node.id != nid, f"{nid} was built"
        raise LockError("not built in this test")
    return wrap
