"""`factory COMMAND` imports only the module that registers COMMAND (factory.cli.
_COMMAND_MODULES): Typer builds every registered command's parameters before it runs
one. The map is held to what the modules register; anything it does not name (no
command, --help, a typo) loads them all, so the help and Typer's errors list every
command."""

from __future__ import annotations

import json
import subprocess
import sys

_REGISTERED = """
import json, sys, typer.main
from factory.cli import _commands
_commands()
from factory.cli._app import app
found = {}
for info in app.registered_commands:
    name = info.name or typer.main.get_command_name(info.callback.__name__)
    found[name] = info.callback.__module__
for group in app.registered_groups:
    found[group.name] = next(
        module for module, value in sys.modules.items()
        if module.startswith("factory.cli.") and value is not None
        and any(o is group.typer_instance for o in vars(value).values()))
print(json.dumps(found))
"""

_LOADED = """
import json, sys
sys.argv = ["factory", *sys.argv[1:]]
from factory.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith("factory.cli."))))
"""

_ALL = ["factory.cli._app", "factory.cli.answers", "factory.cli.build",
        "factory.cli.environment", "factory.cli.index", "factory.cli.policy",
        "factory.cli.tlog", "factory.cli.verify"]


def _python(code: str, *argv: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_map_names_the_module_of_every_registered_command() -> None:
    from factory.cli import _COMMAND_MODULES

    registered = json.loads(_python(_REGISTERED))
    assert {name: f"factory.cli.{module}" for name, module in _COMMAND_MODULES.items()} \
        == registered


def test_a_command_loads_only_its_module() -> None:
    loaded = json.loads(_python(_LOADED, "--debug", "verify", "--help"))
    assert loaded == ["factory.cli._app", "factory.cli.verify"]
    assert json.loads(_python(_LOADED, "index", "--help")) == ["factory.cli._app",
                                                                "factory.cli.index"]


def test_no_command_or_an_unknown_one_loads_every_module() -> None:
    assert json.loads(_python(_LOADED, "--help")) == _ALL
    assert json.loads(_python(_LOADED, "no-such-command")) == _ALL
