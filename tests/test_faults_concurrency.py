"""Concurrency: two factory processes on one state dir, and installs during a publish.

Two releases of the same builds at once lose nothing and duplicate nothing:
every wheel is published once, with one whole set of sidecars that verifies.
Fifty concurrent clients fetching pages and files while new versions are
published all succeed, and every file has the hash its page names.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from pathlib import Path

import httpx
import pytest

from factory.config import Settings, load_settings
from factory.index import Index
from factory.index.records import Layout, list_projects
from factory.index.serve import create_app
from factory.index.validation import load_record
from factory.sign._authority.log import ENTRIES_FILE
from factory.verify import verify
from tests import factories
from tests.index_fixtures import publish_wheel, running
from tests.security_fixtures import RELEASE, python, stage_build

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.mark.slow
def test_two_releases_at_once_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path, project="project")
    names = [f"pkg{i}" for i in range(4)]
    for name in names:
        stage_build(settings, name)
    children = [python(RELEASE, str(tmp_path)) for _ in range(2)]
    outs = [c.communicate(timeout=240) for c in children]
    assert [c.returncode for c in children] == [0, 0], [o[1][-800:] for o in outs]
    counts = sorted(int(o[0].split()[-1]) for o in outs)
    assert sum(counts) == len(names)  # each wheel released by exactly one of them
    layout = Layout(settings.index_dir)
    assert list_projects(layout) == names
    for name in names:
        record = load_record(layout, name)
        assert record is not None and len(record.files) == 1
    assert Index.of(settings).check() == []
    report = verify(settings, everything=True, check_advisories=False)
    assert report.ok, [(a.filename, [c.message for c in a.failures()]) for a in report.artifacts]
    # Signed once per wheel: 4 entries each (wheel, SLSA, SBOM, publish statement), and
    # one more for the equivalence statement when upstream could be asked about the wheel.
    statements = list(settings.index_dir.rglob("*.equivalence.json"))
    assert len(statements) in (0, len(names)), statements
    entries = (settings.authority_dir / "log" / ENTRIES_FILE).read_bytes().count(b"\n")
    assert entries == 4 * len(names) + len(statements)


async def _get(client: httpx.AsyncClient, url: str, stats: dict[str, int],
               **kwargs: object) -> httpx.Response:
    """GET as an installer does: a connection that drops before any answer (a keep-alive
    connection the server closed as it was reused) is retried; an HTTP error is not."""
    for attempt in range(3):
        try:
            return await client.get(url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            if attempt == 2:
                raise
            stats["retried"] = stats.get("retried", 0) + 1
    raise AssertionError("unreachable")


async def _install_loop(client: httpx.AsyncClient, projects: list[str], stop: threading.Event,
                        stats: dict[str, int]) -> None:
    n = 0
    while not stop.is_set():
        project = projects[n % len(projects)]
        n += 1
        try:
            page = await _get(client, f"/simple/{project}/", stats, headers={"Accept": JSON})
            page.raise_for_status()
            for item in page.json()["files"][-2:]:
                url = page.url.join(item["url"])
                meta = await _get(client, str(url) + ".metadata", stats)
                wheel = await _get(client, str(url), stats)
                meta.raise_for_status()
                wheel.raise_for_status()
                if (hashlib.sha256(wheel.content).hexdigest() != item["hashes"]["sha256"]
                        or hashlib.sha256(meta.content).hexdigest()
                        != item["core-metadata"]["sha256"]):
                    stats["bad_hash"] += 1
                stats["files"] += 1
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            stats["errors"] += 1
            stats.setdefault("first_error", repr(exc))  # type: ignore[arg-type]


@pytest.mark.slow
def test_fifty_concurrent_installs_during_a_publish_all_succeed(tmp_path: Path) -> None:
    settings: Settings = load_settings(root=tmp_path)
    projects = ["alpha", "beta", "gamma"]
    for name in projects:
        publish_wheel(settings, tmp_path / "work", name, "1.0")
    stats = {"files": 0, "errors": 0, "bad_hash": 0}
    stop = threading.Event()
    published: list[str] = []

    def publisher() -> None:
        for n in range(1, 9):
            for name in projects:
                publish_wheel(settings, tmp_path / "work", name, f"1.{n}")
                published.append(f"{name} 1.{n}")
        time.sleep(0.3)
        stop.set()

    async def installs(base: str) -> None:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=base, timeout=20, limits=limits) as client:
            await asyncio.gather(*(_install_loop(client, projects, stop, stats)
                                   for _ in range(50)))

    with running(create_app(Index.of(settings))) as base:
        thread = threading.Thread(target=publisher)
        thread.start()
        try:
            asyncio.run(installs(base))
        finally:
            stop.set()
            thread.join()
    assert len(published) == 24
    assert stats["errors"] == 0 and stats["bad_hash"] == 0, stats
    assert stats["files"] > 100
    assert Index.of(settings).check() == []
