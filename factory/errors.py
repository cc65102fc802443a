"""User-facing errors: each carries a one-line cause and a hint.

The CLI prints ``error: <cause>`` and ``hint: <hint>`` and exits non-zero, with
no traceback. Anything a user can cause (bad recipe, hash mismatch, unsafe
archive, policy refusal, missing engine) raises one of these.

Messages often quote what an attacker wrote (a build's log, a file name from an
archive, a listing): every message and hint is made printable when the error is
made, so no terminal, log viewer or ledger row that shows it ever receives a
raw control character (see ``printable``).
"""

from __future__ import annotations

import errno
import os


def printable(text: str, keep: str = "\n\t") -> str:
    """``text`` with every character that could drive a terminal shown as an escape.

    C0 and C1 controls (ESC, CR, BEL, backspace, CSI ...), DEL, bidi overrides and
    other format characters, line/paragraph separators, surrogates, and anything
    else Python calls unprintable become ``\\x1b``, ``\\u202e`` ...; the characters
    in ``keep`` (newline and tab) stay. The result is printable, so applying it
    again changes nothing.
    """
    kept = text
    for char in keep:  # what is left once the kept characters are gone, tested in C
        kept = kept.replace(char, "")
    if kept.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _escape(c) for c in text)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` as one printable line of at most ``limit`` characters: whitespace runs
    (newlines too) become one space, controls are escaped, and a longer text loses its
    middle, so both what it is about (the start) and where to read more (a log path at
    the end) stay."""
    flat = printable(" ".join(text.split()), keep="")
    if len(flat) <= limit:
        return flat
    head = max(1, (limit - 3) * 2 // 3)
    return flat[:head] + " … " + flat[len(flat) - max(0, limit - head - 3):]


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _inside(filename: object, directory: object) -> bool:
    """Whether ``filename`` names something under ``directory`` (or names nothing: an
    error with no path is blamed on the state, as before)."""
    if not filename:
        return True
    try:
        return os.path.abspath(str(filename)).startswith(os.path.abspath(str(directory)) + os.sep)
    except (TypeError, ValueError):
        return True


class FactoryError(Exception):
    """Base of every error a user can cause or fix."""

    exit_code = 1
    default_hint = "run with --debug for details"

    def __init__(self, message: str, hint: str | None = None) -> None:
        message = printable(message)
        super().__init__(message)
        self.message = message
        self.hint = printable(hint or self.default_hint)

    def diagnostics(self) -> str:
        """One line: the cause, then what to do about it."""
        return f"error: {self.message} (hint: {self.hint})"

    def reason(self, limit: int = 400, hint_limit: int = 600) -> str:
        """Why something failed, as one bounded line (the middle goes first), with the
        error's own hint when it has one: a hint is often the line to paste (the
        `factory add` to run, a recipe's allow_prebuilt), so it gets room of its own."""
        line = one_line(self.message, limit)
        if self.hint and self.hint != type(self).default_hint:
            line += f" (hint: {one_line(self.hint, hint_limit)})"
        return line


class ConfigError(FactoryError):
    default_hint = "check factory.toml and the FACTORY_* environment variables"


class RecipeError(FactoryError):
    default_hint = "fix the recipe and run `factory recipes check`"


class LockError(FactoryError):
    default_hint = "run `factory lock` to bring recipes.lock up to date"


class UpstreamError(FactoryError):
    default_hint = "check the upstream index URL and your network, then retry"


class IntegrityError(FactoryError):
    default_hint = "the file changed upstream or in transit; re-lock only if the change is expected"


class AlarmError(IntegrityError):
    """Upstream changed what a pin names (its bytes, or the host that serves it).

    Refused and recorded, never re-pinned: the old pin and the build made from it
    stay until an operator accepts the change (``factory lock --accept-change``).
    """

    default_hint = ("the old pin is kept; if the change is legitimate accept it with "
                    "`factory lock --accept-change NAME`")

    def __init__(self, message: str, hint: str | None = None, *,
                 component: str | None = None, version: str | None = None) -> None:
        super().__init__(message, hint)
        self.component, self.version = component, version


class UnsafeArchiveError(FactoryError):
    default_hint = "the sdist is refused; report it upstream or remove the component"


class PolicyError(FactoryError):
    default_hint = "adjust the recipe's policy (versions, track, licences, cooldown) if intended"


class EngineError(FactoryError):
    default_hint = "run scripts/ensure-docker.sh or point DOCKER_HOST at a running engine"


class BuildError(FactoryError):
    default_hint = "read the build log in the state directory (factory status shows it)"


class PublishError(FactoryError):
    default_hint = "the index was left unchanged; fix the cause and publish again"


class SigningError(FactoryError):
    default_hint = "run `factory keys init` and check the signing configuration"


class VerificationError(FactoryError):
    default_hint = "the artifact or its attestations do not match; do not install it"


class FileSystemError(FactoryError):
    """A file operation the machine refused (not a directory, permission, disk full)."""

    default_hint = ("check that the state directory is a directory you can read and write "
                    "(state_dir in factory.toml or FACTORY_STATE_DIR), with free space")

    @classmethod
    def from_os_error(cls, exc: OSError, settings: object | None = None) -> FileSystemError:
        where = f" {exc.filename}" if exc.filename else ""
        state = getattr(settings, "state_dir", None)
        hint = None
        if exc.errno == errno.ENXIO:  # a FIFO named as output with nobody reading it
            hint = "start the reader of that pipe first, or name a file"
        elif state is not None and _inside(exc.filename, state):
            hint = (f"check that the state directory {state} and what it holds are "
                    "directories and files you can read and write, with free space "
                    "(state_dir in factory.toml or FACTORY_STATE_DIR)")
        elif exc.filename:  # a path the user named (an output, an input), not the state's
            hint = "check the path: that it exists, is what the command expects, and is yours"
        return cls(f"cannot use{where}: {exc.strerror or type(exc).__name__}", hint)
