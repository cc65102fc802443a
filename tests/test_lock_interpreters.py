"""The lock considers the whole interpreter set ([build] interpreters): a version is
taken when its Requires-Python admits one of the builder's CPythons, and a requirement is
followed when its marker holds under one of them. The default set (3.11) locks as ever.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from factory.admission import AdmissionError, Approvals, check_requirements
from factory.config import Settings
from factory.lock import Lock, LockedComponent, load_lock, lock_stage
from tests import factories
from tests.local_upstream import LocalUpstream
from tests.test_lock import tool


def _with(project: Settings, *versions: str) -> Settings:
    return replace(project, build_interpreters=versions)


def _newer_ones(project: Settings, upstream: LocalUpstream) -> None:
    tool(upstream, project)
    upstream.add("demo", "1.0.0")
    upstream.add("demo", "2.0.0", requires_python=">=3.12")
    upstream.add("demo", "3.0.0", requires_python=">=3.14")
    factories.recipe(project.root, "demo")


def test_a_version_only_another_interpreter_admits_is_locked_for_it(
        project: Settings, upstream: LocalUpstream) -> None:
    _newer_ones(project, upstream)
    lock, _ = lock_stage(_with(project, "3.11", "3.13"))
    demo = lock.primary("demo")
    assert demo is not None and demo.version == "2.0.0"
    # admitted by none of the set: refused, and the lock says which set it judged
    assert {s.version: s.reason for s in demo.skipped} == {
        "3.0.0": "requires-python >=3.14 admits none of 3.11, 3.13"}


def test_the_image_python_alone_refuses_it_as_it_always_did(
        project: Settings, upstream: LocalUpstream) -> None:
    _newer_ones(project, upstream)
    lock, _ = lock_stage(project)  # the default set: 3.11
    demo = lock.primary("demo")
    assert demo is not None and demo.version == "1.0.0"
    # the reason's words are the lock's bytes: a default project's lock does not move
    assert {s.version: s.reason for s in demo.skipped} == {
        "3.0.0": "requires-python >=3.14", "2.0.0": "requires-python >=3.12"}


def test_a_dependency_only_a_newer_interpreter_needs_is_locked_with_it(
        project: Settings, upstream: LocalUpstream) -> None:
    tool(upstream, project)
    # app needs an older backport, but only on 3.12 and later: a second row of backport
    upstream.add("app", "1.0.0", requires=["backport<2; python_version >= '3.12'"])
    for version in ("1.0.0", "2.0.0"):
        upstream.add("backport", version)
    factories.recipe(project.root, "app")
    factories.recipe(project.root, "backport", 'track = "any"\n')

    def backports(settings: Settings) -> list[str]:
        lock, _ = lock_stage(settings)
        return sorted(c.version for c in lock.components if c.key == "backport")

    assert backports(project) == ["2.0.0"]
    both = _with(project, "3.11", "3.13")
    assert backports(both) == ["1.0.0", "2.0.0"]
    second = load_lock(both).get("backport", "1.0.0")
    assert second is not None and "runtime requirement of app 1.0.0" in second.reason


def _approvals(settings: Settings, *rows: LockedComponent) -> Approvals:
    found = Approvals.load(settings)
    found.lock.components = list(rows)
    return found


def test_the_gate_judges_requirements_under_every_configured_interpreter(
        tmp_path: Any) -> None:
    from tests.factories import locked

    settings = factories.settings(tmp_path)
    entry = locked("app", "1.0")
    needs = ["backport; python_version >= '3.12'"]
    # 3.11 alone: the requirement is conditional and not declared by the sdist
    with pytest.raises(AdmissionError, match="injected by the build"):
        check_requirements(needs, entry, _approvals(settings, entry))
    both = _with(settings, "3.11", "3.13")
    with pytest.raises(AdmissionError, match="no locked version satisfies"):
        check_requirements(needs, entry, _approvals(both, entry))
    check_requirements(needs, entry, _approvals(both, entry, locked("backport", "1.0")))
    # an Approvals made with one environment judges under that one, as before
    one = Approvals({}, Lock(), {"python_version": "3.11"})
    assert one.targets == ({"python_version": "3.11"},)


def test_a_build_tool_keeps_the_version_every_interpreter_admits(
        project: Settings, upstream: LocalUpstream) -> None:
    """A build tool's one locked version goes into every interpreter's builds: a newer
    one only 3.12 admits would take 3.11's builds of everything using it away."""
    upstream.add("setuptools", "80.0.0", build_requires=[], backend="x")
    upstream.add("setuptools", "90.0.0", build_requires=[], backend="x",
                 requires_python=">=3.12")
    factories.recipe(project.root, "setuptools", 'kind = "build-tool"\ntrack = "any"\n')
    upstream.add("demo", "1.0.0")
    factories.recipe(project.root, "demo")
    lock, _ = lock_stage(_with(project, "3.11", "3.13"))
    tool = lock.primary("setuptools")
    assert tool is not None and tool.version == "80.0.0"
    assert {s.version: s.reason for s in tool.skipped} == {
        "90.0.0": "requires-python >=3.12 excludes 3.11 (a build tool serves every "
                  "configured interpreter)"}
    # with 3.13 alone it is taken: the rule is "every configured one", not "3.11"
    project.lock_path.unlink()
    lock, _ = lock_stage(replace(project, python_version="3.13", build_interpreters=("3.13",)))
    tool = lock.primary("setuptools")
    assert tool is not None and tool.version == "90.0.0"
