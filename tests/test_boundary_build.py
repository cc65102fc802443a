"""Boundary: build container -> host, and build log -> operator's terminal.

Everything a build leaves in /out is the attacker's: links to /dev/zero or to a
host secret, FIFOs and sockets where reports should be, 40,000 empty
directories, nesting deeper than a path, reports that lie, 100 MiB of stdout,
and terminal escapes in its log. The host reads none of it on trust, never
blocks on it, keeps it bounded, says in provenance only what it knows itself,
and shows its words to the operator inert. Work directories of builds killed
with -9 are swept by the next run, live ones of other processes spared.

The docker tests run real hostile builds in real containers (the builder image
is made once by the fixtures); the others drive the host's side directly.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from factory import cli
from factory.attest.provenance import build_statement
from factory.build import confined
from factory.build import job as builder
from factory.build.confined import Confined, OutputRefused, measure, remove_tree
from factory.build.docker import ContainerRun, LogKeeper
from factory.build.env import Kit, build_system
from factory.build.image import ImageRef
from factory.build.workdir import LOCK, UNLOCKED_STALE_SECONDS, sweep, work_dir
from factory.config import Settings
from factory.errors import BuildError, FactoryError, printable
from tests import factories
from tests.builders_fixtures import backend_sdist, build_backend, spy_containers, unpack
from tests.security_fixtures import guarded, kill9, python, wait_for

HANG_GUARD = 240.0  # seconds: only a hang gets near it (a build takes about 5 s)
WHEEL = "{name}-1.0-py3-none-any.whl"


# -- fixtures and helpers ------------------------------------------------------------

def _guarded(call: Callable[[], Any]) -> Any:
    """``call()`` in a thread: its result or exception, or a failure if it never returns."""
    return guarded(call, HANG_GUARD, "the host hung on what the build left behind")


def _nothing_placed(settings: Settings) -> bool:
    wheels = settings.wheels_dir
    return not wheels.exists() or not list(wheels.iterdir())


def _no_work_dirs(settings: Settings) -> bool:
    builds = settings.builds_dir
    return not builds.exists() or not [p for p in builds.iterdir()
                                       if p.name.startswith("build-")]


def _everything_written(settings: Settings) -> str:
    """Every file the factory wrote under its state dir (logs, records, wheels), as text."""
    texts = []
    for path in settings.state_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


# -- /out: links, FIFOs, sockets (real hostile builds) ------------------------------

REPLACE = """
    import os, socket
    target = "/out/" + VICTIM
    if os.path.lexists(target):
        os.remove(target)
    if KIND == "fifo":
        os.mkfifo(target)
    elif KIND == "socket":
        global KEEP
        KEEP = socket.socket(socket.AF_UNIX)
        KEEP.bind(target)
    else:
        os.symlink(KIND, target)
"""


@pytest.mark.docker
@pytest.mark.parametrize(("victim", "kind", "said"), [
    ("env.json", "fifo", "FIFO"),
    ("requires.json", "fifo", "FIFO"),
    ("env.json", "socket", "socket"),
    ("env.json", "/dev/zero", "symbolic link"),
    ("requires.json", "/dev/zero", "symbolic link"),
])
def test_a_fifo_socket_or_link_in_place_of_a_report_fails_the_build_quickly(
        tmp_path: Path, kit: Kit, image: ImageRef, victim: str, kind: str, said: str) -> None:
    """Today a FIFO env.json hangs `factory build` forever, and a link to /dev/zero
    eats the host's memory: both must be a clear BuildError, at once."""
    settings = factories.settings(tmp_path, build_timeout=120)
    extra = f"\nVICTIM = {victim!r}\nKIND = {kind!r}\n"
    with pytest.raises(BuildError) as caught:
        _guarded(lambda: build_backend(settings, kit, image, "hostile", REPLACE, extra))
    assert repr(victim) in caught.value.message and said in caught.value.message
    assert _nothing_placed(settings)
    assert _no_work_dirs(settings)


WHEEL_LINK = """
    import os
    os.symlink(TARGET, "/out/" + WHEEL)  # the driver's copy then writes through it
"""


