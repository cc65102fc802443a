"""Issue 21: a component in a build environment keeps a version every configured
interpreter admits. One build environment serves every interpreter's builds, so a
runtime recipe a build tool requires gets, beside the newest version (its runtime
users'), a locked row every interpreter admits; the plan gives each interpreter's build
environment the newest locked row its Requires-Python admits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from factory.config import Settings
from factory.lock import lock_stage
from factory.plan import make_plan
from tests import factories
from tests.local_upstream import LocalUpstream


def _helped(project: Settings, upstream: LocalUpstream, *, old_helper: bool = True,
            listed: str | None = ">=3.12") -> Settings:
    """backend (a build tool) requires helper; helper 2.0 only 3.12+ admits; demo is
    built with backend, app requires helper at run time."""
    upstream.add("backend", "1.0.0", build_requires=[], backend="x", requires=["helper"])
    factories.recipe(project.root, "backend", 'kind = "build-tool"\n')
    if old_helper:
        upstream.add("helper", "1.0.0", build_requires=[], backend="x")
    # as a real upstream: the listing (unless ``listed`` says otherwise) and the sdist's
    # PKG-INFO say the same
    upstream.add("helper", "2.0.0", build_requires=[], backend="x", requires_python=listed,
                 files={"PKG-INFO": "Metadata-Version: 2.4\nName: helper\nVersion: 2.0.0\n"
                                    "License-Expression: MIT\nRequires-Python: >=3.12\n"})
    factories.recipe(project.root, "helper", 'track = "any"\n')
    upstream.add("demo", "1.0.0", build_requires=["backend"], backend="backend")
    factories.recipe(project.root, "demo")
    upstream.add("app", "1.0.0", build_requires=[], backend="x", requires=["helper"])
    factories.recipe(project.root, "app")
    return replace(project, build_interpreters=("3.11", "3.13"))


def _versions(lock: Any, key: str) -> list[str]:
    return sorted(c.version for c in lock.components if c.key == key)


def test_the_build_environment_row_is_locked_beside_the_runtime_one(
        project: Settings, upstream: LocalUpstream) -> None:
    settings = _helped(project, upstream)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    primary = lock.primary("helper")
    assert primary is not None and primary.version == "2.0.0"
    found = lock.find("helper")  # what app's runtime requirement resolves to
    assert found is not None and found.version == "2.0.0"
    old = lock.get("helper", "1.0.0")
    assert old is not None and "build environment" in old.reason
    assert {s.version: s.reason for s in old.skipped} == {
        "2.0.0": "requires-python >=3.12 excludes 3.11 (a build environment serves every "
                 "configured interpreter)"}
    # a re-lock writes the same bytes, and keeps the row when a newer one every
    # interpreter admits appears (no update asked)
    first = settings.lock_path.read_bytes()
    lock_stage(settings)
    assert settings.lock_path.read_bytes() == first
    upstream.add("helper", "1.5.0", build_requires=[], backend="x")
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]


def test_each_interpreters_build_environment_takes_the_newest_it_admits(
        project: Settings, upstream: LocalUpstream) -> None:
    settings = _helped(project, upstream)
    lock_stage(settings)
    plan = make_plan(settings, ["demo", "app"])
    demo = plan.nodes["demo==1.0.0"]
    assert "helper==1.0.0" in demo.env_for("cp311") and "helper==2.0.0" not in demo.env
    assert "helper==2.0.0" in demo.env_for("cp313")
    assert "helper==1.0.0" not in demo.env_for("cp313")
    assert {"helper==1.0.0", "helper==2.0.0"} <= set(plan.nodes)


def test_no_version_every_interpreter_admits_keeps_the_lock_as_it_was(
        project: Settings, upstream: LocalUpstream) -> None:
    settings = _helped(project, upstream, old_helper=False)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["2.0.0"]
    plan = make_plan(settings, ["demo"])
    assert "helper==2.0.0" in plan.nodes["demo==1.0.0"].env_for("cp313")


def test_one_interpreter_locks_as_before(project: Settings, upstream: LocalUpstream) -> None:
    settings = replace(_helped(project, upstream), build_interpreters=("3.11",))
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0"]
    assert "build environment" not in settings.lock_path.read_text()


def test_a_listing_silent_on_requires_python_does_not_hide_the_sdists(
        project: Settings, upstream: LocalUpstream) -> None:
    """The builds judge by the sdist's own PKG-INFO: a listing that says nothing of
    helper 2.0's Requires-Python still gets 3.11 its row."""
    settings = _helped(project, upstream, listed=None)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    plan = make_plan(settings, ["demo"])
    assert "helper==1.0.0" in plan.nodes["demo==1.0.0"].env


def test_a_recorded_dynamic_build_requirement_is_in_the_build_closure(
        project: Settings, upstream: LocalUpstream) -> None:
    """What a backend asked for at build time (get_requires_for_build_wheel, recorded by
    an earlier build) is part of the build environment too."""
    from factory.plan import remember_dynamic

    upstream.add("helper", "1.0.0", build_requires=[], backend="x")
    upstream.add("helper", "2.0.0", build_requires=[], backend="x", requires_python=">=3.12",
                 files={"PKG-INFO": "Metadata-Version: 2.4\nName: helper\nVersion: 2.0.0\n"
                                    "License-Expression: MIT\nRequires-Python: >=3.12\n"})
    factories.recipe(project.root, "helper", 'track = "any"\n')
    upstream.add("dyn", "1.0.0", build_requires=[], backend="x")
    factories.recipe(project.root, "dyn")
    settings = replace(project, build_interpreters=("3.11", "3.13"))
    lock, _ = lock_stage(settings)
    # 1.0 is locked for 3.11's users (an approved project), not for a build environment:
    # nothing builds with it yet
    old = lock.get("helper", "1.0.0")
    assert old is not None and "build environment" not in old.reason
    dyn = lock.primary("dyn")
    assert dyn is not None
    remember_dynamic(settings, dyn, ["helper"], "sha256:image")
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    old = lock.get("helper", "1.0.0")
    assert old is not None and "build environment" in old.reason
