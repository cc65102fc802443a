"""A byte-counting TCP proxy on 127.0.0.1, in front of any server.

Counting on the wire (headers included) measures every server the same way,
whatever it logs. It runs its own asyncio loop in a thread and stops when the
block ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

HOST = "127.0.0.1"
CHUNK = 64 * 1024
REQUEST_LINE_END = b" HTTP/1.1\r\n"  # ends every request line pip, uv and httpx send


@dataclass
class Counter:
    port: int = 0
    down: int = 0  # server -> client
    up: int = 0  # client -> server
    connections: int = 0
    requests: int = 0  # HTTP/1.1 request lines seen going up (pipelined ones too)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                counter: Counter, downstream: bool) -> None:
    try:
        while data := await reader.read(CHUNK):
            if downstream:
                counter.down += len(data)
            else:
                counter.up += len(data)
                counter.requests += data.count(REQUEST_LINE_END)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with suppress(RuntimeError):  # the loop may already be closing
            writer.close()


def _handler(target_port: int, counter: Counter):  # type: ignore[no-untyped-def]
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        counter.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(HOST, target_port)
            await asyncio.gather(_pipe(client_r, server_w, counter, False),
                                 _pipe(server_r, client_w, counter, True))
        except OSError:
            pass
        except asyncio.CancelledError:
            # The proxy is stopping: the connection ends here. (A handler task that ends
            # cancelled is logged by asyncio's stream protocol as an error.)
            pass
        finally:
            with suppress(RuntimeError):
                client_w.close()
    return handle


@contextmanager
def counting_proxy(target_port: int) -> Iterator[Counter]:
    """Yield a Counter whose ``url`` forwards to 127.0.0.1:``target_port``."""
    counter = Counter()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None
    failure: list[BaseException] = []

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        server = await asyncio.start_server(_handler(target_port, counter), HOST, 0)
        counter.port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await stop
            current = asyncio.current_task()
            handlers = [task for task in asyncio.all_tasks() if task is not current]
            for task in handlers:
                task.cancel()
            # Let them finish cancelling: a task the closed loop still holds pending is
            # destroyed later by the collector, in whatever code runs then.
            await asyncio.gather(*handlers, return_exceptions=True)

    def runner() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=runner, name="counting-proxy", daemon=True)
    thread.start()
    ready.wait(timeout=10)
    if failure or not counter.port:
        raise RuntimeError(f"the counting proxy did not start: {failure}")
    try:
        yield counter
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(timeout=10)
