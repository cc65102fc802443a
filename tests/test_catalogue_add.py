"""`factory add` and the lock at catalogue scale: approve a project and its whole
closure in one command, report every problem in one run, and take the newest
release whose requirements can be met (issue 17), against the local upstream."""

from __future__ import annotations

import fnmatch
import io
import json
import tomllib
import zipfile

import pytest

from factory.approve import add, parse_asked
from factory.config import Settings
from factory.errors import LockError, RecipeError
from factory.lock import load_lock, lock_report, lock_stage
from factory.recipes import load_recipes
from tests import factories
from tests.factories import cli
from tests.local_upstream import FRONT_END, LocalUpstream, build_tool, build_tools


def catalogue(upstream: LocalUpstream) -> None:
    """app needs lib (runtime) and builds with backend (a build tool that needs helper);
    lib needs one extra's dependency only through app's ``lib[fast]``."""
    upstream.add("app", "2.0.0", requires=["lib[fast]>=1"],
                 build_requires=["backend>=1", "setuptools>=61"])
    upstream.add("lib", "1.0.0", requires=['speedup; extra == "fast"'])
    upstream.add("lib", "1.1.0", requires=['speedup; extra == "fast"'])
    upstream.add("speedup", "0.5.0", license="Apache-2.0")
    upstream.add("backend", "1.2.0", requires=["helper"], build_requires=["setuptools>=61"])
    upstream.add("helper", "3.0.0", license="BSD-3-Clause OR GPL-2.0-only")


