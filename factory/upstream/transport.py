"""Bounded HTTP to an upstream index: which hosts a request may reach, and how long it may take.

Everything upstream sends is attacker-controlled, so:

- redirects are followed by hand, each hop checked by a ``HostPolicy``: a listing
  stays on the index's origin; a file may be on the index, its own origin, or the
  index's known files host (files.pythonhosted.org for pypi.org); anything else is
  an ``AlarmError``;
- each request, retries and redirects included, has a wall-clock ``Deadline``
  that a slowly dripping server cannot stretch;
- a compressed body is inflated in bounded pieces (``Inflater``), so it is counted
  before it can grow in memory.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

from factory import __version__
from factory.errors import AlarmError, UpstreamError, printable

if TYPE_CHECKING:  # the client is imported by the first Transport (verify, which reads
    import httpx  # listings from disk only, never loads it)

USER_AGENT = f"artifact-factory/{__version__}"
MAX_URL = 4096
DEADLINE = 120.0  # seconds for one request, retries and redirects included
MIN_RATE = 256 << 10  # bytes/s a download must average; its deadline grows with its size
MAX_REDIRECTS = 5
CHUNK = 1 << 16
# Where an index keeps its files when they are not on the index's own origin.
FILES_HOSTS: dict[str, tuple[str, ...]] = {
    "pypi.org": ("files.pythonhosted.org",),
    "test.pypi.org": ("test-files.pythonhosted.org",),
}

T = TypeVar("T")


# -- which URLs and hosts ----------------------------------------------------------------

def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Origin = tuple[str, str, int]


def origin(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) URL, or None when it is not one we can use."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def url_problem(url: object, plain_http: bool = False) -> str | None:
    """Why ``url`` is not a well-formed http(s) URL (bounded, no spaces or controls), or None.

    Plain http is a problem unless to loopback, or ``plain_http`` (the caller checks
    the host itself, e.g. against the configured index)."""
    if not isinstance(url, str):
        return "the URL is not a string"
    if len(url) > MAX_URL:
        return f"the URL is longer than {MAX_URL} characters"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "the URL has spaces or control characters"
    found = origin(url)
    if found is None:
        return f"{printable(url[:80])!r} is not an http(s) URL with a host"
    if found[0] == "http" and not plain_http and not _is_loopback(found[1]):
        return f"plain http to {found[1]!r} (https is required but for loopback)"
    return None


def shown(url: str) -> str:
    """``url`` as messages and reports show it: printable, without the user:password@ of
    an index behind basic auth (the report is a file that gets filed and shared)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return printable(url)
    if "@" not in parts.netloc:
        return printable(url)
    host = parts.netloc.rsplit("@", 1)[1]
    return printable(urlunsplit(parts._replace(netloc=f"***@{host}")))


def join(base: str, url: str) -> str | None:
    """``url`` resolved against ``base``, or None when it cannot be parsed."""
    try:
        return urljoin(base, url)
    except ValueError:  # e.g. "http://[x": an unclosed IPv6 literal
        return None


class HostPolicy:
    """Which origins an index's listings and files may come from, and redirect to.

    A listing stays on the index's origin. A file may be on the index's origin or
    on the index's files host (files.pythonhosted.org for pypi.org, over https). A
    redirect of a download may also stay on the origin of the URL it was asked for.
    Plain http is allowed for the configured index itself and for loopback only.
    """

    def __init__(self, index_url: str, file_hosts: tuple[str, ...] = ()) -> None:
        found = origin(index_url)
        if found is None:
            raise UpstreamError(f"the upstream index URL {index_url!r} is not an http(s) URL",
                                "set [factory] upstream to an https URL")
        self.index = found
        self.file_hosts = {h.lower() for h in (*FILES_HOSTS.get(found[1], ()), *file_hosts)}

    def _shape(self, url: object) -> str | None:
        problem = url_problem(url)
        # the configured index may be plain http (a mirror on the LAN); nothing else may
        if problem and problem.startswith("plain http") and origin(str(url)) == self.index:
            return None
        return problem

    def listing(self, url: str) -> str | None:
        problem = self._shape(url)
        if problem is None and origin(url) != self.index:
            return f"{host(url)} is not the index's origin {_host_of(self.index)}"
        return problem

    def file(self, url: str, also: Origin | None = None) -> str | None:
        problem = self._shape(url)
        if problem is not None:
            return problem
        found = origin(url)
        assert found is not None
        if found == self.index or found == also:
            return None
        if found[0] == "https" and found[1] in self.file_hosts and found[2] == 443:
            return None
        return f"{host(url)} is neither the index {_host_of(self.index)} nor its files host"

    def download(self, url: str) -> Callable[[str], str | None]:
        """Where a download of ``url`` may be redirected: a file host, or its own origin."""
        start = origin(url)
        return lambda target: self.file(target, also=start)