@pytest.mark.docker
@pytest.mark.parametrize("report", ["requires.json", "wheel"])
def test_a_link_to_a_host_secret_is_never_read(tmp_path: Path, kit: Kit, image: ImageRef,
                                              report: str) -> None:
    """A link whose target names a file on the host: the host must not follow it
    (today requires.json -> a host JSON file lands in the record and provenance).
    The secret sits in /tmp, which the container has too (empty): the driver's copy
    of the wheel writes through the link there, and leaves the link in /out."""
    settings = factories.settings(tmp_path, build_timeout=120)
    secret = "host-secret-" + os.urandom(6).hex()
    target = Path("/tmp") / f"factory-{secret}.json"
    target.write_text(json.dumps({"static": [], "dynamic": [], "missing": [],
                                  "backend": secret, "backend_path": None}))
    if report == "wheel":
        payload, extra = WHEEL_LINK, (f"\nTARGET = {str(target)!r}\n"
                                      f"WHEEL = {WHEEL.format(name='linked')!r}\n")
    else:
        payload, extra = REPLACE, f"\nVICTIM = {report!r}\nKIND = {str(target)!r}\n"
    try:
        with pytest.raises(BuildError, match="symbolic link"):
            _guarded(lambda: build_backend(settings, kit, image, "linked", payload, extra))
        assert _nothing_placed(settings)
        assert secret not in _everything_written(settings)
    finally:
        target.unlink()


# -- /out: entries and depth count --------------------------------------------------

@pytest.mark.docker
def test_40000_empty_directories_are_over_the_output_limit(
        tmp_path: Path, kit: Kit, image: ImageRef) -> None:
    settings = factories.settings(tmp_path, build_timeout=120, build_max_output=50 << 20)
    payload = """
        import os
        for i in range(40000):
            try:
                os.mkdir(f"/out/d{i}")
            except OSError:
                break
    """
    with pytest.raises(OutputRefused) as caught:
        _guarded(lambda: build_backend(settings, kit, image, "manydirs", payload))
    assert f"more than {confined.MAX_ENTRIES} entries" in caught.value.message
    assert _nothing_placed(settings)
    assert _no_work_dirs(settings)


@pytest.mark.docker
def test_directories_nested_deeper_than_any_path_are_refused_and_removed(
        tmp_path: Path, kit: Kit, image: ImageRef) -> None:
    settings = factories.settings(tmp_path, build_timeout=120)
    payload = """
        import os
        here = os.getcwd()
        os.chdir("/out")
        for _ in range(5000):  # 10,000 characters of path: past PATH_MAX and any recursion
            os.mkdir("d")
            os.chdir("d")
        os.chdir(here)
    """
    with pytest.raises(OutputRefused, match=f"more than {confined.MAX_DEPTH} levels deep"):
        _guarded(lambda: build_backend(settings, kit, image, "deepdirs", payload))
    assert _nothing_placed(settings)
    assert _no_work_dirs(settings)


# -- reports that lie: provenance says only what the host knows ---------------------

LIE = """
    import json
    with open("/out/requires.json", "w") as f:
        json.dump({"static": ["evil-static>=1"], "dynamic": [], "missing": [],
                   "backend": "evil.backend:owned", "backend_path": ["/evil"]}, f)
"""


def _claims(record: Any) -> dict[str, Any]:
    """What a record says about how the build was made (minus what differs per run)."""
    settings_ = {k: v for k, v in record.builder_settings.items() if k != "environment"}
    return {"builder": settings_, "tools": [t.__dict__ for t in record.build_tools]}


@pytest.mark.docker
def test_a_lying_requires_json_does_not_change_what_provenance_claims(
        tmp_path: Path, kit: Kit, image: ImageRef) -> None:
    settings = factories.settings(tmp_path, build_timeout=120)
    honest = build_backend(settings, kit, image, "honest", "pass")
    liar = build_backend(settings, kit, image, "liar", LIE)
    assert _claims(liar) == _claims(honest)
    assert liar.builder_settings["build_backend"] == "backend"  # the tree's pyproject.toml
    assert liar.builder_settings["backend_path"] == ["."]
    assert liar.builder_settings["build_requires"]["static"] == []
    assert liar.builder_settings["build_requires"]["origin"]["dynamic"].startswith("reported")
    statement = json.dumps(build_statement(liar, settings))
    assert "evil" not in statement


