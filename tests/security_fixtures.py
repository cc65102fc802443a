"""Shared helpers of the security and fault tests: a staged build, a released index,
a factory process to kill, and a loopback server in a subprocess.

A "staged build" is what the builder leaves behind (a wheel and its BuildRecord
in the wheels directory, its verified sdist in the source cache), made without
Docker, so that the release stages (attest, sign, publish) run for real.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from factory.admission import Approvals, admit
from factory.admission.model import AdmissionError
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.errors import FactoryError
from factory.publish import release
from factory.upstream.cache import cache_path
from tests import factories
from tests.approval_fixtures import approve
from tests.attest_fixtures import make_record

ROOT = Path(__file__).resolve().parent.parent

# A child process that releases every staged build of ``settings(argv[1], "project")``.
RELEASE = """
    import sys
    from pathlib import Path
    from factory.build.record import BuildRecord
    from factory.publish import release
    from tests import factories
    settings = factories.settings(Path(sys.argv[1]), project="project")
    records = [BuildRecord.load(p) for p in sorted(settings.wheels_dir.glob("*.build.json"))]
    print(len(release(settings, records)), flush=True)
"""


def stage_build(settings: Settings, name: str = "tinypkg", version: str = "1.0.0", *,
                wheel: bytes | None = None, filename: str | None = None, recipe: str = "",
                sdist: Mapping[str, Any] | None = None, **wheel_options: Any) -> BuildRecord:
    """A finished, approved build, as the builder leaves it: the sdist (``factories.sdist``
    with ``sdist`` as its options) in the source cache; the wheel (``wheel``'s bytes, or
    ``factories.wheel`` with ``wheel_options``) at ``filename`` and its record in the wheels
    directory; a recipe (with ``recipe`` added) and the recipes.lock pin the gate signs."""
    made = factories.sdist(settings.root / "work" / f"{name}-{version}", name, version,
                           **(sdist or {}))
    if wheel is None:
        built = factories.wheel(settings.wheels_dir, name, version, filename=filename,
                                **wheel_options)
    else:
        settings.wheels_dir.mkdir(parents=True, exist_ok=True)
        built = settings.wheels_dir / (filename or f"{name}-{version}-{factories.PURE}.whl")
        built.write_bytes(wheel)
    record = make_record(built, made)
    cached = cache_path(settings, record.source.sha256, made.name)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(made.read_bytes())
    record = approve(settings, record, recipe)
    record.save(settings.wheels_dir)
    return record


def gate(settings: Settings, record: BuildRecord) -> tuple[Any, ...]:
    """The allowances ``admit`` returns for a staged build (raises AdmissionError when it
    refuses)."""
    wheel = settings.wheels_dir / record.wheel_filename
    return admit(settings, Approvals.load(settings), record, wheel).allowances


def refused(settings: Settings, record: BuildRecord, *words: str) -> str:
    """The gate refuses ``record`` in one line that says each of ``words``; that line."""
    with pytest.raises(AdmissionError) as caught:
        gate(settings, record)
    shown = f"{caught.value.message} (hint: {caught.value.hint})"
    assert "\n" not in shown
    for word in words:
        assert word in shown, shown
    return shown


def raised(call: Callable[[], object]) -> FactoryError | None:
    """The factory error ``call`` raised, or None (checked after what must hold anyway)."""
    try:
        call()
    except FactoryError as exc:
        return exc
    return None


def released(base: Path) -> Path:
    """``base`` holding a project (at ``base/project``) whose staged builds of alpha and
    beta 1.0.0 were released for real: attested, signed, published."""
    settings = factories.settings(base, project="project")
    release(settings, [stage_build(settings, "alpha"), stage_build(settings, "beta")])
    return base


def released_copy(base: Path, tmp_path: Path) -> Settings:
    """A copy of ``released(base)`` at ``tmp_path/copy`` (links kept), for a test to tamper
    with: its project's Settings."""
    shutil.copytree(base, tmp_path / "copy", symlinks=True)
    return factories.settings(tmp_path / "copy", project="project")


def python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child Python running ``code`` from the repository root, its own process group."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def kill9(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL, as a crash or the OOM killer would: no handler, no cleanup."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def guarded(call: Callable[[], Any], seconds: float = 20, hang: str = "hung") -> Any:
    """``call()`` in a thread: its result or its exception, or a failure saying ``hang``
    if it has not returned after ``seconds``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), hang
    if "error" in box:
        raise box["error"]
    return box["value"]


def wait_for(predicate: object, timeout: float, what: str,
             child: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``predicate()``; fail at once, with its stderr, if ``child`` exits first."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if child is not None and child.poll() is not None:
            err = child.stderr.read().decode(errors="replace") if child.stderr else ""
            raise AssertionError(f"the child exited ({child.returncode}) before {what}: "
                                 f"{err[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class SlowFiles:
    """A loopback file server that sends ``data`` in small, slow chunks (for kills mid-download)."""

    def __init__(self, data: bytes, chunk: int = 64 << 10, delay: float = 0.02) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.data)))
                self.end_headers()
                try:
                    for start in range(0, len(outer.data), outer.chunk):
                        self.wfile.write(outer.data[start:start + outer.chunk])
                        time.sleep(outer.delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was killed: that is the point

        self.data, self.chunk, self.delay = data, chunk, delay
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/files/big-1.0.tar.gz"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