def _host_of(found: Origin) -> str:
    return f"{found[0]}://{found[1]}:{found[2]}"


def host(url: str) -> str:
    """The origin of ``url`` as shown in a message (printable)."""
    found = origin(url)
    return printable(_host_of(found)) if found else printable(url[:80])


# -- bounded requests --------------------------------------------------------------------

class Transport:
    """HTTP to one index: transient failures (connection errors, 5xx, 429) retried with
    exponential backoff, redirects followed hop by hop as the caller's policy allows."""

    def __init__(self, *, retries: int, timeout: float, backoff: float) -> None:
        self.retries, self.timeout, self.backoff = retries, timeout, backoff
        # Redirects are followed by hand (each hop checked against the policy), and
        # connections are not reused so that each request's deadline owns its socket.
        import httpx

        self.client = httpx.Client(timeout=timeout, follow_redirects=False,
                                   headers={"User-Agent": USER_AGENT},
                                   limits=httpx.Limits(max_keepalive_connections=0))

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, url: str, deadline: Deadline, *, headers: dict[str, str],
                allowed: Callable[[str], str | None],
                consume: Callable[[httpx.Response], T]) -> T:
        """``consume`` the answer to ``url``, retrying transient failures until ``deadline``."""
        import httpx

        last = ""
        for attempt in range(self.retries + 1):
            try:
                response = self._follow(method, url, deadline, headers, allowed)
                try:
                    if response.status_code < 500 and response.status_code != 429:
                        return consume(response)
                    last = f"HTTP {response.status_code}"
                finally:
                    response.close()
            except httpx.TransportError as exc:
                deadline.check()  # a socket the deadline shut down is not a network fault
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < self.retries:
                deadline.sleep(self.backoff * 2**attempt)
        raise UpstreamError(f"{url} did not answer after {self.retries + 1} tries ({last})",
                            "check that the upstream index is up and reachable, then retry")

    def _follow(self, method: str, url: str, deadline: Deadline, headers: dict[str, str],
                allowed: Callable[[str], str | None]) -> httpx.Response:
        """The streamed answer to ``url``, after the redirects the policy allows."""
        import httpx

        current = url
        for _ in range(MAX_REDIRECTS + 1):
            deadline.check()
            timeout = httpx.Timeout(self.timeout, connect=max(0.01, min(self.timeout,
                                                                        deadline.remaining())))
            request = self.client.build_request(method, current, headers=headers,
                                                timeout=timeout,
                                                extensions={"trace": deadline.trace})
            try:
                response = self.client.send(request, stream=True)
            except httpx.InvalidURL as exc:  # httpx builds the redirect it will not follow:
                # a Location such as "javascript:x" (a scheme, no host) is refused there
                raise AlarmError(f"{url} redirects to a URL that is not http(s) "
                                 f"({printable(str(exc))[:80]})",
                                 "refused: redirects may not leave the index or its files "
                                 "host; check the upstream index") from None
            if not response.has_redirect_location:
                return response
            target = join(current, response.headers["location"]) or "(not a URL)"
            response.close()
            problem = allowed(target)
            if problem is not None:
                raise AlarmError(f"{url} redirects to {host(target)}: {problem}",
                                 "refused: redirects may not leave the index or its files host; "
                                 "check the upstream index (a changed redirect is an alarm)")
            current = target
        raise UpstreamError(f"{url}: more than {MAX_REDIRECTS} redirects")


