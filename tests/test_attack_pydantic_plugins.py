"""Attacks on pydantic plugins being off wherever evidence is parsed
(factory._internal.plugins; docs/threat-model.md, "pydantic plugins": no third-party
code outside the verifier's own dependencies sees or changes how evidence is parsed).

A spy distribution on PYTHONPATH declares a `pydantic` entry point; its module writes
"loaded" when imported, and "saw <model>" whenever a validator it wrapped is called
(the plugin protocol lets it see, and mutate, every input and result).

A helper who did not write the hardening found it held for `factory verify` itself
and broke it three ways, kept below: the library (factory.verify.verify, as the demo
flow calls it), an in-process caller that had built Sigstore's models with the plugin
loaded, and `factory log verify`/`monitor`. Plugins were turned off only in the verify
command's body; now `factory` turns them off before anything imports pydantic, and the
library entries turn them off and refuse when one was already loaded.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)
from tests.test_attack_verify_speed import _code, _program

_SPY = """\
import os
MARK = {marker!r}
open(MARK, 'a').write(f'loaded {{os.getpid()}}\\n')


class _Seen:
    def __init__(self, name):
        self.name = name

    def on_enter(self, *args, **kwargs):
        open(MARK, 'a').write(f'saw {{self.name}}\\n')


class Spy:
    def new_schema_validator(self, schema, schema_type, schema_type_path, schema_kind,
                             config, plugin_settings):
        name = f'{{schema_type_path.module}}.{{getattr(schema_type, "__qualname__", "?")}}'
        return _Seen(name), _Seen(name), _Seen(name)


