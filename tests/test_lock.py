from __future__ import annotations

import shutil

import pytest

from factory.config import Settings
from factory.errors import LockError, PolicyError, UpstreamError
from factory.lock import check_stage, load_lock, lock_stage
from tests import factories
from tests.local_upstream import LocalUpstream


def tool(upstream: LocalUpstream, settings: Settings, name: str = "setuptools",
         versions: tuple[str, ...] = ("80.0.0",)) -> None:
    """A self-contained build tool (no build requirements), approved."""
    for v in versions:
        upstream.add(name, v, build_requires=[], backend="x")
    factories.recipe(settings.root, name, 'kind = "build-tool"\ntrack = "any"\n')


def demo_locked(project: Settings, upstream: LocalUpstream) -> bytes:
    """The tool and demo 1.0.0 approved and locked: recipes.lock's bytes."""
    tool(upstream, project)
    upstream.add("demo", "1.0.0")
    factories.recipe(project.root, "demo")
    lock_stage(project)
    return project.lock_path.read_bytes()


def test_lock_takes_newest_allowed_and_says_why_others_were_skipped(
        project: Settings, upstream: LocalUpstream) -> None:
    tool(upstream, project)
    for version in ("1.0.0", "1.1.0", "1.2.0", "2.0.0", "1.4.0rc1"):
        upstream.add("demo", version)
    upstream.add("demo", "1.3.0", yanked="broken")
    upstream.add("demo", "1.2.5", age_days=0.1)  # too young for the cooldown
    (project.root.parent / "advisories" / "ADV-1.json").write_text(
        '{"id": "ADV-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"},'
        ' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.2.0"},'
        ' {"fixed": "1.2.1"}]}]}]}')
    factories.recipe(project.root, "demo", 'versions = ">=1,<2"\ncooldown_days = 1\n')
    lock, changes = lock_stage(project)
    demo = lock.primary("demo")
    assert demo is not None and demo.version == "1.1.0"
    reasons = {s.version: s.reason for s in demo.skipped}
    assert reasons["2.0.0"].startswith("outside range")
    assert reasons["1.4.0rc1"] == "pre-release"
    assert reasons["1.3.0"] == "yanked: broken"
    assert reasons["1.2.5"].startswith("cooldown")
    assert reasons["1.2.0"] == "advisory ADV-1"
    release = upstream.find("demo-1.1.0.tar.gz")
    assert release is not None
    assert demo.sdist.sha256 == release.sha256
    assert demo.sdist.size == release.path.stat().st_size
    assert demo.sdist.upload_time is not None
    assert demo.build_requires == ("setuptools>=61",)
    assert [c.name for c in changes] == ["demo", "setuptools"]


def test_lock_is_deterministic_and_stable(project: Settings, upstream: LocalUpstream) -> None:
    first = demo_locked(project, upstream)
    _, changes = lock_stage(project)
    assert project.lock_path.read_bytes() == first
    assert changes == []


def test_build_requirements_can_need_a_second_version_of_a_tool(
        project: Settings, upstream: LocalUpstream) -> None:
    tool(upstream, project, versions=("80.0.0", "84.0.0", "84.2.1"))
    upstream.add("picky", "1.0.0", build_requires=["setuptools>=68,<84.1"])
    factories.recipe(project.root, "picky")
    lock, _ = lock_stage(project)
    versions = sorted(c.version for c in lock.components if c.name == "setuptools")
    assert versions == ["84.0.0", "84.2.1"]
    second = lock.get("setuptools", "84.0.0")
    assert second is not None and "build requirement of picky 1.0.0" in second.reason


def test_unapproved_build_requirement_is_refused(project: Settings,
                                                  upstream: LocalUpstream) -> None:
    upstream.add("demo", "1.0.0", build_requires=["hatchling>=1"])
    upstream.add("hatchling", "1.5.0")
    factories.recipe(project.root, "demo")
    with pytest.raises(LockError, match="build requirement hatchling>=1 of demo 1.0.0 is not "
                       "approved") as info:
        lock_stage(project)
    assert "factory add hatchling" in info.value.hint
    assert not project.lock_path.exists()


def test_runtime_requirements_must_be_approved_too(project: Settings,
                                                    upstream: LocalUpstream) -> None:
    tool(upstream, project)
    upstream.add("app", "1.0.0", requires=["lib>=2", "win-only; sys_platform == 'win32'"])
    upstream.add("lib", "2.1.0")
    factories.recipe(project.root, "app")
    with pytest.raises(LockError, match="runtime requirement lib>=2 of app"):
        lock_stage(project)
    factories.recipe(project.root, "lib")
    lock, _ = lock_stage(project)  # the win32-only requirement does not apply
    assert {c.name for c in lock.components} == {"app", "lib", "setuptools"}


