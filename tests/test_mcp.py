"""`factory mcp`: the SDK's own MCP client over stdio and streamable HTTP lists and
calls every tool; answers verify with the factory's answers key, and fail after one
byte of the payload changes; bad input is one bounded error each.

The project approves requests (2.32.3 served; 2.31.0 yanked for an advisory), flask
and six (neither published); keys are made with `factory keys init`'s library call.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from factory.advice import MAX_LINES, Advisor, verifier_id, verify_answer
from factory.assistants import build_server
from factory.attest.keys import init_keys, load_signer, public_key_path
from factory.config import Settings
from factory.errors import VerificationError
from factory.watch import why_knowledge
from tests.index_fixtures import approve_requests, free_port

TOOLS = {"check_requirement", "check_requirements", "search_catalogue", "explain_refusal",
         "request_component", "request_status"}
BOUND = 2000  # characters: any error text, whatever the input


@pytest.fixture
def approved(project: Settings, tmp_path: Path) -> Settings:
    approve_requests(project, tmp_path / "work")
    return project


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "FACTORY_ROOT": str(settings.root)}


def _stdio(settings: Settings) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "factory.cli", "mcp",
                                                              "--offline"],
                                 env=_env(settings), cwd=str(settings.root))


@pytest.fixture
def http_server(approved: Settings) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "mcp", "--http", "--port",
                             str(port), "--offline"], env=_env(approved),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        import socket
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
            assert time.monotonic() < deadline, "factory mcp --http did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _result(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    if data is None or "answer" not in data:  # the text content is the same JSON
        data = json.loads(result.content[0].text)
    return data  # type: ignore[no-any-return]


def _error(result: Any) -> str:
    assert result.is_error
    text = "".join(getattr(c, "text", "") for c in result.content)
    assert 0 < len(text) <= BOUND, len(text)
    return text


async def _session(client: Client, pem: bytes) -> dict[str, Any]:
    """List the tools, call each, check every envelope; the answers by tool."""
    tools = await client.list_tools()
    assert {t.name for t in tools.tools} == TOOLS
    found = {
        "check_requirement": _result(await client.call_tool(
            "check_requirement", {"requirement": "reqests"})),
        "check_requirements": _result(await client.call_tool(
            "check_requirements", {"requirements": "requests>=2.32\nflsk\n!!!\n# c\n"})),
        "search_catalogue": _result(await client.call_tool(
            "search_catalogue", {"query": "req"})),
        "explain_refusal": _result(await client.call_tool(
            "explain_refusal", {"requirement": "requests==2.31.0"})),
        "request_component": _result(await client.call_tool(
            "request_component", {"requirement": "attrs>=23", "reason": "to parse configs",
                                  "requester": "assistant of ada"})),
    }
    token = found["request_component"]["answer"]["request"]["token"]
    found["request_status"] = _result(await client.call_tool("request_status",
                                                             {"token": token}))
    missing = _error(await client.call_tool("request_status", {"token": "0" * 24}))
    assert "no such request" in missing
    for data in found.values():
        statement = verify_answer(data["envelope"], pem)
        assert statement["predicate"]["answer" if "verdict" in data["answer"] else
                                      "answers" if "answers" in data["answer"] else
                                      "results" if "results" in data["answer"] else
                                      "answer"] is not None
    return found


def _check_answers(found: dict[str, Any]) -> None:
    one = found["check_requirement"]["answer"]
    assert one["verdict"] == "did-you-mean" and one["suggestions"] == ["requests"]
    lines = found["check_requirements"]["answer"]["answers"]
    assert [(a["line"], a["verdict"]) for a in lines] == [
        (1, "served"), (2, "did-you-mean"), (3, "malformed")]
    assert lines[0]["version"] == "2.32.3" and lines[1]["suggestions"] == ["flask"]
    assert [r["name"] for r in found["search_catalogue"]["answer"]["results"]] == ["requests"]
    why = found["explain_refusal"]["answer"]
    assert why["verdict"] == "version-blocked" and why["instead"] == "2.32.3"
    assert "GHSA-9wx4-h78v-vm56" in why["reason"]
    asked = found["request_component"]["answer"]
    assert asked["queued"] and asked["request"]["state"] == "pending"
    assert asked["request"]["origin"].startswith("mcp:")
    assert asked["request"]["requester"] == "assistant of ada"
    polled = found["request_status"]["answer"]
    assert polled["token"] == asked["request"]["token"] and polled["asked"] == "attrs>=23"


def test_stdio_client_lists_and_calls_every_tool(approved: Settings) -> None:
    pem = public_key_path(approved, "answers").read_bytes()

    async def run() -> dict[str, Any]:
        async with Client(_stdio(approved)) as client:
            return await _session(client, pem)

    _check_answers(anyio.run(run))


def test_http_client_lists_and_calls_every_tool(approved: Settings, http_server: str) -> None:
    pem = public_key_path(approved, "answers").read_bytes()

    async def run() -> dict[str, Any]:
        async with Client(http_server) as client:
            found = await _session(client, pem)
            # bounded over HTTP too: a list too long is one tool error
            too_long = "\n".join(["six"] * 10_000)
            text = _error(await client.call_tool("check_requirements",
                                                 {"requirements": too_long}))
            assert f"at most {MAX_LINES}" in text
            huge = _error(await client.call_tool("check_requirement",
                                                 {"requirement": "a" * 1_000_000}))
            assert "at most 1000" in huge
            return found

    _check_answers(anyio.run(run))


@pytest.fixture
def advisor(approved: Settings) -> Advisor:
    return Advisor(lambda: why_knowledge(approved, ""), load_signer(approved, "answers"),
                   verifier_id(approved.index_url))


def test_an_answer_fails_verification_after_one_byte_changes(approved: Settings,
                                                            advisor: Advisor) -> None:
    pem = public_key_path(approved, "answers").read_bytes()
    envelope = advisor.check("requests").envelope
    assert envelope is not None
    statement = verify_answer(envelope, pem)
    assert statement["predicate"]["properties"] == ["FACTORY_SERVED"]
    assert statement["predicate"]["verifier"]["id"] == verifier_id(approved.index_url)
    assert statement["subject"][0]["name"] == "requests"
    payload = bytearray(base64.b64decode(envelope["payload"]))
    for index in (0, len(payload) // 2, len(payload) - 1):
        changed = bytearray(payload)
        changed[index] ^= 0x01
        tampered = {**envelope, "payload": base64.b64encode(bytes(changed)).decode()}
        with pytest.raises(VerificationError):
            verify_answer(tampered, pem)
    other = public_key_path(approved, "owner").read_bytes()  # another factory key
    with pytest.raises(VerificationError):
        verify_answer(envelope, other)


def test_bad_input_is_one_bounded_error_each(approved: Settings, advisor: Advisor) -> None:
    async def run() -> None:
        async with Client(build_server(advisor)) as client:
            huge = "a" * 1_000_000
            assert "at most 1000" in _error(await client.call_tool(
                "check_requirement", {"requirement": huge}))
            assert "at most 1000" in _error(await client.call_tool(
                "explain_refusal", {"requirement": huge}))
            assert f"at most {MAX_LINES}" in _error(await client.call_tool(
                "check_requirements", {"requirements": "six\n" * 10_000}))
            assert f"at most {MAX_LINES}" in _error(await client.call_tool(
                "check_requirements", {"requirements": ["six"] * 10_000}))
            assert "at most 65536" in _error(await client.call_tool(
                "check_requirements", {"requirements": "x" * 70_000}))
            assert "at most 200" in _error(await client.call_tool(
                "search_catalogue", {"query": "q" * 5000}))
            control = _result(await client.call_tool(
                "check_requirement", {"requirement": "requ\x1b[31mests\x00"}))["answer"]
            assert control["verdict"] == "malformed" and "\x1b" not in json.dumps(control)
            cyrillic = _result(await client.call_tool(
                "check_requirement", {"requirement": "r\u0435quests"}))["answer"]
            assert cyrillic["verdict"] == "did-you-mean"
            assert cyrillic["suggestions"] == ["requests"]
            lines = _result(await client.call_tool("check_requirements", {
                "requirements": "r\u0435quests==2.32.3\n\x07six\n--index-url https://pypi.org/"
                "simple\nrequests @ https://evil.example/requests.whl\n"}))["answer"]["answers"]
            assert [a["verdict"] for a in lines] == ["did-you-mean", "malformed", "malformed",
                                                    "not-approved"]
            assert all(len(json.dumps(a)) <= BOUND for a in lines)

    anyio.run(run)


def test_factory_mcp_without_an_answers_key_says_how_to_make_one(project: Settings) -> None:
    result = subprocess.run([sys.executable, "-m", "factory.cli", "mcp"], env=_env(project),
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "factory keys init" in result.stderr and "Traceback" not in result.stderr


def test_the_server_reads_what_it_knows_again_at_most_every_few_seconds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from factory import advice
    from factory.advice import fresh_for
    from factory.why import Knowledge

    # A clock the test moves (a real one: a stall between two calls reads it again).
    now = [1000.0]

    class Clock:
        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

        def monotonic(self) -> float:
            return now[0]

    monkeypatch.setattr(advice, "time", Clock())
    made: list[int] = []

    def make() -> Knowledge:
        made.append(1)
        return Knowledge([])

    current = fresh_for(5, make)
    first = current()
    now[0] += 4.9
    assert current() is first and len(made) == 1
    now[0] += 0.1
    assert current() is not first and len(made) == 2


def test_a_factory_that_cannot_answer_says_why_in_one_line(project: Settings) -> None:
    init_keys(project)  # and no recipe at all
    advisor = Advisor(lambda: why_knowledge(project, ""), load_signer(project, "answers"),
                      verifier_id(project.index_url))

    async def run() -> str:
        async with Client(build_server(advisor)) as client:
            return _error(await client.call_tool("check_requirement", {"requirement": "six"}))

    text = anyio.run(run)
    assert "no recipes" in text and "\n" not in text


def test_request_tools_bound_their_input(approved: Settings, advisor: Advisor) -> None:
    async def run() -> None:
        async with Client(build_server(advisor, approved, "mcp:tester")) as client:
            for asked in ("attrs @ https://evil.example/a.whl", "a" * 1_000_000, "\x1b[2J",
                          "../../etc/passwd"):
                text = _error(await client.call_tool(
                    "request_component", {"requirement": asked, "reason": "x"}))
                assert "\x1b" not in text
            assert "reason" in _error(await client.call_tool(
                "request_component", {"requirement": "attrs", "reason": "r" * 1_000_000}))
            served = _result(await client.call_tool(
                "request_component", {"requirement": "requests", "reason": "x"}))["answer"]
            assert not served["queued"] and served["answer"]["verdict"] == "served"
            for i in range(20):
                _result(await client.call_tool(
                    "request_component", {"requirement": f"p{i}", "reason": "flood"}))
            assert "are open" in _error(await client.call_tool(
                "request_component", {"requirement": "one-more", "reason": "flood"}))
            assert "no such request" in _error(await client.call_tool(
                "request_status", {"token": "x" * 10_000}))

    anyio.run(run)


def test_bounded_lines_cut_a_long_line_and_keep_the_next() -> None:
    import io
    import threading

    from factory.assistants import BoundedLines

    read, write = os.pipe()
    payload = b"x" * 100_000 + b"\n" + b'{"ok": 1}\n' + b"y" * 10 + b"\n"

    def send() -> None:  # more than a pipe holds: written while it is read
        with os.fdopen(write, "wb") as writer:
            writer.write(payload)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    lines = io.TextIOWrapper(io.BufferedReader(BoundedLines(read, 1000))).readlines()
    sender.join(timeout=10)
    assert [len(line) for line in lines] == [1002, 10, 11]  # cut, NUL-marked, newline
    assert lines[1] == '{"ok": 1}\n'


def test_stdio_drops_a_huge_line_and_answers_the_next_message(approved: Settings) -> None:
    """A 10 MB line on stdin is cut at 2 MiB and dropped as malformed; the server then
    answers a real initialize, never holding the whole line."""
    initialize = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
    huge = '{"jsonrpc": "2.0", "id": 0, "method": "' + "a" * 10_000_000 + '"}'
    proc = subprocess.run([sys.executable, "-m", "factory.cli", "mcp", "--offline"],
                          input=(huge + "\n" + initialize + "\n").encode(),
                          capture_output=True, env=_env(approved), cwd=approved.root,
                          timeout=120)
    replies = [json.loads(line) for line in proc.stdout.decode().splitlines() if line]
    assert any(r.get("id") == 1 and "result" in r for r in replies), proc.stderr[-2000:]
    assert len(proc.stdout) < 100_000  # nothing of the huge line echoed back
