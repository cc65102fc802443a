"""Build slots: Prefect global-concurrency leases that a killed process cannot keep.

A build holds one slot of the ``factory-builds`` limit while it runs. The slot
is a lease on the Prefect server that a thread of the holder renews every few
seconds, so a holder killed with -9 stops renewing and the server's repossessor
takes the slot back once the short lease runs out (``LEASE_SECONDS``, not
Prefect's default of five minutes). Sooner still: every holder leaves a note in
the state directory (lease id, owner process), and the next acquisition on this
host first returns the slots of notes whose owner process is gone.

A lease the server forgot (its lease store is in memory, so a restarted embedded
server knows none) would keep its slot counted for ever; ``reset_slots`` clears
the count when the embedded server starts, when no lease can exist.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from factory._internal.atomic import write_json
from factory.build.confined import Confined, OutputRefused
from factory.build.docker import owner_alive, owner_id
from factory.config import Settings
from factory.errors import BuildError

log = logging.getLogger("factory.slots")

BUILD_LIMIT = "factory-builds"
LEASE_SECONDS = 60.0  # the shortest the server accepts
RENEW_SECONDS = 15.0
_LOCKED = 423  # the server's answer while every slot is taken
NOTE_LIMIT = 64 << 10  # bytes of one note read back


def notes_dir(settings: Settings) -> Path:
    return settings.state_dir / "slots"


@contextlib.contextmanager
def build_slot(settings: Settings, timeout: float | None = None) -> Iterator[UUID]:
    """Hold one build slot for the body of the ``with``; yields the lease id."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        reclaim(settings, client)
        lease = _acquire(client, timeout)
        note = _write_note(settings, lease)
        stop = threading.Event()
        # In this thread's context: the Prefect settings (the API URL) travel in it.
        renewer = threading.Thread(target=contextvars.copy_context().run,
                                   args=(_renew, lease, stop), daemon=True,
                                   name="build-slot-lease")
        renewer.start()
        try:
            yield lease
        finally:
            stop.set()
            renewer.join(timeout=RENEW_SECONDS)
            _release(client, lease)
            if note is not None:
                note.unlink(missing_ok=True)


def _write_note(settings: Settings, lease: UUID) -> Path | None:
    """The note naming this process as the lease's holder, for ``reclaim`` after a crash;
    none (the lease then just expires) when the notes directory is a link: written
    through it, the note would land, and later be deleted, wherever it points."""
    notes = notes_dir(settings)
    if notes.is_symlink():
        log.warning("build slot notes %s is a link; not writing through it", notes)
        return None
    note = notes / f"{lease}.json"
    write_json(note, {"lease": str(lease), "limit": BUILD_LIMIT, "owner": owner_id()})
    return note


def reclaim(settings: Settings, client: Any) -> list[UUID]:
    """Return the slots of holders on this host whose process is gone; their ids."""
    freed: list[UUID] = []
    if notes_dir(settings).is_symlink():  # its notes are elsewhere: delete nothing there
        log.warning("build slot notes %s is a link; not reclaiming through it",
                    notes_dir(settings))
        return freed
    for note in sorted(notes_dir(settings).glob("*.json")):
        try:  # read like a build's output: no link followed, no FIFO opened, bounded
            raw = Confined(note.parent, "build slot notes").read(note.name, NOTE_LIMIT)
            data = json.loads((raw or b"").decode("utf-8"))
            lease, owner = UUID(str(data["lease"])), str(data["owner"])
        except (OutputRefused, OSError, ValueError, KeyError, TypeError):
            with contextlib.suppress(OSError):  # a directory stays; it holds no lease
                note.unlink(missing_ok=True)  # unreadable: a torn note holds nothing we use
            continue
        if owner_alive(owner):
            continue
        _release(client, lease)
        note.unlink(missing_ok=True)
        freed.append(lease)
        log.warning("returned build slot %s of a holder that is gone (%s)", lease, owner)
    return freed


def _acquire(client: Any, timeout: float | None) -> UUID:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[BUILD_LIMIT], slots=1, mode="concurrency", lease_duration=LEASE_SECONDS)
            return UUID(str(response.json()["lease_id"]))
        except httpx.HTTPStatusError as exc:
            # Every slot taken (423), or the server's database busy (an embedded SQLite
            # server answers 503 while builds on a work pool write to it): ask again.
            if exc.response.status_code != _LOCKED and exc.response.status_code not in _BUSY:
                raise
            wait = _retry_after(exc.response)
        if deadline is not None and time.monotonic() + wait > deadline:
            raise BuildError(f"no build slot of {BUILD_LIMIT!r} came free within {timeout:.0f} s",
                             "another rebuild holds them; wait for it or raise build.concurrency")
        time.sleep(wait)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", 1)), 0.1), 5.0)
    except ValueError:
        return 1.0


def _renew(lease: UUID, stop: threading.Event) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while not stop.wait(RENEW_SECONDS):
            try:
                client.renew_concurrency_lease(lease_id=lease, lease_duration=LEASE_SECONDS)
            except Exception as exc:  # noqa: BLE001 - the build goes on; the lease may lapse
                log.warning("could not renew build slot %s: %s", lease, exc)


def _release(client: Any, lease: UUID) -> None:
    try:
        client.release_concurrency_slots_with_lease(lease_id=lease)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 404:  # 404: the server already took it back
            raise


_BUSY = (429, 502, 503)  # the server's database is busy (SQLite) or it is still starting
RESET_PATIENCE = 30.0


def reset_slots(api_url: str) -> None:
    """Count no slot as held (call only when no lease can exist: a fresh server).

    A server that answers busy is asked again, as Prefect's own client does, for up to
    ``RESET_PATIENCE`` seconds: a fresh embedded server on SQLite answers 503 while its
    database is locked by its own start-up work."""
    deadline = time.monotonic() + RESET_PATIENCE
    while True:
        response = httpx.patch(f"{api_url.rstrip('/')}/v2/concurrency_limits/{BUILD_LIMIT}",
                               json={"active_slots": 0}, timeout=10)
        if response.is_success or response.status_code == 404:
            return
        wait = _retry_after(response)
        if response.status_code not in _BUSY or time.monotonic() + wait > deadline:
            response.raise_for_status()
        time.sleep(wait)