@pytest.mark.docker
@pytest.mark.parametrize("lie", [
    '[{"name": "setuptools", "version": "80.0.0"}]',  # claims a tool that was not there
    '{"name": 1}',  # not even the shape of an inventory
    '[{"name": "x", "version": "not a version"}]',
])
def test_a_lying_env_json_is_a_failed_check_never_a_wider_claim(
        tmp_path: Path, kit: Kit, image: ImageRef, lie: str) -> None:
    settings = factories.settings(tmp_path, build_timeout=120)
    payload = f"open('/out/env.json', 'w').write({lie!r})"
    with pytest.raises(BuildError, match="env.json|build environment held"):
        build_backend(settings, kit, image, "envliar", payload)
    assert _nothing_placed(settings)


# -- the log: bounded, and inert on the operator's terminal --------------------------

@pytest.mark.docker
def test_100_mib_of_stdout_keeps_a_bounded_log_that_says_it_was_cut(
        tmp_path: Path, kit: Kit, image: ImageRef, monkeypatch: pytest.MonkeyPatch) -> None:
    from factory.build import docker

    settings = factories.settings(tmp_path, build_timeout=300)
    seen = spy_containers(monkeypatch)
    payload = """
        import sys
        sys.stdout.write("THE-START\\n")
        block = ("x" * 1023 + "\\n") * 1024
        for _ in range(100):
            sys.stdout.write(block)
        sys.stdout.write("THE-END\\n")
        sys.stdout.flush()
    """
    record = build_backend(settings, kit, image, "chatty", payload)
    bound = docker.LOG_HEAD + docker.LOG_TAIL + 4096
    assert len(seen[-1].log) <= bound
    assert seen[-1].log_omitted > 0
    log = (settings.logs_dir / record.log_filename).read_bytes()
    assert len(log) <= bound
    assert b"THE-START" in log and b"THE-END" in log  # the head and the tail are kept
    assert b"bytes of this log left out here" in log  # and the cut is said
    assert log.count(b"x" * 1023) < 5 << 10  # at most the head and tail's lines


ESCAPES = r"""
    evil = ("\x1b[2J\x1b[31mred\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07 "
            "[bold red]PWNED[/bold red] [link=http://evil.example/]x[/link] \u202eevil\r\x9b")
    print(evil, flush=True)
    raise ValueError(evil)
"""


def _assert_inert(text: str) -> None:
    for raw in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert raw not in text, repr(raw)


