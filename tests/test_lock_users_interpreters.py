"""Issue 21: a user on every configured interpreter gets the newest version it admits.

The closure takes the newest version any configured interpreter admits (app 2.0,
Requires-Python >=3.12, built by 3.13); pip on 3.11 would then find no app in the index,
where on PyPI it gets the newest release 3.11 admits. So the lock walks, per configured
interpreter, what a user there installs (every approved project, then Requires-Dist under
that interpreter's markers) and locks, beside a newest row it excludes, the newest version
policy allows that it admits, with that row's own requirements.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from typing import Any

import pytest
from packaging.version import Version

from factory.config import Settings, load_settings
from factory.lock import lock_report, lock_stage
from factory.plan import make_plan
from tests import factories
from tests.local_upstream import LocalUpstream

BOTH = ("3.11", "3.13")


def _pkg_info(name: str, version: str, requires_python: str | None,
              requires: tuple[str, ...]) -> str:
    lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}",
             "License-Expression: MIT", *(f"Requires-Dist: {r}" for r in requires)]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    return "\n".join(lines) + "\n"


def _release(upstream: LocalUpstream, name: str, version: str, requires_python: str | None = None,
             requires: tuple[str, ...] = (), **options: Any) -> None:
    """A release whose listing and PKG-INFO say the same Requires-Python."""
    upstream.add(name, version, build_requires=[], backend="x", requires=list(requires),
                 requires_python=requires_python,
                 files={"PKG-INFO": _pkg_info(name, version, requires_python, requires)},
                 **options)


def _apps(project: Settings, upstream: LocalUpstream) -> Settings:
    """app 2.0 (>=3.12) requires newhelper; app 1.5 (>=3.9) requires oldhelper."""
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("oldhelper",))
    _release(upstream, "app", "2.0.0", ">=3.12", requires=("newhelper",))
    _release(upstream, "newhelper", "1.0.0")
    _release(upstream, "oldhelper", "1.0.0")
    for name in ("app", "newhelper", "oldhelper"):
        factories.recipe(project.root, name, 'track = "any"\n')
    return replace(project, build_interpreters=BOTH)


def _versions(lock: Any, key: str) -> list[str]:
    return sorted(c.version for c in lock.components if c.key == key)


def _advisory(project: Settings, name: str, introduced: str, fixed: str) -> None:
    (project.root.parent / "advisories" / f"{name}.json").write_text(
        f'{{"id": "{name.upper()}-1", "affected": [{{"package": {{"ecosystem": "PyPI", '
        f'"name": "{name}"}}, "ranges": [{{"type": "ECOSYSTEM", "events": '
        f'[{{"introduced": "{introduced}"}}, {{"fixed": "{fixed}"}}]}}]}}]}}')


def test_each_interpreter_gets_the_newest_version_it_admits(
        project: Settings, upstream: LocalUpstream) -> None:
    settings = _apps(project, upstream)
    lock, changes = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.0", "2.0.0"]
    primary = lock.primary("app")
    assert primary is not None and primary.version == "2.0.0"
    older = lock.get("app", "1.5.0")
    assert older is not None and not older.is_primary
    assert older.reason == "approved, the newest version 3.11 admits"
    assert {s.version: s.reason for s in older.skipped} == {
        "2.0.0": "requires-python >=3.12 excludes 3.11 (a user on 3.11 installs the newest "
                 "version 3.11 admits)"}
    # 1.5's own requirement is locked with it
    helper = lock.get("oldhelper", "1.0.0")
    assert helper is not None
    assert ("app", "1.5.0") in {(c.name, c.new) for c in changes}


def test_the_plan_builds_the_older_row_with_an_interpreter_that_admits_it(
        project: Settings, upstream: LocalUpstream) -> None:
    settings = _apps(project, upstream)
    lock_stage(settings)
    plan = make_plan(settings)
    assert {"app==1.5.0", "app==2.0.0", "oldhelper==1.0.0", "newhelper==1.0.0"} <= set(
        plan.nodes)


def test_an_advisory_on_the_older_version_leaves_the_interpreter_without_and_says_why(
        project: Settings, upstream: LocalUpstream) -> None:
    settings = _apps(project, upstream)
    _advisory(project, "app", "1.5.0", "1.5.1")
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["2.0.0"]
    assert _versions(lock, "oldhelper") == ["1.0.0"]  # approved: its own row still
    app = lock.primary("app")
    assert app is not None
    assert {s.version: s.reason for s in app.skipped} == {
        "1.5.0": "advisory APP-1 (for 3.11, which 2.0.0 excludes: none is locked)"}
    # a re-lock writes the same bytes (the note is not repeated)
    first = settings.lock_path.read_bytes()
    lock_stage(settings)
    assert settings.lock_path.read_bytes() == first


def test_no_older_version_at_all_is_said_on_the_newest_row(
        project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "2.0.0", ">=3.12")
    factories.recipe(project.root, "app")
    lock, _ = lock_stage(replace(project, build_interpreters=BOTH))
    app = lock.primary("app")
    assert app is not None and _versions(lock, "app") == ["2.0.0"]
    assert [(s.version, s.reason) for s in app.skipped] == [
        ("2.0.0", "requires-python >=3.12 excludes 3.11 (a user on 3.11 installs the newest "
                  "version 3.11 admits); no older version could be locked for 3.11")]


def test_one_interpreter_locks_as_before(project: Settings, upstream: LocalUpstream) -> None:
    settings = replace(_apps(project, upstream), build_interpreters=("3.11",))
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.0"]
    assert "user on" not in settings.lock_path.read_text()


def test_when_every_newest_row_admits_every_interpreter_the_lock_is_unchanged(
        project: Settings, upstream: LocalUpstream) -> None:
    """Two interpreters add no row, no note: the bytes one interpreter writes."""
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("helper",))
    _release(upstream, "app", "2.0.0", ">=3.10", requires=("helper; python_version < '3.12'",))
    _release(upstream, "helper", "1.0.0")
    for name in ("app", "helper"):
        factories.recipe(project.root, name)
    lock_stage(project)
    one = project.lock_path.read_bytes()
    lock_stage(replace(project, build_interpreters=BOTH))
    assert project.lock_path.read_bytes() == one


def test_the_older_row_follows_its_requirements_under_that_interpreters_markers(
        project: Settings, upstream: LocalUpstream) -> None:
    """app 1.5 (for 3.11) needs lib<2 below 3.12 and an unapproved project from 3.12 on:
    only the first is followed (pip on 3.11 asks for nothing else), so lib 1.0 is
    locked beside lib 2.0 and nothing is refused."""
    _release(upstream, "app", "1.5.0", ">=3.9",
             requires=("lib<2; python_version < '3.12'", "elsewhere; python_version >= '3.12'"))
    _release(upstream, "app", "2.0.0", ">=3.12")
    _release(upstream, "lib", "1.0.0")
    _release(upstream, "lib", "2.0.0")
    for name in ("app", "lib"):
        factories.recipe(project.root, name, 'track = "any"\n')
    lock, _ = lock_stage(replace(project, build_interpreters=BOTH))
    assert _versions(lock, "app") == ["1.5.0", "2.0.0"]
    assert _versions(lock, "lib") == ["1.0.0", "2.0.0"]
    lib = lock.get("lib", "1.0.0")
    assert lib is not None and lib.reason == "runtime requirement of app 1.5.0 (lib<2; " \
        "python_version < \"3.12\")"


def test_the_older_rows_requirement_takes_the_newest_version_that_interpreter_admits(
        project: Settings, upstream: LocalUpstream) -> None:
    """app 1.5 (for 3.11) requires dep<2.5; dep 2.0 is >=3.12 only: 3.11 gets dep 1.0,
    and 2.0, which no user would install, is not locked."""
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("dep<2.5",))
    _release(upstream, "app", "2.0.0", ">=3.12", requires=("dep>=3",))
    _release(upstream, "dep", "1.0.0")
    _release(upstream, "dep", "2.0.0", ">=3.12")
    _release(upstream, "dep", "3.0.0")
    for name in ("app", "dep"):
        factories.recipe(project.root, name, 'track = "any"\n')
    lock, _ = lock_stage(replace(project, build_interpreters=BOTH))
    assert _versions(lock, "app") == ["1.5.0", "2.0.0"]
    assert _versions(lock, "dep") == ["1.0.0", "3.0.0"]
    dep = lock.get("dep", "1.0.0")
    assert dep is not None and dep.reason == "runtime requirement of app 1.5.0 (dep<2.5)"


def test_a_re_lock_is_stable_and_keeps_the_older_row_until_an_update(
        project: Settings, upstream: LocalUpstream) -> None:
    settings = _apps(project, upstream)
    lock_stage(settings)
    first = settings.lock_path.read_bytes()
    lock_stage(settings)
    assert settings.lock_path.read_bytes() == first
    _release(upstream, "app", "1.6.0", ">=3.9", requires=("oldhelper",))
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.0", "2.0.0"]
    lock, _ = lock_stage(settings, update=True)
    assert _versions(lock, "app") == ["1.6.0", "2.0.0"]


def test_a_refused_older_row_closure_leaves_the_rest_locked(
        project: Settings, upstream: LocalUpstream) -> None:
    """app 1.5 needs a project nobody approved: 3.11 gets no app (that row would fail to
    install), and the lock of everything else stands."""
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("unapproved",))
    _release(upstream, "app", "2.0.0", ">=3.12")
    factories.recipe(project.root, "app", 'track = "any"\n')
    lock, _ = lock_stage(replace(project, build_interpreters=BOTH))  # no problem said
    assert _versions(lock, "app") == ["2.0.0"]
    app = lock.primary("app")
    # why: 1.5's own row (attack 21f: it said only that 2.0 excludes 3.11)
    assert app is not None and [s.version for s in app.skipped] == ["1.5.0"]


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


@pytest.mark.network
def test_django_with_3_11_and_3_13_locks_a_row_for_each(tmp_path: Any) -> None:
    if not _pypi_reachable():
        pytest.skip("PyPI cannot be reached")
    root = tmp_path / "project"
    (root / "recipes").mkdir(parents=True)
    (tmp_path / "advisories").mkdir()
    (root / "factory.toml").write_text(
        f'[factory]\nstate_dir = "state"\nadvisories = "{tmp_path / "advisories"}"\n'
        '[build]\ninterpreters = ["3.11", "3.13"]\n')
    factories.recipe(root, "django", 'versions = ">=5"\ntrack = "any"\n')
    # django's closure, and the build tools of it, as PyPI has them now
    for name in ("asgiref", "sqlparse", "packaging", "pathspec", "pluggy", "tomlkit",
                 "trove-classifiers"):
        factories.recipe(root, name, 'track = "any"\n')
    for name in ("setuptools", "hatchling", "calver", "flit-core", "poetry-core",
                 "setuptools-scm", "vcs-versioning"):
        factories.recipe(root, name, 'kind = "build-tool"\ntrack = "any"\n')
    result = lock_report(load_settings(root))
    versions = [Version(c.version) for c in result.lock.components if c.key == "django"]
    if not versions:  # PyPI's closure moved on (a new build tool): not what this checks
        pytest.skip("django did not lock: " + "; ".join(p.describe() for p in result.problems))
    assert [v.major for v in sorted(versions)] == [5, 6]
    assert sorted(versions)[0].release[:2] == (5, 2)


def _apps_with_older_dependency(project: Settings, upstream: LocalUpstream) -> Settings:
    """As _apps, but app 1.5 needs newhelper<1: newhelper 0.9 is locked for 3.11's users
    only (a row nobody approved by name), and only the walk of 3.11's users reaches it."""
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("newhelper<1",))
    _release(upstream, "app", "2.0.0", ">=3.12", requires=("newhelper",))
    _release(upstream, "newhelper", "0.9.0")
    _release(upstream, "newhelper", "1.0.0")
    _release(upstream, "other", "1.0.0")
    for name in ("app", "newhelper", "other"):
        factories.recipe(project.root, name, 'track = "any"\n')
    return replace(project, build_interpreters=BOTH)


