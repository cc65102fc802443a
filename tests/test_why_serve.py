"""`factory serve`'s 404 explains itself: which case it is, and what instead.

Real HTTP against the running app, then real pip and uv against it. The index
publishes requests 2.32.3 and six 1.17.0; its status record (what the watch
cycle writes) also approves flask, whose wheel the admission gate refused.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from factory import why
from factory.config import load_settings
from factory.index import Index
from factory.index.serve import create_app
from factory.watch import ComponentStatus
from tests.index_fixtures import RequestLog, publish_wheel, running

REPO = Path(__file__).resolve().parents[1]
JSON = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = f"{JSON}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
REFUSAL = "3.1.0: the wheel requires evil-package, not an approved component"


def _row(name: str, locked: str | None = None, published: str | None = None,
         refused: str | None = None) -> dict[str, object]:
    """A status row as the watch cycle writes it (records/_status.json)."""
    return ComponentStatus(name, "runtime", ">=0", None, locked, published, [], None,
                           refused=refused).to_dict()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RequestLog, Path]]:
    root = tmp_path_factory.mktemp("why-index")
    settings = load_settings(root=root)
    publish_wheel(settings, root / "work", "requests", "2.32.3")
    publish_wheel(settings, root / "work", "six", "1.17.0")
    Index.of(settings).write_status([
        _row("requests", "2.32.3", "2.32.3"), _row("six", "1.17.0", "1.17.0"),
        _row("flask", "3.1.0", None, refused=REFUSAL)])
    log = RequestLog(create_app(Index.of(settings)))
    with running(log) as url:
        yield url, log, root


def test_a_typo_gets_a_json_404_naming_the_approved_project(
        index: tuple[str, RequestLog, Path], caplog: pytest.LogCaptureFixture) -> None:
    url = index[0]
    with caplog.at_level(logging.WARNING, logger="factory.index.serve"):
        for accept in (PIP_ACCEPT, "application/json"):
            response = httpx.get(f"{url}/simple/reqests/", headers={"Accept": accept})
            assert response.status_code == 404
            assert "location" not in response.headers
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert body["verdict"] == "did-you-mean" and body["suggestions"] == ["requests"]
            assert body["message"] == ("reqests is not an approved component of this index; "
                                       "did you mean: requests")
    assert "'reqests' -> 404 did-you-mean: did you mean requests" in caplog.text


def test_a_text_client_gets_one_or_two_short_lines(index: tuple[str, RequestLog, Path]) -> None:
    url = index[0]
    for path in ("/simple/reqests/", "/project/reqests/"):
        response = httpx.get(url + path, headers={"Accept": "text/html"})
        assert response.status_code == 404 and response.headers["content-type"].startswith(
            "text/plain")
        lines = response.text.splitlines()
        assert lines[0] == "reqests is not an approved component of this index; did you mean: " \
            "requests"
        assert len(lines) <= 2
    confusable = httpx.get(f"{url}/simple/r\u0435quests/")  # Cyrillic "е"
    assert confusable.status_code == 404 and "did you mean: requests" in confusable.text


def test_an_approved_but_refused_component_says_why(index: tuple[str, RequestLog, Path]) -> None:
    response = httpx.get(f"{index[0]}/simple/flask/", headers={"Accept": PIP_ACCEPT})
    assert response.status_code == 404
    body = response.json()
    assert body["verdict"] == "approved-not-published" and body["project"] == "flask"
    assert REFUSAL in body["reason"]


def test_names_close_to_nothing_and_hostile_names_are_bounded(
        index: tuple[str, RequestLog, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url = index[0]
    invented = httpx.get(f"{url}/simple/invented-internal-name/", headers={"Accept": JSON})
    assert invented.status_code == 404 and invented.json()["verdict"] == "not-approved"
    assert invented.json()["suggestions"] == []
    # Bounded, counted rather than timed: a name no project can have is answered
    # without folding or matching it (the server runs in this process).
    matched: list[str] = []
    real_fold = why.fold
    monkeypatch.setattr(why, "fold", lambda name: matched.append(name) or real_fold(name))
    for name in ("a" * 1500, "re%E2%80%AEquests", "requests%20x", "%F0%9F%90%8D"):
        response = httpx.get(f"{url}/simple/{name}/", headers={"Accept": JSON}, timeout=30)
        assert matched == [], name
        assert response.status_code == 404, name
        body = response.json()
        assert body["verdict"] == "not-approved" and len(body["name"]) <= 201
        assert body["message"].isprintable()


def test_the_answer_follows_the_published_status(index: tuple[str, RequestLog, Path]) -> None:
    url, _, root = index
    assert httpx.get(f"{url}/simple/six/", headers={"Accept": JSON}).status_code == 200
    before = httpx.get(f"{url}/simple/sux/", headers={"Accept": JSON}).json()
    assert before["suggestions"] == ["six"]
    index_ = Index.of(load_settings(root=root))
    rows = [_row("requests", "2.32.3", "2.32.3"), _row("six", "1.17.0", "1.17.0"),
            _row("flask", "3.1.0", None, refused=REFUSAL)]
    index_.write_status([*rows, _row("sax")])
    after = httpx.get(f"{url}/simple/sux/", headers={"Accept": JSON}).json()
    assert after["suggestions"] == ["sax", "six"]
    index_.write_status(rows)


# -- real installers ---------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               UV_NO_CONFIG="1")
    return env


def test_pip_fails_on_a_typo_and_the_log_names_the_approved_project(
        index: tuple[str, RequestLog, Path], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    url, log, _ = index
    log.seen.clear()
    with caplog.at_level(logging.WARNING, logger="factory.index.serve"):
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check",
             "download", "-vvv", "--no-deps", "--no-cache-dir", "-d", str(tmp_path),
             "--index-url", f"{url}/simple/", "reqests"],
            capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert result.returncode != 0
    assert ("GET", "/simple/reqests/", 404) in log.seen
    output = result.stdout + result.stderr
    assert "No matching distribution found for reqests" in output
    # pip shows the status of a 404 (with -vvv) but never its body: the answer naming
    # the approved project reaches the operator in the server's log, and the user
    # through `factory why` or a client that reads the body (an assistant, curl).
    assert "404 Client Error: Not Found" in output
    assert "did you mean" not in output
    assert "'reqests' -> 404 did-you-mean: did you mean requests" in caplog.text
    assert [p for _, p, _ in log.seen if p.startswith("/simple/")] == ["/simple/reqests/"]


def _uv() -> str | None:
    local = REPO / ".venv" / "bin" / "uv"
    return str(local) if local.is_file() else None


@pytest.mark.skipif(_uv() is None, reason="uv is not installed (pip install uv)")
def test_uv_fails_on_a_typo_without_looking_elsewhere(
        index: tuple[str, RequestLog, Path], tmp_path: Path) -> None:
    url, log, _ = index
    result = subprocess.run(
        [str(_uv()), "pip", "compile", "--no-config", "--no-cache", "--index-url",
         f"{url}/simple/", "-"], input="reqests\n", capture_output=True, text=True,
        env=_clean_env(), timeout=120, cwd=tmp_path)
    assert result.returncode != 0
    assert ("GET", "/simple/reqests/", 404) in log.seen
    # uv says the name is not in the registry; like pip, it does not show the body.
    assert "reqests was not found in the package registry" in result.stderr
