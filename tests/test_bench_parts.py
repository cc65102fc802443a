"""The pieces the comparisons are made of: wrk parsing, commands, fromager pins, the
bare loop's plan, the clean environment and the byte-counting proxy (no timing here)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bench import cold_build, install, peers, serve_load
from bench.indexes import without_core_metadata
from bench.proxy import counting_proxy
from factory.config import load_settings
from factory.lock import LockedComponent
from factory.plan import Node, Plan
from tests import factories
from tests.index_fixtures import publish_wheel

WRK = """Running 10s test @ http://127.0.0.1:8700/simple/requests/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    18.52ms    3.01ms  48.10ms   80.00%
    Req/Sec     1.36k   120.00     1.60k    70.00%
  Latency Distribution
     50%   18.00ms
     75%   19.90ms
     90%   21.50ms
     99%    1.25s
  27000 requests in 10.00s, 30.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   2699.40
Transfer/sec:      3.00MB
"""


def test_wrk_report_gives_rate_p99_and_every_kind_of_error() -> None:
    result = serve_load.parse_wrk(WRK)
    assert result.requests_per_s == 2699.40
    assert result.p99_ms == 1250.0
    assert result.errors == 7
    assert result.requests == 27000
    clean = WRK.replace("  Socket errors: connect 0, read 2, write 0, timeout 1\n", "")
    clean = clean.replace("  Non-2xx or 3xx responses: 4\n", "").replace("1.25s", "950.00us")
    assert serve_load.parse_wrk(clean).errors == 0
    assert serve_load.parse_wrk(clean).p99_ms == pytest.approx(0.95)
    with pytest.raises(ValueError, match="unexpected wrk output"):
        serve_load.parse_wrk("wrk: connection refused")


def test_wrk_command_is_bounded_and_sends_the_accept_header() -> None:
    target = serve_load.Target("json", "http://127.0.0.1:1/simple/x/",
                               ("Accept: application/vnd.pypi.simple.v1+json",))
    command = serve_load.wrk_command(target, 9.6, 50, threads=2)
    assert command[:9] == ["wrk", "--threads", "2", "--connections", "50", "--duration", "10s",
                           "--timeout", "10s"]
    assert "--latency" in command and command[-1] == target.url
    assert command[command.index("--header") + 1].endswith("simple.v1+json")


def test_wheel_url_is_resolved_against_the_page_without_its_fragment() -> None:
    html = ('<a href="../../packages/requests-2.34.2.tar.gz#sha256=aa">sdist</a>'
            '<a href="../../files/requests/requests-2.34.2-py3-none-any.whl#sha256=bb">w</a>')
    assert serve_load.wheel_url("http://127.0.0.1:9/simple/requests/", html) == \
        "http://127.0.0.1:9/files/requests/requests-2.34.2-py3-none-any.whl"


def test_install_commands_name_the_server_and_disable_caches() -> None:
    python = Path("/v/bin/python")
    pip = install.install_command("pip", ["/p/bin/python"], python, "http://127.0.0.1:9/simple/")
    assert pip[:4] == ["/p/bin/python", "-m", "pip", "--python"]
    assert "--no-cache-dir" in pip and "--no-compile" in pip and pip[-2:] == ["requests", "flask"]
    assert pip[pip.index("--index-url") + 1] == "http://127.0.0.1:9/simple/"
    uv = install.install_command("uv", ["/uv"], python, "http://127.0.0.1:9/simple/")
    assert uv[:3] == ["/uv", "pip", "install"] and "--no-cache" in uv and "--no-config" in uv


def test_clean_env_drops_what_steers_installers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///opt/pypi/simple")
    monkeypatch.setenv("UV_INDEX_URL", "https://elsewhere.invalid/simple")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    env = peers.clean_env(EXTRA="1")
    assert not {"PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "PYTHONPATH"} & set(env)
    assert env["PIP_CONFIG_FILE"] == "/dev/null" and env["UV_NO_CONFIG"] == "1"
    assert env["EXTRA"] == "1" and "PATH" in env


def _locked(name: str, version: str, primary: bool = True) -> LockedComponent:
    reason = "approved" if primary else "build requirement"
    return factories.locked(name, version, kind="runtime", reason=reason)


def test_fromager_pins_single_version_names_and_takes_the_top_level() -> None:
    components = [_locked("requests", "2.34.2"), _locked("flask", "3.1.3"),
                  _locked("setuptools", "84.0.0", primary=False), _locked("setuptools", "84.2.1"),
                  _locked("idna", "3.20")]
    pins = cold_build.constraints(components)
    assert pins.splitlines() == ["flask==3.1.3", "idna==3.20", "requests==2.34.2"]
    assert cold_build.top_level(components) == ["requests==2.34.2", "flask==3.1.3"]


def test_bare_plan_keeps_the_factory_order_and_dependencies() -> None:
    a, b = _locked("flit-core", "3.12.0"), _locked("blinker", "1.9.0")
    nodes = {"flit-core==3.12.0": Node("flit-core", "3.12.0", "build-tool", a, static=[],
                                       env=["flit-core==3.12.0"]),
             "blinker==1.9.0": Node("blinker", "1.9.0", "runtime", b, static=[],
                                    env=["flit-core==3.12.0"])}
    plan = Plan(nodes=nodes, order=["flit-core==3.12.0", "blinker==1.9.0"])
    sdists = {nid: Path(f"/s/{nodes[nid].locked.sdist.filename}") for nid in nodes}
    bare = cold_build.bare_plan(plan, sdists, concurrency=2)
    assert bare["concurrency"] == 2
    assert bare["nodes"] == [
        {"id": "flit-core==3.12.0", "sdist": "flit-core-3.12.0.tar.gz", "deps": []},
        {"id": "blinker==1.9.0", "sdist": "blinker-1.9.0.tar.gz", "deps": ["flit-core==3.12.0"]},
    ]


class _Answer(BaseHTTPRequestHandler):
    body = b"x" * 100_000

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_counting_proxy_forwards_and_counts_both_directions(http_server: int) -> None:
    with counting_proxy(http_server) as counter:
        with httpx.Client() as client:
            for _ in range(3):
                answer = client.get(counter.url + "/file", timeout=10)
                assert answer.content == _Answer.body
        down, up, requests = counter.down, counter.up, counter.requests
    assert 3 * 100_000 < down < 3 * 100_000 + 3 * 400  # bodies plus status lines and headers
    assert 0 < up < 3 * 400
    assert requests == 3


def test_the_proxy_stops_with_no_task_left_pending(http_server: int,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A connection still open when the block ends: its handler is cancelled and finishes
    before the loop closes (a pending task left to the collector was destroyed later,
    in whatever code ran then: once inside another test's ast.parse, which failed)."""
    import gc
    import socket
    import time

    with socket.create_connection(("127.0.0.1", http_server)):  # (the server is up)
        pass
    with counting_proxy(http_server) as counter:
        client = socket.create_connection(("127.0.0.1", counter.port))
        client.sendall(b"GET /file HTTP/1.1\r\n")  # half a request: the pipes wait
        deadline = time.monotonic() + 10
        while counter.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert counter.connections == 1
    client.close()
    with caplog.at_level("ERROR", logger="asyncio"):
        gc.collect()
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text


