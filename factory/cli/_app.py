"""The `factory` command's frame: the Typer app, the consoles, and the only
ways anything reaches the terminal (plain text for what others wrote)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from factory import __version__
from factory.config import Settings, load_settings
from factory.errors import FileSystemError, printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    out: Console  # stdout
    err: Console  # stderr

app = typer.Typer(
    name="factory",
    help="Build approved Python components from source, sign and attest them, and serve "
    "them as a private index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def __getattr__(name: str) -> Any:
    """``out`` and ``err``, the consoles, made on first use: Rich is imported only by a
    command that prints through it (not by `verify --all --json`, about 15 ms of its
    serial start)."""
    if name in ("out", "err"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _console(name: str) -> Console:
    """The console ``out`` or ``err``, made (and kept as the module's) the first time."""
    if name not in globals():
        from rich.console import Console

        globals()[name] = Console(stderr=name == "err")
    console: Console = globals()[name]
    return console


F = TypeVar("F", bound=Callable[..., Any])

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class _State:
    settings: Settings | None = None
    debug = False


def settings() -> Settings:
    if _State.settings is None:
        _State.settings = load_settings()
    return _State.settings


def emit_json(value: Any) -> None:
    """``value`` as indented JSON on stdout: highlighted by Rich on a terminal; for a
    pipe or file (a machine reading it), the same text written directly (Rich parses the
    JSON again and highlights it token by token: about 70 ms for a 90 KB report)."""
    console = _console("out")
    if console.is_terminal:
        console.print_json(json.dumps(value, default=str))
        return
    write_out(json.dumps(value, default=str, indent=2, ensure_ascii=False) + "\n",
              console.file)


def write_out(text: str, stream: Any) -> None:
    """``text`` on ``stream`` (standard output), written through: a write the machine
    refuses (a full disk, a closed pipe) is said as such, not blamed on the state
    directory as any other file error is. Nothing for a stream that is None (started
    with the descriptor closed)."""
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except OSError as exc:
        raise FileSystemError(f"cannot write to standard output: "
                              f"{exc.strerror or type(exc).__name__}",
                              "send the output where it can be written (free space, an "
                              "open pipe), or leave out --json") from None


def plain(text: str, console: Console | None = None) -> None:
    """Print a line that quotes what others wrote (upstream, builds, files on disk):
    as text, never as Rich markup, emoji or highlighting, every control escaped."""
    (console or _console("err")).print(printable(text), highlight=False, markup=False,
                                       emoji=False, soft_wrap=True)


def cell(text: str, style: str = "") -> Text:
    """A table cell that quotes what others wrote: text, never markup, controls escaped
    (Rich applies markup in plain string cells and sends their escapes raw)."""
    from rich.text import Text

    return Text(printable(text, keep=""), style=style)


def _version(value: bool) -> None:
    if value:
        _console("out").print(f"factory {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    _State.debug = debug


# -- recipes ---------------------------------------------------------------------


def _key(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


