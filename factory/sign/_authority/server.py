"""The authority's HTTP face: the Fulcio v2 and Rekor v1 routes the stock client calls.

Routes: ``POST /api/v2/signingCert``, ``GET /api/v2/trustBundle``,
``POST /api/v1/log/entries``, ``GET /api/v1/log/entries?logIndex=N``,
``GET /api/v1/log/entries/<uuid>``, ``GET /api/v1/log`` (signed tree head) and
``GET /api/v1/log/proof?firstSize=M&lastSize=N`` (consistency proof).
It binds 127.0.0.1 by default; nothing here logs request headers (tokens).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from factory.sign._authority.service import Authority, RequestError

MAX_BODY = 64 * 1024 * 1024  # DSSE envelopes carry whole SBOMs
IDLE_SECONDS = 30  # a connection that sends nothing for this long is closed, not kept
_log = logging.getLogger(__name__)


def _handler(authority: Authority) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "factory-authority"
        disable_nagle_algorithm = True  # headers and body go out as separate writes
        timeout = IDLE_SECONDS  # a slow or silent client must not hold a thread forever

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep the test and CLI output clean; never log tokens

        def _send(self, status: int, value: Any) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"code": status, "message": message})

        def _body(self) -> Any:
            text = self.headers.get("Content-Length") or "0"
            length = int(text) if text.isdigit() and len(text) <= 12 else -1
            if not 0 < length <= MAX_BODY:
                raise RequestError("request body missing or too large")
            try:
                return json.loads(self.rfile.read(length))
            except ValueError:
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
