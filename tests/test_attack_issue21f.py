"""Attack 21f: each interpreter's users get the newest version they admit (the lock's
users walk of 1d87a67, the plan's ``_add_users_rows`` of 4035450/6ffdac0).

Interpreters 3.11 and 3.13 unless said; "broke" = failed on 52243c0 (the code before
this file), each fixed in the commit that added the case.

| class             | case                                                         | broke |
|-------------------|--------------------------------------------------------------|-------|
| Requires-Python   | listing >=3.12, sdist admits 3.11: the lock kept 1.5 for      | yes   |
| lies              | 3.11, which the plan (reading the sdist) never built; users   |       |
|                   | are now judged by the sdist (what the served wheel states)   |       |
|                   | sdist >=3.12, listing admits 3.11: 1.5 locked, planned, served | no  |
|                   | sdist `>=3.11,<3.11`, `>=3.x`, 2,000-clause specifier          | no    |
|                   | only a pre-release admits 3.11: none locked, said why         | no    |
|                   | yanked older version passed over; advisory on every older one | no    |
|                   | cooldown and range of the recipe hold for the older row       | no    |
|                   | 10,000 releases, every sdist >=3.12 under a listing that      | no    |
|                   | admits 3.11: 6 sdists fetched (1 + MAX_PASSED), rest stands  |       |
| graph shape       | a build environment's lib 1.0 stood in for 3.11's users where | yes   |
|                   | policy allows lib 1.5: pip on 3.11 got 1.0, PyPI gives 1.5    |       |
|                   | extras spelt otherwise (Fast_Mode / fast-mode) under markers  | no    |
|                   | an older row 1.0.0+local (hostile index): '>1.0.0+local' is   | yes*  |
|                   | no specifier, the lock failed with a traceback (* the walk of |       |
|                   | f16858e, this pass's own; 52243c0 failed it as the stand-in)  |       |
|                   | a cycle among older rows; a diamond needing two old rows      | no    |
|                   | older row needing an unapproved project: said "no older       | yes   |
|                   | version could be locked", not why; now names the requirement |       |
|                   | older version whose sdist is unreadable at lock time: the     | yes*  |
|                   | note was the multi-line tar error (* f16858e's new note;      |       |
|                   | before, nothing said why); one bounded line now               |       |
|                   | older row whose closure breaks deeper (mid<2 -> lib<1 under   | yes   |
|                   | an advisory): left out again silently; now said on 2.0        |       |
|                   | one row reached by both interpreters; named plan (any case)   | no    |
|                   | three interpreters (3.11/3.12/3.13): 3.12's users got 1.0,    | yes   |
|                   | the row locked for 3.11 (the stand-in above); now 2.0         |       |
|                   | the newest says <3.13: 3.13's users get 1.9 and its lib<2     | no    |
|                   | python_full_version marker followed, PyPy-only not followed   | no    |
|                   | one interpreter, named plan: no build-environment-only row    | no    |
|                   | a runtime lib<2 reuses a build tool's lib==1.0 pin where      | yes   |
|                   | policy allows 1.5 (main closure's lock.find, order-dependent, |       |
|                   | one interpreter too): now its own row (_newer_for_users)      |       |
|                   | the users' row is the build environment's: one row, one node | no    |
| stability         | --update drops the row; removing 3.13 gives one's bytes       | no    |
|                   | upstream down on a re-lock: the approved row was kept, the    | yes   |
|                   | 3.11 row dropped (3.11's users lost app); now kept, same bytes|       |
|                   | an advisory on the kept 3.11 row moves it without --update    | no    |
|                   | a crash inside the users walk leaves the old lock            | no    |
| the plan          | older row whose sdist cannot be fetched at plan time: left    | yes   |
|                   | out of the plan unseen (taken to admit nothing); now planned |       |
|                   | (its build says why in one line)                             |       |
|                   | Variants.first: 1.5 by the image's 3.11, 2.0 by cp313         | no    |
|                   | a lock row with an unreadable Requires-Dist line (packaging  | yes   |
|                   | upgrade, hand edit): the whole plan failed, also with one    |       |
|                   | interpreter since 6ffdac0; the line is skipped there now     |       |

The shipped recipes.lock (checked by hand, not here: it needs PyPI): make_plan(None) and
make_plan([name]) for each of its 29 approved projects give the same node sets and
reasons at 52243c0, and with this pass's fixes, as at 31870a9 (before the users walk),
with 3.11 and with 3.11+3.13 (39 nodes); it re-locks byte-identical with 3.11+3.13.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from factory.config import Settings
from factory.lock import load_lock, lock_stage
from factory.plan import make_plan
from tests import factories
from tests.local_upstream import LocalUpstream
from tests.test_lock_users_interpreters import BOTH, _advisory, _pkg_info, _release, _versions


def _lying(upstream: LocalUpstream, name: str, version: str, listing: str | None,
           sdist: str | None, requires: tuple[str, ...] = ()) -> None:
    """A release whose listing says Requires-Python ``listing``, its PKG-INFO ``sdist``."""
    upstream.add(name, version, build_requires=[], backend="x", requires=list(requires),
                 requires_python=listing,
                 files={"PKG-INFO": _pkg_info(name, version, sdist, requires)})


def _approve(project: Settings, *names: str, body: str = 'track = "any"\n') -> None:
    for name in names:
        factories.recipe(project.root, name, body)


def _served_choice(settings: Settings, plan: Any, key: str, python: str) -> str | None:
    """What pip on ``python`` takes of ``key`` from an index serving the plan's nodes:
    the newest whose sdist's Requires-Python (what the built wheel states) admits it."""
    from factory.build.variants import sdist_requires_python
    from factory.upstream import cache

    found = []
    for node in plan.nodes.values():
        if node.locked.key != key:
            continue
        path = cache.fetch(settings, node.locked.sdist)
        requires = sdist_requires_python(path)
        try:
            admits = not requires or SpecifierSet(requires).contains(python)
        except InvalidSpecifier:
            admits = False  # no index serves it; its build refuses
        if admits:
            found.append(node.locked.version)
    from packaging.version import Version
    return max(found, key=Version, default=None)


