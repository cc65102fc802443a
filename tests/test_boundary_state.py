"""The state directory and crashes: what a killed run or a mistyped setting leaves.

A build slot held by a process killed with -9 comes back at the next
acquisition (not after Prefect's five-minute lease, nor never after a server
restart); files the factory rewrites keep the mode the user gave them; a state
directory that cannot be one is a one-line error, not a traceback.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from factory._internal.atomic import write_text
from factory.config import load_settings
from factory.errors import ConfigError
from factory.lock import Lock, save_lock
from tests import factories
from tests.factories import cli
from tests.security_fixtures import kill9, python, wait_for

# -- file modes ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o644, 0o664, 0o600, 0o755])
def test_a_rewritten_file_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "file"
    path.write_text("old")
    path.chmod(mode)
    write_text(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_new_file_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_text(path, "key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_recipes_lock_keeps_its_mode_when_the_lock_is_saved(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    settings.lock_path.write_text("")
    settings.lock_path.chmod(0o644)
    save_lock(settings, Lock())
    assert stat.S_IMODE(settings.lock_path.stat().st_mode) == 0o644


# -- settings ----------------------------------------------------------------------------

def _project(tmp_path: Path, toml: str = "") -> Path:
    root = tmp_path / "project"
    (root / "recipes").mkdir(parents=True)
    (root / "factory.toml").write_text(toml)
    return root


@pytest.mark.parametrize("state_dir", ["afile", "afile/below", "afile/../afile"])
def test_a_state_dir_that_is_or_lies_under_a_file_is_a_config_error(
        tmp_path: Path, state_dir: str) -> None:
    root = _project(tmp_path, f'[factory]\nstate_dir = "{state_dir}"\n')
    (root / "afile").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        load_settings(root)


@pytest.mark.parametrize("toml", [
    "[factory]\nstate_dir = 5\n",
    '[factory]\nstate_dir = ""\n',
    "[factory]\nupstream = 3\n",
    '[build]\ntimeout = "soon"\n',
    "[build]\nconcurrency = 0\n",
    "[build]\ntimeout = -1\n",
    "[build]\nmax_output = true\n",
    "[index]\nport = 0\n",
    "[http]\nretries = -2\n",
    '[build]\nrepair = "auditwhel"\n',  # a typo would silently keep linux_* wheels
])
def test_a_mistyped_setting_is_a_config_error(tmp_path: Path, toml: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(_project(tmp_path, toml))


@pytest.mark.parametrize("command", [["status", "--offline"], ["keys", "init"],
                                     ["yank", "x==1", "--reason", "r"], ["index", "check"]])
def test_an_unusable_state_dir_is_one_line_with_a_hint(tmp_path: Path,
                                                       command: list[str]) -> None:
    root = _project(tmp_path)
    (root / "recipes" / "six.toml").write_text('name = "six"\nversions = ">=1"\n')
    (root / "afile").write_text("")
    result = cli(root, *command, FACTORY_STATE_DIR=str(root / "afile"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "hint:" in lines[0], lines


@pytest.mark.parametrize("command", [["status", "--offline"], ["keys", "init"],
                                     ["yank", "x==1", "--reason", "r"]])
def test_a_state_dir_whose_parts_are_files_is_one_line_with_a_hint(
        tmp_path: Path, command: list[str]) -> None:
    """The state dir is a directory, but what the factory keeps in it is not."""
    root = _project(tmp_path, '[factory]\nstate_dir = "state"\n')
    (root / "recipes" / "six.toml").write_text('name = "six"\nversions = ">=1"\n')
    for part in ("index", "keys", "authority"):
        (root / "state").mkdir(exist_ok=True)
        (root / "state" / part).write_text("not a directory")
    result = cli(root, *command)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "hint:" in lines[0], lines


# -- build slots -------------------------------------------------------------------------

@pytest.fixture
def api(prefect_api: str) -> str:
    """The session's Prefect server, with no slot counted that earlier tests left."""
    from flows.slots import reset_slots

    reset_slots(prefect_api)
    return prefect_api


HOLDER = """
    import sys, time
    from pathlib import Path
    from flows.slots import build_slot
    from tests import factories
    base = Path(sys.argv[1])
    settings = factories.settings(base)
    with build_slot(settings, timeout=60) as lease:
        print(lease, flush=True)
        time.sleep(600)
"""


@pytest.mark.slow
def test_a_slot_held_by_a_killed_build_comes_back_at_once(tmp_path: Path,
                                                          api: str) -> None:
    from prefect.client.orchestration import get_client

    from flows.rebuild import ensure_build_limit
    from flows.slots import BUILD_LIMIT, build_slot, notes_dir

    ensure_build_limit(1)
    settings = factories.settings(tmp_path)
    child = python(HOLDER, str(tmp_path), env={"PREFECT_API_URL": api})
    try:
        wait_for(lambda: list(notes_dir(settings).glob("*.json")) or child.poll() is not None,
                 60, "the slot to be taken")
        assert child.poll() is None, child.communicate()[1].decode()[-2000:]
        kill9(child)
        # Prefect alone would keep it for the whole lease; the note gives it back now.
        with build_slot(settings, timeout=60):
            with get_client(sync_client=True) as client:
                held = client.read_global_concurrency_limit_by_name(BUILD_LIMIT).active_slots
            assert held == 1
        assert list(notes_dir(settings).glob("*.json")) == []
    finally:
        kill9(child)
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(BUILD_LIMIT).active_slots == 0


@pytest.mark.slow
def test_slots_a_restarted_server_forgot_are_not_held_for_ever(tmp_path: Path,
                                                               api: str) -> None:
    """The lease store is in memory: after a restart the database still counts the slot."""
    from prefect.client.orchestration import get_client

    from flows.rebuild import ensure_build_limit
    from flows.slots import BUILD_LIMIT, build_slot, reset_slots

    ensure_build_limit(1)
    with get_client(sync_client=True) as client:
        client.increment_concurrency_slots(names=[BUILD_LIMIT], slots=1, mode="concurrency")
        assert client.read_global_concurrency_limit_by_name(BUILD_LIMIT).active_slots == 1
    reset_slots(api)  # what a fresh embedded server does first
    settings = factories.settings(tmp_path)
    with build_slot(settings, timeout=60):
        pass


@pytest.mark.slow
def test_waiting_for_a_slot_has_a_deadline_and_a_clear_error(tmp_path: Path,
                                                            api: str) -> None:
    from factory.errors import BuildError
    from flows.rebuild import ensure_build_limit
    from flows.slots import build_slot

    ensure_build_limit(1)
    settings = factories.settings(tmp_path)
    other = factories.settings(tmp_path, state_dir=tmp_path / "other")
    with build_slot(settings, timeout=60), pytest.raises(BuildError, match="no build slot"), \
            build_slot(other, timeout=1):
        pass