class Deadline:
    """A wall-clock limit on one request, retries and redirects included.

    httpx only bounds each read, so a server that drips one byte just inside the
    read timeout (headers or body) could hold a request open forever. The sockets
    a request opens are reported by httpcore's trace hook; when the deadline
    passes a timer shuts them down, which ends any read at once. Connections are
    not kept alive between requests, so every request's socket is its own.
    """

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete",
                         "connection.connect_unix_socket.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        if self.expired or self.remaining() <= 0:
            raise UpstreamError(f"{self.what}: no complete answer within {self.seconds:g} s",
                                "the upstream server is too slow or stalling on purpose; "
                                "retry later")

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self.remaining())))
        self.check()


class Cutoff:
    """Wall-clock bounds on the GETs of one client that keeps its connections alive.

    ``trace`` (a request's httpcore trace hook) records each socket the client opens;
    ``bound(seconds)`` starts a timer that, when a request overruns, shuts every
    recorded socket down, ending the stalled read (and any other in flight: a server
    that stalls on purpose is not trusted with the rest). Deadline is the same for a
    client whose every request opens its own connection.
    """

    def __init__(self) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets = [s for s in self._sockets if s.fileno() != -1] + [sock]

    @contextlib.contextmanager
    def bound(self, seconds: float) -> Iterator[threading.Event]:
        """A timer for one request: the event is set when it overran and was cut."""
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            with self._lock:
                for sock in self._sockets:
                    _shutdown(sock)

        timer = threading.Timer(seconds, cut)
        timer.daemon = True
        timer.start()
        try:
            yield expired
        finally:
            timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: the request is over
        sock.shutdown(socket.SHUT_RDWR)


class Inflater:
    """Content-Encoding gzip/deflate decoded in bounded pieces (at most CHUNK each),
    so a small compressed body cannot expand in memory before it is counted."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding.strip().lower() or "identity"
        if self.encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise UpstreamError(f"upstream answered with Content-Encoding "
                                f"{printable(self.encoding[:40])!r}, which we did not ask for")
        self._gzip = self.encoding in ("gzip", "x-gzip")
        self._first = True
        self._inflater = self._new()

    def _new(self) -> Any:
        return zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.encoding == "identity":
            yield data
            return
        try:
            yield from self._inflate(data)
        except zlib.error as exc:
            raise UpstreamError(f"upstream sent a corrupt {self.encoding} body ({exc})") from None

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self._inflater.decompress(data, CHUNK)
            except zlib.error:
                if not (self._first and not self._gzip):
                    raise
                # "deflate" servers often send raw deflate without the zlib header
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._inflater.decompress(data, CHUNK)
            self._first = False
            if out:
                yield out
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                rest = self._inflater.unused_data
                if not (self._gzip and rest.startswith(b"\x1f\x8b")):
                    return  # trailing bytes after the stream are ignored, as browsers do
                data = rest  # a further gzip member
                self._inflater = self._new()
                continue
            if not data and len(out) < CHUNK:
                return


def inflated(response: httpx.Response) -> Iterator[bytes]:
    """``response``'s body decoded from its one Content-Encoding (gzip or deflate) in
    pieces of at most CHUNK, for a caller that counts them. httpx's own decoding
    (iter_bytes) inflates each read whole, and decodes stacked encodings: a 2 KiB body
    sent as "gzip, gzip" became 1 GiB in memory before any bound was checked. Anything
    but one gzip or deflate layer is an UpstreamError."""
    if response.is_stream_consumed:  # read whole already (a test's in-memory answer)
        yield response.content
        return
    inflater = Inflater(response.headers.get("content-encoding", ""))
    for raw in response.iter_raw(CHUNK):
        yield from inflater.feed(raw)


def content_length(header: str) -> int | None:
    """A Content-Length header's value when it is plain ASCII digits (and not absurd)."""
    header = header.strip()
    if not header.isascii() or not header.isdigit() or len(header) > 20:
        return None
    return int(header)
