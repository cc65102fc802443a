"""Attack on 4a44b1a: `verify --all` forks its early child before the CLI parses.

factory.cli.main forks the child (factory.verify.early.prestart) with the settings it
loads itself, and a run takes that child when it verifies the directory the child
reads. Attacked here: a child taken by a run it was not started for (a second main()
in one process, other settings, a link flipped, a relative path), a child left running,
a command whose behaviour changed, and verdicts that differ with the prestart and
without it. Each script runs in a fresh interpreter: a process with another thread
running (pytest's) never forks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from factory.verify.view import sidecar
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)

# What every script starts with: the settings (a list: load_settings gives the next one
# each time it is called, the last one for ever), the run's own main() whose exit code is
# returned and whose stdout is returned as text, and the pids of the children forked.
_PRELUDE = """
import io, json, os, pickle, sys, threading
from pathlib import Path
import factory.config
ARGS = list(sys.argv)  # (main() sets sys.argv)
SETTINGS = pickle.loads(open(ARGS[1], "rb").read())
_given = list(SETTINGS)
def load_settings(*a, **k):
    return _given.pop(0) if len(_given) > 1 else _given[0]
factory.config.load_settings = load_settings
OUT = {}
from factory.verify import early
FORKED = []
_real_start = early.start
def _start(s, d):
    got = _real_start(s, d)
    if got is not None and got._pid not in FORKED:
        FORKED.append(got._pid)
    return got
early.start = _start
def main(*argv):
    sys.argv = ["factory", *argv]
    import factory.cli
    captured, real = io.StringIO(), sys.stdout
    sys.stdout = captured
    try:
        factory.cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.stdout = real
    return code, captured.getvalue()
def said(pid):
    # Wait until the child has said all it says and ended, without reaping it.
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
def running(pid):
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False
def index_rows(report_text):  # the child's rows (the VEX feed's is the parent's own)
    return [[row["name"], row["status"], row["message"]]
            for row in json.loads(report_text)["index"] if row["name"] != "vex"]
