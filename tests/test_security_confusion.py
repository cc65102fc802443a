"""Dependency confusion: only approved names exist on the index.

A typosquat, a look-alike or an invented name gets a 404 (never a redirect
to, or a fallback on, a public index) and a log line naming what was asked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from factory.config import Settings, load_settings
from factory.index import Index
from factory.index.serve import create_app
from tests.index_fixtures import publish_wheel, running

JSON = "application/vnd.pypi.simple.v1+json"
ROOT = Path(__file__).resolve().parent.parent

NOT_APPROVED = [
    "reqeusts",  # transposition
    "requestss",  # doubled letter
    "request",  # dropped letter
    "python-requests",  # prefix
    "requests-toolbelt",  # a real project, but not approved
    "r\u0435quests",  # Cyrillic "е": looks the same
    "invented-internal-package-name",  # dependency confusion proper
    "a" * 300,
]


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("confusion")
    settings: Settings = load_settings(root=base)
    publish_wheel(settings, base / "work", "requests", "2.32.3")
    with running(create_app(Index.of(settings))) as url:
        yield url


@pytest.mark.parametrize("name", NOT_APPROVED)
def test_a_name_that_is_not_approved_is_a_404_and_a_log_line(
        index_url: str, name: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="factory.index.serve"):
        for accept in (JSON, "text/html"):
            response = httpx.get(f"{index_url}/simple/{name}/", headers={"Accept": accept})
            assert response.status_code == 404, (name, response.status_code)
            assert "location" not in response.headers  # never sent elsewhere
            assert b"pypi.org" not in response.content
    assert any(name in record.getMessage() and "404" in record.getMessage()
               for record in caplog.records), caplog.text


def test_files_of_unknown_projects_are_404_and_logged(
        index_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="factory.index.serve"):
        for path in ("/files/reqeusts/reqeusts-2.32.3-py3-none-any.whl",
                     "/files/requests/requests-9.9.9-py3-none-any.whl",
                     "/files/requests/..%2F..%2Frecords%2Frequests.json",
                     "/files/Requests/requests-2.32.3-py3-none-any.whl"):
            assert httpx.get(index_url + path).status_code == 404, path
    assert "not found: files/reqeusts/" in caplog.text


def test_the_approved_name_is_served(index_url: str) -> None:
    page = httpx.get(f"{index_url}/simple/requests/", headers={"Accept": JSON}).json()
    assert [f["filename"] for f in page["files"]] == ["requests-2.32.3-py3-none-any.whl"]
    listed = httpx.get(f"{index_url}/simple/", headers={"Accept": JSON}).json()
    assert [p["name"] for p in listed["projects"]] == ["requests"]


def test_the_docs_say_index_url_never_extra_index_url() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "--index-url" in readme
    for found in re.finditer("--extra-index-url", readme):  # only ever mentioned to say: don't
        before = readme[max(0, found.start() - 40):found.start()]
        assert re.search(r"\bnever\b|\bnot\b|don't", before, re.IGNORECASE), before