@pytest.mark.docker
def test_escapes_and_rich_markup_in_a_build_log_reach_the_terminal_inert(
        tmp_path: Path, kit: Kit, image: ImageRef, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = factories.settings(tmp_path, build_timeout=120)
    with pytest.raises(BuildError) as caught:
        build_backend(settings, kit, image, "escapes", ESCAPES)
    error = caught.value
    _assert_inert(error.message)
    _assert_inert(str(error))  # what Prefect's logger and tracebacks show
    assert "\\x1b[2J" in error.message and "[bold red]PWNED[/bold red]" in error.message

    # The CLI's error handler, on a real terminal ...
    terminal = io.StringIO()
    cli._commands()  # cli._app is read below (`import factory.cli` loads no command)
    monkeypatch.setattr(cli._app, "err", Console(file=terminal, force_terminal=True,
                                            color_system="truecolor", width=200))
    cli.print_error(error)
    shown = terminal.getvalue()
    _assert_inert(shown)
    assert "[bold red]PWNED[/bold red]" in shown  # markup shown as text, not applied
    assert "[link=http://evil.example/]x[/link]" in shown

    # ... and `factory` itself, as an operator runs it.
    monkeypatch.setattr(cli._app, "err", Console(stderr=True))

    def failing() -> None:
        raise error

    monkeypatch.setattr(cli, "app", failing)
    with pytest.raises(SystemExit):
        cli.main()
    _assert_inert(capsys.readouterr().err)


def test_a_factory_error_is_made_printable_wherever_it_is_shown() -> None:
    """The ledger, Prefect's logs and flow failures all show ``message`` or ``str()``."""
    error = BuildError("build failed\n\x1b[31mred\x1b[0m \u202e\r\x00", "fix \x1b]0;title\x07")
    for text in (error.message, str(error), repr(error), error.hint, error.diagnostics()):
        _assert_inert(text)
    assert error.message.startswith("build failed\n")  # newlines stay: the tail is lines
    record = logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1,
                               "build failed", None, (BuildError, error, None))
    _assert_inert(logging.Formatter().format(record))
    # What the rebuild flow raises at the end, built from the executor's messages.
    failed = {"x==1": error.message}
    summary = BuildError("1 component(s) failed to build: "
                         + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    _assert_inert(str(summary))


@given(st.text())
@settings(max_examples=300, deadline=None)  # no per-example clock: CI is loaded
def test_printable_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    shown = printable(text)
    assert all(c.isprintable() or c in "\n\t" for c in shown)
    assert printable(shown) == shown  # idempotent: escaping twice changes nothing
    if text.isprintable():
        assert shown == text


def test_the_tail_quoted_in_an_error_is_bounded_and_marked(tmp_path: Path) -> None:
    run = ContainerRun(1, False, (b"y" * 10_000_000) + b"\n\x1b[31mlast\n", 1.0)
    tail = builder._tail(run)
    assert len(tail) < builder.LOG_TAIL * (builder.LOG_TAIL_LINE + 20)
    assert all(line.startswith("  | ") for line in tail.splitlines())
    assert tail.endswith("\\x1b[31mlast")


# -- the log keeper ------------------------------------------------------------------

@settings(deadline=None)  # no per-example clock (Hypothesis's default is 200 ms)
@given(st.lists(st.binary(max_size=300), max_size=60), st.integers(0, 500),
       st.integers(1, 500))
def test_the_log_keeper_keeps_exactly_head_and_tail(chunks: list[bytes], head: int,
                                                   tail: int) -> None:
    keeper = LogKeeper(head, tail)
    for chunk in chunks:
        keeper.feed(chunk)
    whole = b"".join(chunks)
    kept = keeper.value()
    if len(whole) <= head + tail:
        assert kept == whole
    else:
        assert kept.startswith(whole[:head]) and kept.endswith(whole[-tail:])
        assert f"{len(whole) - head - tail} bytes of this log left out".encode() in kept
        assert len(kept) < head + tail + 200


# -- the confined reader: properties over hostile /out trees -------------------------

SECRET = b"the host's secret"
Entry = tuple[str, str, int]  # name, kind, size (files) or depth (dirs)

entries = st.lists(
    st.tuples(
        st.sampled_from(["env.json", "requires.json", "repair.json", "x.whl", "a", "b.json"]),
        st.sampled_from(["file", "link-zero", "link-secret", "link-dir", "link-dangling",
                         "fifo", "dir", "chardev"]),
        st.integers(0, 3000),
    ),
    max_size=6, unique_by=lambda e: e[0])


def _make(out: Path, host: Path, spec: list[Entry]) -> dict[str, bytes]:
    """Build a hostile /out; returns the regular files' contents."""
    files = {}
    for name, kind, size in spec:
        path = out / name
        if kind == "file":
            files[name] = os.urandom(size)
            path.write_bytes(files[name])
        elif kind == "link-zero":
            path.symlink_to("/dev/zero")
        elif kind == "link-secret":
            path.symlink_to(host / "secret")
        elif kind == "link-dir":
            path.symlink_to(host)
        elif kind == "link-dangling":
            path.symlink_to("/nonexistent/x")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "chardev" and os.geteuid() == 0:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
        else:
            nested = path
            for _ in range(size % 5 + 1):
                nested.mkdir()
                (nested / "f").write_bytes(b"z")
                nested = nested / "d"
    return files


@given(spec=entries, cap=st.integers(0, 4000))
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_confined_reader_reads_regular_files_only_and_never_blocks(
        tmp_path_factory: pytest.TempPathFactory, spec: list[Entry], cap: int) -> None:
    base = tmp_path_factory.mktemp("out")
    out, host = base / "out", base / "host"
    out.mkdir()
    host.mkdir()
    (host / "secret").write_bytes(SECRET)
    files = _make(out, host, spec)
    reader = Confined(out, "hostile 1.0")
    for name, _, _ in spec + [("absent", "", 0)]:
        def read(name: str = name) -> Any:
            try:
                return reader.read(name, cap)
            except OutputRefused as exc:
                return exc
        got = _guarded(read)
        if name in files and len(files[name]) <= cap:
            assert got == files[name]
        elif name == "absent" or not os.path.lexists(out / name):
            assert got is None
        else:
            assert isinstance(got, OutputRefused), (name, got)
            assert SECRET.decode() not in got.message
    assert (host / "secret").read_bytes() == SECRET


@given(spec=entries)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_measuring_counts_every_entry_and_removing_follows_no_link(
        tmp_path_factory: pytest.TempPathFactory, spec: list[Entry]) -> None:
    base = tmp_path_factory.mktemp("out")
    out, host = base / "out", base / "host"
    out.mkdir()
    host.mkdir()
    (host / "secret").write_bytes(SECRET)
    _make(out, host, spec)
    actual = sum(len(dirs) + len(names) for _, dirs, names in os.walk(out))  # links not followed
    usage = _guarded(lambda: measure(out, 1 << 30))
    assert usage.problem == "" and usage.entries == actual
    assert usage.bytes >= actual * confined.BLOCK
    tight = measure(out, 1 << 30, max_entries=max(0, actual - 1))
    assert (tight.problem != "") == (actual > 0) and tight.limit in ("entries", "")
    _guarded(lambda: remove_tree(out))
    assert not out.exists()
    assert (host / "secret").read_bytes() == SECRET  # no link was followed


def test_a_socket_in_the_output_is_refused(tmp_path: Path) -> None:
    out = Path(f"/tmp/fo-{os.getpid()}")  # a socket's path must be short
    out.mkdir()
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(out / "env.json"))
            with pytest.raises(OutputRefused, match="socket"):
                _guarded(lambda: Confined(out, "x 1").read_json("env.json"))
    finally:
        remove_tree(out)


