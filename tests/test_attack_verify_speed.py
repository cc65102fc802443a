"""Attacks on issue 20's last verify speed-ups, kept as regression tests.

The compiled SBOM validator's standalone format answers (factory.verify.sbom), the
program's early leave (factory.cli.verify._leave) and the CLI's cached settings.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

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
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    state = tmp_path / "program-settings.pickle"
    state.write_bytes(pickle.dumps(settings))
    script = tmp_path / "program.py"
    script.write_text(_PROGRAM)
    words = shlex.join([sys.executable, str(script), str(state), *argv])
    return subprocess.run(["sh", "-c", f"{words} {shell_tail}; echo code=$? >&2"],
                          capture_output=True, text=True, timeout=300, env=env)


def _code(done: subprocess.CompletedProcess[str]) -> int:
    return int(done.stderr.rstrip().rsplit("code=", 1)[1])


def test_a_report_that_cannot_be_written_is_not_a_success(copy: PublishedIndex,
                                                          tmp_path: Path) -> None:
    """stdout on a full disk: the report is lost when stdout is flushed at the end, so
    the exit code must not say the index is sound (the interpreter's own exit says 120).
    The one line says why: the output could not be written (it blamed the state
    directory, as for any other refused file operation)."""
    done = _program(copy.settings, tmp_path, "verify", "--all", "--json", "--no-advisories",
                    shell_tail=">/dev/full")
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert _code(done) != 0, done.stderr[-2000:]
    assert "cannot write to standard output: No space left on device" in done.stderr
    assert "state directory" not in done.stderr


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


def test_the_html_report_is_whole_and_the_table_reaches_a_pipe(copy: PublishedIndex,
                                                               tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = _program(copy.settings, tmp_path, "verify", "--all", "--no-advisories",
                    "--html", str(page))  # stdout: a pipe
    assert _code(done) == 0, done.stderr[-2000:]
    assert page.read_text().rstrip().endswith("</html>")
    assert done.stdout.strip(), done.stderr[-2000:]


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



# -- the compiled SBOM validator's standalone format answers ---------------------------------
_FAKE_RFC3987 = """
def parse(instance, rule="IRI"):
    raise ValueError("this rfc3987 refuses everything")
"""

_PROBE = """
import sys
from factory.verify import sbom as fast
doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
       "signature": {"algorithm": "https://example.com/alg", "value": "abc"}}
