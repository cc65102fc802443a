"""Attack pass on issue 21's build-closure fix (c0d8bcf, f5642bc, 3e0122d): with several
``[build] interpreters`` a component in a build environment gets, beside the newest
locked row, one every interpreter admits; the plan gives each interpreter the newest
locked row its sdist's Requires-Python admits. Each case a hostile upstream or a
careless operator could bring; the ones that held stay as tests too.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from factory.config import Settings
from factory.lock import lock_stage
from factory.plan import make_plan
from tests import factories
from tests.local_upstream import LocalUpstream

BOTH = ("3.11", "3.13")


def _pkg_info(name: str, version: str, requires_python: str | None = None,
              requires: tuple[str, ...] = (), extras: tuple[str, ...] = ()) -> str:
    lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}",
             "License-Expression: MIT"]
    lines += [f"Provides-Extra: {e}" for e in extras]
    lines += [f"Requires-Dist: {r}" for r in requires]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    return "\n".join(lines) + "\n"


def _release(upstream: LocalUpstream, name: str, version: str, *, sdist: str | None = None,
             listed: str | None = "same", requires: tuple[str, ...] = (),
             extras: tuple[str, ...] = (), **options: Any) -> None:
    """A release whose PKG-INFO says ``sdist`` and whose listing says ``listed``
    ("same": what the sdist says)."""
    upstream.add(name, version, build_requires=[], backend="x", requires=list(requires),
                 requires_python=sdist if listed == "same" else listed,
                 files={"PKG-INFO": _pkg_info(name, version, sdist, requires, extras)},
                 **options)


def _tooled(project: Settings, upstream: LocalUpstream, helper_requires: str = "helper") -> None:
    """backend (a build tool) requires ``helper_requires``; demo builds with backend."""
    upstream.add("backend", "1.0.0", build_requires=[], backend="x",
                 requires=[helper_requires])
    factories.recipe(project.root, "backend", 'kind = "build-tool"\n')
    upstream.add("demo", "1.0.0", build_requires=["backend"], backend="backend")
    factories.recipe(project.root, "demo")


def _versions(lock: Any, key: str) -> list[str]:
    return sorted(c.version for c in lock.components if c.key == key)


def _both(project: Settings) -> Settings:
    return replace(project, build_interpreters=BOTH)


# -- the listing and the sdist disagree ---------------------------------------------------

def test_a_listing_wider_than_the_sdist_does_not_hide_it(
        project: Settings, upstream: LocalUpstream) -> None:
    """The listing says >=3.8, helper 2.0's PKG-INFO >=3.12: the builds judge by the
    sdist, so 3.11 still gets 1.0."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12", listed=">=3.8")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    demo = make_plan(settings, ["demo"]).nodes["demo==1.0.0"]
    assert "helper==1.0.0" in demo.env_for("cp311")
    assert "helper==2.0.0" in demo.env_for("cp313")


def test_a_listing_narrower_than_the_sdist_costs_a_row_not_a_build(
        project: Settings, upstream: LocalUpstream) -> None:
    """The listing says >=3.12, the sdist nothing: the older row is locked (the lock
    believes either), and each interpreter's environment is one its builds admit."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=None, listed=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    demo = make_plan(settings, ["demo"]).nodes["demo==1.0.0"]
    assert any(f"helper=={v}" in demo.env_for("cp311") for v in ("1.0.0", "2.0.0"))
    assert "helper==2.0.0" in demo.env_for("cp313")


def test_an_unreadable_sdist_requires_python_serves_no_interpreter_from_that_row(
        project: Settings, upstream: LocalUpstream) -> None:
    """helper 2.0's PKG-INFO says garbage for Requires-Python: the builds cannot admit
    it anywhere, so both interpreters' environments take 1.0."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist="not a specifier", listed=None)
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert "1.0.0" in _versions(lock, "helper")
    demo = make_plan(settings, ["demo"]).nodes["demo==1.0.0"]
    assert "helper==1.0.0" in demo.env_for("cp311")
    assert "helper==1.0.0" in demo.env_for("cp313")


