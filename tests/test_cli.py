"""The CLI as a user meets it: one-line errors with hints, JSON for machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from factory import __version__
from factory.config import Settings
from tests import factories
from tests.local_upstream import LocalUpstream


def factory(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACTORY_ROOT": str(settings.root)}
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "(hint: " in lines[0]
    for word in words:
        assert word in lines[0]


def test_version(project: Settings) -> None:
    result = factory(project, "--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_recipes_check_reports_each_bad_file(project: Settings) -> None:
    factories.recipe(project.root, "good")
    factories.recipe(project.root, "bad", "colour = 'blue'\n")
    factories.recipe(project.root, "worse", 'versions = ">>1"\n')
    result = factory(project, "recipes", "check")
    assert result.returncode == 1
    assert "bad.toml: field 'colour': unknown key" in result.stderr
    assert "worse.toml: field 'versions'" in result.stderr
    result = factory(project, "recipes", "check", "--json")
    assert json.loads(result.stdout)["recipes"] == ["good"]


def test_lock_with_a_bad_recipe_is_one_line(project: Settings) -> None:
    factories.recipe(project.root, "bad", "colour = 'blue'\n")
    assert_one_line_error(factory(project, "lock"), "bad.toml", "colour")


def test_lock_fetch_check_round_trip(project: Settings, upstream: LocalUpstream) -> None:
    upstream.add("setuptools", "80.0.0", build_requires=[], backend="x")
    upstream.add("demo", "1.0.0")
    factories.recipe(project.root, "setuptools", 'kind = "build-tool"\n')
    factories.recipe(project.root, "demo")
    result = factory(project, "lock")
    assert result.returncode == 0, result.stderr
    assert "demo: added 1.0.0" in result.stdout
    check = factory(project, "lock", "--check", "--json")
    assert json.loads(check.stdout) == {"ok": True, "problems": []}
    fetched = factory(project, "fetch", "--json")
    assert sorted(f["name"] for f in json.loads(fetched.stdout)) == ["demo", "setuptools"]
    factories.recipe(project.root, "demo", 'versions = ">=2"\n')
    check = factory(project, "lock", "--check")
    assert check.returncode == 1 and "outside the recipe's range" in check.stderr


def test_missing_lock_is_one_line(project: Settings) -> None:
    factories.recipe(project.root, "demo")
    assert_one_line_error(factory(project, "fetch"), "no lock file", "factory lock")


def test_unknown_upstream_name_is_one_line(project: Settings, upstream: LocalUpstream) -> None:
    factories.recipe(project.root, "flaks")
    assert_one_line_error(factory(project, "lock"), "does not know 'flaks'")


def test_repo_lock_matches_recipes() -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "FACTORY_ROOT": str(root)}
    result = subprocess.run([sys.executable, "-m", "factory.cli", "lock", "--check"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_prefect_stop_ends_the_embedded_server_process_group(project: Settings) -> None:
    assert "no embedded Prefect server" in factory(project, "prefect", "stop").stdout
    home = project.state_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(["sleep", "60"], start_new_session=True)  # stands in for it
    try:
        (home / "server.pid").write_text(str(server.pid))
        (home / "api-url").write_text("http://127.0.0.1:9/api")
        result = factory(project, "prefect", "stop")
        assert result.returncode == 0 and "stopped" in result.stdout
        assert server.wait(timeout=60) != 0  # terminated by the signal (a hang guard)
        assert not (home / "server.pid").exists() and not (home / "api-url").exists()
    finally:
        server.kill()
        server.wait()
