"""The authority's HTTP face: the Fulcio v2 and Rekor v1 routes the stock client calls.

Routes: ``POST /api/v2/signingCert``, ``GET /api/v2/trustBundle``,
``POST /api/v1/log/entries``, ``GET /api/v1/log/entries?logIndex=N``,
``GET /api/v1/log/entries/<uuid>``, ``GET /api/v1/log`` (signed tree head) and
``GET /api/v1/log/proof?firstSize=M&lastSize=N`` (consistency proof).
It binds 127.0.0.1 by default; nothing here logs request headers (tokens).

Each request is held to what it says: one Content-Length of plain digits and no
Transfer-Encoding (anything else is a 400 and the connection closes, so the rest is
never read as a request of its own), a body that is not read (refused, or sent with a
GET) closes the connection after the answer, a request's line and headers must arrive
within IDLE_SECONDS and its body within IDLE_SECONDS and a second a MiB, however slowly
they drip, and at most MAX_CONNECTIONS are handled at once (a connection past them is
closed at once).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from factory.sign._authority.service import Authority, RequestError

MAX_BODY = 64 * 1024 * 1024  # DSSE envelopes carry whole SBOMs
IDLE_SECONDS = 30  # a request (or the wait for one) taking longer is cut: the thread is freed
# a body's own time: IDLE_SECONDS and a second for each MiB (64 MiB over a slow link to
# a non-loopback authority_host), however slowly it drips
BODY_BYTES_PER_SECOND = 1 << 20
MAX_CONNECTIONS = 128  # handled at once: a thread each (the signers' pools hold a few)
# commas, brackets and braces in a body: json.loads makes an object of each, and 64 MiB
# of "{}," would be 22 million dicts (gigabytes); a real entry (base64 in a few keys) has
# dozens
MAX_JSON_VALUES = 100_000
_LENGTH = re.compile(r"[0-9]{1,12}")  # not str.isdigit: '²' is a digit int() refuses
_log = logging.getLogger(__name__)


class _DeadlineReader(io.RawIOBase):
    """A connection's reads, each given what is left of its request's time: a client
    dripping a byte at a time cannot hold its thread past the limit, as a per-read
    socket timeout would let it."""

    def __init__(self, sock: socket.socket, raw: io.RawIOBase) -> None:
        super().__init__()
        self._sock, self._raw = sock, raw
        self.deadline = math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took longer than the idle limit")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _handler(authority: Authority) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "factory-authority"
        disable_nagle_algorithm = True  # headers and body go out as separate writes
        timeout = IDLE_SECONDS  # a slow or silent client must not hold a thread forever
        rbufsize = 0  # the raw socket file: _DeadlineReader buffers over it
        _reader: _DeadlineReader
        _unread = False  # the request declared a body that has not been read

        def setup(self) -> None:
            super().setup()
            # rbufsize 0: makefile gave the socket's raw file (a SocketIO)
            self._reader = _DeadlineReader(self.connection, cast(io.RawIOBase, self.rfile))
            self.rfile = io.BufferedReader(self._reader)

        def handle_one_request(self) -> None:
            # the wait for a request and its reading share the limit (a silent
            # connection, a dripping one alike); a TimeoutError closes the connection
            self._reader.deadline = time.monotonic() + IDLE_SECONDS
            super().handle_one_request()

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            lengths = self.headers.get_all("Content-Length") or []
            self._unread = bool(lengths) and not (
                len(lengths) == 1 and _LENGTH.fullmatch(lengths[0].strip())
                and int(lengths[0]) == 0)
            if "Transfer-Encoding" in self.headers or len(lengths) > 1:
                # two framings: whichever is not believed would be read as a request
                self._unread = True
                self._error(400, "a body is framed by one Content-Length, and no "
                            "Transfer-Encoding")
                return False
            return True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep the test and CLI output clean; never log tokens

        def _send(self, status: int, value: Any) -> None:
            data = json.dumps(value).encode()
            self.connection.settimeout(IDLE_SECONDS)  # not what the reads left over
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self._unread:  # what is left of it must not be read as the next request
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"code": status, "message": message})

        def _body(self) -> Any:
            text = (self.headers.get("Content-Length") or "0").strip()
            length = int(text) if _LENGTH.fullmatch(text) else -1
            if not 0 < length <= MAX_BODY:
                raise RequestError("request body missing or too large")
            self._reader.deadline = (time.monotonic() + IDLE_SECONDS
                                     + length / BODY_BYTES_PER_SECOND)
            raw = self.rfile.read(length)
            self._unread = len(raw) != length
            if sum(raw.count(c) for c in (b",", b"[", b"{")) > MAX_JSON_VALUES:
                raise RequestError(f"request body has too many JSON values (more than "
                                   f"{MAX_JSON_VALUES})")
            try:
                return json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: nested too deep
                raise RequestError("request body is not JSON") from None

        def do_POST(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            try:
                if path == "/api/v2/signingCert":
                    self._send(201, self._signing_cert())
                elif path == "/api/v1/log/entries":
                    body = self._body()
                    if not isinstance(body, dict):
                        raise RequestError("a log entry is a JSON object")
                    self._send(201, authority.add_entry(body))
                else:
                    self._error(404, "not found")
            except RequestError as exc:
                self._error(exc.status, str(exc))

        def _signing_cert(self) -> dict[str, Any]:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                raise RequestError("missing bearer token", 401)
            request = self._body()
            try:
                csr = base64.b64decode(request["certificateSigningRequest"])
            except (KeyError, TypeError, ValueError):
                raise RequestError("expected certificateSigningRequest") from None
            chain = authority.signing_certificate(auth[len("Bearer ") :], csr)
            return {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                self._send(200, self._get(url.path, query))
            except KeyError:
                self._error(404, "no such entry")
            except (RequestError, ValueError) as exc:
                self._error(400, str(exc))

        def _get(self, path: str, query: dict[str, str]) -> Any:
            log = authority.log
            if path == "/api/v2/trustBundle":
                return authority.trust_bundle()
            if path == "/api/v1/log":
                return log.info()
            if path == "/api/v1/log/proof":
                last = int(query.get("lastSize", "0"))
                return log.consistency(int(query.get("firstSize", "1")), last)
            if path == "/api/v1/log/entries" and "logIndex" in query:
                return log.response(log.entry(int(query["logIndex"])))
            if path.startswith("/api/v1/log/entries/"):
                return log.response(log.find(path.rsplit("/", 1)[-1]))
            raise KeyError(path)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int],
                 handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def verify_request(self, request: socket.socket | tuple[bytes, socket.socket],
                       client_address: Any) -> bool:
        """A thread for it while fewer than MAX_CONNECTIONS are handled; else it is
        closed at once (socketserver shuts a refused request down)."""
        return self._slots.acquire(blocking=False)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket],
                        client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: its slot is not held by one
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket | tuple[bytes, socket.socket],
                               client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket],
                     client_address: Any) -> None:
        """One log line, never socketserver's traceback on stderr: a client that went away
        or went silent is routine, and anything else is the server's bug to report."""
        # the exception being handled is the request's (socketserver calls this in except)
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # reset, broken pipe, the idle timeout
            return
        _log.error("the authority could not answer a request: %s: %s",
                   type(exc).__name__, exc)


@contextmanager
def serve(authority: Authority, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the authority on ``host:port`` (0 = a free port) for the block; yield its URL."""
    server = _Server((host, port), _handler(authority))
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="factory-authority", daemon=True
    )
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
