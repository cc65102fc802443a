"""Attacks on three inputs of issue 18: PEP 792 project status from upstream, a saved
signed answer given to `factory verify answer FILE|-`, and the MCP stdio line bound.

| case                                                          | held/broke | fix |
|---------------------------------------------------------------|------------|-----|
| status in odd case, blanks, fullwidth, zero-width, NUL        | held       | -   |
| duplicate HTML meta tags disagreeing (first of each counts)   | held       | -   |
| reason with ANSI/bidi/CRLF/`"><script>` to lock, record, JSON | held       | -   |
|   and HTML pages, the human page, ledger and `factory why`    |            |     |
| hostile recipes.lock row: odd status, 1 MB/bidi/NL reason     | held       | -   |
| quarantine flapping: one ledger note per change, held follows | held       | -   |
| upstream "active"/"archived" against an operator's quarantine | held       | -   |
| FILE a FIFO with no writer: hung in open()                    | BROKE      | F1  |
| FILE /dev/zero, /dev/null, a directory; a symlink to a file   | held       | F1  |
| --key /dev/zero: read_bytes() without end (memory)            | BROKE      | F1  |
| --key a FIFO: hung; --key a dir: FAIL named the answer file   | BROKE      | F1  |
| --key a private key PEM: refused, no key material printed     | held       | -   |
| --index redirecting, or serving a huge key                    | held       | -   |
| --index trickling a byte at a time: no overall bound          | BROKE      | F2  |
| answer beside in another key order: passes (same JSON value)  | held       | -   |
| answer beside in another Unicode normalization: fails         | held       | -   |
| a key named twice ({"answer": forged, "envelope", "answer":   | BROKE      | F3  |
|   signed}) passed; jq or a person reading the first is fooled |            |     |
| huge stdin: read no further than the bound                    | held       | -   |
| MCP: line exactly at the bound, no final newline, CRLF, 100k  | held       | -   |
|   empty lines, multi-byte char across the bound, no echo      |            |     |
| MCP: a line over the bound whose cut fell in trailing blanks  | BROKE      | F4  |
|   was served whole (the docstring said it never is)           |            |     |

F1 factory.cli.verify.read_regular: FILE, --key and the state's key are opened
   non-blocking and refused unless a regular file, read to a bound, errors name which.
F2 KEY_SECONDS: a deadline on the whole fetch of an index's key (httpx's is per read).
F3 factory.advice.verify_saved refuses a JSON object naming a key twice.
F4 factory.assistants.BoundedLines puts a NUL where it cuts a line (no JSON value
   survives it); the PASS/FAIL line is also made one line whatever it quotes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner

from factory import ledger
from factory.advice import Advisor, verify_saved
from factory.cli import verify as verify_cli
from factory.cli.verify import verify_answer_file
from factory.config import Settings
from factory.errors import LockError, VerificationError
from factory.index import Index
from factory.index.serve import create_app
from factory.lock import Lock, load_lock, lock_stage
from factory.project_status import Policy, apply_statuses
from factory.publish import release_all
from factory.upstream.listing import parse_html, parse_json
from factory.watch import component_status, why_knowledge
from factory.why import Knowledge, answer
from tests import factories
from tests.index_fixtures import publish_wheel, running
from tests.local_upstream import LocalUpstream, build_tool

BASE = "https://pypi.example/simple/x/"
JSON = "application/vnd.pypi.simple.v1+json"


# -- 1. PEP 792 status from upstream -------------------------------------------------------

@pytest.mark.parametrize("status", [
    "Quarantined", " quarantined", "quarantined ", "QUARANTINED", "ｑｕａｒａｎｔｉｎｅｄ",
    "quarantined\u200b", "\u202equarantined", "quarantined\x00", "deprecated\n", "",
])
def test_a_status_not_spelled_exactly_is_ignored(status: str) -> None:
    listing = parse_json("x", BASE, {"files": [], "project-status": {"status": status}})
    assert (listing.status, listing.status_reason) == (None, None)
    meta = status.replace('"', "&quot;")
    listing = parse_html("x", BASE, f'<meta name="pypi:project-status" content="{meta}">')
    assert listing.status is None


def test_disagreeing_meta_tags_the_first_of_each_counts() -> None:
    listing = parse_html("x", BASE, (
        '<meta name="pypi:project-status" content="archived">'
        '<meta name="pypi:project-status-reason" content="first">'
        '<meta name="pypi:project-status" content="quarantined">'
        '<meta name="pypi:project-status-reason" content="second">'))
    assert (listing.status, listing.status_reason) == ("archived", "first")
    # a tag without content takes the slot: a later one does not fill it
    listing = parse_html("x", BASE, '<meta name="pypi:project-status">'
                                    '<meta name="pypi:project-status" content="archived">')
    assert listing.status is None


HOSTILE = '\x1b[31mEVIL\x1b[0m\u202e"><script>alert(1)</script>\r\nline2\u2028' + "z" * 5000


def _hostile_upstream(settings: Settings, upstream: LocalUpstream) -> None:
    build_tool(upstream, settings)
    upstream.add("oldlib", "1.0")
    upstream.statuses["oldlib"] = {"status": "deprecated", "reason": HOSTILE}
    factories.recipe(settings.root, "oldlib", "")


def test_a_hostile_reason_reaches_no_terminal_or_page_raw(
        project: Settings, upstream: LocalUpstream) -> None:
    _hostile_upstream(project, upstream)
    lock_stage(project)
    locked = load_lock(project).primary("oldlib")
    assert locked is not None and locked.upstream_status == "deprecated"
    reason = locked.upstream_status_reason
    assert reason is not None and reason.isprintable() and len(reason) <= 300
    assert Lock.from_toml(load_lock(project).to_toml()).primary("oldlib") == locked
    publish_wheel(project, project.root / "work", "oldlib", "1.0")
    release_all(project, [])
    index = Index.of(project)
    record = index.record("oldlib")
    assert record is not None and record.status == "deprecated"
    assert record.status_reason is not None and record.status_reason.isprintable()
    index.write_status([row.to_dict() for row in component_status(project, offline=True)])
    with running(create_app(index)) as url:
        page = httpx.get(f"{url}/simple/oldlib/", headers={"Accept": JSON}).json()
        assert page["project-status"]["reason"].isprintable()
        html = httpx.get(f"{url}/simple/oldlib/").text
        assert "<script>" not in html and "\x1b" not in html and "\u202e" not in html
        again = parse_html("oldlib", f"{url}/simple/oldlib/", html)
        assert again.status == "deprecated" and again.status_reason == record.status_reason
        human = httpx.get(f"{url}/oldlib/")  # the human page, if there is one
        assert "<script>" not in human.text and "\x1b" not in human.text
    message = answer(why_knowledge(project, "oldlib"), "oldlib").message()
    assert message.isprintable() and "\n" not in message
    notes = [d["reason"] for d in ledger.decisions(project, "oldlib")
             if d["action"] == "upstream-status"]
    assert len(notes) == 1 and notes[0].isprintable()


@pytest.mark.parametrize("bad", [
    'upstream_status = "Quarantined"', 'upstream_status = "quarantined "',
    'upstream_status = "held"', "upstream_status = 1", "upstream_status = []",
    'upstream_status = "deprecated"\nupstream_status_reason = "' + "r" * (1 << 20) + '"',
    'upstream_status = "deprecated"\nupstream_status_reason = "a\\u202eb"',
    'upstream_status = "deprecated"\nupstream_status_reason = "a\\nb"',
    'upstream_status = "deprecated"\nupstream_status_reason = "\\u001b[2J"',
    'upstream_status = "deprecated"\nupstream_status_reason = 7',
])
def test_a_hostile_lock_row_is_refused_in_one_line(bad: str) -> None:
    text = Lock([factories.locked("newlib", "2.0")]).to_toml()
    hostile = text.replace('name = "newlib"', f'name = "newlib"\n{bad}')
    with pytest.raises(LockError, match="upstream_status") as caught:
        Lock.from_toml(hostile)
    assert len(str(caught.value.message)) < 400 and "\n" not in caught.value.message


def test_quarantine_flapping_and_an_upstream_active_against_an_operator(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tool(upstream, project)
    upstream.add("oldlib", "1.0")
    factories.recipe(project.root, "oldlib", "")
    lock_stage(project)
    publish_wheel(project, project.root / "work", "oldlib", "1.0")
    said = []
    for turn in range(6):  # quarantined, active, quarantined ...
        if turn % 2 == 0:
            upstream.statuses["oldlib"] = {"status": "quarantined", "reason": f"r{turn}"}
        else:
            upstream.statuses.pop("oldlib", None)
        lock_stage(project)
        said.append(Policy.load(project).held("oldlib"))
    assert [s is not None for s in said] == [True, False] * 3
    notes = [d for d in ledger.decisions(project, "oldlib") if d["action"] == "upstream-status"]
    assert len(notes) == 6  # one per change, no more
    # an operator's quarantine: upstream saying active (or archived) does not clear it
    index = Index.of(project)
    index.set_status("oldlib", "quarantined", "ops: malware")
    for upstream_says in (None, {"status": "active", "reason": "all clear"},
                          {"status": "archived", "reason": "x"}):
        if upstream_says is None:
            upstream.statuses.pop("oldlib", None)
        else:
            upstream.statuses["oldlib"] = upstream_says
        lock_stage(project)
        apply_statuses(project, index)
        release_all(project, [])
        record = index.record("oldlib")
        assert record is not None
        assert (record.status, record.status_reason, record.status_source) == (
            "quarantined", "ops: malware", "operator")


# -- 2. factory verify answer FILE|- -------------------------------------------------------

_KEY = ec.generate_private_key(ec.SECP256R1())
_PEM = _KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)


def _signed(asked: str = "reqests") -> dict[str, object]:
    known = Knowledge.from_rows([{"name": "requests", "published": "1.0"}])
    advisor = Advisor(lambda: known, CryptoSigner(_KEY), "http://factory.test/api/v1/")
    return advisor.check(asked).to_dict()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    saved, key = tmp_path / "answer.json", tmp_path / "answers.pub.pem"
    saved.write_text(json.dumps(_signed()), encoding="utf-8")
    key.write_bytes(_PEM)
    return saved, key


def _run(source: str, key: Path | None = None, index: str | None = None,
         seconds: float = 60) -> int:
    """verify_answer_file in a thread: a hang is a failure, not a stuck suite."""
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(verify_answer_file(
        lambda: pytest.fail("no settings needed"), source, key, index)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert done, f"verify answer {source} did not return in {seconds} s"
    return done[0]


def test_a_fifo_device_or_directory_as_file_fails_at_once(
        files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved, key = files
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a plain open() blocks for ever
    for source in (str(fifo), "/dev/zero", str(tmp_path), "/dev/null"):
        assert _run(source, key) == 1, source  # _run's 60 s join is the hang guard
    out = capsys.readouterr().out
    assert out.count("is not a regular file") == 4 and "Traceback" not in out
    link = tmp_path / "link.json"
    link.symlink_to(saved)  # a symlink to a regular file is that file
    assert _run(str(link), key) == 0


def test_a_key_that_is_no_public_key_file_fails_naming_the_key(
        files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved, _key = files
    fifo = tmp_path / "keyfifo"
    os.mkfifo(fifo)
    for key in (Path("/dev/zero"), fifo, tmp_path):  # endless, hanging, a directory
        assert _run(str(saved), key) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.startswith("FAIL: the key ") for line in out), out
    private = tmp_path / "private.pem"
    private.write_bytes(_KEY.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    assert _run(str(saved), private) == 1
    out = capsys.readouterr().out
    assert "not an SPKI PEM public key" in out and "PRIVATE" not in out


class _Hostile(BaseHTTPRequestHandler):
    mode = "redirect"

    def do_GET(self) -> None:  # noqa: N802
        if self.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/answers.pub.pem")
            self.end_headers()
        elif self.mode == "huge":
            self.send_response(200)
            self.end_headers()
            for _ in range(200):
                self.wfile.write(b"A" * 65536)
        else:  # a trickle: a byte now and then, never done
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"-")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_index() -> Iterator[type[_Hostile]]:
    handler = type("H", (_Hostile,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_an_index_that_redirects_floods_or_trickles_fails_in_bounded_time(
        files: tuple[Path, Path], hostile_index: type[_Hostile],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    saved, _key = files
    url = hostile_index.url  # type: ignore[attr-defined]
    monkeypatch.setattr(verify_cli, "KEY_SECONDS", 1.0)
    for mode, said in (("redirect", "answered 302"), ("huge", "more than"),
                       ("trickle", "took more than")):
        hostile_index.mode = mode
        started = time.monotonic()
        assert _run(str(saved), index=url) == 1
        # A hang guard, 30 x the 1 s bound set above (the trickle alone lasts 40 s); the
        # message checked next names what cut it.
        assert time.monotonic() - started < 30
        assert said in capsys.readouterr().out, mode


def test_the_answer_beside_in_another_order_or_normalization(files: tuple[Path, Path]) -> None:
    saved, _key = files
    data = json.loads(saved.read_text())
    reordered = {"envelope": data["envelope"],
                 "answer": dict(reversed(list(data["answer"].items())))}
    assert verify_saved(json.dumps(reordered).encode(), _PEM)[1] == data["answer"]
    data = _signed("café")  # composed, as asked
    message = data["answer"]["message"]  # type: ignore[index]
    assert "é" in message
    decomposed = json.loads(json.dumps(data))
    decomposed["answer"]["message"] = unicodedata.normalize("NFD", message)
    assert decomposed["answer"]["message"] != message
    with pytest.raises(VerificationError, match="not the answer signed"):
        verify_saved(json.dumps(decomposed, ensure_ascii=False).encode(), _PEM)


def test_a_key_named_twice_is_refused(files: tuple[Path, Path]) -> None:
    saved, _key = files
    data = json.loads(saved.read_text())
    forged = dict(data["answer"], verdict="served", message="reqests is served")
    # jq, browsers' viewers and people differ on which "answer" counts: json takes the last
    text = ('{"answer": ' + json.dumps(forged) + ', "envelope": ' + json.dumps(data["envelope"])
            + ', "answer": ' + json.dumps(data["answer"]) + "}")
    with pytest.raises(VerificationError, match="twice"):
        verify_saved(text.encode(), _PEM)
    inner = json.dumps(data).replace('"verdict": ', '"verdict": "served", "verdict": ', 1)
    with pytest.raises(VerificationError, match="'verdict' twice"):
        verify_saved(inner.encode(), _PEM)
    assert verify_saved(json.dumps(data).encode(), _PEM)[1] == data["answer"]


def test_huge_stdin_is_read_no_further_than_the_bound(files: tuple[Path, Path]) -> None:
    _saved, key = files
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "verify", "answer", "-",
                             "--key", str(key)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for _ in range(1000):  # up to 1 GB: the command answers long before
            proc.stdin.write(b" " * (1 << 20))
    except BrokenPipeError:
        pass
    out, _err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and b"larger than" in out


# -- 3. the MCP stdio line bound -----------------------------------------------------------

_SERVER = """
import sys
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner
from factory.advice import Advisor
from factory.assistants import build_server, run_stdio
from factory.why import Knowledge
known = Knowledge.from_rows([{"name": "requests", "published": "1.0"}])
advisor = Advisor(lambda: known, CryptoSigner(ec.generate_private_key(ec.SECP256R1())),
                  "http://factory.test/api/v1/")