# -- Requires-Python lies -----------------------------------------------------------

def test_listing_says_3_12_but_the_sdist_admits_3_11(project: Settings,
                                                     upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.5.0", ">=3.9")
    _lying(upstream, "app", "2.0.0", ">=3.12", None)
    _approve(project, "app")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    plan = make_plan(settings)
    rows = {f"app=={v}" for v in _versions(lock, "app")}
    assert rows <= set(plan.nodes), (rows, set(plan.nodes))


def test_sdist_says_3_12_but_the_listing_admits_3_11(project: Settings,
                                                     upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.5.0", ">=3.9")
    _lying(upstream, "app", "2.0.0", None, ">=3.12")
    _approve(project, "app")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.0", "2.0.0"]
    plan = make_plan(settings)
    assert {"app==1.5.0", "app==2.0.0"} <= set(plan.nodes)
    assert _served_choice(settings, plan, "app", "3.11") == "1.5.0"
    assert _served_choice(settings, plan, "app", "3.13") == "2.0.0"


@pytest.mark.parametrize("requires", [">=3.11,<3.11", ">=3.x", ">=3.12" + ",!=3.12.1" * 2000])
def test_malformed_requires_python_in_the_sdist(project: Settings, upstream: LocalUpstream,
                                                requires: str) -> None:
    _release(upstream, "app", "1.5.0", ">=3.9")
    _lying(upstream, "app", "2.0.0", None, requires)
    _approve(project, "app")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    plan = make_plan(settings)
    rows = {f"app=={v}" for v in _versions(lock, "app")}
    assert "app==1.5.0" in rows and rows <= set(plan.nodes)
    assert _served_choice(settings, plan, "app", "3.11") == "1.5.0"


def test_only_a_prerelease_admits_3_11(project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.9rc1", ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _approve(project, "app")
    lock, _ = lock_stage(replace(project, build_interpreters=BOTH))
    assert _versions(lock, "app") == ["2.0.0"]
    app = lock.primary("app")
    assert app is not None
    assert [(s.version, s.reason) for s in app.skipped] == [
        ("1.9rc1", "pre-release (for 3.11, which 2.0.0 excludes: none is locked)")]


def test_a_yanked_older_version_is_passed_over(project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.4.0", ">=3.9")
    _release(upstream, "app", "1.5.0", ">=3.9", yanked="broken")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _approve(project, "app")
    lock, _ = lock_stage(replace(project, build_interpreters=BOTH))
    assert _versions(lock, "app") == ["1.4.0", "2.0.0"]
    older = lock.get("app", "1.4.0")
    assert older is not None and [s.version for s in older.skipped] == ["2.0.0", "1.5.0"]


def test_an_advisory_on_every_older_version(project: Settings, upstream: LocalUpstream) -> None:
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        _release(upstream, "app", v, ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _approve(project, "app")
    _advisory(project, "app", "1.0.0", "2.0.0")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["2.0.0"]
    app = lock.primary("app")
    assert app is not None and [s.version for s in app.skipped] == ["1.2.0", "1.1.0", "1.0.0"]
    first = settings.lock_path.read_bytes()
    lock_stage(settings)
    assert settings.lock_path.read_bytes() == first


def test_cooldown_and_range_of_the_recipe_hold_for_the_older_row(
        project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.4.0", ">=3.9")
    _release(upstream, "app", "1.5.0", ">=3.9", age_days=0.5)  # inside the cooldown
    _release(upstream, "app", "2.0.0", ">=3.12")
    _approve(project, "app", body='track = "any"\ncooldown_days = 2\n')
    lock, _ = lock_stage(replace(project, build_interpreters=BOTH))
    assert _versions(lock, "app") == ["1.4.0", "2.0.0"]
    _approve(project, "app", body='track = "any"\nversions = ">=2"\n')
    lock, _ = lock_stage(replace(project, build_interpreters=BOTH), update=True)
    assert _versions(lock, "app") == ["2.0.0"]
    app = lock.primary("app")
    assert app is not None and app.skipped and "outside range" in app.skipped[0].reason


# -- graph shape ---------------------------------------------------------------------

def test_an_older_build_environment_row_does_not_stand_in_for_the_newest_3_11_admits(
        project: Settings, upstream: LocalUpstream) -> None:
    """lib 1.0 is locked for a build environment (tool needs lib==1.0); lib 2.0 excludes
    3.11; lib 1.5 admits it: pip on 3.11 takes 1.5 from PyPI, and must from the index."""
    _release(upstream, "tool", "1.0.0", requires=("lib==1.0.0",))
    _release(upstream, "lib", "1.0.0", ">=3.9")
    _release(upstream, "lib", "1.5.0", ">=3.9")
    _release(upstream, "lib", "2.0.0", ">=3.12")
    upstream.add("app", "1.0.0", build_requires=["tool"], backend="x", requires=[],
                 files={"PKG-INFO": _pkg_info("app", "1.0.0", None, ())})
    _approve(project, "app", "lib")
    _approve(project, "tool", body='kind = "build-tool"\ntrack = "any"\n')
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert "1.0.0" in _versions(lock, "lib")  # the build environment's
    assert "1.5.0" in _versions(lock, "lib"), _versions(lock, "lib")
    plan = make_plan(settings)
    assert _served_choice(settings, plan, "lib", "3.11") == "1.5.0"
    # a re-lock keeps it, a newer one waits for an update, as every pin does
    first = settings.lock_path.read_bytes()
    lock_stage(settings)
    assert settings.lock_path.read_bytes() == first
    _release(upstream, "lib", "1.6.0", ">=3.9")
    lock, _ = lock_stage(settings)
    assert _versions(lock, "lib") == ["1.0.0", "1.5.0", "2.0.0"]
    lock, _ = lock_stage(settings, update=True)
    assert _versions(lock, "lib") == ["1.0.0", "1.6.0", "2.0.0"]


def test_extras_spelt_otherwise_reach_the_same_requirements(
        project: Settings, upstream: LocalUpstream) -> None:
    """app 1.5 (for 3.11) asks lib[Fast_Mode]; lib's extra is 'fast-mode' and pulls
    speed<2 under 3.11: the lock and the plan both follow it."""
    _release(upstream, "app", "1.5.0", ">=3.9",
             requires=("lib[Fast_Mode]; python_version < '3.12'",))
    _release(upstream, "app", "2.0.0", ">=3.12")
    _release(upstream, "lib", "1.0.0", requires=("speed<2; extra == 'fast-mode'",))
    _release(upstream, "speed", "1.0.0")
    _release(upstream, "speed", "2.0.0")
    _approve(project, "app", "lib", "speed")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "speed") == ["1.0.0", "2.0.0"]
    plan = make_plan(settings)
    assert "speed==1.0.0" in plan.nodes


def test_a_cycle_among_older_rows(project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("lib<2",))
    _release(upstream, "app", "2.0.0", ">=3.12", requires=("lib>=2",))
    _release(upstream, "lib", "1.0.0", ">=3.9", requires=("app<2",))
    _release(upstream, "lib", "2.0.0", ">=3.12", requires=("app>=2",))
    _approve(project, "app", "lib")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.0", "2.0.0"]
    assert _versions(lock, "lib") == ["1.0.0", "2.0.0"]
    plan = make_plan(settings)
    assert {"app==1.5.0", "lib==1.0.0"} <= set(plan.nodes)


def test_a_diamond_where_two_parents_need_different_old_rows(
        project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("a", "b"))
    _release(upstream, "app", "2.0.0", ">=3.12")
    _release(upstream, "a", "1.0.0", requires=("lib<1.5",))
    _release(upstream, "b", "1.0.0", requires=("lib<1.2",))
    for v in ("1.1.0", "1.4.0"):
        _release(upstream, "lib", v, ">=3.9")
    _release(upstream, "lib", "2.0.0", ">=3.12")
    _approve(project, "app", "a", "b", "lib")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert "1.1.0" in _versions(lock, "lib")
    plan = make_plan(settings)
    assert "lib==1.1.0" in plan.nodes


def test_an_older_row_needing_something_unapproved_says_why(
        project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("unapproved",))
    _release(upstream, "app", "2.0.0", ">=3.12")
    _release(upstream, "other", "1.0.0")
    _approve(project, "app", "other")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["2.0.0"] and _versions(lock, "other") == ["1.0.0"]
    app = lock.primary("app")
    assert app is not None
    assert [(s.version, s.reason) for s in app.skipped] == [(
        "1.5.0", "no version of app can be built: 1.5.0 needs unapproved (runtime), which "
                 "upstream does not have (for 3.11, which 2.0.0 excludes: none is locked)")]


def test_an_older_row_whose_closure_breaks_deeper_says_why(
        project: Settings, upstream: LocalUpstream) -> None:
    """app 1.5 (for 3.11) needs mid<2; mid 1.0 needs lib<1, which an advisory takes: the
    row is locked, left out again after its closure fails, and app 2.0 says why."""
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("mid<2",))
    _release(upstream, "app", "2.0.0", ">=3.12")
    _release(upstream, "mid", "1.0.0", requires=("lib<1",))
    _release(upstream, "mid", "2.0.0")
    _release(upstream, "lib", "0.9.0")
    _release(upstream, "lib", "1.0.0")
    _approve(project, "app", "mid", "lib")
    _advisory(project, "lib", "0.1", "1.0.0")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["2.0.0"] and _versions(lock, "lib") == ["1.0.0"]
    app = lock.primary("app")
    assert app is not None
    assert [(s.version, s.reason) for s in app.skipped] == [(
        "1.5.0", "no version of mid can be built: 1.0.0 needs lib<1 (runtime), which "
                 "recipes/lib.toml allows no version of (for 3.11, which 2.0.0 excludes: "
                 "none is locked)")]
    first = settings.lock_path.read_bytes()
    lock_stage(settings)
    assert settings.lock_path.read_bytes() == first


# -- stability -----------------------------------------------------------------------

def test_update_drops_a_row_no_longer_needed(project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.5.0", ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _approve(project, "app")
    settings = replace(project, build_interpreters=BOTH)
    lock_stage(settings)
    _release(upstream, "app", "2.1.0", ">=3.9")  # admits 3.11 again
    lock, _ = lock_stage(settings, update=True)
    assert _versions(lock, "app") == ["2.1.0"]


def test_removing_3_13_gives_the_lock_one_interpreter_writes(
        tmp_path: Path, project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("oldhelper",))
    _release(upstream, "app", "2.0.0", ">=3.12", requires=("newhelper",))
    _release(upstream, "newhelper", "1.0.0")
    _release(upstream, "oldhelper", "1.0.0")
    _approve(project, "app", "newhelper", "oldhelper")
    lock_stage(project)
    one = project.lock_path.read_bytes()
    lock_stage(replace(project, build_interpreters=BOTH))
    assert project.lock_path.read_bytes() != one
    lock_stage(project)
    assert project.lock_path.read_bytes() == one


def test_a_crash_in_the_users_walk_leaves_the_old_lock(
        project: Settings, upstream: LocalUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    from factory.lock import resolve

    _release(upstream, "app", "1.5.0", ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _approve(project, "app")
    settings = replace(project, build_interpreters=BOTH)
    lock_stage(settings)
    before = settings.lock_path.read_bytes()
    _release(upstream, "app", "1.6.0", ">=3.9")
    calls: list[str] = []

    def boom(*args: Any, **kwargs: Any) -> None:
        calls.append("walked")
        raise KeyboardInterrupt

    monkeypatch.setattr(resolve, "_lock_admitted", boom)
    with pytest.raises(KeyboardInterrupt):
        lock_stage(settings, update=True)
    assert calls and settings.lock_path.read_bytes() == before


# -- the plan ------------------------------------------------------------------------

def test_an_older_row_whose_sdist_cannot_be_fetched_is_planned_and_fails_alone(
        project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.5.0", ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _release(upstream, "other", "1.0.0")
    _approve(project, "app", "other")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.0", "2.0.0"]
    # the cache is cleared and upstream lost 1.5's file
    import shutil
    shutil.rmtree(settings.sources_dir)
    gone = upstream.find("app-1.5.0.tar.gz")
    assert gone is not None
    gone.path.unlink()
    plan = make_plan(settings)
    assert {"app==1.5.0", "app==2.0.0", "other==1.0.0"} <= set(plan.nodes)


def test_a_hand_edited_lock_with_an_unreadable_requirement_plans_the_rest(
        project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.0.0", requires=("lib",))
    _release(upstream, "lib", "1.0.0")
    _approve(project, "app", "lib")
    lock_stage(project)
    text = project.lock_path.read_text()
    assert '"lib"' in text
    project.lock_path.write_text(text.replace('"lib"', '"lib (>=1.0-beta"', 1))
    assert load_lock(project).primary("app") is not None
    plan = make_plan(project)
    assert {"app==1.0.0", "lib==1.0.0"} <= set(plan.nodes)


def test_both_interpreters_reach_one_row_and_the_index_gives_each_its_own(
        project: Settings, upstream: LocalUpstream) -> None:
    """lib 1.0 is reached by 3.11's app 1.5 and by 3.13's app 2.0 (both lib<2): one row,
    one node with a reason for each, and pip-like choice over the planned nodes gives
    each interpreter the newest it admits."""
    _release(upstream, "app", "1.5.0", ">=3.9", requires=("lib<2",))
    _release(upstream, "app", "2.0.0", ">=3.12", requires=("lib<2",))
    _release(upstream, "lib", "1.0.0")
    _release(upstream, "lib", "2.0.0")
    _approve(project, "app", "lib")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "lib") == ["1.0.0", "2.0.0"]
    plan = make_plan(settings)
    reasons = plan.nodes["lib==1.0.0"].reasons
    assert any("for a user on 3.11" in r for r in reasons)
    assert any("for a user on 3.13" in r for r in reasons)
    assert _served_choice(settings, plan, "app", "3.11") == "1.5.0"
    assert _served_choice(settings, plan, "app", "3.13") == "2.0.0"
    # named: that project's rows for each interpreter, and what only they need
    named = make_plan(settings, ["APP"])
    assert {"app==1.5.0", "app==2.0.0", "lib==1.0.0"} <= set(named.nodes)


def test_ten_thousand_releases_the_walk_fetches_a_bounded_number(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Any]) -> None:
    """A hostile listing: 10,000 releases whose listing admits 3.11 but whose sdists all
    say >=3.12 (only a handful exist to fetch). The lock gives up after MAX_PASSED
    tries for 3.11, says so, and the rest of the lock stands."""
    import json

    from factory.lock.policy import MAX_PASSED
    from tests.local_upstream import JSON_TYPE

    real = {}
    for minor in range(0, 12):
        version = f"1.{9999 - minor}.0"
        real[version] = upstream.add("app", version, build_requires=[], backend="x",
                                     requires_python=None, files={
                                         "PKG-INFO": _pkg_info("app", version, ">=3.12", ())})
    _release(upstream, "other", "1.0.0")
    _approve(project, "app", "other")
    page = json.loads(upstream.json_page("app"))
    template = page["files"][0]
    for n in range(0, 9999 - 11):
        version = f"1.{n}.0"
        page["files"].append({**template, "filename": f"app-{version}.tar.gz",
                              "url": f"../../files/app-{version}.tar.gz",
                              "hashes": {"sha256": f"{n:064x}"}})
    body = json.dumps(page).encode()
    assert len(page["files"]) == 10000

    def serve(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", JSON_TYPE)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    hooks["/simple/app/"] = serve
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.9999.0"] and _versions(lock, "other") == ["1.0.0"]
    fetched = [r for r in upstream.requests if r.startswith("/files/app-")]
    assert len(fetched) <= 1 + MAX_PASSED, fetched
    app = lock.primary("app")
    assert app is not None and 1 <= len(app.skipped) <= MAX_PASSED
    assert app.skipped[-1].reason.endswith("no older version could be locked for 3.11")


def test_three_interpreters_each_get_their_own(project: Settings,
                                               upstream: LocalUpstream) -> None:
    _release(upstream, "app", "1.0.0", ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _release(upstream, "app", "3.0.0", ">=3.13")
    _approve(project, "app")
    settings = replace(project, build_interpreters=("3.11", "3.12", "3.13"))
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.0.0", "2.0.0", "3.0.0"]
    plan = make_plan(settings)
    assert [_served_choice(settings, plan, "app", p) for p in ("3.11", "3.12", "3.13")] == [
        "1.0.0", "2.0.0", "3.0.0"]
    first = settings.lock_path.read_bytes()
    lock_stage(settings)
    assert settings.lock_path.read_bytes() == first


def test_the_users_row_is_the_build_environments_row(project: Settings,
                                                     upstream: LocalUpstream) -> None:
    """lib 1.0, locked for a build environment, is also the newest 3.11 admits: one row
    (its build-environment reason), one node saying both."""
    _release(upstream, "tool", "1.0.0", requires=("lib==1.0.0",))
    _release(upstream, "lib", "1.0.0", ">=3.9")
    _release(upstream, "lib", "2.0.0", ">=3.12")
    upstream.add("app", "1.0.0", build_requires=["tool"], backend="x", requires=[],
                 files={"PKG-INFO": _pkg_info("app", "1.0.0", None, ())})
    _approve(project, "app", "lib")
    _approve(project, "tool", body='kind = "build-tool"\ntrack = "any"\n')
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "lib") == ["1.0.0", "2.0.0"]
    row = lock.get("lib", "1.0.0")
    assert row is not None and row.reason == "runtime requirement of tool 1.0.0 (lib==1.0.0)"
    lib = lock.primary("lib")
    assert lib is not None and lib.skipped == ()
    plan = make_plan(settings)
    reasons = plan.nodes["lib==1.0.0"].reasons
    assert any(r.endswith("for a user on 3.11") for r in reasons), reasons
    assert "in the build environment of app 1.0.0" in reasons, reasons


def test_markers_only_3_11_follows_and_pypy_only_is_not(project: Settings,
                                                        upstream: LocalUpstream) -> None:
    """app 1.5 (for 3.11) needs lib<2 under python_full_version < 3.12 and a project
    nobody approved under PyPy: the first is locked and planned, the second is not
    followed (CPython's users never ask for it) and breaks nothing."""
    _release(upstream, "app", "1.5.0", ">=3.9", requires=(
        "lib<2; python_full_version < '3.12'",
        "pypyonly; platform_python_implementation == 'PyPy'"))
    _release(upstream, "app", "2.0.0", ">=3.12")
    _release(upstream, "lib", "1.0.0")
    _release(upstream, "lib", "2.0.0")
    _approve(project, "app", "lib")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.0", "2.0.0"]
    assert _versions(lock, "lib") == ["1.0.0", "2.0.0"]
    assert "lib==1.0.0" in make_plan(settings).nodes


def test_one_interpreter_a_named_plan_takes_no_build_environment_row(
        project: Settings, upstream: LocalUpstream) -> None:
    """lib 1.0 is locked for tool's users in a build environment only; other needs lib
    (any): a plan of other alone builds neither lib row (approved rows are planned when
    asked for), and the plan of everything has lib 1.0 for app's build only."""
    _release(upstream, "tool", "1.0.0", requires=("lib==1.0.0",))
    _release(upstream, "lib", "1.0.0")
    _release(upstream, "lib", "2.0.0")
    upstream.add("app", "1.0.0", build_requires=["tool"], backend="x", requires=[],
                 files={"PKG-INFO": _pkg_info("app", "1.0.0", None, ())})
    _release(upstream, "other", "1.0.0", requires=("lib",))
    _approve(project, "app", "lib", "other")
    _approve(project, "tool", body='kind = "build-tool"\ntrack = "any"\n')
    lock, _ = lock_stage(project)
    assert _versions(lock, "lib") == ["1.0.0", "2.0.0"]
    named = make_plan(project, ["other"])
    assert "lib==1.0.0" not in named.nodes and "lib==2.0.0" not in named.nodes
    plan = make_plan(project)
    assert "in the build environment of app 1.0.0" in plan.nodes["lib==1.0.0"].reasons


def test_a_runtime_requirement_does_not_take_a_build_pin_below_what_policy_allows(
        project: Settings, upstream: LocalUpstream) -> None:
    _release(upstream, "tool", "1.0.0", requires=("lib==1.0.0",))
    for v in ("1.0.0", "1.5.0", "2.0.0"):
        _release(upstream, "lib", v)
    upstream.add("zapp", "1.0.0", build_requires=["tool"], backend="x", requires=["lib<2"],
                 files={"PKG-INFO": _pkg_info("zapp", "1.0.0", None, ("lib<2",))})
    _approve(project, "zapp", "lib")
    _approve(project, "tool", body='kind = "build-tool"\ntrack = "any"\n')
    lock, _ = lock_stage(project)
    assert "1.5.0" in _versions(lock, "lib")
    # and pip's pick is built: the users' walk takes the newest row lib<2 allows
    assert "lib==1.5.0" in make_plan(project).nodes
    first = project.lock_path.read_bytes()
    lock_stage(project)
    assert project.lock_path.read_bytes() == first


def test_an_advisory_on_the_kept_users_row_moves_it_on_a_re_lock(
        project: Settings, upstream: LocalUpstream) -> None:
    """The previous lock's 3.11 row is sticky, but not past an advisory: the next version
    3.11 admits is taken without --update."""
    settings = replace(project, build_interpreters=BOTH)
    _release(upstream, "app", "1.5.0", ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _approve(project, "app")
    lock_stage(settings)
    _release(upstream, "app", "1.5.1", ">=3.9")
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.0", "2.0.0"]  # sticky
    _advisory(project, "app", "1.5.0", "1.5.1")
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.5.1", "2.0.0"]


def test_each_planned_row_is_built_first_by_an_interpreter_that_admits_it(
        project: Settings, upstream: LocalUpstream) -> None:
    """Variants.first over the planned app rows: 1.5 (for 3.11) by the image's python3
    (3.11), 2.0 (>=3.12) by 3.13; neither by one its sdist excludes."""
    from factory.build.variants import sdist_requires_python
    from factory.upstream import cache
    from tests.test_attack_issue21c import _variants
    from tests.test_interpreter_variants import python

    _release(upstream, "app", "1.5.0", ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _approve(project, "app")
    settings = replace(project, build_interpreters=BOTH)
    lock_stage(settings)
    plan = make_plan(settings)
    found = _variants(settings, {"3.13": python("3.13.5")})
    first = {nid: found.first(node, sdist_requires_python(cache.fetch(settings,
                                                                       node.locked.sdist)))
             for nid, node in plan.nodes.items() if node.locked.key == "app"}
    assert first["app==1.5.0"] is None  # the image's python3
    cp313 = first["app==2.0.0"]
    assert cp313 is not None and cp313.tag == "cp313"


def test_upstream_down_on_a_re_lock_keeps_the_users_row(
        project: Settings, upstream: LocalUpstream, hooks: dict[str, Any]) -> None:
    """The last good pin stands while upstream cannot be read, the 3.11 row with it."""
    from factory.lock import lock_report

    settings = replace(project, build_interpreters=BOTH)
    _release(upstream, "app", "1.5.0", ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _approve(project, "app")
    lock_stage(settings)
    before = settings.lock_path.read_bytes()

    def down(handler: Any) -> None:
        handler.send_response(503)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    hooks["/simple/app/"] = down
    result = lock_report(settings)
    assert [p.name for p in result.problems] == ["app"]
    assert _versions(result.lock, "app") == ["1.5.0", "2.0.0"]
    assert settings.lock_path.read_bytes() == before


def test_an_older_row_with_a_local_version(project: Settings, upstream: LocalUpstream) -> None:
    """A hostile index offers lib 1.0.0+local (PyPI refuses local versions; another
    index need not), locked for a build environment: the users walk compares it as a
    version, not through a '>1.0.0+local' specifier PEP 440 does not allow."""
    _release(upstream, "tool", "1.0.0", requires=("lib==1.0.0+local",))
    _release(upstream, "lib", "1.0.0+local", ">=3.9")
    _release(upstream, "lib", "1.5.0", ">=3.9")
    _release(upstream, "lib", "2.0.0", ">=3.12")
    upstream.add("app", "1.0.0", build_requires=["tool"], backend="x", requires=[],
                 files={"PKG-INFO": _pkg_info("app", "1.0.0", None, ())})
    _approve(project, "app", "lib")
    _approve(project, "tool", body='kind = "build-tool"\ntrack = "any"\n')
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "lib") == ["1.0.0+local", "1.5.0", "2.0.0"]
    plan = make_plan(settings)
    assert _served_choice(settings, plan, "lib", "3.11") == "1.5.0"


def test_an_older_version_whose_sdist_cannot_be_fetched_at_lock_time(
        project: Settings, upstream: LocalUpstream) -> None:
    """1.5's file is listed but gone: the lock stands, and 2.0 says in one line why
    3.11's users get no app."""
    _release(upstream, "app", "1.5.0", ">=3.9")
    _release(upstream, "app", "2.0.0", ">=3.12")
    _release(upstream, "other", "1.0.0")
    _approve(project, "app", "other")
    gone = upstream.find("app-1.5.0.tar.gz")
    assert gone is not None
    gone.path.write_bytes(b"")  # listed with the old sha256; served empty
    lock, _ = lock_stage(replace(project, build_interpreters=BOTH))
    assert _versions(lock, "app") == ["2.0.0"] and _versions(lock, "other") == ["1.0.0"]
    app = lock.primary("app")
    assert app is not None and [s.version for s in app.skipped] == ["1.5.0"]
    reason = app.skipped[0].reason
    assert "\n" not in reason and len(reason) < 400, reason
    assert reason.endswith("(for 3.11, which 2.0.0 excludes: none is locked)"), reason


def test_the_newest_excludes_the_newer_interpreter(project: Settings,
                                                   upstream: LocalUpstream) -> None:
    """app 2.0 says <3.13 (an upper bound): 3.13's users get 1.9, built and planned for
    them, and 3.11's keep 2.0."""
    _release(upstream, "app", "1.9.0", ">=3.9", requires=("lib<2",))
    _release(upstream, "app", "2.0.0", ">=3.9,<3.13", requires=("lib>=2",))
    _release(upstream, "lib", "1.0.0")
    _release(upstream, "lib", "2.0.0")
    _approve(project, "app", "lib")
    settings = replace(project, build_interpreters=BOTH)
    lock, _ = lock_stage(settings)
    assert _versions(lock, "app") == ["1.9.0", "2.0.0"]
    assert _versions(lock, "lib") == ["1.0.0", "2.0.0"]
    older = lock.get("app", "1.9.0")
    assert older is not None and older.reason == "approved, the newest version 3.13 admits"
    plan = make_plan(settings)
    assert plan.nodes["app==1.9.0"].reasons == ["approved, for a user on 3.13"]
    assert plan.nodes["lib==1.0.0"].reasons == [
        "runtime requirement of app 1.9.0, for a user on 3.13"]
    assert _served_choice(settings, plan, "app", "3.11") == "2.0.0"
    assert _served_choice(settings, plan, "app", "3.13") == "1.9.0"