def test_a_duplicated_requires_python_is_read_as_the_builds_read_it(
        project: Settings, upstream: LocalUpstream) -> None:
    """Two Requires-Python headers (the first >=3.12, the second >=3.8): lock, plan and
    the executor's gate all read the first, so 3.11 takes 1.0."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    upstream.add("helper", "2.0.0", build_requires=[], backend="x", files={
        "PKG-INFO": _pkg_info("helper", "2.0.0", ">=3.12") + "Requires-Python: >=3.8\n"})
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    demo = make_plan(settings, ["demo"]).nodes["demo==1.0.0"]
    assert "helper==1.0.0" in demo.env_for("cp311")


# -- the extra row obeys every other policy ------------------------------------------------

def test_the_every_row_skips_an_advisory_yanked_young_and_pre_release_version(
        project: Settings, upstream: LocalUpstream) -> None:
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "1.1.0")  # advisory
    _release(upstream, "helper", "1.2.0", yanked="broken")
    _release(upstream, "helper", "1.3.0", age_days=0.1)  # cooldown
    _release(upstream, "helper", "1.4.0rc1")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    (project.root.parent / "advisories" / "H.json").write_text(
        '{"id": "H-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "helper"},'
        ' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.1.0"},'
        ' {"fixed": "1.1.1"}]}]}]}')
    factories.recipe(project.root, "helper", 'track = "any"\ncooldown_days = 1\n')
    lock, _ = lock_stage(_both(project))
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]


def test_the_every_row_keeps_to_the_recipes_range(
        project: Settings, upstream: LocalUpstream) -> None:
    _tooled(project, upstream)
    _release(upstream, "helper", "0.9.0")
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\nversions = "!=1.0.0"\n')
    lock, _ = lock_stage(_both(project))
    assert _versions(lock, "helper") == ["0.9.0", "2.0.0"]


def test_an_advisory_on_the_kept_every_row_moves_it_on_a_re_lock(
        project: Settings, upstream: LocalUpstream) -> None:
    """The previous lock's every-row is sticky, but not past an advisory."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    _release(upstream, "helper", "1.0.1")
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]  # sticky
    (project.root.parent / "advisories" / "H.json").write_text(
        '{"id": "H-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "helper"},'
        ' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0.0"},'
        ' {"fixed": "1.0.1"}]}]}]}')
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.1", "2.0.0"]


def test_update_moves_the_every_row_to_policys_newest(
        project: Settings, upstream: LocalUpstream) -> None:
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock_stage(settings)
    _release(upstream, "helper", "1.5.0")
    lock, _ = lock_stage(settings, update=True)
    assert _versions(lock, "helper") == ["1.5.0", "2.0.0"]


# -- the extra row's own closure -----------------------------------------------------------