def test_the_plan_builds_what_each_interpreters_users_reach_and_says_for_whom(
        project: Settings, upstream: LocalUpstream) -> None:
    settings = _apps_with_older_dependency(project, upstream)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "newhelper") == ["0.9.0", "1.0.0"]
    plan = make_plan(settings)
    assert {"app==1.5.0", "app==2.0.0", "newhelper==0.9.0", "newhelper==1.0.0",
            "other==1.0.0"} <= set(plan.nodes)
    assert plan.nodes["app==1.5.0"].reasons == ["approved, for a user on 3.11"]
    assert plan.nodes["newhelper==0.9.0"].reasons == [
        "runtime requirement of app 1.5.0, for a user on 3.11"]
    # asked for by name: that project's rows for every interpreter's users, and what
    # only those rows need, not the other approved projects
    named = make_plan(settings, ["app"])
    assert {"app==1.5.0", "app==2.0.0", "newhelper==0.9.0"} <= set(named.nodes)
    assert "other==1.0.0" not in named.nodes and "newhelper==1.0.0" not in named.nodes


def test_with_one_interpreter_a_pinned_older_dependency_is_planned_too(
        project: Settings, upstream: LocalUpstream) -> None:
    settings = replace(_apps_with_older_dependency(project, upstream),
                       build_interpreters=("3.11",))
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.0"]
    # app 1.5 needs newhelper<1 beside the approved 1.0: without its row in the plan, pip
    # cannot install app from the index (this was so before interpreters had rows)
    plan = make_plan(settings)
    assert set(plan.nodes) == {
        "app==1.5.0", "newhelper==0.9.0", "newhelper==1.0.0", "other==1.0.0"}
    assert plan.nodes["newhelper==0.9.0"].reasons == [
        "runtime requirement of app 1.5.0, for a user on 3.11"]
