"""The `factory` command: thin. It parses, calls the library, and prints.

One module per group of commands (``policy``, ``answers``, ``build``, ``index``,
``verify``, ``tlog``, ``environment``);
``_app`` holds the Typer app and the only ways text reaches the terminal.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from factory._internal.plugins import plugins_off
from factory.errors import FactoryError, FileSystemError

if TYPE_CHECKING:
    from typer import Typer

    app: Typer

__all__ = ["app", "main", "print_error"]


# The module that registers each top-level command or group on ``_app.app`` (a test
# holds this to what the modules register).
_COMMAND_MODULES = {
    **dict.fromkeys(("add", "lock", "fetch", "status", "why", "recipes"), "policy"),
    **dict.fromkeys(("mcp", "request", "requests"), "answers"),
    **dict.fromkeys(("plan", "build", "publish", "rebuild", "watch", "deploy", "builder",
                     "keys", "authority", "prefect"), "build"),
    **dict.fromkeys(("serve", "yank", "upload", "index"), "index"),
    "verify": "verify",
    "log": "tlog",
    **dict.fromkeys(("sbom", "export"), "environment"),
}


def _commands(argv: list[str] | None = None) -> None:
    """Import the command modules for the commands they register on ``_app.app``, in
    pipeline order (the order of --help). Not at this package's import: `main` first
    starts `verify --all`'s child (``_verify_child``), before Typer and the commands'
    imports. With ``argv`` naming a command, only that command's module: Typer builds
    every registered command's parameters before it runs one (about 13 ms for all)."""
    import importlib

    command = next((word for word in argv or () if not word.startswith("-")), None)
    if command in _COMMAND_MODULES:
        importlib.import_module(f"factory.cli.{_COMMAND_MODULES[command]}")
        return
    # isort: off
    from factory.cli import policy, answers, build, index, verify, tlog, environment  # noqa: F401
    # isort: on


def __getattr__(name: str) -> Any:
    if name == "app":  # the Typer app with every command on it
        _commands()
        from factory.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def print_error(exc: FactoryError) -> None:
    """The one place an error reaches the operator's terminal. Messages quote what
    attackers wrote (build logs, file names): printed as plain text (no Rich markup,
    emoji codes or highlighting) with every control character escaped."""
    from factory.cli._app import plain

    plain(exc.diagnostics())


# What makes a command line other than `verify --all` on the settings' index directory.
_NOT_THE_INDEX = ("--index", "--help", "-h", "--rebuild", "--upstream", "answer")


def _verify_child(argv: list[str]) -> None:
    """For `factory verify --all` on the settings' index (not --index, not --help): start
    the run's early child (factory.verify.early.prestart) now, before Typer and the
    commands are imported and the command line parsed (about 0.2 s on one core, which
    the child spends on its pre-checks), with the settings the command then uses. A
    command line this misreads costs a child that no run takes (stopped at exit, or when
    the run forks its own), never a verdict: a run uses a child only for the directory
    it verifies."""
    words = [word for word in argv if word != "--debug"]  # the one global option
    if words[:1] != ["verify"] or "--all" not in words or any(
            word.split("=", 1)[0] in _NOT_THE_INDEX for word in words):
        return
    app_module = sys.modules.get("factory.cli._app")  # (not imported yet by the program)
    cached = getattr(getattr(app_module, "_State", None), "settings", None)
    settings = cached
    if settings is None:  # none cached: load them as the command would
        from factory.config import load_settings

        try:
            settings = load_settings()
        except Exception:  # the command says what is wrong with the settings, in its words
            return
    from factory.verify import early

    early.prestart(settings)
    if cached is None:  # cached after the fork (the app's module imports Typer and Rich)
        from factory.cli._app import _State

        _State.settings = settings


def main() -> None:
    """Entry point: user-caused errors print one line and exit non-zero, no traceback."""
    try:
        # Before anything imports pydantic: no plugin wraps a model this program builds
        # (factory._internal.plugins; the evidence parsers check it again).
        plugins_off(check=False)
        _verify_child(sys.argv[1:])  # `verify --all`: its child starts before the parsing
        from factory._internal.lazy import collector_paused

        with collector_paused():  # Typer, Rich and the commands' imports
            _commands(sys.argv[1:])
            from factory.cli._app import app

        app()
    except FactoryError as exc:
        from factory.cli._app import _State

        if _State.debug or os.environ.get("FACTORY_DEBUG"):
            raise
        print_error(exc)
        sys.exit(exc.exit_code)
    except OSError as exc:  # the machine refused a file operation: where, and why
        from factory.cli._app import _State

        if _State.debug or os.environ.get("FACTORY_DEBUG"):
            raise
        error = FileSystemError.from_os_error(exc, _State.settings)
        print_error(error)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:  # (also while the commands are imported, after the fork)
        _interrupted()
        sys.exit(130)
    finally:
        _stop_child()


def _interrupted() -> None:
    app_module = sys.modules.get("factory.cli._app")
    if app_module is not None and hasattr(app_module, "err"):
        app_module.err.print("interrupted", highlight=False)
    else:  # interrupted before the consoles exist (Typer and Rich being imported)
        sys.stderr.write("interrupted\n")


def _stop_child() -> None:
    """Stop the child `_verify_child` started if no run took it (a usage error, --version,
    an interrupt): when main() returns, not only at exit. A caller that runs main() in
    its own process (a test, a server) goes on; the child's index checks describe the
    index as it was when it started, and it would read the disk meanwhile."""
    early = sys.modules.get("factory.verify.early")
    if early is not None:
        early.drop_prestarted()


if __name__ == "__main__":
    main()
