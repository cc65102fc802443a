"""The policy API of `factory serve` (/api/v1/): check, check-list, search, why, each
answer signed by the answers key and verified with the public key the index serves
under /.well-known/factory/; every route is in /api/v1/openapi.json; bad input is one
bounded JSON error each.

The project approves requests (2.32.3 served; 2.31.0 yanked for an advisory), flask
and six (neither published).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from factory.advice import MAX_LINES, verifier_id, verify_answer
from factory.attest.keys import load_signer
from factory.config import Settings
from factory.errors import VerificationError
from factory.index import Index
from factory.index.serve import create_app
from factory.index.serve.api import MAX_BODY, OPENAPI
from factory.publish import trust_files
from factory.watch import publish_status
from tests.index_fixtures import approve_requests, running

BOUND = 2000  # bytes of any error body, whatever the input


@pytest.fixture
def approved(project: Settings, tmp_path: Path) -> Settings:
    index = approve_requests(project, tmp_path / "work")
    index.publish_trust(trust_files(project))
    publish_status(project, index)  # records/_status.json: what serve knows is approved
    return project


@pytest.fixture
def base(approved: Settings) -> Iterator[str]:
    app = create_app(Index.of(approved), load_signer(approved, "answers"), approved)
    with running(app) as url:
        yield url


@pytest.fixture
def client(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30) as http:
        yield http


def _pem(client: httpx.Client) -> bytes:
    """The answers key as any client gets it: from the index's trust material."""
    listing = client.get("/.well-known/factory/").json()
    assert "answers.pub.pem" in {f["name"] for f in listing["files"]}
    response = client.get("/.well-known/factory/answers.pub.pem")
    assert response.status_code == 200
    return response.content


def _signed(response: httpx.Response, pem: bytes) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    verify_answer(data["envelope"], pem)
    return data["answer"]  # type: ignore[no-any-return]


def test_every_route_answers_signed(approved: Settings, client: httpx.Client) -> None:
    pem = _pem(client)
    one = _signed(client.get("/api/v1/check", params={"requirement": "reqests"}), pem)
    assert one["verdict"] == "did-you-mean" and one["suggestions"] == ["requests"]
    assert "did you mean: requests" in one["message"]
    post = _signed(client.post("/api/v1/check", json={"requirement": "requests>=2.32"}), pem)
    assert post["verdict"] == "served" and post["version"] == "2.32.3"
    why = _signed(client.get("/api/v1/why", params={"requirement": "requests==2.31.0"}), pem)
    assert why["verdict"] == "version-blocked" and why["instead"] == "2.32.3"
    assert why["reason"] == "yanked: advisory GHSA-9wx4-h78v-vm56"
    listed = _signed(client.post("/api/v1/check-list", json={
        "requirements": "requests==2.32.3 --hash=sha256:00\nflsk  # web\n\n-e .\n"}), pem)
    assert [(a["line"], a["verdict"]) for a in listed["answers"]] == [
        (1, "served"), (2, "did-you-mean"), (4, "malformed")]
    assert listed["served"] == 1 and listed["refused"] == 2
    found = _signed(client.get("/api/v1/search", params={"query": "flsk", "limit": "5"}), pem)
    assert [r["name"] for r in found["results"]] == ["flask"]
    assert found["results"][0]["match"] == "a typo"
    everything = _signed(client.post("/api/v1/search", json={}), pem)
    assert [r["name"] for r in everything["results"]] == ["flask", "requests", "six"]


