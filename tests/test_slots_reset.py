"""Clearing the build slots of a fresh Prefect server waits out a busy server.

A fresh embedded server on SQLite answers 503 while its own start-up work holds the
database; Prefect's client asks again, and so must ``reset_slots`` (a CI run once failed
its setup on one such 503)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from flows.slots import BUILD_LIMIT, reset_slots


def _server(statuses: list[int]) -> tuple[ThreadingHTTPServer, list[str]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:  # noqa: N802 - the stdlib's name
            seen.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = statuses.pop(0) if statuses else 204
            self.send_response(status)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.fixture
def busy() -> Iterator[tuple[str, list[int], list[str]]]:
    statuses: list[int] = []
    server, seen = _server(statuses)
    try:
        yield f"http://127.0.0.1:{server.server_port}/api", statuses, seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_busy_server_is_asked_again_until_it_answers(busy: tuple[str, list[int], list[str]]
                                                       ) -> None:
    url, statuses, seen = busy
    statuses.extend([503, 429, 502])
    reset_slots(url)
    assert seen == [f"/api/v2/concurrency_limits/{BUILD_LIMIT}"] * 4


def test_a_server_error_that_is_not_busy_is_raised_at_once(
        busy: tuple[str, list[int], list[str]]) -> None:
    url, statuses, seen = busy
    statuses.extend([500, 204])
    with pytest.raises(httpx.HTTPStatusError):
        reset_slots(url)
    assert len(seen) == 1


def test_a_server_that_stays_busy_is_given_up_on(busy: tuple[str, list[int], list[str]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url, statuses, seen = busy
    monkeypatch.setattr("flows.slots.RESET_PATIENCE", 0.5)
    statuses.extend([503] * 1000)
    with pytest.raises(httpx.HTTPStatusError):
        reset_slots(url)
    assert 2 <= len(seen) < 1000