plugin = Spy()
"""


def _spy(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """(an environment with the spy plugin on PYTHONPATH and no PYDANTIC_DISABLE_PLUGINS,
    the marker file it writes)."""
    site = tmp_path / "spy-site"
    info = site / "spy_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nspy = spy_plugin:plugin\n")
    marker = tmp_path / "spy-marker"
    (site / "spy_plugin.py").write_text(_SPY.format(marker=str(marker)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    return env, marker


def _seen(marker: Path) -> str:
    return marker.read_text() if marker.exists() else ""


@pytest.fixture
def copy(published_index: PublishedIndex, tmp_path: Path) -> PublishedIndex:  # noqa: F811
    return clone(published_index, tmp_path / "copy")


def test_the_spy_is_found_and_sees_validation(tmp_path: Path) -> None:
    """The technique works: a plain pydantic process loads the spy, and it sees input."""
    env, marker = _spy(tmp_path)
    subprocess.run([sys.executable, "-c",
                    "import pydantic; pydantic.TypeAdapter(int).validate_python(1)"],
                   check=True, env=env, timeout=60)
    assert "loaded" in _seen(marker) and "saw " in _seen(marker)


# -- the command's forms: these hold ------------------------------------------------------
@pytest.mark.parametrize("form", ["name", "wheel", "html-one-worker", "bad-trust",
                                  "answer", "preset-list"])
def test_the_commands_forms_load_no_plugin(copy: PublishedIndex, tmp_path: Path,
                                           form: str) -> None:
    env, marker = _spy(tmp_path)
    record = copy.records[0]
    argv = {
        "name": ["verify", f"{record.component}=={record.version}", "--no-advisories"],
        "wheel": ["verify", str(copy.wheel(record.component)), "--no-advisories"],
        "html-one-worker": ["verify", "--all", "--no-advisories", "--workers", "1",
                            "--html", str(tmp_path / "r.html")],
        "bad-trust": ["verify", "--all", "--no-advisories", "--trusted-root",
                      str(tmp_path / "absent.json")],
        "answer": ["verify", "answer", str(tmp_path / "answer.json")],
        "preset-list": ["verify", "--all", "--no-advisories"],
    }[form]
    if form == "answer":
        (tmp_path / "answer.json").write_text('{"payload": "", "payloadType": "x", '
                                              '"signatures": []}')
    if form == "preset-list":  # a name list that does not name the spy: overwritten
        env["PYDANTIC_DISABLE_PLUGINS"] = "someone-else"
    done = _program(copy.settings, tmp_path, *argv, shell_tail=">/dev/null", env=env)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert _seen(marker) == "", (form, _seen(marker))


def test_the_console_script_loads_no_plugin(copy: PublishedIndex, tmp_path: Path) -> None:
    """As `.venv/bin/factory` runs it (__main__ a file named `factory`, not runpy)."""
    env, marker = _spy(tmp_path)
    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    script = tmp_path / "factory"
    script.write_text(
        "import pickle, sys\nimport factory.config\n"
        f"s = pickle.loads(open({str(state)!r}, 'rb').read())\n"
        "factory.config.load_settings = lambda *a, **k: s\n"
        "from factory.cli import main\nsys.exit(main())\n")
    done = subprocess.run([sys.executable, str(script), "verify", "--all", "--no-advisories",
                           "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _seen(marker) == ""


# -- breaks -------------------------------------------------------------------------------
_LIBRARY = """
import pickle, sys
settings = pickle.loads(open(sys.argv[1], "rb").read())
from factory.verify import verify
report = verify(settings, everything=True, check_advisories=False)
assert report.artifacts and all(a.ok for a in report.artifacts), report
"""


def test_the_library_verify_loads_no_plugin(copy: PublishedIndex, tmp_path: Path) -> None:
    """factory.verify.verify, as flows/demo.py's `_verify` calls it (the demo's
    "verifying every published wheel offline" step). Was: plugins were only turned off
    in the Typer command's body, so the library verified every Sigstore bundle, DSSE
    envelope and PEP 740 attestation with a third party's plugin around the validators."""
    env, marker = _spy(tmp_path)
    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    done = subprocess.run([sys.executable, "-c", _LIBRARY, str(state)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _seen(marker) == "", _seen(marker)[:2000]


_IN_PROCESS = """
import pickle, sys
import factory.config
settings = pickle.loads(open(sys.argv[1], "rb").read())
factory.config.load_settings = lambda *a, **k: settings
import sigstore.models  # the caller's own use of Sigstore (signing, say), before verify
open(sys.argv[2], "w").close()  # what the plugin did so far is the caller's business
sys.argv = ["factory", "verify", "--all", "--json", "--no-advisories"]
from factory.cli import main
main()
"""


def test_an_in_process_caller_with_a_plugin_loaded_is_refused(copy: PublishedIndex,
                                                              tmp_path: Path) -> None:
    """The command run in-process (verify.py supports it: `_leave` and `_freeze_at_exit`
    go on for "a server running the command in-process") by a caller that built
    Sigstore's models with a plugin loaded: turning plugins off then is too late (pydantic
    wrapped the plugin around each model's validator when the class was built). Was: the
    plugin saw every bundle. Now: refused, one line, exit 2, before any is parsed."""
    env, marker = _spy(tmp_path)
    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    done = subprocess.run([sys.executable, "-c", _IN_PROCESS, str(state), str(marker)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "pydantic plugins were loaded" in done.stderr and "spy_plugin" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""  # no report: nothing was verified
    assert "saw " not in _seen(marker), _seen(marker)[:2000]


_LIBRARY_AFTER_PLUGIN = """
import pickle, sys
settings = pickle.loads(open(sys.argv[1], "rb").read())
import pydantic
pydantic.TypeAdapter(int)  # the caller's own model: pydantic loads the plugin here
from factory.errors import FactoryError
from factory.sign.monitor import verify_log
from factory.verify import verify
for call in (lambda: verify(settings, everything=True, check_advisories=False),
             lambda: verify_log(None, None, None)):
    try:
        call()
    except FactoryError as exc:
        print(type(exc).__name__, exc.exit_code, exc.message)
    else:
        print("went on")
"""


def test_a_library_caller_with_a_plugin_loaded_is_refused(copy: PublishedIndex,
                                                          tmp_path: Path) -> None:
    """factory.verify.verify and factory.sign.monitor.verify_log in a process where a
    plugin is already loaded: refused (PluginsLoaded, exit code 2) before they parse
    anything, whatever their arguments."""
    env, marker = _spy(tmp_path)
    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    done = subprocess.run([sys.executable, "-c", _LIBRARY_AFTER_PLUGIN, str(state)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("PluginsLoaded 2 pydantic plugins were "
                                                   "loaded") for line in lines), lines
    assert "saw factory" not in _seen(marker) and "saw sigstore" not in _seen(marker)


@pytest.mark.parametrize("command", ["verify", "monitor"])
def test_the_log_verifier_loads_no_plugin(copy: PublishedIndex, tmp_path: Path,
                                          command: str) -> None:
    """`factory log verify` / `log monitor` verify the published transparency log
    (checkpoints, every entry against its root, who signed): evidence. Was: plugins on,
    the trusted root parsed with Sigstore's models and each entry with rekor_types'
    (factory.sign._authority.entries), all wrapped by the plugin."""
    env, marker = _spy(tmp_path)
    done = _program(copy.settings, tmp_path, "log", command, shell_tail=">/dev/null",
                    env=env)
    assert _code(done) == 0, done.stderr[-2000:]
    assert _seen(marker) == "", _seen(marker)[:2000]
