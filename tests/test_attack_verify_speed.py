"""Attacks on issue 20's last verify speed-ups, kept as regression tests.

The compiled SBOM validator's standalone format answers (factory.verify.sbom), the
program's early leave (factory.cli.verify._leave) and the CLI's cached settings.
"""

from __future__ import annotations

import json
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)

_PROGRAM = """
import atexit, pickle, runpy, sys
import factory.config
settings = pickle.loads(open(sys.argv[1], "rb").read())
factory.config.load_settings = lambda *a, **k: settings
sys.argv = ["factory", *sys.argv[2:]]
runpy.run_module("factory.cli", run_name="__main__", alter_sys=True)  # as `python -m`
"""


@pytest.fixture
def copy(published_index: PublishedIndex, tmp_path: Path) -> PublishedIndex:  # noqa: F811
    return clone(published_index, tmp_path / "copy")


def _program(settings: object, tmp_path: Path, *argv: str, shell_tail: str = "",
             ) -> subprocess.CompletedProcess[str]:
    state = tmp_path / "program-settings.pickle"
    state.write_bytes(pickle.dumps(settings))
    script = tmp_path / "program.py"
    script.write_text(_PROGRAM)
    words = shlex.join([sys.executable, str(script), str(state), *argv])
    return subprocess.run(["sh", "-c", f"{words} {shell_tail}; echo code=$? >&2"],
                          capture_output=True, text=True, timeout=300)


def _code(done: subprocess.CompletedProcess[str]) -> int:
    return int(done.stderr.rstrip().rsplit("code=", 1)[1])


def test_a_report_that_cannot_be_written_is_not_a_success(copy: PublishedIndex,
                                                          tmp_path: Path) -> None:
    """stdout on a full disk: the report is lost when stdout is flushed at the end, so
    the exit code must not say the index is sound (the interpreter's own exit says 120)."""
    done = _program(copy.settings, tmp_path, "verify", "--all", "--json", "--no-advisories",
                    shell_tail=">/dev/full")
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert _code(done) != 0, done.stderr[-2000:]


def test_a_closed_stdout_is_no_traceback(copy: PublishedIndex, tmp_path: Path) -> None:
    """`factory verify --all >&-`: Python starts with sys.stdout None; the early leave
    flushed it regardless (AttributeError traceback, exit 1 for a sound index). The
    exit code is the verdict, as the interpreter's own exit gives it."""
    done = _program(copy.settings, tmp_path, "verify", "--all", "--json", "--no-advisories",
                    shell_tail=">&-")
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert _code(done) == 0, done.stderr[-2000:]


def test_the_report_to_a_file_is_whole(copy: PublishedIndex, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = _program(copy.settings, tmp_path, "verify", "--all", "--json", "--no-advisories",
                    shell_tail=f">{shlex.quote(str(out))}")
    assert _code(done) == 0, done.stderr[-2000:]
    assert json.loads(out.read_text())["summary"]["ok"]


class _Left(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Unwritable:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        raise OSError(28, "No space left on device")


@pytest.fixture
def leaving(monkeypatch: pytest.MonkeyPatch) -> None:
    """_leave as in the program, with os._exit raising _Left(code) instead."""
    import atexit

    from factory.cli import verify as command

    def exit_now(code: int) -> None:
        raise _Left(code)

    monkeypatch.setattr(command, "_the_program", lambda: True)
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: None)
    monkeypatch.setattr(command.os, "_exit", exit_now)


@pytest.mark.parametrize("verdict", [0, 1, 2])
def test_a_report_lost_at_the_last_flush_is_never_a_success(
        leaving: None, monkeypatch: pytest.MonkeyPatch, verdict: int) -> None:
    """The last flush of stdout fails (a full disk, a closed pipe): the report did not
    reach the user, so 0 becomes 120 (as the interpreter's exit says); a failed verdict
    keeps its own code. It was suppressed and the code said the index was sound."""
    from factory.cli import verify as command

    monkeypatch.setattr(sys, "stdout", _Unwritable())
    with pytest.raises(_Left) as left:
        command._leave(verdict)
    assert left.value.code == (verdict or 120)


def test_the_leave_with_no_stdout_or_stderr_keeps_the_verdict(
        leaving: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from factory.cli import verify as command

    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    with pytest.raises(_Left) as left:
        command._leave(0)
    assert left.value.code == 0
