"""`factory verify --all` starts its early child before the command line is parsed.

factory.cli.main forks the child (factory.verify.early.prestart) before Typer and the
commands are imported, with the settings the command then uses; the run takes that
child when it verifies the directory the child reads, and no other. Each script runs
in a fresh interpreter: a process with another thread running (pytest's) never forks.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from factory.verify import TargetError
from factory.verify import early as early_module
from factory.verify.wholeindex import open_index
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)

_MAIN = """
import atexit, json, os, pickle, sys
import factory.config
settings = pickle.loads(open(sys.argv[1], "rb").read())
factory.config.load_settings = lambda *a, **k: settings  # the test's project
out_path = sys.argv[2]
seen = {"prestarted": None, "started": []}
from factory.verify import early
real_prestart, real_start = early.prestart, early.start
def prestart(s):
    real_prestart(s)
    seen["prestarted"] = early._prestarted._pid if early._prestarted else None
    seen["same settings"] = s is settings
def start(s, d):
    got = real_start(s, d)
    seen["started"].append(got._pid if got else None)
    return got
early.prestart, early.start = prestart, start
def at_exit():  # registered first: runs after every handler the run registers
    seen["left"] = early._prestarted is not None
    pid = seen["prestarted"]
    if pid:
        try:
            os.waitpid(pid, os.WNOHANG)
            seen["reaped"] = False
        except ChildProcessError:
            seen["reaped"] = True
    seen["typer before main"] = seen.get("typer before main")
    open(out_path, "w").write(json.dumps(seen))
atexit.register(at_exit)
seen["typer before main"] = "typer" in sys.modules
sys.argv = ["factory", *sys.argv[3:]]
from factory.cli import main
try:
    main()
except SystemExit as exc:
    seen["code"] = exc.code
"""


def _main(settings: object, tmp_path: Path, *argv: str) -> dict[str, Any]:
    state, out = tmp_path / "settings.pickle", tmp_path / "seen.json"
    state.write_bytes(pickle.dumps(settings))
    done = subprocess.run([sys.executable, "-c", _MAIN, str(state), str(out), *argv],
                          capture_output=True, text=True, timeout=300)
    assert out.is_file(), done.stderr[-2000:]
    seen: dict[str, Any] = json.loads(out.read_text())
    seen["stdout"], seen["stderr"] = done.stdout, done.stderr
    return seen


@pytest.fixture
def copy(published_index: PublishedIndex, tmp_path: Path) -> PublishedIndex:  # noqa: F811
    return clone(published_index, tmp_path / "copy")


def test_verify_all_takes_the_child_started_before_parsing(copy: PublishedIndex,
                                                          tmp_path: Path) -> None:
    seen = _main(copy.settings, tmp_path, "verify", "--all", "--json", "--no-advisories")
    assert seen["code"] == 0, seen["stderr"][-2000:]
    assert seen["typer before main"] is False  # `import factory.cli` is light
    assert seen["prestarted"] and seen["same settings"]
    # prestart's own fork, then the run's start took that same child: no second fork
    assert seen["started"] == [seen["prestarted"], seen["prestarted"]]
    assert seen["reaped"] and not seen["left"]
    report = json.loads(seen["stdout"])
    assert report["summary"]["ok"] and report["summary"]["artifacts"] == len(copy.records)
    assert [row["status"] for row in report["index"]] == ["pass"] * 5  # and the VEX feed


def test_a_usage_error_after_the_prestart_leaves_no_child(copy: PublishedIndex,
                                                        tmp_path: Path) -> None:
    seen = _main(copy.settings, tmp_path, "verify", "--all", "--no-such-option")
    assert seen["code"] == 2
    assert seen["prestarted"]
    assert seen["started"] == [seen["prestarted"]]  # no run took it
    assert seen["reaped"] and not seen["left"]  # stopped and reaped at exit


@pytest.mark.parametrize("argv", [
    ("verify", "--all", "--index", "{other}", "--json", "--no-advisories"),
    ("verify", "--all", "--index={other}", "--json", "--no-advisories"),
    ("verify", "--help", "--all"),
    ("--debug", "verify", "--help"),
    ("status", "--all"),
])
def test_other_command_lines_start_no_child_before_parsing(
        copy: PublishedIndex, tmp_path: Path, argv: tuple[str, ...]) -> None:
    other = clone(copy, tmp_path / "other")
    seen = _main(copy.settings, tmp_path,
                 *(word.format(other=other.settings.index_dir) for word in argv))
    assert seen["prestarted"] is None, argv
    if any(word.startswith("--index") for word in argv):
        assert seen["code"] == 0, seen["stderr"][-2000:]
        assert len(seen["started"]) == 1 and seen["started"][0]  # the run's own child


def test_a_child_started_for_another_directory_is_stopped_not_used(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """The prestarted child reads the settings' index; a run of another directory stops
    it and forks its own (here: the settings name the copy, the run the other one)."""
    other = clone(copy, tmp_path / "other")
    script = """
