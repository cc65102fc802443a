"""The auditor's command: verify.

The command builds what is trusted and where (the index view, the pinned trust),
runs the library's checks (factory.verify.audit), and prints what they found:
a table or JSON, and an HTML file on request. The library never prints.
"""

from __future__ import annotations

import atexit
import functools
import gc
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from factory.cli import _app
from factory.cli._app import (
    JsonOpt,
    app,
    settings,
)
from factory.config import Settings

if TYPE_CHECKING:
    from rich.console import Console

    from factory.verify import ArtifactReport, Equivalence, Rebuild


@app.command()
def verify(
    target: Annotated[str | None, typer.Argument(
        help="A wheel file, NAME==VERSION, a requirements file with hashes, a pylock.toml or "
        "uv.lock, or a venv path; or `answer` and a saved signed answer (FILE or -).")] = None,
    answer_file: Annotated[str | None, typer.Argument(
        metavar="[FILE|-]", help="With `answer`: the saved answer ({answer, envelope} JSON "
        "or a bare envelope), - for stdin.", show_default=False)] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every file of the index.")] = False,
    rebuild_spec: Annotated[str | None, typer.Option(
        "--rebuild", help="NAME==VERSION: rebuild from the recorded provenance and compare.")]
    = None,
    upstream_spec: Annotated[str | None, typer.Option(
        "--upstream", help="NAME==VERSION: compare with upstream's wheel (pure Python).")]
    = None,
    as_json: JsonOpt = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML audit report here.")] = None,
    index: Annotated[str | None, typer.Option(help="The index directory (default: the "
                                                "state's) or its URL (fetched over HTTP); "
                                                "with `answer`: the index URL serving the "
                                                "answers key.")] = None,
    key: Annotated[Path | None, typer.Option(help="The answers public key (PEM), pinned: "
                                             "with `answer`, the answer's signer; with "
                                             "--all, the VEX feed's.")] = None,
    trusted_root: Annotated[Path | None, typer.Option(help="Pinned Sigstore trusted root.")]
    = None,
    owner_key: Annotated[Path | None, typer.Option(help="Pinned in-toto layout owner key.")]
    = None,
    identity: Annotated[str | None, typer.Option(help="Expected signer identity (SAN).")] = None,
    issuer: Annotated[str | None, typer.Option(help="Expected OIDC issuer.")] = None,
    builder_id: Annotated[list[str] | None, typer.Option(help="Allowed builder id(s).")] = None,
    advisories: Annotated[str | None, typer.Option(help="OSV source (directory, zip, URL).")]
    = None,
    no_advisories: Annotated[bool, typer.Option("--no-advisories")] = False,
    ignore: Annotated[list[str] | None, typer.Option(help="Installed names to skip (venvs).")]
    = None,
    workers: Annotated[int | None, typer.Option(help="Parallel workers.")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Every check.")] = False,
    allow_skipped: Annotated[bool, typer.Option(
        "--allow-skipped", help="Exit 0, not 3, when nothing failed but a check could not "
        "run (the summary still names it).")] = False,
) -> None:
    """Verify artifacts offline: digests, Sigstore, SLSA provenance, SBOM, in-toto,
    advisories. Exit 0 every check ran and passed, 1 a check failed, 2 usage error or
    unusable trust, 3 nothing failed but a check did not run (advisory source unreachable,
    say; its summary line names it) unless --allow-skipped. --index takes a URL too.

    `factory verify answer FILE|-` checks a saved signed answer of the policy API or MCP
    with the answers key (the state's, --key PEM, or --index URL's served one)."""
    if target == "answer":
        raise typer.Exit(verify_answer_file(settings, answer_file, key, index))
    _freeze_at_exit()
    code = run(settings(), target, everything=everything, rebuild=rebuild_spec,
               upstream=upstream_spec, json_output=as_json, html=html, verbose=verbose,
               console=None if as_json else _app.out, index_dir=_index_place(index),
               trusted_root=trusted_root,
               owner_key=owner_key, answers_key=key, identity=identity, issuer=issuer,
               builder_ids=tuple(builder_id or ()), advisories=advisories,
               check_advisories=not no_advisories, ignore=tuple(ignore or ()), workers=workers,
               allow_skipped=allow_skipped)
    _leave(code)
    raise typer.Exit(code)


def _leave(code: int) -> None:
    """End the `factory` program here, with ``code``: the exit handlers run (the early
    child's stop, gc.freeze, a caller's own), stdout and stderr are flushed, and then
    the process ends without the interpreter's teardown of the modules and objects
    Sigstore, pydantic and in-toto left, which frees memory the exit frees anyway (10
    to 40 ms of a 1 s `verify --all` here). Only when this process is the `factory`
    program (a caller that runs the command in-process goes on), and only where the
    interpreter lets the handlers be run first."""
    run_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's own exit step
    if not _the_program() or run_handlers is None:
        return
    run_handlers()
    lost = False
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with the descriptor closed: nothing was written
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, a full disk: the report is lost
            lost = lost or stream is sys.stdout
    # As the interpreter's own exit does (120), a report that could not be written is
    # never a success; a failed verdict keeps its code.
    os._exit(code or (120 if lost else 0))


@functools.cache  # registered once per process
def _freeze_at_exit() -> None:
    """At exit, put every object out of the collector's reach (gc.freeze, once): the
    interpreter's last collections would otherwise walk the hundreds of thousands of
    objects Sigstore, pydantic, in-toto and the report leave behind, about 0.1 s of a
    1.5 s `verify --all`, only to free memory the exit frees anyway. Nothing is lost:
    the report is printed and its HTML file written by then (the interpreter still
    flushes stdout and stderr). Only when this process is the `factory` program: in a
    caller's process (a test, a server running the command in-process) the exit's
    collections also finalize the caller's own garbage (a cycle whose __del__ removes
    a temporary file, say), which a freeze would skip."""
    if _the_program():
        atexit.register(gc.freeze)


def _the_program() -> bool:
    """Whether this process runs `factory` itself (its console script, or `python -m
    factory.cli`), not a caller that runs the command in-process."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return str(spec.name).startswith("factory.")
    # The console script: __main__ is its file (bin/factory); not a `python -c` caller
    # that names itself "factory" in sys.argv.
    return Path(getattr(main, "__file__", None) or "").name == "factory"


def _index_place(index: str | None) -> Path | str | None:
    """--index: a directory, or the index's URL (kept as text)."""
    if index and index.startswith(("http://", "https://")):
        return index
    return Path(index) if index else None


def run(
    settings: Settings,
    target: str | None = None,
    *,
    everything: bool = False,
    rebuild: str | None = None,
    upstream: str | None = None,
    json_output: bool = False,
    html: Path | None = None,
    verbose: bool = False,
    console: Console | None = None,
    index_dir: Path | str | None = None,
    allow_skipped: bool = False,
    **audit: Any,
) -> int:
    """What `factory verify` does: verify, print (table or JSON), write HTML; the exit code.

    ``audit`` holds the keyword arguments of factory.verify.verify (the pinned trust,
    the advisory source, the names to ignore, the workers).
    Raises TargetError (exit 2) for a usage error or an unusable target or index,
    TrustError when the pinned trust cannot be loaded.
    """
    # Imported here: every other command starts without the verifier's dependencies
    # (and `verify --all` imports them only once its index checks have started).
    from factory.verify import TargetError, exit_code, verify

    if console is None and not json_output:
        console = _stdout()
    modes = [bool(target) or everything, bool(rebuild), bool(upstream)]
    if sum(modes) != 1:
        raise TargetError("give exactly one of: TARGET, --all, --rebuild NAME==VERSION, "
                          "--upstream NAME==VERSION")
    if rebuild or upstream:
        if isinstance(index_dir, str):
            raise TargetError("--rebuild and --upstream compare with the index directory, "
                              "not a URL")
        return _compare(settings, rebuild, upstream, json_output, console or _stdout(),
                        index_dir)
    with _progress(console, quiet=json_output) as on_result:
        report = verify(settings, target, everything=everything, index_dir=index_dir,
                        on_result=on_result, **audit)
    from factory.verify.render import print_report, report_json, write_html

    if html is not None:
        write_html(report, html)
    if json_output:  # (no stdout at all: the exit code says it)
        _app.write_out(report_json(report), console.file if console is not None else sys.stdout)
    else:
        assert console is not None
        print_report(report, console, verbose)
        if html is not None:
            console.print(f"report written to {html}", highlight=False)
    return exit_code(report, allow_skipped)


def _stdout() -> Console:
    from rich.console import Console  # (not for --json: see factory.cli._app.out)

    return Console()


@contextmanager
def _progress(console: Console | None,
              quiet: bool) -> Iterator[Callable[[ArtifactReport], None] | None]:
    """A live count of the artifacts verified, on a terminal; nothing for --json or a pipe."""
    if quiet or console is None or not console.is_terminal:
        yield None
        return
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from factory.errors import printable

    # The label quotes the target (a dist-info's Name, a lock's package): text, not markup.
    # Redrawn on each result, never by Rich's refresh thread: `verify --all` forks (its
    # early child, its workers) only while this process runs a single thread.
    with Progress(SpinnerColumn(), TextColumn("verifying"), MofNCompleteColumn(),
                  TextColumn("{task.description}", markup=False), console=console,
                  transient=True, auto_refresh=False) as bar:
        task = bar.add_task("", total=None)
        yield lambda a: bar.update(task, advance=1, description=printable(a.label, keep=""),
                                   refresh=True)


def _compare(settings: Settings, rebuild: str | None, upstream: str | None,
             json_output: bool, console: Console, index_dir: Path | None) -> int:
    """`--rebuild` (reproducible?) or `--upstream` (equivalent to upstream's wheel?)."""
    results: list[Rebuild] | list[Equivalence]
    if rebuild:
        from factory.verify.reproduce import rebuild_and_compare

        results = rebuild_and_compare(settings, rebuild, index_dir=index_dir)
        good = all(r.reproducible for r in results)
    else:
        from factory.verify.equivalence import compare_with_upstream

        results = compare_with_upstream(settings, str(upstream), index_dir=index_dir)
        good = all(r.equivalent for r in results)
    from factory.errors import printable

    if json_output:
        console.file.write(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    else:
        for result in results:
            console.print(printable(f"{result.filename}: {result.message}"), highlight=False,
                          markup=False, style="green" if good else "red")
            explained = getattr(result, "files", None)
            if explained:  # equivalence: why each file differs (upstream text, printable)
                for item in explained:
                    detail = f": {item['detail']}" if item.get("detail") else ""
                    console.print(f"  {item['file']}: {item['why']}{detail}", highlight=False,
                                  markup=False)
            else:
                for difference in result.differences:
                    console.print(printable(f"  {difference}"), highlight=False, markup=False)
            backend = getattr(result, "backend", None)
            if backend and not getattr(result, "equivalent", True):
                console.print(f"  backend: {backend.get('reason')}", highlight=False,
                              markup=False)
            if getattr(result, "alarm", None):
                console.print(f"ALARM {result.alarm}", highlight=False, markup=False,  # type: ignore[union-attr]
                              style="red")
    return 0 if good else 1


KEY_BYTES = 64 * 1024  # an answers key served by an index: a PEM of a few hundred bytes
KEY_SECONDS = 30.0  # the whole fetch of that key (httpx's timeout is per read)


def verify_answer_file(settings_of: Callable[[], Settings], source: str | None,
                       key: Path | None, index_url: str | None,
                       stdin: Any = None) -> int:
    """`factory verify answer FILE|-`: one line, PASS or FAIL; 0 pass, 1 fail, 2 usage."""
    import sys

    from factory.advice import MAX_SAVED, summary, verify_saved
    from factory.errors import FactoryError, one_line

    if source is None:
        _app.plain("usage: factory verify answer FILE|- [--key PEM | --index URL]")
        return 2
    if key is not None and index_url is not None:
        _app.plain("usage: give --key or --index, not both")
        return 2
    try:
        if source == "-":
            data = (stdin or sys.stdin.buffer).read(MAX_SAVED + 1)
        else:
            data = read_regular(Path(source), MAX_SAVED + 1, "the answer file")
        pem = _answers_key(settings_of, key, index_url)
        statement, signed = verify_saved(data, pem)
    except FactoryError as exc:
        _app.plain(f"FAIL: {one_line(exc.message)}", _app.out)
        return 1
    subjects = [s.get("name", "?") for s in statement.get("subject", ()) if isinstance(s, dict)]
    asked = subjects[0] if len(subjects) == 1 else f"{len(subjects)} requirements"
    # one line, whatever the signed subject holds (a newline would forge a second line)
    _app.plain(one_line(f"PASS: {asked} -> {summary(signed)}", 1000), _app.out)
    return 0


def read_regular(path: Path, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of the regular file at ``path`` (a symlink to one too);
    a FIFO, device, socket or directory is refused without blocking: it is opened
    non-blocking and looked at before any byte is read (a FIFO with no writer would
    hang a plain open, /dev/zero never ends). VerificationError names ``what``."""
    import os
    import stat

    from factory.errors import VerificationError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise VerificationError(f"cannot read {what} {path}: {exc.strerror or exc}",
                                "give a readable file") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise VerificationError(f"{what} {path} is not a regular file",
                                    "give a file; a pipe goes to stdin as -")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit)
    except OSError as exc:
        raise VerificationError(f"cannot read {what} {path}: {exc.strerror or exc}",
                                "give a readable file") from None
    finally:
        os.close(fd)


def _answers_key(settings_of: Callable[[], Settings], key: Path | None,
                 index_url: str | None) -> bytes:
    """The answers public key's PEM: from --key, from the index at --index (its
    /.well-known/factory/answers.pub.pem, at most KEY_BYTES), or the state's."""
    from factory.advice import KEY_FILE
    from factory.attest.keys import public_key_path
    from factory.errors import VerificationError

    if key is not None:
        return read_regular(key, KEY_BYTES, "the key")
    if index_url is None:
        path = public_key_path(settings_of(), "answers")
        if not path.is_file():
            raise VerificationError(f"no answers key at {path}",
                                    "give --key PEM or --index URL")
        return read_regular(path, KEY_BYTES, "the key")
    import httpx

    from factory.errors import UpstreamError
    from factory.upstream.transport import Deadline, inflated, shown

    url = index_url.rstrip("/") + "/.well-known/factory/" + KEY_FILE
    # A trickle is not waited on forever, headers included (the timer shuts the socket);
    # the body is inflated from one encoding in bounded pieces, then counted.
    with Deadline(KEY_SECONDS, shown(url)) as deadline:
        try:
            with httpx.Client(timeout=10.0, follow_redirects=False) as client, \
                    client.stream("GET", url, extensions={"trace": deadline.trace}) as response:
                if response.status_code != 200:
                    raise VerificationError(f"{shown(url)} answered {response.status_code}")
                body = b""
                for chunk in inflated(response):
                    body += chunk
                    if len(body) > KEY_BYTES:
                        raise VerificationError(f"{shown(url)} sent more than {KEY_BYTES} bytes")
                    if deadline.remaining() <= 0:
                        raise httpx.ReadTimeout("deadline")
                return body
        except UpstreamError as exc:  # a stacked or corrupt Content-Encoding
            raise VerificationError(f"{shown(url)}: {exc.message}") from None
        except httpx.HTTPError as exc:
            if deadline.expired or deadline.remaining() <= 0:
                raise VerificationError(f"{shown(url)} took more than {KEY_SECONDS:g} "
                                        "seconds") from None
            raise VerificationError(f"cannot fetch {shown(url)}: {type(exc).__name__}") \
                from None
