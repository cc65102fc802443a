"""Two processes that find the key material missing at the same moment make it once.

Before factory._internal.dirlock, each made its own authority meta and keys: two
releases started at once on a fresh state published one process's trusted root beside
the other's trust config, and one release failed (test_faults_concurrency saw it).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from tests import factories


def _authority(directory: str, barrier: object, out: object) -> None:
    from factory.sign._authority.keys import ensure_keys

    barrier.wait()  # type: ignore[attr-defined]
    from cryptography.hazmat.primitives.serialization import Encoding

    keys = ensure_keys(Path(directory))
    meta = Path(directory, "authority.json").read_text()
    _answer(out, (meta, keys.ca_cert.public_bytes(Encoding.PEM)))


def _functionary(settings: object, barrier: object, out: object) -> None:
    from factory.attest.keys import init_keys, public_key_path

    barrier.wait()  # type: ignore[attr-defined]
    init_keys(settings)  # type: ignore[arg-type]
    _answer(out, public_key_path(settings, "builder").read_bytes())  # type: ignore[arg-type]


def _answer(out: object, value: object) -> None:
    """Send ``value`` and leave at once: a child forked from a test worker inherits its
    exit handlers (pytest's, Prefect's), which are not this process's to run."""
    out.put(value)  # type: ignore[attr-defined]
    out.close()  # type: ignore[attr-defined]
    out.join_thread()  # type: ignore[attr-defined]
    os._exit(0)


def _race(target: object, argument: object) -> list[object]:
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(3), context.Queue()
    workers = [context.Process(target=target, args=(argument, barrier, out))  # type: ignore[arg-type]
               for _ in range(3)]
    for worker in workers:
        worker.start()
    got = [out.get(timeout=60) for _ in workers]  # each made or found the keys
    for worker in workers:
        worker.join(timeout=60)
    return got


def test_the_authority_keys_are_made_once_by_racing_processes(tmp_path: Path) -> None:
    for attempt in range(8):
        got = _race(_authority, str(tmp_path / f"authority{attempt}"))
        assert len(set(got)) == 1, attempt  # one meta and one CA for all three


def test_the_functionary_keys_are_made_once_by_racing_processes(tmp_path: Path) -> None:
    for attempt in range(8):
        settings = factories.settings(tmp_path / f"p{attempt}", project="project")
        got = _race(_functionary, settings)
        assert len(set(got)) == 1, attempt
