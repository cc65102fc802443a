"""Advisories on by default: OSV's archive fetched conditionally and cached; an
unreachable source said loudly, and never a PASS for the check it stopped.

No network: a local server serves a small OSV zip (with an ETag), and a port
nothing listens on stands for an unreachable source.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from factory.config import OSV_PYPI_ARCHIVE, load_settings
from factory.upstream.advisories import AdvisoriesUnavailable, fetch_archive, open_advisories
from factory.verify import verify
from factory.verify.model import FAIL, SKIP, exit_code
from factory.verify.render import print_report
from tests.index_fixtures import free_port
from tests.security_fixtures import released_copy

ADVISORY = {
    "id": "PYSEC-0000-1", "summary": "alpha is bad",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "alpha"},
                  "ranges": [{"type": "ECOSYSTEM",
                              "events": [{"introduced": "0"}, {"fixed": "1.0.1"}]}]}],
}


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("PYSEC-0000-1.json", json.dumps(ADVISORY))
    return out.getvalue()


@pytest.fixture
def osv() -> Iterator[tuple[str, list[int]]]:
    """A local OSV archive server: its URL, and the status of each answer."""
    from tests.index_fixtures import running

    body, tag, answers = _zip(), '"v1"', []

    async def archive(request: Request) -> Response:
        status = 304 if request.headers.get("if-none-match") == tag else 200
        answers.append(status)
        return Response(b"" if status == 304 else body, status_code=status,
                        headers={"ETag": tag}, media_type="application/zip")

    with running(Starlette(routes=[Route("/PyPI/all.zip", archive)])) as url:
        yield f"{url}/PyPI/all.zip", answers


def _unreachable() -> str:
    return f"http://127.0.0.1:{free_port()}/PyPI/all.zip"  # nothing listens there


def test_the_archive_is_fetched_once_then_asked_conditionally(
        osv: tuple[str, list[int]], tmp_path: Path) -> None:
    url, answers = osv
    path = fetch_archive(url, tmp_path)
    assert zipfile.is_zipfile(path)
    assert fetch_archive(url, tmp_path) == path and answers == [200]  # within the hour: cached
    assert fetch_archive(url, tmp_path, recheck=0) == path
    assert answers == [200, 304]  # If-None-Match: not sent again
    database, problem = open_advisories(url, tmp_path)
    assert problem is None and database is not None
    assert [a.id for a in database.affecting("alpha", "1.0.0")] == ["PYSEC-0000-1"]


def test_the_archive_is_bounded(osv: tuple[str, list[int]], tmp_path: Path) -> None:
    url, _ = osv
    with pytest.raises(AdvisoriesUnavailable, match="larger than 10 bytes"):
        fetch_archive(url, tmp_path, max_bytes=10)
    assert not (tmp_path / "archive.zip").exists()


def test_an_unreachable_source_is_said_and_a_cached_copy_still_used(
        osv: tuple[str, list[int]], tmp_path: Path) -> None:
    database, problem = open_advisories(_unreachable(), tmp_path / "none")
    assert database is None and problem is not None and "unreachable" in problem

    url, _ = osv
    fetch_archive(url, tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["url"] = gone = _unreachable()  # the same cache, the source gone since
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert fetch_archive(gone, tmp_path, recheck=0) == tmp_path / "archive.zip"
    assert "unreachable" in json.loads((tmp_path / "meta.json").read_text())["problem"]


def test_a_new_install_reads_osvs_pypi_archive(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    assert load_settings(root).advisories == OSV_PYPI_ARCHIVE


def test_verify_never_passes_a_check_it_did_not_run(released_base: Path, tmp_path: Path) -> None:
    settings = released_copy(released_base, tmp_path)
    source = _unreachable()
    report = verify(settings, "alpha==1.0.0", advisories=source)
    assert report.ok  # nothing failed ...
    assert report.artifacts[0].check("advisories").status == SKIP  # type: ignore[union-attr]
    why = report.skipped["advisories"]
    assert why.startswith(f"NOT CHECKED: {source} unreachable (")
    assert exit_code(report) == 3 and exit_code(report, allow_skipped=True) == 0
    console = Console(record=True, width=400)
    print_report(report, console)
    text = console.export_text()
    assert "INCOMPLETE" in text and "PASS" not in text.split("\n")[-2]
    assert f"NOT RUN: advisories (NOT CHECKED: {source} unreachable" in text

    asked = verify(settings, "alpha==1.0.0", check_advisories=False)
    assert exit_code(asked) == 0 and not asked.skipped
    assert asked.requested == {"advisories": "not checked on request (--no-advisories)"}


def test_verify_reads_the_served_archive(released_base: Path, tmp_path: Path,
                                         osv: tuple[str, list[int]]) -> None:
    settings = released_copy(released_base, tmp_path)
    report = verify(settings, "alpha==1.0.0", advisories=osv[0])
    check = report.artifacts[0].check("advisories")
    assert check is not None and check.status == FAIL and "PYSEC-0000-1" in check.message
    assert (settings.state_dir / "advisories" / "archive.zip").is_file()  # cached in the state