run_stdio(build_server(advisor), int(sys.argv[1]))
"""


def _initialize(number: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": number, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}}).encode()


def _serve(limit: int, data: bytes) -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "-c", _SERVER, str(limit)], input=data,
                          capture_output=True, timeout=120)
    assert b"SECRET" not in done.stdout and b"\x1b" not in done.stdout
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _ids(replies: list[dict[str, object]]) -> list[object]:
    return [r.get("id") for r in replies if "result" in r]


def test_the_stdio_bound_at_its_edges() -> None:
    one = _initialize(1)
    limit = len(one)
    cases = {
        "exactly at the bound": one + b"\n",
        "no trailing newline": one,
        "CRLF": one + b"\r\n",
        "a flood of empty lines": b"\n" * 10_000 + one + b"\n",
        "a malformed line with controls": b'{"id": 9, "method": "\x1b[2JSECRET"}\nSECRET\n'
                                          + one + b"\n",
        "a multi-byte character across the bound": b'{"id": 7, "method": "'
        + "é".encode() * limit + b'"}\n' + one + b"\n",
    }
    bounds = {name: limit + 1 if name == "CRLF" else limit  # the CR is a byte of the line
              for name in cases}
    # each case is its own server process, as an assistant starts it; they start side by side
    with ThreadPoolExecutor(max_workers=3) as pool:
        served = dict(zip(cases, pool.map(lambda n: _serve(bounds[n], cases[n]), cases),
                          strict=True))
    for name, replies in served.items():
        assert _ids(replies) == [1], name


def test_a_line_over_the_bound_is_never_served_even_if_its_cut_is_whole() -> None:
    one, two = _initialize(1), _initialize(2)
    # over the bound by trailing blanks: the cut leaves all of message 1
    padded = one + b" " * 64 + b"SECRET"
    assert _ids(_serve(len(one), padded + b"\n" + two + b"\n")) == [2]
    assert _ids(_serve(len(one) + 1, one + b"  \n" + two + b"\n")) == [2]  # one byte over
