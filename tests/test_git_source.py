"""Recipes whose source is a git tag: versions from tags, pinned commits, verified archives."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from factory import fetch
from factory._internal.atomic import sha256_file
from factory.config import Settings
from factory.errors import AlarmError, IntegrityError, RecipeError
from factory.lock import lock_stage
from factory.recipes import load_recipes
from factory.upstream import archive
from tests import factories
from tests.local_upstream import LocalUpstream


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_version(repo: Path, version: str, tag: bool = True) -> str:
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "gitdemo"\nversion = "{version}"\nlicense = "MIT"\n'
        'dependencies = []\n')
    (repo / "gitdemo.py").write_text(f'VERSION = "{version}"\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", version)
    if tag:
        git(repo, "tag", "-a", f"v{version}", "-m", version)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "gitdemo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit_version(path, "1.0.0")
    commit_version(path, "1.1.0")
    commit_version(path, "2.0.0")
    git(path, "tag", "not-a-version")
    return path


@pytest.fixture
def git_project(project: Settings, upstream: LocalUpstream, repo: Path) -> Settings:
    upstream.add("setuptools", "80.0.0", build_requires=[], backend="x")
    factories.recipe(project.root, "setuptools", 'kind = "build-tool"\n')
    factories.recipe(project.root, "gitdemo", f'versions = "<2"\nlicenses = ["MIT"]\n'
                 f'[source]\ngit = "file://{repo}"\ntag = "v{{version}}"\n')
    return project


def test_lock_pins_the_tag_commit_and_the_archive_digest(git_project: Settings,
                                                         repo: Path) -> None:
    lock, _ = lock_stage(git_project)
    entry = lock.primary("gitdemo")
    assert entry is not None and entry.version == "1.1.0"
    commit = git(repo, "rev-parse", "v1.1.0^{commit}")
    assert entry.sdist.url == f"git+file://{repo}@{commit}#tag=v1.1.0"
    assert entry.sdist.filename == "gitdemo-1.1.0.tar" and entry.sdist.size > 0
    assert [s.version for s in entry.skipped] == ["2.0.0"]
    assert entry.build_requires == ("setuptools>=61",)  # read from the archive's pyproject


def test_fetch_remakes_and_verifies_the_archive(git_project: Settings) -> None:
    lock, _ = lock_stage(git_project)
    for path in git_project.sources_dir.rglob("gitdemo-*.tar"):
        path.unlink()
    fetched = {f.component.name: f for f in fetch.fetch_stage(git_project)}
    item = fetched["gitdemo"]
    assert sha256_file(item.path) == item.component.sdist.sha256
    root = archive.extract(item.path, git_project.state_dir / "tree")
    assert root.name == "gitdemo-1.1.0" and (root / "gitdemo.py").read_text() == \
        'VERSION = "1.1.0"\n'


def test_a_moved_tag_is_refused_then_relocked(git_project: Settings, repo: Path) -> None:
    lock, _ = lock_stage(git_project)
    old = lock.primary("gitdemo")
    assert old is not None
    git(repo, "tag", "-d", "v1.1.0")
    moved = commit_version(repo, "1.1.0", tag=False)
    git(repo, "tag", "-a", "v1.1.0", "-m", "moved")
    for path in git_project.sources_dir.rglob("gitdemo-*.tar"):
        path.unlink()
    with pytest.raises(IntegrityError, match="now names commit"):
        fetch.fetch_stage(git_project, {"gitdemo"})
    # a moved tag is an upstream alarm: never a silent re-pin; the old pin is kept
    with pytest.raises(AlarmError, match="now names commit"):
        lock_stage(git_project)
    assert fetch.load_lock(git_project).primary("gitdemo") == old
    lock, changes = lock_stage(git_project, accept={"gitdemo"})
    entry = lock.primary("gitdemo")
    assert entry is not None and moved in entry.sdist.url
    assert any(c.why.startswith("accepted upstream change") and "now names commit" in c.why
               for c in changes)


def test_git_source_with_a_cooldown_is_a_recipe_error(project: Settings, repo: Path) -> None:
    factories.recipe(project.root, "gitdemo", f'cooldown_days = 2\n[source]\ngit = "file://{repo}"\n')
    with pytest.raises(RecipeError, match="cooldown_days"):
        load_recipes(project)