error = next(iter(fast.strict_validator().iter_errors(doc)), None)
print(fast._fast_valid(doc), error is None, fast.schema_error(doc, integral=True) is None)
"""


@pytest.mark.parametrize("with_rfc3987", [False, True])
def test_the_standalone_uri_is_not_used_where_jsonschema_answers_with_rfc3987(
        tmp_path: Path, with_rfc3987: bool) -> None:
    """jsonschema answers ``uri`` with the rfc3987 package when it can import it (before
    rfc3986-validator): the standalone answer then is not the checker's, and the compiled
    validator said valid (the JSF signature's algorithm URI) where jsonschema found an
    error. Here an rfc3987 that refuses every URI stands for any that disagrees."""
    env = dict(os.environ)
    if with_rfc3987:
        (tmp_path / "rfc3987.py").write_text(_FAKE_RFC3987)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(tmp_path), str(Path(__file__).resolve().parents[1])])
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=120, env=env, cwd=Path(__file__).resolve().parents[1])
    fast_valid, library_valid, verdict_valid = (word == "True" for word in done.stdout.split())
    assert done.returncode == 0, done.stderr[-2000:]
    assert library_valid is not with_rfc3987  # the checker's answer changed with rfc3987
    assert verdict_valid is library_valid
    if fast_valid:
        assert library_valid



@pytest.fixture(scope="module")
def real_sbom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from dataclasses import replace

    from factory.attest.sbom import build_sbom
    from tests import factories
    from tests.attest_fixtures import make_record

    tmp = tmp_path_factory.mktemp("sbom")
    wheel = factories.wheel(tmp / "wheels", requires=("idna<4,>=2.5",))
    return build_sbom(wheel, replace(make_record(wheel, factories.sdist(tmp / "sources"))))


def _at_timestamp(d: dict[str, Any], value: Any) -> None:
    d["metadata"]["timestamp"] = value


def _at_email(d: dict[str, Any], value: Any) -> None:
    d["metadata"]["component"]["authors"] = [{"name": "a", "email": value}]


def _at_url(d: dict[str, Any], value: Any) -> None:
    d["metadata"]["component"]["externalReferences"] = [{"type": "website", "url": value}]


def _at_bom_link(d: dict[str, Any], value: Any) -> None:  # iri-reference and a pattern
    d["metadata"]["component"]["externalReferences"] = [{"type": "bom", "url": value}]


def _at_signature(d: dict[str, Any], value: Any) -> None:  # uri, in a oneOf
    d["signature"] = {"algorithm": value, "value": "abc"}


# Values for formatted fields: case, offsets, leap seconds, line ends, NUL and other
# control characters, non-ASCII (IRIs, e-mail, digits), surrogates, huge strings, non-strings.
FORMATTED = [
    "2024-01-01T00:00:00Z", "2024-01-01t00:00:00z", "2024-01-01T00:00:00z",
    "2016-12-31T23:59:60Z", "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00-00:00",
    "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00.000000001+23:59", "0000-01-01T00:00:00Z",
    "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2024-01-01T00:00:00Z\n",
    "2024-01-01T00:00:00Z\r\n", "2024-01-01T00:00:00Z\x00", "\n2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00\u017f", "\u0662\u0660\u0662\u0664-01-01T00:00:00Z",
    "2024-01-01T00:00:00\uff3a", "2024-01-01\u0130T00:00:00Z",
    "a@b", "@", "a\x00@b", "\u00fc@\u00fc.de", "a@b\n", "a\ud800@b", "no at sign",
    "https://example.com/a", "https://example.com/a\n", "https://ex.com/\u00e4",
    "https://\u4f8b\u3048.jp/\u30d1\u30b9", "https://ex.com/a b", "https://ex.com/\x00",
    "https://ex.com/\u202e", "https://ex.com/\ud800", "https://ex.com/\U0001f600",
    "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1", "urn:cdx:3e671687-395b-41f5-a30f-"
    "a58921a69b79/1\n", "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#a\u00e4",
    "RS256", "rs256", "HS256\n", "//x", "#", "", "\\\\", "http://[::1]:80/",
    "http://ex.com/%zz", "mailto:a@b.c", "x:" + "a" * 100_000,
    "2024-01-01T00:00:00Z" + " " * 10_000, "http://ex.com/" + "\u00e4" * 200,
    0, 1.5, True, None, [], {}, ["https://example.com/a"],
]
_PLACES = [_at_timestamp, _at_email, _at_url, _at_bom_link, _at_signature]


@pytest.mark.parametrize("place", _PLACES)
def test_formatted_values_the_compiled_validator_never_laxer(real_sbom: dict[str, Any],
                                                             place: Any) -> None:
    """Each value in each formatted field: the compiled validator says valid only where
    jsonschema (publishing's validator, this module's format checker) finds no error,
    and schema_error's verdict is jsonschema's."""
    import copy

    from factory.verify import sbom as fast

    library = fast.strict_validator()
    assert fast._fast_valid(copy.deepcopy(real_sbom))
    verdicts = set()
    for value in FORMATTED:
        document = copy.deepcopy(real_sbom)
        place(document, value)
        error = next(iter(library.iter_errors(document)), None)
        if fast._fast_valid(document):
            assert error is None, (place.__name__, value)
        verdict = fast.schema_error(copy.deepcopy(document), integral=True)
        assert (verdict is None) is (error is None), (place.__name__, value)
        verdicts.add(error is None)
    assert verdicts == {True, False}  # the field takes some values and refuses others



@pytest.mark.parametrize("name", ["date-time", "idn-email", "uri", "iri-reference"])
def test_each_standalone_format_answers_these_values_as_the_checker(name: str) -> None:
    from factory.verify import sbom as fast

    checker = fast._format_checker()
    for value in FORMATTED:
        try:
            expected: object = checker.conforms(value, name)
        except Exception as exc:  # noqa: BLE001 (whatever the checker raises)
            expected = type(exc)
        try:
            got: object = fast._STANDALONE_FORMATS[name](value)
        except Exception as exc:  # noqa: BLE001
            got = type(exc)
        assert got == expected, (name, value)


def test_no_pydantic_plugin_sees_the_evidence(copy: PublishedIndex, tmp_path: Path) -> None:
    """A pydantic plugin is an entry point any installed distribution may declare; it is
    called for every model and adapter pydantic builds, and may wrap their validation.
    `factory verify` runs with plugins off: none is loaded, none sees a bundle."""
    site = tmp_path / "site"
    info = site / "spy_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nspy = spy_plugin:plugin\n")
    marker = tmp_path / "loaded"
    (site / "spy_plugin.py").write_text(
        f"open({str(marker)!r}, 'a').write('loaded')\n"
        "class Spy:\n"
        "    def new_schema_validator(self, *args, **kwargs):\n"
        "        return None, None, None\n"
        "plugin = Spy()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    subprocess.run([sys.executable, "-c", "import pydantic; pydantic.TypeAdapter(int)"],
                   check=True, env=env, timeout=60)
    assert marker.exists()  # the plugin is found where pydantic looks
    marker.unlink()
    done = _program(copy.settings, tmp_path, "verify", "--all", "--json", "--no-advisories",
                    shell_tail=">/dev/null", env=env)
    assert _code(done) == 0, done.stderr[-2000:]
    assert not marker.exists()