def test_tree_without_core_metadata_drops_only_the_announcement(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path / "root")
    publish_wheel(settings, tmp_path / "w", "alpha", "1.0")
    index = settings.index_dir
    before = {p: p.read_bytes() for p in index.rglob("*") if p.is_file()}
    copy = without_core_metadata(index, tmp_path / "copy")

    page = json.loads((copy / "simple" / "alpha" / "index.json").read_text())
    original = json.loads((index / "simple" / "alpha" / "index.json").read_text())
    assert "core-metadata" in original["files"][0]
    (entry,) = page["files"]
    assert not {"core-metadata", "dist-info-metadata"} & set(entry)
    assert entry["hashes"] == original["files"][0]["hashes"] and entry["url"]
    html = (copy / "simple" / "alpha" / "index.html").read_text()
    assert "metadata" not in html and "alpha-1.0-py3-none-any.whl#sha256=" in html
    # The published tree is untouched (pages were unlinked, not written through).
    assert {p: p.read_bytes() for p in index.rglob("*") if p.is_file()} == before
    wheel = next((index / "files" / "alpha").glob("*.whl"))
    assert (copy / wheel.relative_to(index)).stat().st_ino == wheel.stat().st_ino


def test_every_factory_import_in_a_bench_child_script_resolves() -> None:
    """Bench child scripts are strings: a module move does not rewrite them, and a stale
    import there only shows as a benchmark with no samples."""
    import ast
    import gc
    import importlib.util
    import re

    found = []
    for path in sorted((Path(__file__).resolve().parents[1] / "bench").glob("*.py")):
        # The collector off while the tree is built: CPython 3.11's AST constructor fails
        # (SystemError: recursion depth mismatch) when a finalizer of another test's
        # garbage runs Python code in the middle of it.
        gc.disable()
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        finally:
            gc.enable()
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found += re.findall(r"^from (factory[\w.]*) import ([\w, ]+)$", node.value,
                                    re.MULTILINE)
    assert found  # the bench has child scripts that import the factory
    for module, names in found:
        loaded = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(loaded, name) or importlib.util.find_spec(f"{module}.{name}"), \
                f"bench: from {module} import {name}"


def _built(component: str, version: str, wheel: str) -> object:
    from types import SimpleNamespace
    return SimpleNamespace(component=component, version=version, wheel_filename=wheel)


def test_interpreters_cold_names_what_was_built_twice(tmp_path: Path) -> None:
    from bench import interpreters_cold
    from bench.harness import Comparison, Context, Options, Outcome
    from factory.build.executor import Outcome as Built

    def context() -> Context:
        comparison = Comparison(16, "interpreters_cold", "t", run=lambda c: None)
        return Context(load_settings(tmp_path), Options(), 1, tmp_path, tmp_path,
                       Outcome(comparison), log=lambda m: None)

    records = [_built("flit-core", "3.12.0", "flit_core-3.12.0-py3-none-any.whl"),
               _built("markupsafe", "3.0.4", "markupsafe-3.0.4-cp311-cp311-manylinux_2_17.whl"),
               _built("markupsafe", "3.0.4", "markupsafe-3.0.4-cp313-cp313-manylinux_2_17.whl")]
    ctx = context()
    interpreters_cold.describe_factory(ctx, interpreters_cold.TWO,
                                       Built(records, {}, {}))  # type: ignore[arg-type]
    info = ctx.outcome.info
    assert info["factory 3.11+3.13: builds"] == "3 (2 components)"
    assert info["factory 3.11+3.13: components built twice"] == "markupsafe==3.0.4 (cp311, cp313)"
    assert ctx.outcome.notes == []
    records.append(_built("flit-core", "3.12.0", "flit_core-3.12.0-cp313-none-any.whl"))
    ctx = context()
    interpreters_cold.describe_factory(ctx, interpreters_cold.TWO,
                                       Built(records, {}, {}))  # type: ignore[arg-type]
    assert ctx.outcome.notes == ["factory built a pure wheel's component twice: flit-core==3.12.0"]