def test_sizes_are_charged_whole_and_limits_stop_the_walk(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as f:
        f.truncate(100 << 20)  # 100 MiB that take no disk: charged as 100 MiB
    assert "over the limit" in measure(tmp_path, 50 << 20).problem
    sparse.unlink()
    for i in range(20):
        (tmp_path / f"d{i}").mkdir()
    usage = measure(tmp_path, 1 << 30, max_entries=10)
    assert usage.limit == "entries" and usage.entries == 11  # stopped at the first excess
    assert measure(tmp_path, 20 * confined.BLOCK - 1).limit == "bytes"  # empty dirs cost


def test_a_tree_deeper_than_recursion_is_measured_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(3000):  # 6,000 characters of path, 3,000 levels
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    finally:
        os.close(fd)
    assert measure(root, 1 << 30).limit == "depth"
    remove_tree(root)
    assert not root.exists()


@pytest.mark.parametrize("text", [b"[build-system]\nrequires = 5\n", b"\xff\xfe",
                                  b"[build-system]\nbuild-backend = 3\n",
                                  b"[build-system]\nrequires = ['not a ! requirement']\n"])
def test_an_invalid_build_system_is_a_build_error(tmp_path: Path, text: bytes) -> None:
    (tmp_path / "pyproject.toml").write_bytes(text)
    with pytest.raises(BuildError, match="pyproject.toml"):
        build_system(tmp_path, "x 1")


def test_the_build_system_is_read_by_the_host_with_pep_517_defaults(tmp_path: Path) -> None:
    assert build_system(tmp_path, "x 1").backend == "setuptools.build_meta:__legacy__"
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["flit_core>=3"]\n'
                                             'build-backend = "flit_core.buildapi"\n')
    system = build_system(tmp_path, "x 1")
    assert (system.backend, system.requires, system.backend_path) == (
        "flit_core.buildapi", ("flit_core>=3",), None)
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "pyproject.toml").symlink_to("/etc/passwd")
    with pytest.raises(BuildError, match="symbolic link"):
        build_system(tmp_path, "x 1")


# -- work dirs of killed builds ------------------------------------------------------

HOLD = """
    import sys, time
    from pathlib import Path
    from factory.build.workdir import work_dir
    with work_dir(Path(sys.argv[1]), sys.argv[2], "child") as path:
        print(path, flush=True)
        time.sleep(600)
"""