def test_the_every_rows_extras_are_locked_for_the_build_environment(
        project: Settings, upstream: LocalUpstream) -> None:
    """backend requires helper[fast]; helper 1.0's extra wants xdep<2, 2.0's xdep>=2:
    3.11's environment needs xdep 1.x locked, or its plan fails."""
    _tooled(project, upstream, "helper[fast]")
    _release(upstream, "helper", "1.0.0", extras=("fast",),
             requires=('xdep<2; extra == "fast"',))
    _release(upstream, "helper", "2.0.0", sdist=">=3.12", extras=("fast",),
             requires=('xdep>=2; extra == "fast"',))
    factories.recipe(project.root, "helper", 'track = "any"\n')
    _release(upstream, "xdep", "1.0.0")
    _release(upstream, "xdep", "2.0.0")
    factories.recipe(project.root, "xdep", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    assert _versions(lock, "xdep") == ["1.0.0", "2.0.0"]
    plan = make_plan(settings, ["demo"])
    assert not plan.problems
    demo = plan.nodes["demo==1.0.0"]
    assert {"helper==1.0.0", "xdep==1.0.0"} <= set(demo.env_for("cp311"))
    assert {"helper==2.0.0", "xdep==2.0.0"} <= set(demo.env_for("cp313"))


def test_an_every_row_whose_requirements_cannot_be_locked_leaves_the_rest_alone(
        project: Settings, upstream: LocalUpstream) -> None:
    """helper 1.0 requires an unapproved project: the row is left out, silently; demo,
    backend and helper 2.0 stay locked."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0", requires=("stranger",))
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    _release(upstream, "stranger", "1.0.0")
    lock, _ = lock_stage(_both(project))
    assert _versions(lock, "helper") == ["2.0.0"]
    assert _versions(lock, "demo") == ["1.0.0"] and _versions(lock, "backend") == ["1.0.0"]


def test_a_cycle_between_two_build_closure_components_ends(
        project: Settings, upstream: LocalUpstream) -> None:
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0", requires=("other",))
    _release(upstream, "helper", "2.0.0", sdist=">=3.12", requires=("other",))
    _release(upstream, "other", "1.0.0", requires=("helper",))
    _release(upstream, "other", "2.0.0", sdist=">=3.12", requires=("helper",))
    factories.recipe(project.root, "helper", 'track = "any"\n')
    factories.recipe(project.root, "other", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    assert _versions(lock, "other") == ["1.0.0", "2.0.0"]
    env = make_plan(settings, ["demo"]).nodes["demo==1.0.0"].env_for("cp311")
    assert {"helper==1.0.0", "other==1.0.0"} <= set(env)


def test_a_marker_that_holds_only_under_3_13_is_in_the_build_closure(
        project: Settings, upstream: LocalUpstream) -> None:
    """backend requires helper only on 3.13: no row 3.11 admits is needed, nor locked."""
    _tooled(project, upstream, 'helper; python_version >= "3.13"')
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    demo = make_plan(settings, ["demo"]).nodes["demo==1.0.0"]
    assert "helper==2.0.0" in demo.env_for("cp313")
    assert not any(e.startswith("helper==") for e in demo.env_for("cp311"))


# -- the operator's state ------------------------------------------------------------------

def test_a_corrupt_dynamic_record_does_not_break_the_lock(
        project: Settings, upstream: LocalUpstream) -> None:
    """A record under builds/requires that is not JSON (a disk filled mid-write by an
    older writer, an edit): the lock (which now reads them) is not a traceback."""
    from factory.lock.resolve import dynamic_requires_path

    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    demo = lock.primary("demo")
    assert demo is not None
    for bad in ("{", "[]", '{"dynamic": 3}', '{"dynamic": [1]}'):
        path = dynamic_requires_path(settings, demo)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(bad)
        lock, _ = lock_stage(settings)
        assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]


def test_the_default_single_interpreter_lock_is_as_before(
        project: Settings, upstream: LocalUpstream) -> None:
    """No [build] interpreters (the image's python3 alone; a list naming only 3.13 adds
    it to that one): no every-row, the version 3.11 admits as before, no new words."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    assert project.pythons == ("3.11",)
    lock, _ = lock_stage(project)
    assert _versions(lock, "helper") == ["1.0.0"]
    first = project.lock_path.read_bytes()
    assert b"build environment" not in first
    lock_stage(project)
    assert project.lock_path.read_bytes() == first


def test_re_locks_write_the_same_bytes_and_a_new_release_leaves_the_row(
        project: Settings, upstream: LocalUpstream) -> None:
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock_stage(settings)
    first = settings.lock_path.read_bytes()
    lock_stage(settings)
    assert settings.lock_path.read_bytes() == first
    _release(upstream, "helper", "2.1.0", sdist=">=3.12")  # runtime users move, 3.11 stays
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]


# -- cost ------------------------------------------------------------------------------