def test_add_writes_the_whole_closure_with_kinds_licenses_and_locks_once(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    catalogue(upstream)
    report = add(project, ["app"])
    assert report.ok, report
    added = {p.key: p for p in report.added}
    assert set(added) == {"app", "lib", "speedup", "backend", "helper"}
    recipes = load_recipes(project)
    assert recipes["app"].kind == "runtime" and recipes["lib"].kind == "runtime"
    assert recipes["speedup"].kind == "runtime"  # through app's lib[fast]
    assert recipes["backend"].kind == "build-tool"
    assert recipes["helper"].kind == "build-tool"  # a build tool's runtime dependency
    # only the side of the OR the site policy allows: a release under the other alone
    # must go to a human
    assert recipes["helper"].licenses == ("BSD-3-Clause",)
    assert str(recipes["lib"].versions) == ">=1.1.0"  # from the oldest release taken on
    assert report.approved_already == sorted([*FRONT_END, "setuptools"])
    lock = load_lock(project)
    assert {c.key for c in lock.components if c.is_primary} == {
        "app", "lib", "speedup", "backend", "helper", "setuptools", *FRONT_END}
    assert lock.primary("lib").version == "1.1.0"  # type: ignore[union-attr]
    text = (project.recipes_dir / "lib.toml").read_text()
    assert text.startswith("# Added by `factory add app`")
    assert "runtime requirement of app 2.0.0" in text


def test_add_dry_run_writes_nothing(project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    catalogue(upstream)
    report = add(project, ["app"], dry_run=True)
    assert {p.key for p in report.added} == {"app", "lib", "speedup", "backend", "helper"}
    assert sorted(p.name for p in project.recipes_dir.iterdir()) == sorted(
        f"{n}.toml" for n in [*FRONT_END, "setuptools"])
    assert not project.lock_path.exists()


def test_a_license_outside_policy_needs_a_human_and_holds_back_what_needs_it(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("app", "1.0.0", requires=["gpl-lib", "fine"])
    upstream.add("gpl-lib", "1.0.0", license="GPL-3.0-only")
    upstream.add("fine", "1.0.0")
    upstream.add("other", "1.0.0")
    upstream.add("nolicense", "1.0.0", license=None)
    report = add(project, ["app", "other", "nolicense"])
    assert not report.ok
    human = {n.key: n for n in report.needs_human}
    assert set(human) == {"gpl-lib", "nolicense"}
    assert "GPL-3.0-only is outside the site policy" in human["gpl-lib"].problem
    assert human["gpl-lib"].needed_by == ("app",)
    assert "license unknown" in human["nolicense"].problem
    assert [(p.key, cause) for p, cause in report.held_back] == [("app", "gpl-lib")]
    # what is within policy and needs nothing outside it is approved and locked
    assert {p.key for p in report.added} == {"fine", "other"}
    assert not (project.recipes_dir / "gpl-lib.toml").exists()
    assert not (project.recipes_dir / "app.toml").exists()
    assert load_lock(project).primary("other") is not None


def test_the_site_license_policy_is_read_from_factory_toml(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("gpl-lib", "1.0.0", license="GPL-3.0-only")
    config = project.root / "factory.toml"
    config.write_text(config.read_text() + '[policy]\nlicenses = ["MIT", "GPL-3.0-only"]\n')
    from factory.config import load_settings

    report = add(load_settings(project.root), ["gpl-lib"])
    assert report.ok and [p.key for p in report.added] == ["gpl-lib"]


def test_add_takes_the_newest_release_whose_build_requirements_upstream_has(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("proj", "1.0.0")
    upstream.add("proj", "2.0.0", build_requires=["vanished-backend>=1"])
    upstream.add("proj", "3.0.0", build_requires=["setuptools>=61", "old-tool>=5"])
    upstream.add("old-tool", "4.0.0")
    report = add(project, ["proj"])
    (proposed,) = report.added
    assert proposed.version == "1.0.0"
    reasons = {s.version: s.reason for s in proposed.skipped}
    assert "vanished-backend>=1 (build), which upstream does not have" in reasons["2.0.0"]
    assert "old-tool>=5 (build), which upstream has no sdist of" in reasons["3.0.0"]


def test_a_name_upstream_does_not_know_and_a_wheel_only_project_need_a_human(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("real", "1.0.0")
    upstream.add_file("wheelonly", factories.wheel(upstream.directory / "files", "wheelonly"))
    report = add(project, ["reqeusts", "real", "wheelonly"])
    human = {n.key: n.problem for n in report.needs_human}
    assert "does not know 'reqeusts'" in human["reqeusts"]
    assert "no sdist" in human["wheelonly"]
    assert [p.key for p in report.added] == ["real"]


@pytest.mark.parametrize("item", ["../evil", "x @ http://evil.example/x.tar.gz",
                                  'x; python_version > "3"', "", "a b", "fla\x1bsk"])
def test_add_refuses_what_is_not_a_name_and_range(item: str) -> None:
    with pytest.raises(RecipeError):
        parse_asked([item])


def test_add_never_overwrites_an_existing_recipe(project: Settings,
                                                  upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("lib", "1.0.0")
    upstream.add("app", "1.0.0", requires=["lib"])
    factories.recipe(project.root, "lib", 'versions = "==1.0.0"\n')
    before = (project.recipes_dir / "lib.toml").read_bytes()
    report = add(project, ["app"])
    assert report.approved_already == sorted([*FRONT_END, "lib", "setuptools"])
    assert (project.recipes_dir / "lib.toml").read_bytes() == before


# -- the lock: every problem in one run; the newest release that can be met ------------------

def test_lock_reports_every_problem_in_one_run_and_locks_the_rest(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("one", "1.0.0", requires=["missing-a"])
    upstream.add("two", "1.0.0", build_requires=["setuptools>=61", "missing-b"])
    upstream.add("missing-a", "1.0.0")
    upstream.add("missing-b", "1.0.0")
    upstream.add("fine", "1.0.0")
    for name in ("one", "two", "fine"):
        factories.recipe(project.root, name)
    report = lock_report(project)
    problems = {p.name: p for p in report.problems}
    assert set(problems) == {"missing-a", "missing-b"}
    assert problems["missing-a"].waiting == ("one",)
    assert "factory add missing-a" in (problems["missing-a"].hint or "")
    lock = load_lock(project)
    assert lock.primary("fine") is not None
    assert lock.primary("one") is None and lock.primary("two") is None
    with pytest.raises(LockError, match=r"and 1 more"):
        lock_stage(project)


def test_cli_lock_prints_each_problem_on_one_line(project: Settings,
                                                  upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("one", "1.0.0", requires=["missing-a"])
    upstream.add("two", "1.0.0", requires=["missing-b"])
    for name in ("one", "two"):
        factories.recipe(project.root, name)
    result = cli(project, "lock")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("(hint: " in e for e in errors), result.stderr
    assert "Traceback" not in result.stderr


def test_lock_passes_over_a_release_whose_requirement_no_recipe_allows(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("dep", "1.0.0")
    upstream.add("dep", "2.0.0")
    factories.recipe(project.root, "dep", 'versions = "<2"\n')
    upstream.add("proj", "1.0.0", requires=["dep>=1"])
    upstream.add("proj", "1.1.0", requires=["dep>=2"])
    upstream.add("proj", "1.2.0", build_requires=["setuptools>=61", "gone-upstream"])
    factories.recipe(project.root, "proj")
    lock = lock_stage(project)[0]
    entry = lock.primary("proj")
    assert entry is not None and entry.version == "1.0.0"
    reasons = {s.version: s.reason for s in entry.skipped}
    assert "recipes/dep.toml allows no version" in reasons["1.1.0"]
    assert "gone-upstream (build), which upstream does not have" in reasons["1.2.0"]
    # and the lock file says so, for the next reader
    rows = tomllib.loads(project.lock_path.read_text())["component"]
    proj = next(r for r in rows if r["name"] == "proj")
    assert {s["version"] for s in proj["skipped"]} >= {"1.1.0", "1.2.0"}


def test_lock_follows_extras_of_a_requirement(project: Settings,
                                              upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("app", "1.0.0", requires=["lib[fast]"])
    upstream.add("lib", "1.0.0", requires=['speedup; extra == "fast"', 'slow; extra == "no"'])
    upstream.add("speedup", "1.0.0")
    for name in ("app", "lib", "speedup"):
        factories.recipe(project.root, name)
    lock = lock_stage(project)[0]
    assert any(c.key == "speedup" for c in lock.components)


def test_a_failing_component_keeps_its_last_good_pin(project: Settings,
                                                     upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("demo", "1.0.0")
    upstream.add("other", "1.0.0")
    factories.recipe(project.root, "demo")
    factories.recipe(project.root, "other")
    lock_stage(project)
    factories.recipe(project.root, "demo", 'versions = ">=9"\n')
    report = lock_report(project, update=True)
    assert [p.name for p in report.problems] == ["demo"]
    assert "kept demo 1.0.0" in report.problems[0].message
    assert load_lock(project).primary("demo") is not None


def test_cli_add_json_and_exit_code(project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("app", "1.0.0", requires=["gpl-lib"])
    upstream.add("gpl-lib", "1.0.0", license="GPL-3.0-only")
    result = cli(project, "add", "app", "--dry-run", "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["needs_human"][0]["name"] == "gpl-lib"
    assert data["held_back"] == [{"name": "app", "waits_for": "gpl-lib"}]
    plain = cli(project, "add", "app", "--dry-run")
    errors = [line for line in plain.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "gpl-lib" in errors[0] and "(hint: " in errors[0]


def test_cli_add_from_a_catalogue_file(project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("one", "1.0.0")
    upstream.add("two", "1.0.0")
    upstream.add("two", "2.0.0")
    catalogue_file = project.root / "cat.toml"
    catalogue_file.write_text('[[project]]\nname = "one"\n[[project]]\nname = "two"\n'
                              'versions = "<2"\n[[excluded]]\nname = "three"\n')
    result = cli(project, "add", "--from", str(catalogue_file), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {(a["name"], a["version"]) for a in data["added"]} == {("one", "1.0.0"),
                                                                   ("two", "1.0.0")}
    assert load_lock(project).primary("two").version == "1.0.0"  # type: ignore[union-attr]
    catalogue_file.write_text("[[project]]\nnom = 1\n")
    bad = cli(project, "add", "--from", str(catalogue_file))
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert bad.returncode != 0 and len(errors) == 1 and "[[project]]" in errors[0]


def test_dependents_that_disagree_get_one_release_each(project: Settings,
                                                       upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    for version in ("1.0.0", "1.5.0", "2.0.0", "3.0.0"):
        upstream.add("tool", version)
    upstream.add("old-user", "1.0.0", build_requires=["setuptools>=61", "tool<2"])
    upstream.add("new-user", "1.0.0", requires=["tool>=2,<3"])
    report = add(project, ["old-user", "new-user"])
    assert report.ok, report
    assert str(load_recipes(project)["tool"].versions) == ">=1.5.0"
    lock = load_lock(project)
    assert {c.version for c in lock.components if c.key == "tool"} == {"3.0.0", "1.5.0",
                                                                       "2.0.0"}


def test_a_pre_release_is_taken_only_when_a_requirement_names_one(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("conventions", "0.66b2")
    upstream.add("sdk", "1.0.0", requires=["conventions==0.66b2"])
    upstream.add("beta-only", "0.1b1")
    report = add(project, ["sdk", "beta-only"])
    assert [p.key for p in report.added] == ["conventions", "sdk"], report
    assert "pre-release" in {n.key: n.problem for n in report.needs_human}["beta-only"]
    assert load_lock(project).primary("conventions").version == "0.66b2"  # type: ignore[union-attr]


def test_an_sdist_shipping_prebuilt_files_needs_a_human_with_the_line_to_add(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    elf = b"\x7fELF\x02\x01\x01" + b"\0" * 200
    upstream.add("bins", "1.0.0", files={f"tests/data/lib{i}.so": elf for i in range(3)}
                 | {"src/_speed.so": elf})
    report = add(project, ["bins"])
    (need,) = report.needs_human
    assert need.key == "bins" and "ships prebuilt" in need.problem
    assert 'allow_prebuilt = ["src/_speed.so", "tests/data/*"]' in need.hint
    assert not (project.recipes_dir / "bins.toml").exists()


def test_following_the_prebuilt_hint_admits_every_file_it_named(
        project: Settings, upstream: LocalUpstream) -> None:
    """Twelve prebuilt files in nine directories (Django's test eggs and zips): the hint
    once named only its first eight entries, so a user who pasted it met the next file.
    It now covers them all, with directories nearer the top past eight entries."""
    build_tools(upstream, project)
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("module.py", "VALUE = 1\n")
    egg = packed.getvalue()
    names = ["tests/app_loading/eggs/a.egg", "tests/app_loading/eggs/b.egg",
             "tests/app_loading/eggs/c.egg", "tests/fixtures/fixtures/f4.json.zip",
             "tests/fixtures/fixtures/f5.json.zip", "tests/template_tests/eggs/t.egg",
             "tests/user_commands/eggs/basic.egg", "tests/utils_tests/archives/foo.zip",
             "tests/utils_tests/archives/lead.zip", "tests/utils_tests/eggs/test_egg.egg",
             "tests/utils_tests/traversal_archives/win.zip", "docs/_static/x.zip"]
    upstream.add("many", "1.0.0", files={n: egg for n in names})
    (need,) = add(project, ["many"]).needs_human
    line = need.hint.split(": ", 1)[1]
    assert line.startswith("allow_prebuilt = ")
    globs = json.loads(line.removeprefix("allow_prebuilt = "))
    assert len(globs) <= 8 and "*" not in globs
    assert all(any(fnmatch.fnmatchcase(n, g) for g in globs) for n in names), globs
    factories.recipe(project.root, "many", f"{line}\n")
    report = add(project, ["many"])
    assert report.ok and not report.needs_human, report


def test_a_build_refusing_prebuilt_files_keeps_the_line_to_paste(
        project: Settings, upstream: LocalUpstream) -> None:
    """The lock may add a row `add` never scanned (an older version for 3.11's users
    ships other prebuilt files): `factory build` refuses it at fetch, and said only the
    cause; the failure now carries the hint, whole, and pasting it admits the sdist."""
    from factory.fetch import fetch_stage

    build_tools(upstream, project)
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("module.py", "VALUE = 1\n")
    # seven files in seven directories: a hint of over 400 characters, past the 240 a
    # failure's hint was cut to
    names = [f"integration-suite-number-{i}/fixtures/prebuilt-plugin-{i}.egg"
             for i in range(7)]
    upstream.add("many", "1.0.0", files=dict.fromkeys(names, packed.getvalue()))
    factories.recipe(project.root, "many")
    lock_stage(project)
    refused: dict[str, str] = {}
    fetch_stage(project, names={"many"}, failed=refused)
    why = refused["many==1.0.0"]
    assert "ships prebuilt" in why and "allow_prebuilt = " in why
    line = "allow_prebuilt = " + why.split("allow_prebuilt = ", 1)[1].removesuffix(")")
    factories.recipe(project.root, "many", 'allow_prebuilt = ["docs/*"]\n')
    lock_stage(project)
    refused.clear()
    fetch_stage(project, names={"many"}, failed=refused)
    # what the recipe allowed already is kept in the line to paste
    kept = "allow_prebuilt = " + refused["many==1.0.0"].split("allow_prebuilt = ", 1)[1]
    assert kept.removesuffix(")") == line.replace('= [', '= ["docs/*", ', 1)
    factories.recipe(project.root, "many", f"{line}\n")
    refused.clear()
    lock_stage(project)
    assert [f.component.key for f in fetch_stage(project, names={"many"}, failed=refused)] == [
        "many"] and not refused


def test_the_licenses_of_every_release_taken_are_approved(project: Settings,
                                                          upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("dep", "1.0.0", license="MIT")
    upstream.add("dep", "2.0.0", license="MIT-0")
    upstream.add("old-user", "1.0.0", requires=["dep<2"])
    report = add(project, ["old-user", "dep"])
    assert report.ok, report
    assert set(load_recipes(project)["dep"].licenses) == {"MIT", "MIT-0"}


def test_a_catalogues_reviewed_allowances_approve_what_a_human_allowed(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    elf = b"\x7fELF\x02\x01\x01" + b"\0" * 200
    upstream.add("bins", "1.0.0", files={"tests/data/lib (x86).so": elf, "src/_speed.so": elf})
    reviewed = project.root / "reviewed.toml"
    reviewed.write_text('[[reviewed]]\nname = "Bins"\nallow_prebuilt = ["tests/data/*"]\n'
                        'why = "test data"\n')
    result = cli(project, "add", "bins", "--from", str(reviewed), "--dry-run", "--json")
    data = json.loads(result.stdout)
    assert [n["name"] for n in data["needs_human"]] == ["bins"]  # src/_speed.so was not
    assert '"src/_speed.so"' in data["needs_human"][0]["hint"]
    reviewed.write_text(reviewed.read_text().replace('"tests/data/*"',
                                                     '"tests/data/*", "src/_speed.so"'))
    result = cli(project, "add", "bins", "--from", str(reviewed))
    assert result.returncode == 0, result.stderr
    assert load_recipes(project)["bins"].allow_prebuilt == ("tests/data/*", "src/_speed.so")
    reviewed.write_text('[[reviewed]]\nname = "x"\nallow_prebuilt = ["a"]\n')  # no why
    assert cli(project, "add", "x", "--from", str(reviewed)).returncode != 0


def test_what_every_build_needs_is_approved_as_build_tools(project: Settings,
                                                           upstream: LocalUpstream) -> None:
    build_tool(upstream, project)
    for name in FRONT_END:
        upstream.add(name, "1.0.0", build_requires=[], backend="x")
    upstream.add("app", "1.0.0")
    report = add(project, ["app"])
    assert report.ok, report
    recipes = load_recipes(project)
    assert all(recipes[name].kind == "build-tool" for name in FRONT_END)
    assert recipes["app"].kind == "runtime"