def test_name_unknown_upstream(project: Settings, upstream: LocalUpstream) -> None:
    factories.recipe(project.root, "reqeusts")
    with pytest.raises(UpstreamError, match="does not know 'reqeusts'"):
        lock_stage(project)


def test_no_allowed_version_is_a_policy_error(project: Settings,
                                              upstream: LocalUpstream) -> None:
    upstream.add("demo", "3.0.0")
    factories.recipe(project.root, "demo", 'versions = "<2"\n')
    with pytest.raises(PolicyError, match="no version of demo satisfies policy"):
        lock_stage(project)


def test_update_moves_within_track_only(project: Settings, upstream: LocalUpstream) -> None:
    tool(upstream, project)
    upstream.add("demo", "1.0.0")
    factories.recipe(project.root, "demo", 'versions = ">=1"\ntrack = "patch"\n')
    lock_stage(project)
    upstream.add("demo", "1.0.1")
    upstream.add("demo", "1.1.0")
    _, changes = lock_stage(project)  # without --update nothing moves
    assert changes == []
    lock, changes = lock_stage(project, update=True)
    assert lock.primary("demo").version == "1.0.1"  # type: ignore[union-attr]
    assert [c.describe() for c in changes] == ["demo: 1.0.0 -> 1.0.1 (update)"]


def test_plain_lock_moves_off_an_advisory(project: Settings, upstream: LocalUpstream) -> None:
    tool(upstream, project)
    upstream.add("demo", "1.0.0")
    upstream.add("demo", "1.0.1", age_days=0)
    factories.recipe(project.root, "demo", 'versions = "==1.0.0"\n')
    lock_stage(project)
    # the fix is younger than the cooldown: a security fix does not wait it out
    factories.recipe(project.root, "demo", 'versions = ">=1"\ntrack = "patch"\ncooldown_days = 5\n')
    (project.root.parent / "advisories" / "A.json").write_text(
        '{"id": "A-2", "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"},'
        ' "versions": ["1.0.0"]}]}')
    lock, changes = lock_stage(project)
    assert lock.primary("demo").version == "1.0.1"  # type: ignore[union-attr]
    assert "advisory A-2" in changes[0].why


def test_check_finds_every_mismatch(project: Settings, upstream: LocalUpstream) -> None:
    tool(upstream, project)
    upstream.add("demo", "1.5.0")
    factories.recipe(project.root, "demo")
    lock_stage(project)
    assert check_stage(project) == []
    factories.recipe(project.root, "demo", 'versions = "<1"\n')
    factories.recipe(project.root, "other")
    problems = check_stage(project)
    assert any("other: approved" in p and "missing from the lock" in p for p in problems)
    assert any("outside the recipe's range" in p for p in problems)
    (project.root / "recipes" / "other.toml").unlink()
    (project.root / "recipes" / "demo.toml").unlink()
    assert any("no recipe approves it" in p for p in check_stage(project))


def test_html_only_upstream_falls_back_to_pep503(project: Settings,
                                                 upstream: LocalUpstream) -> None:
    tool(upstream, project)
    upstream.add("demo", "1.0.0")
    upstream.html_only = True
    factories.recipe(project.root, "demo")
    lock, _ = lock_stage(project)
    entry = lock.primary("demo")
    assert entry is not None and entry.sdist.size > 0 and entry.sdist.upload_time is None


def test_transient_failures_are_retried(project: Settings, upstream: LocalUpstream) -> None:
    tool(upstream, project)
    upstream.add("demo", "1.0.0")
    factories.recipe(project.root, "demo")
    upstream.failures_left = 2
    lock, _ = lock_stage(project)
    assert lock.primary("demo") is not None


def test_upstream_down_is_a_clear_error(project: Settings, upstream: LocalUpstream) -> None:
    factories.recipe(project.root, "demo")
    upstream.failures_left = 10**6
    with pytest.raises(UpstreamError, match=r"did not answer after 3 tries \(HTTP 503\)"):
        lock_stage(project)
    assert not project.lock_path.exists()


def test_lock_file_survives_a_failed_update(project: Settings, upstream: LocalUpstream) -> None:
    before = demo_locked(project, upstream)
    factories.recipe(project.root, "demo", 'versions = ">=9"\n')
    with pytest.raises(PolicyError):
        lock_stage(project, update=True)
    assert project.lock_path.read_bytes() == before
    shutil.rmtree(project.state_dir)
    assert load_lock(project).primary("demo") is not None