"""


def _script(body: str, settings: list[Any], tmp_path: Path, *args: str,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the prelude and ``body`` in a fresh interpreter; ``body`` fills OUT."""
    state, out = tmp_path / "settings.pickle", tmp_path / "out.json"
    state.write_bytes(pickle.dumps(settings))
    code = _PRELUDE + body + "\nopen(ARGS[2], 'w').write(json.dumps(OUT))\n"
    done = subprocess.run([sys.executable, "-c", code, str(state), str(out), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0 and out.is_file(), done.stderr[-3000:]
    seen: dict[str, Any] = json.loads(out.read_text())
    seen["stderr"] = done.stderr
    return seen


@pytest.fixture
def copy(published_index: PublishedIndex, tmp_path: Path) -> PublishedIndex:  # noqa: F811
    return clone(published_index, tmp_path / "copy")


def _plant(index_dir: Path, name: str = "planted.txt") -> str:
    """A file no record names: the `unrecorded` index check fails on it."""
    (index_dir / name).write_bytes(b"not the index's\n")
    return name


def _failed(rows: list[list[str]]) -> list[list[str]]:
    return [row for row in rows if row[1] == "fail"]


# -- 1. a run uses no child's answers for another directory, time or settings -------------------

def test_a_second_main_does_not_take_the_child_the_first_left(copy: PublishedIndex,
                                                             tmp_path: Path) -> None:
    """A caller runs main() twice (a usage error first, caught as SystemExit): the first
    call's child, whose index checks describe the index as it was then, must not answer
    for the second call's run after the index changed."""
    body = """
code, _ = main("verify", "--all", "--no-such-option")
OUT["first"] = code
left = early._prestarted
OUT["left after main"] = left is not None
if left is not None:
    said(left._pid)  # its index checks are on the pipe: the index as it was then
planted = Path(ARGS[3]) / "planted.txt"
planted.write_bytes(b"x")
code, text = main("verify", "--all", "--json", "--no-advisories")
OUT["second"] = code
OUT["rows"] = index_rows(text)
OUT["children"] = len(FORKED)
OUT["running"] = [pid for pid in FORKED if running(pid)]
"""
    seen = _script(body, [copy.settings], tmp_path, str(copy.settings.index_dir))
    assert seen["first"] == 2
    assert not seen["left after main"]  # main stops the child it started, taken or not
    assert seen["second"] == 1, seen["stderr"][-2000:]
    failed = _failed(seen["rows"])
    assert [row[0] for row in failed] == ["unrecorded"] and "planted.txt" in failed[0][2]
    assert seen["children"] == 2 and seen["running"] == []


def test_a_child_started_with_other_settings_is_not_taken(copy: PublishedIndex,
                                                          tmp_path: Path) -> None:
    """Same directory, another index URL (the settings changed between two main() calls
    of one process: the CLI caches them per process, so the caller drops the cache):
    the pages are checked against the run's URL, not the child's."""
    moved = dataclasses.replace(copy.settings, index_url="http://elsewhere.example:1")
    body = """
main("verify", "--all", "--no-such-option")
left = early._prestarted
if left is not None:
    said(left._pid)
from factory.cli import _app
_app._State.settings = None  # the next main() loads them anew (the moved URL)
code, text = main("verify", "--all", "--json", "--no-advisories")
OUT["code"], OUT["rows"] = code, index_rows(text)
from factory.verify.wholeindex import index_checks, open_index
OUT["alone"] = [[c.name, c.status, c.message]
                for c in index_checks(open_index(SETTINGS[1], None))]
"""
    seen = _script(body, [copy.settings, moved], tmp_path)
    assert any(row[0] == "pages" for row in _failed(seen["alone"]))  # the URL matters
    assert seen["rows"] == seen["alone"]


def test_the_library_takes_no_prestarted_child_of_other_settings(copy: PublishedIndex,
                                                                 tmp_path: Path) -> None:
    """early.prestart(settings A), then factory.verify.verify(settings B) on the same
    directory with another URL: B's run checks the pages against B's URL."""
    moved = dataclasses.replace(copy.settings, index_url="http://elsewhere.example:1")
    body = """
early.prestart(SETTINGS[0])
said(early._prestarted._pid)
from factory.verify import verify
report = verify(SETTINGS[1], everything=True, check_advisories=False)
OUT["rows"] = [[c.name, c.status, c.message] for c in report.index if c.name != "vex"]
from factory.verify.wholeindex import index_checks, open_index
OUT["alone"] = [[c.name, c.status, c.message]
                for c in index_checks(open_index(SETTINGS[1], None))]
OUT["running"] = [pid for pid in FORKED if running(pid)]
"""
    seen = _script(body, [copy.settings, moved], tmp_path)
    assert seen["rows"] == seen["alone"] and _failed(seen["alone"])
    assert seen["running"] == []


def test_a_link_flipped_between_prestart_and_run(copy: PublishedIndex,
                                                 tmp_path: Path) -> None:
    """The settings' index directory is a link; it is flipped to another (tampered)
    index while main() imports the commands: the run checks where the link points then."""
    other = clone(copy, tmp_path / "other")
    _plant(other.settings.index_dir)
    index = copy.settings.index_dir
    real = index.with_name("index-a")
    index.rename(real)
    index.symlink_to(real)
    body = """
import factory.cli
real_commands = factory.cli._commands
def flip(*argv):
    OUT["prestarted for"] = str(early._prestarted.root) if early._prestarted else None
    link = Path(ARGS[3])
    link.unlink()
    link.symlink_to(ARGS[4])
    real_commands(*argv)
factory.cli._commands = flip
code, text = main("verify", "--all", "--json", "--no-advisories")
OUT["code"], OUT["rows"] = code, index_rows(text)
OUT["children"] = len(FORKED)
"""
    seen = _script(body, [copy.settings], tmp_path, str(index),
                   str(other.settings.index_dir))
    assert seen["prestarted for"] == str(real.resolve())
    failed = _failed(seen["rows"])
    assert [row[0] for row in failed] == ["unrecorded"] and "planted.txt" in failed[0][2]
    assert seen["children"] == 2  # the prestarted child stopped, the run's own forked


def test_a_relative_index_path_and_a_changed_directory(copy: PublishedIndex,
                                                       tmp_path: Path) -> None:
    """Settings naming a relative state directory: the working directory changes between
    the prestart and the run (another index at the same relative path there)."""
    other = clone(copy, tmp_path / "other")
    _plant(other.settings.index_dir)
    relative = dataclasses.replace(copy.settings, state_dir=Path("state"))
    body = """
os.chdir(ARGS[3])
early.prestart(SETTINGS[0])
os.chdir(ARGS[4])
from factory.verify import verify
report = verify(SETTINGS[0], everything=True, check_advisories=False)
OUT["rows"] = [[c.name, c.status, c.message] for c in report.index if c.name != "vex"]
"""
    seen = _script(body, [relative], tmp_path, str(copy.root), str(other.root))
    failed = _failed(seen["rows"])
    assert [row[0] for row in failed] == ["unrecorded"] and "planted.txt" in failed[0][2]


# -- 2. no child is left running or unreaped ----------------------------------------------------

def test_ctrl_c_while_the_commands_import_is_one_line_and_reaps(copy: PublishedIndex,
                                                                tmp_path: Path) -> None:
    """Ctrl-C after the prestart, while Typer and the commands are imported: 'interrupted'
    and 130 as during the run, no traceback, and the child is stopped."""
    body = """
import factory.cli
def interrupted(*argv):
    raise KeyboardInterrupt
factory.cli._commands = interrupted
try:
    OUT["code"] = main("verify", "--all")[0]
except KeyboardInterrupt:
    OUT["code"] = "KeyboardInterrupt"
OUT["forked"] = len(FORKED)
OUT["running"] = [pid for pid in FORKED if running(pid)]
"""
    seen = _script(body, [copy.settings], tmp_path)
    assert seen["forked"] == 1
    assert seen["code"] == 130 and seen["stderr"].strip() == "interrupted"
    assert seen["running"] == []


def test_a_caller_with_a_thread_running_forks_nothing(copy: PublishedIndex,
                                                      tmp_path: Path) -> None:
    body = """
stop = threading.Event()
worker = threading.Thread(target=stop.wait)
worker.start()
code, text = main("verify", "--all", "--json", "--no-advisories")
stop.set()
worker.join()
OUT["code"], OUT["rows"], OUT["forked"] = code, index_rows(text), len(FORKED)
OUT["left"] = early._prestarted is not None
"""
    seen = _script(body, [copy.settings], tmp_path)
    assert seen["code"] == 0 and seen["forked"] == 0 and not seen["left"]
    assert [row[1] for row in seen["rows"]] == ["pass"] * 4


@pytest.mark.parametrize("argv", [("verify", "--all", "--version"),
                                  ("verify", "--all", "alpha==1.0"),
                                  ("verify", "--all", "--workers", "x")])
def test_errors_after_the_prestart_leave_no_child(copy: PublishedIndex, tmp_path: Path,
                                                  argv: tuple[str, ...]) -> None:
    body = f"""
OUT["code"] = main(*{argv!r})[0]
OUT["forked"] = len(FORKED)
OUT["running"] = [pid for pid in FORKED if running(pid)]
OUT["left"] = early._prestarted is not None
"""
    seen = _script(body, [copy.settings], tmp_path)
    assert seen["code"] == 2 and seen["forked"] == 1
    assert seen["running"] == [] and not seen["left"]  # stopped when main returned
    assert "Traceback" not in seen["stderr"]


def test_an_index_moved_away_after_the_prestart(copy: PublishedIndex,
                                              tmp_path: Path) -> None:
    """The index directory goes away while the commands import: the run says there is
    no index (one line, exit 2), as without the prestart, and the child is stopped."""
    body = """
import factory.cli
real_commands = factory.cli._commands
def move(*argv):
    Path(ARGS[3]).rename(ARGS[3] + ".moved")
    real_commands(*argv)
factory.cli._commands = move
OUT["code"] = main("verify", "--all", "--no-advisories")[0]
OUT["forked"] = len(FORKED)
OUT["running"] = [pid for pid in FORKED if running(pid)]
"""
    seen = _script(body, [copy.settings], tmp_path, str(copy.settings.index_dir))
    assert seen["code"] == 2 and seen["forked"] == 1 and seen["running"] == []
    assert seen["stderr"].startswith("error: no published index at ")
    assert len(seen["stderr"].strip().splitlines()) == 1


def test_all_as_another_options_value_verifies_the_target_alone(copy: PublishedIndex,
                                                                tmp_path: Path) -> None:
    """`verify alpha==1.0 --identity --all`: the line looks like `verify --all` (a child
    is forked), the run verifies alpha alone and the child is stopped when main returns."""
    body = """
code, text = main("verify", "alpha==1.0", "--identity", "--all", "--json",
                  "--no-advisories")
report = json.loads(text)
OUT["code"], OUT["target"], OUT["index"] = code, report["target"], report["index"]
OUT["forked"] = len(FORKED)
OUT["running"] = [pid for pid in FORKED if running(pid)]
OUT["left"] = early._prestarted is not None
"""
    seen = _script(body, [copy.settings], tmp_path)
    assert seen["target"] == "alpha==1.0" and seen["index"] == []
    assert seen["forked"] == 1 and seen["running"] == [] and not seen["left"]


# -- 3. other commands do not change ----------------------------------------------------------

def test_the_console_script_and_python_m_still_list_every_command(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("factory")
    for argv in ([sys.executable, "-m", "factory.cli", "--help"], [str(script), "--help"]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLUMNS": "200"}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        for name in ("add", "lock", "build", "publish", "verify", "serve", "index", "log"):
            assert f" {name} " in done.stdout, (argv, name)
    done = subprocess.run([sys.executable, "-m", "factory.cli", "verify", "--help"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"}, cwd=tmp_path)
    assert done.returncode == 0 and "--all" in done.stdout and "--index" in done.stdout


# -- 4. the same verdicts with the prestart and without it --------------------------------------

def _tamper(published: PublishedIndex) -> None:
    """Several kinds at once: a wheel's bytes, an SBOM that is no CycloneDX, a stray file,
    a stray file in the TUF directory, a project page changed."""
    wheel = published.wheel("alpha")
    data = bytearray(wheel.read_bytes())
    data[100] ^= 0xFF
    wheel.write_bytes(bytes(data))
    sbom = sidecar(published.wheel("beta"), "sbom")
    assert sbom.is_file()
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6",
                                "components": "not a list"}))
    _plant(published.index_dir)
    tuf = published.index_dir / "tuf"
    tuf.mkdir(exist_ok=True)
    (tuf / "01.root.json").write_text("{}")
    page = published.index_dir / "simple" / "gamma" / "index.html"
    page.write_text(page.read_text() + "<!-- changed -->")


def test_a_tampered_index_gets_the_same_report_with_the_prestart_and_without(
        copy: PublishedIndex, tmp_path: Path) -> None:
    _tamper(copy)
    body = """
def checks(text):
    report = json.loads(text)
    return {"index": index_rows(text),
            "artifacts": {a["filename"]: [[c["name"], c["status"], c["message"]]
                                          for c in a["checks"]]
                          for a in report["artifacts"]}}
argv = ("verify", "--all", "--json", "--no-advisories")
code, text = main(*argv)  # the prestarted child
OUT["prestart"] = [code, checks(text), len(FORKED)]
code, text = main(*argv, "--index", ARGS[3])  # the run's own child
OUT["own"] = [code, checks(text), len(FORKED)]
early.start = lambda s, d: None  # no child at all
code, text = main(*argv)
OUT["none"] = [code, checks(text)]
"""
    seen = _script(body, [copy.settings], tmp_path, str(copy.settings.index_dir))
    assert seen["prestart"][2] == 1 and seen["own"][2] == 2  # each way was taken
    assert seen["prestart"][:2] == seen["own"][:2] == seen["none"]
    assert seen["none"][0] == 1
    failed = {row[0] for row in _failed(seen["none"][1]["index"])}
    assert {"unrecorded", "pages"} <= failed
    artifacts = seen["none"][1]["artifacts"]
    status = {(name.split("-")[0], row[0]): row[1] for name, rows in artifacts.items()
              for row in rows}
    assert status["alpha", "in-toto"] == status["beta", "sbom"] == "fail"
    assert status["gamma", "sbom"] == "pass"


# -- 5. the index checks still catch what is not a TUF repository path --------------------------

_HEX = "ab" * 32


@pytest.mark.parametrize("name,planted", [
    ("1.root.json", False), ("timestamp.json", False),
    (f"targets/{_HEX}.trusted_root.json", False),
    (f"targets/{_HEX}.signing_config.v0.2.json", False),
    ("01.root.json", True), ("0.root.json", True), ("1.root.json.bak", True),
    ("10000000000.root.json", True), ("1.ROOT.json", True), ("1.timestamp.json", True),
    (f"targets/{_HEX[:-1]}.trusted_root.json", True),
    (f"targets/{_HEX.upper()}.trusted_root.json", True),
    (f"targets/{_HEX}.trusted_root.json.sig", True), ("root.json", True),
    ("sub/1.root.json", True), ("timestamp.json\n", True),
])
def test_the_index_checks_flag_files_that_are_not_tuf_repository_paths(
        copy: PublishedIndex, name: str, planted: bool) -> None:
    from factory.index.check import UNRECORDED, inspect_index

    path = copy.settings.index_dir / "tuf" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    found = [f for f in inspect_index(copy.settings.index_dir, copy.settings.index_url,
                                      deep=False, wheels=False)
             if f.area == UNRECORDED and "TUF" in str(f)]
    assert bool(found) is planted, (name, [str(f) for f in found])


def test_the_prestarted_childs_index_checks_flag_a_planted_tuf_file(
        copy: PublishedIndex, tmp_path: Path) -> None:
    tuf = copy.settings.index_dir / "tuf"
    tuf.mkdir(exist_ok=True)
    (tuf / "1.root.json.bak").write_text("{}")
    body = """
code, text = main("verify", "--all", "--json", "--no-advisories")
OUT["code"], OUT["rows"], OUT["forked"] = code, index_rows(text), len(FORKED)
"""
    seen = _script(body, [copy.settings], tmp_path)
    assert seen["forked"] == 1 and seen["code"] == 1
    failed = _failed(seen["rows"])
    assert [row[0] for row in failed] == ["unrecorded"]
    assert "tuf/1.root.json.bak" in failed[0][2]