def test_a_wide_build_closure_reads_each_sdist_once(
        project: Settings, upstream: LocalUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty components built with backend: each (component, sdist) is read for its
    Requires-Python at most once in a lock, and once in a plan."""
    import factory.build.variants as variants

    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    names = [f"p{i}" for i in range(20)]
    for name in names:
        upstream.add(name, "1.0.0", build_requires=["backend"], backend="backend",
                     requires=["helper"])
        factories.recipe(project.root, name)
    settings = _both(project)
    reads: list[str] = []
    real = variants.sdist_requires_python

    def counted(path: Any) -> str | None:
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(variants, "sdist_requires_python", counted)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    assert len(reads) == len(set(reads)) and len(reads) <= len(lock.components)
    reads.clear()
    make_plan(settings, ["demo", *names])
    assert len(reads) == len(set(reads))


def test_a_row_another_user_locked_is_closed_with_the_extras_a_build_asks_of_it(
        project: Settings, upstream: LocalUpstream) -> None:
    """app locks helper 1.0 (helper<2) without extras; backend asks helper[fast]: 3.11's
    environment takes 1.0 with its extra's xdep<2, so that must be locked too."""
    _tooled(project, upstream, "helper[fast]")
    upstream.add("app", "1.0.0", build_requires=[], backend="x", requires=["helper<2"])
    factories.recipe(project.root, "app")
    _release(upstream, "helper", "1.0.0", extras=("fast",),
             requires=('xdep<2; extra == "fast"',))
    _release(upstream, "helper", "2.0.0", sdist=">=3.12", extras=("fast",),
             requires=('xdep>=2; extra == "fast"',))
    factories.recipe(project.root, "helper", 'track = "any"\n')
    _release(upstream, "xdep", "1.0.0")
    _release(upstream, "xdep", "2.0.0")
    factories.recipe(project.root, "xdep", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "xdep") == ["1.0.0", "2.0.0"]
    plan = make_plan(settings, ["demo", "app"])
    assert not plan.problems
    assert "xdep==1.0.0" in plan.nodes["demo==1.0.0"].env_for("cp311")


def test_an_extra_that_cannot_be_met_leaves_another_users_row_locked(
        project: Settings, upstream: LocalUpstream) -> None:
    """As above, but helper 1.0's extra wants an unapproved project: app keeps helper
    1.0 (its runtime requirement), the build environment cannot have it (its plan says
    so), nothing else is left out."""
    _tooled(project, upstream, "helper[fast]")
    upstream.add("app", "1.0.0", build_requires=[], backend="x", requires=["helper<2"])
    factories.recipe(project.root, "app")
    _release(upstream, "helper", "1.0.0", extras=("fast",),
             requires=('stranger; extra == "fast"',))
    _release(upstream, "helper", "2.0.0", sdist=">=3.12", extras=("fast",))
    factories.recipe(project.root, "helper", 'track = "any"\n')
    _release(upstream, "stranger", "1.0.0")
    lock, _ = lock_stage(_both(project))
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    assert _versions(lock, "app") == ["1.0.0"] and _versions(lock, "demo") == ["1.0.0"]


def test_a_corrupt_dynamic_record_does_not_break_the_plan(
        project: Settings, upstream: LocalUpstream) -> None:
    """The plan reads the same records: one that is not a record is none (the build
    records it again), not a traceback; a good one still counts."""
    from factory.lock.resolve import dynamic_requires_path
    from factory.plan import remember_dynamic

    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    lock, _ = lock_stage(project)
    demo = lock.primary("demo")
    assert demo is not None
    path = dynamic_requires_path(project, demo)
    path.parent.mkdir(parents=True, exist_ok=True)
    for bad in ("{", '{"dynamic": "helper"}', "null"):
        path.write_text(bad)
        assert make_plan(project, ["demo"]).nodes["demo==1.0.0"].dynamic is None
    path.unlink()
    remember_dynamic(project, demo, ["helper"], "sha256:image")
    assert make_plan(project, ["demo"]).nodes["demo==1.0.0"].dynamic == ["helper"]
    assert json.loads(path.read_text())["dynamic"] == ["helper"]


# -- the plan's pick on a cold cache ----------------------------------------------------------

def _cold(settings: Settings, lock: Any, key: str, version: str) -> None:
    """Take ``key`` ``version``'s sdist out of the cache (another machine, a cleared cache,
    an intake run that fetched only the names it builds)."""
    from factory.upstream import cache

    row = lock.get(key, version)
    assert row is not None
    path = cache.cache_path(settings, row.sdist.sha256, row.sdist.filename)
    assert path.is_file()
    path.unlink()


def test_a_newer_row_not_yet_cached_is_judged_by_its_sdist_not_taken_to_admit_all(
        project: Settings, upstream: LocalUpstream) -> None:
    """helper 2.0's sdist is not cached when the plan picks: it was taken to admit every
    interpreter, so 3.11's environment got 2.0 (its build then refused) though 1.0 is
    locked for it. The plan fetches the verified sdist to judge, as the executor does."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    _cold(settings, lock, "helper", "2.0.0")
    demo = make_plan(settings, ["demo"]).nodes["demo==1.0.0"]
    assert "helper==1.0.0" in demo.env_for("cp311")
    assert "helper==2.0.0" in demo.env_for("cp313")


def test_a_newer_row_upstream_no_longer_serves_leaves_the_older_one_to_every_interpreter(
        project: Settings, upstream: LocalUpstream) -> None:
    """helper 2.0 cannot be fetched at all (upstream took it down): its own build would
    fail, so each environment takes the row every interpreter admits."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    _cold(settings, lock, "helper", "2.0.0")
    upstream.projects["helper"] = [r for r in upstream.projects["helper"]
                                   if "2.0.0" not in r.path.name]
    plan = make_plan(settings, ["demo"])
    demo = plan.nodes["demo==1.0.0"]
    assert "helper==1.0.0" in demo.env_for("cp311")
    assert "helper==1.0.0" in demo.env_for("cp313")


def test_a_re_lock_on_a_cold_cache_keeps_the_every_row(
        project: Settings, upstream: LocalUpstream) -> None:
    """The listing says nothing of helper 2.0's Requires-Python, its PKG-INFO >=3.12;
    a re-lock where the sdists are not cached (another machine, a cleared cache) must
    write the same lock: 3.11's row stays."""
    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12", listed=None)
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    first = settings.lock_path.read_bytes()
    for row in lock.components:
        _cold(settings, lock, row.key, row.version)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    assert settings.lock_path.read_bytes() == first


def test_a_kept_every_row_upstream_yanks_moves_on_a_re_lock(
        project: Settings, upstream: LocalUpstream) -> None:
    _tooled(project, upstream)
    first = upstream.add("helper", "1.0.0", build_requires=[], backend="x")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    _release(upstream, "helper", "1.0.1")
    first.yanked = "broken"
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.1", "2.0.0"]


def test_a_bad_line_a_backend_recorded_does_not_hide_the_static_build_closure(
        project: Settings, upstream: LocalUpstream) -> None:
    """demo's backend reported, at build time, a line that is no requirement: the lock's
    walk dropped all of demo's build requirements with it (backend, so helper), and 3.11
    lost its row. Only the bad line is left out."""
    from factory.plan import remember_dynamic

    _tooled(project, upstream)
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    demo = lock.primary("demo")
    assert demo is not None
    remember_dynamic(settings, demo, ["not a requirement!!"], "sha256:image")
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]


