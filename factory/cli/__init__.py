"""The `factory` command: thin. It parses, calls the library, and prints.

One module per group of commands (``policy``, ``answers``, ``build``, ``index``,
``verify``, ``tlog``, ``environment``);
``_app`` holds the Typer app and the only ways text reaches the terminal.
"""

from __future__ import annotations

import os
import sys

# isort: off
# Imported for the commands they register, in pipeline order (the order of --help).
from factory.cli import policy, answers, build, index, verify, tlog, environment  # noqa: F401
# isort: on
from factory.cli import _app
from factory.cli._app import _State, app, plain
from factory.errors import FactoryError, FileSystemError

__all__ = ["app", "main", "print_error"]


def print_error(exc: FactoryError) -> None:
    """The one place an error reaches the operator's terminal. Messages quote what
    attackers wrote (build logs, file names): printed as plain text (no Rich markup,
    emoji codes or highlighting) with every control character escaped."""
    plain(exc.diagnostics())


def main() -> None:
    """Entry point: user-caused errors print one line and exit non-zero, no traceback."""
    try:
        app()
    except FactoryError as exc:
        if _State.debug or os.environ.get("FACTORY_DEBUG"):
            raise
        print_error(exc)
        sys.exit(exc.exit_code)
    except OSError as exc:  # the machine refused a file operation: where, and why
        if _State.debug or os.environ.get("FACTORY_DEBUG"):
            raise
        error = FileSystemError.from_os_error(exc, _State.settings)
        print_error(error)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        _app.err.print("interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