def test_work_dirs_of_killed_processes_are_swept_live_ones_spared(tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    live, killed = python(HOLD, str(builds), "build-a-"), python(HOLD, str(builds), "build-b-")
    try:
        live_dir = Path(live.stdout.readline().decode().strip())  # type: ignore[union-attr]
        killed_dir = Path(killed.stdout.readline().decode().strip())  # type: ignore[union-attr]
        (killed_dir / "out").mkdir()
        (killed_dir / "out" / "junk").write_text("x")
        assert sweep(builds) == []  # both owners alive
        kill9(killed)
        assert sweep(builds) == [killed_dir]
        assert live_dir.is_dir() and not killed_dir.exists()
        with work_dir(builds, "build-", "me") as mine:
            assert sweep(builds) == []  # this process's own live dir is spared too
            assert mine.is_dir()
        assert not mine.exists()
    finally:
        kill9(live)
    assert sweep(builds) == [live_dir]


def test_unlocked_leftovers_go_only_once_stale(tmp_path: Path) -> None:
    old, young, other = (tmp_path / "build-old", tmp_path / "build-young",
                         tmp_path / "trees")
    for path in (old, young, other):
        path.mkdir()
    past = time.time() - UNLOCKED_STALE_SECONDS - 10
    os.utime(old, (past, past))
    os.utime(other, (past, past))
    assert sweep(tmp_path) == [old]
    assert young.is_dir() and other.is_dir()
    assert not (young / LOCK).exists()


BUILD = """
    import sys
    from pathlib import Path
    from factory.build import job as builder
    from factory.build.image import bootstrap_image
    from tests import factories
    from tests.builders_fixtures import host_kit, inputs_for
    base, sdist, tree = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    settings = factories.settings(base, build_timeout=600)
    print(builder.build(settings, inputs_for(sdist, tree, host_kit(base / sys.argv[4]),
                                             bootstrap_image(settings))).wheel_filename)
"""


@pytest.mark.docker
def test_the_next_build_sweeps_a_killed_builds_work_dir_and_spares_a_live_one(
        tmp_path: Path, kit: Kit, image: ImageRef) -> None:
    from factory.build.engine import connect

    payload = 'import time; time.sleep(float(open("delay").read()))'
    children, trees = [], []
    for name in ("victim", "bystander"):
        sdist = backend_sdist(tmp_path / "sdists", name, payload)
        tree = unpack(sdist, tmp_path / "trees" / name)
        (tree / "delay").write_text("300")
        children.append(python(BUILD, str(tmp_path), str(sdist), str(tree), f"kit-{name}"))
        trees.append(tree)
    victim, bystander = children
    client = connect()
    try:
        for name, child in zip(("victim", "bystander"), children, strict=True):
            label = {"label": f"org.factory.component={name}==1.0"}
            wait_for(lambda label=label: client.containers.list(filters=label), 120,  # type: ignore[misc]
                     f"the {name} build to run", child)
        settings = factories.settings(tmp_path, build_timeout=120)
        before = {p.name for p in settings.builds_dir.glob("build-*")}
        assert len(before) == 2
        kill9(victim)
        build_backend(settings, kit, image, "next", "pass")  # the next run
        after = {p.name for p in settings.builds_dir.glob("build-*")}
        assert len(after) == 1 and after < before  # the victim's went, the bystander's stayed
        assert bystander.poll() is None
    finally:
        kill9(bystander)
        for name in ("victim", "bystander"):
            for container in client.containers.list(
                    all=True, filters={"label": f"org.factory.component={name}==1.0"}):
                container.remove(force=True)


def test_factory_error_subclasses_stay_factory_errors() -> None:
    assert issubclass(OutputRefused, BuildError) and issubclass(BuildError, FactoryError)


class _FakeContainer:
    """A container whose followed log breaks, or stops short, and whose kept log is whole."""

    def __init__(self, whole: bytes, followed: list[bytes], breaks: bool) -> None:
        self.whole, self.followed, self.breaks = whole, followed, breaks

    def logs(self, **options: Any) -> Any:
        if options.get("follow"):
            return self._follow()
        lines = self.whole.splitlines(keepends=True)
        tail = options.get("tail")
        return iter(lines if tail == "all" else lines[-int(tail):])

    def _follow(self) -> Any:
        yield from self.followed
        if self.breaks:
            raise OSError("connection reset")


@pytest.mark.parametrize("breaks", [True, False])
def test_the_true_end_of_the_log_is_kept_when_following_falls_short(breaks: bool) -> None:
    lines = [f"line {i}\n".encode() for i in range(5000)]
    whole = b"".join(lines)
    keeper = LogKeeper(head=100, tail=1000)
    keeper.follow(_FakeContainer(whole, lines[:3000], breaks))  # stops short of the end
    kept = keeper.finish(_FakeContainer(whole, [], False), 30)
    assert kept.startswith(whole[:100]) and kept.rstrip().endswith(b"line 4999")
    assert b"left out here" in kept