import json, os, pickle, sys
from factory.verify import early
settings = pickle.loads(open(sys.argv[1], "rb").read())
early.prestart(settings)
first = early._prestarted._pid
second = early.start(settings, __import__("pathlib").Path(sys.argv[2]))
try:
    os.waitpid(first, os.WNOHANG)
    reaped = False
except ChildProcessError:
    reaped = True
print(json.dumps({"first": first, "second": second._pid, "root": str(second.root),
                  "reaped": reaped, "left": early._prestarted is not None}))
second.close()
"""
    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    done = subprocess.run([sys.executable, "-c", script, str(state),
                           str(other.settings.index_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout)
    assert seen["second"] != seen["first"] and seen["reaped"] and not seen["left"]
    assert seen["root"] == str(other.settings.index_dir.resolve())


def test_the_child_reads_the_directory_and_url_open_index_names(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """early._where (no imports) finds what wholeindex.open_index finds: the directory
    resolved, the settings' URL only for the settings' own index, None for no index."""
    settings = copy.settings
    alias = tmp_path / "alias"
    alias.symlink_to(settings.index_dir)
    other = clone(copy, tmp_path / "other").settings.index_dir
    empty = tmp_path / "empty"
    empty.mkdir()
    for place in (None, settings.index_dir, alias, other, empty, tmp_path / "missing"):
        try:
            opened = open_index(settings, place)
            expected = (opened.root.resolve(), opened.base_url)
        except TargetError:
            expected = None
        assert early_module._where(settings, place) == expected, place
    assert early_module._where(settings, alias) == (settings.index_dir.resolve(),
                                                     settings.index_url)


def test_the_cli_package_imports_no_command_until_asked() -> None:
    """`import factory.cli` loads neither Typer nor a command module (main starts the
    child first); `factory.cli.app` is the whole app, every command on it."""
    probe = ("import sys, factory.cli; light = 'typer' not in sys.modules and "
             "'factory.cli.verify' not in sys.modules; from factory.cli import app; "
             "import typer.main; names = {c.name for c in typer.main.get_command(app)"
             ".commands.values()}; print(light, 'verify' in names, 'build' in names)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.stdout.split() == ["True", "True", "True"], done.stderr[-2000:]


def test_the_collector_is_paused_for_imports_and_put_back_as_it_was() -> None:
    """factory._internal.lazy.collector_paused: off inside, back on after (also when the
    block raises), and left off for a caller that had turned it off."""
    import gc

    from factory._internal.lazy import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ImportError), collector_paused():
        raise ImportError("a failed import")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


_PROGRAM = """
import atexit, pickle, runpy, sys
import factory.config
settings = pickle.loads(open(sys.argv[1], "rb").read())
factory.config.load_settings = lambda *a, **k: settings
sys.argv = ["factory", *sys.argv[2:]]
atexit.register(lambda: sys.stderr.write("exit handlers ran\\n"))
runpy.run_module("factory.cli", run_name="__main__", alter_sys=True)  # as `python -m`
"""


def _program(settings: object, tmp_path: Path, *argv: str,
             stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    state = tmp_path / "program-settings.pickle"
    state.write_bytes(pickle.dumps(settings))
    return subprocess.run([sys.executable, "-c", _PROGRAM, str(state), *argv],
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300)


def test_the_program_leaves_at_once_with_its_whole_report_and_code(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """`factory verify` as the program ends without the interpreter's teardown
    (cli.verify._leave), and still prints its whole report and exits with its code: 0
    for a sound index, 1 for a tampered one."""
    done = _program(copy.settings, tmp_path, "verify", "--all", "--json", "--no-advisories")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["summary"]["ok"]
    assert "exit handlers ran" in done.stderr  # its handlers ran before it left
    wheel = copy.settings.index_dir / "files" / copy.records[0].component
    target = next(wheel.glob("*.whl"))
    target.write_bytes(target.read_bytes() + b"tampered")
    done = _program(copy.settings, tmp_path, "verify", "--all", "--json", "--no-advisories")
    assert done.returncode == 1, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert not report["summary"]["ok"] and report["summary"]["failed"] >= 1


def test_the_program_with_its_output_closed_early_says_no_traceback(
        copy: PublishedIndex, tmp_path: Path) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # `factory verify --all --json | head -c 0`, as it were
    try:
        done = _program(copy.settings, tmp_path, "verify", "--all", "--json",
                        "--no-advisories", stdout=writer)
    finally:
        os.close(writer)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


def test_an_index_path_that_loops_is_one_line_not_a_traceback(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """A loop of links given as --index (or as the state's index) is a TargetError (exit
    2, one line) for `verify --all` and a single target alike, and no early child."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(TargetError, match="does not resolve"):
        open_index(copy.settings, tmp_path / "a")
    assert early_module._where(copy.settings, tmp_path / "a") is None
    seen = _main(copy.settings, tmp_path, "verify", "--all", "--index", str(tmp_path / "a"))
    assert seen["code"] == 2 and "Traceback" not in seen["stderr"]
    assert "does not resolve" in seen["stderr"]