def test_the_statement_names_what_was_asked_and_fails_when_changed(
        approved: Settings, client: httpx.Client) -> None:
    pem = _pem(client)
    envelope = client.get("/api/v1/check", params={"requirement": "Requests"}).json()["envelope"]
    statement = verify_answer(envelope, pem)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://in-toto.io/attestation/svr/v0.1"
    assert statement["subject"][0]["name"] == "requests"
    assert statement["predicate"]["verifier"]["id"] == verifier_id(approved.index_url)
    assert statement["predicate"]["properties"] == ["FACTORY_SERVED"]
    assert statement["predicate"]["answer"]["verdict"] == "served"
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[len(payload) // 2] ^= 0x20
    with pytest.raises(VerificationError):
        verify_answer({**envelope, "payload": base64.b64encode(bytes(payload)).decode()}, pem)


def test_openapi_describes_every_route(approved: Settings, client: httpx.Client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert spec == json.loads(json.dumps(OPENAPI)) and spec["openapi"].startswith("3.1")
    app = create_app(Index.of(approved))
    api = {(r.path, m.lower()) for r in app.routes if isinstance(r, Route)
           and r.path.startswith("/api/") for m in (r.methods or ()) if m != "HEAD"}
    described = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert api == described
    for path, item in spec["paths"].items():
        for operation in item.values():
            assert operation["responses"]["200"], (path, operation)


def _refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert len(response.content) <= BOUND
    assert words in response.json()["error"] if response.headers.get(
        "content-type") == "application/json" else words in response.text


def test_bad_input_is_one_bounded_error_each(client: httpx.Client) -> None:
    _refused(client.post("/api/v1/check-list", json={"requirements": "six\n" * 10_000}), 400,
             f"at most {MAX_LINES}")
    _refused(client.post("/api/v1/check-list", json={"requirements": ["six"] * 10_000}), 400,
             f"at most {MAX_LINES}")
    _refused(client.post("/api/v1/check-list", json={"requirements": ["six"] * 50_000}), 413,
             f"larger than {MAX_BODY}")
    _refused(client.post("/api/v1/check", json={"requirement": "a" * 1_000_000}), 413,
             f"larger than {MAX_BODY}")
    _refused(client.post("/api/v1/check", json={"requirement": "a" * 5000}), 400,
             "at most 1000")
    _refused(client.get("/api/v1/check", params={"requirement": "a" * 5000}), 414, "too long")
    _refused(client.post("/api/v1/check", content=b"{", headers={
        "content-type": "application/json"}), 400, "not JSON")
    _refused(client.post("/api/v1/check", content=b"requests"), 415, "application/json")
    _refused(client.post("/api/v1/check", json=["requests"]), 400, "JSON object")
    _refused(client.get("/api/v1/check"), 400, "'requirement' is required")
    _refused(client.get("/api/v1/search", params={"limit": "0"}), 400, "limit")
    _refused(client.get("/api/v1/search", params={"query": "q" * 300}), 400, "at most 200")
    assert client.get("/api/v1/check-list").status_code == 405
    control = client.get("/api/v1/check", params={"requirement": "requ\x1bests\x00"}).json()
    assert control["answer"]["verdict"] == "malformed"
    assert "\x1b" not in json.dumps(control["answer"], ensure_ascii=False)
    cyrillic = client.get("/api/v1/check", params={"requirement": "r\u0435quests"}).json()
    assert cyrillic["answer"]["suggestions"] == ["requests"]


def test_without_an_answers_key_answers_go_unsigned(approved: Settings) -> None:
    with running(create_app(Index.of(approved))) as url:
        data = httpx.get(f"{url}/api/v1/check", params={"requirement": "six"}).json()
    assert data["envelope"] is None
    assert data["answer"]["verdict"] == "approved-not-published"


def test_a_request_is_queued_signed_and_polled(approved: Settings,
                                               client: httpx.Client) -> None:
    pem = _pem(client)
    asked = _signed(client.post("/api/v1/requests", json={
        "requirement": "attrs>=23", "reason": "to parse configs", "requester": "ada"}), pem)
    assert asked["queued"] and asked["request"]["state"] == "pending"
    assert asked["request"]["origin"] == "api:127.0.0.1"
    token = asked["request"]["token"]
    response = client.get(f"/api/v1/requests/{token}")
    polled = _signed(response, pem)
    statement = verify_answer(response.json()["envelope"], pem)
    assert statement["subject"][0]["name"] == f"request:{token}"
    assert polled["state"] == "pending" and polled["reason"] == "to parse configs"
    again = _signed(client.post("/api/v1/requests", json={"requirement": "attrs"}), pem)
    assert not again["queued"] and again["request"]["votes"] == 2
    served = _signed(client.post("/api/v1/requests", json={"requirement": "requests"}), pem)
    assert served["request"] is None and served["answer"]["verdict"] == "served"


def test_bad_requests_are_one_bounded_error_each(approved: Settings,
                                                 client: httpx.Client) -> None:
    _refused(client.post("/api/v1/requests", json={"reason": "no name"}), 400, "requirement")
    _refused(client.post("/api/v1/requests", json={"requirement": "a @ https://x.example/"}),
             400, "not a project name")
    _refused(client.post("/api/v1/requests", json={"requirement": "attrs",
                                                   "reason": "r" * 100_000}), 400, "reason")
    _refused(client.post("/api/v1/requests", json={"requirement": "attrs",
                                                   "requester": {"x": 1}}), 400, "text")
    _refused(client.get("/api/v1/requests"), 405, "not answered")
    _refused(client.get("/api/v1/requests/" + "0" * 24), 404, "no such request")
    escaped = client.get("/api/v1/requests/..%2F..%2Fetc")  # screened before routing
    assert escaped.status_code == 404 and len(escaped.content) <= BOUND
    for i in range(20):
        assert client.post("/api/v1/requests", json={"requirement": f"p{i}"}).status_code == 200
    _refused(client.post("/api/v1/requests", json={"requirement": "one-more"}), 429,
             "are open")


def test_a_server_without_a_ledger_takes_no_requests(approved: Settings) -> None:
    with running(create_app(Index.of(approved))) as url:
        response = httpx.post(url + "/api/v1/requests", json={"requirement": "attrs"})
    _refused(response, 503, "takes no requests")


def test_lists_waiting_past_the_bound_are_refused_at_once(
        approved: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from factory.advice import Advisor
    from factory.index.serve import api

    release = threading.Event()
    real = Advisor.check_list

    def slow(self: Advisor, text: Any) -> Any:
        release.wait(30)
        return real(self, text)

    monkeypatch.setattr(Advisor, "check_list", slow)
    monkeypatch.setattr(api, "MAX_LISTS_WAITING", 2)
    app = create_app(Index.of(approved), load_signer(approved, "answers"), approved)
    with running(app) as url:
        codes: list[int] = []

        def post() -> None:
            codes.append(httpx.post(url + "/api/v1/check-list", json={"requirements": "six"},
                                    timeout=60).status_code)

        senders = [threading.Thread(target=post) for _ in range(api.MAX_LISTS_AT_ONCE + 2)]
        for sender in senders:
            sender.start()
        lists = next(r for r in app.routes if getattr(r, "path", "") ==
                     "/api/v1/check-list").endpoint.__self__.lists  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while lists.statistics().tasks_waiting < 2:  # 4 running, 2 waiting
            assert time.monotonic() < deadline, lists.statistics()
            time.sleep(0.05)
        refused = httpx.post(url + "/api/v1/check-list", json={"requirements": "six"},
                             timeout=30)
        assert refused.status_code == 429 and "waiting already" in refused.json()["error"]
        assert httpx.get(url + "/api/v1/check", params={"requirement": "six"}).status_code == 200
        release.set()
        for sender in senders:
            sender.join(timeout=30)
    assert codes.count(200) == api.MAX_LISTS_AT_ONCE + 2