def test_a_row_another_build_tool_locked_serves_without_a_second_one(
        project: Settings, upstream: LocalUpstream) -> None:
    """backend wants helper<2 (1.0 locked by the closure), backend2 any helper (2.0):
    1.0 already serves every interpreter, so no other row is added, and 3.11's
    environment of demo2 takes it."""
    _tooled(project, upstream, "helper<2")
    upstream.add("backend2", "1.0.0", build_requires=[], backend="x", requires=["helper"])
    factories.recipe(project.root, "backend2", 'kind = "build-tool"\n')
    upstream.add("demo2", "1.0.0", build_requires=["backend2"], backend="backend2")
    factories.recipe(project.root, "demo2")
    _release(upstream, "helper", "0.9.0")
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "helper") == ["1.0.0", "2.0.0"]
    plan = make_plan(settings, ["demo", "demo2"])
    assert "helper==1.0.0" in plan.nodes["demo2==1.0.0"].env_for("cp311")
    assert "helper==2.0.0" in plan.nodes["demo2==1.0.0"].env_for("cp313")
    assert "helper==1.0.0" in plan.nodes["demo==1.0.0"].env_for("cp313")


def test_a_requirement_only_3_11_has_gets_the_row_3_11_admits(
        project: Settings, upstream: LocalUpstream) -> None:
    _tooled(project, upstream, 'helper; python_version < "3.12"')
    _release(upstream, "helper", "1.0.0")
    _release(upstream, "helper", "2.0.0", sdist=">=3.12")
    factories.recipe(project.root, "helper", 'track = "any"\n')
    settings = _both(project)
    lock, _ = lock_stage(settings)
    assert "1.0.0" in _versions(lock, "helper")
    demo = make_plan(settings, ["demo"]).nodes["demo==1.0.0"]
    assert "helper==1.0.0" in demo.env_for("cp311")
    assert not any(e.startswith("helper==") for e in demo.env_for("cp313"))
