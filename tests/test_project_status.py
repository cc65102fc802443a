"""PEP 792 project status from policy and from upstream (factory.project_status).

Upstream's status as the listing states it (JSON ``project-status``, HTML
``pypi:project-status`` meta), bounded and checked; the lock records it and the
ledger notes each change; publishing gives the served project the recipe's status,
else upstream's archived or deprecated ("upstream: ..."), and an operator's stands.
The served pages, the 404 and `factory why` carry it; pip installs a deprecated
project and finds nothing of a quarantined one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from factory import ledger
from factory.config import Settings
from factory.errors import LockError, PublishError
from factory.index import Index
from factory.index.serve import create_app
from factory.lock import Lock, load_lock, lock_stage
from factory.project_status import Policy, apply_statuses, held, policy_status
from factory.publish import release_all
from factory.recipes import parse_recipe
from factory.upstream.listing import parse_html, parse_json
from factory.watch import component_status, why_knowledge
from factory.why import answer
from tests import factories
from tests.index_fixtures import publish_wheel, running
from tests.local_upstream import LocalUpstream, build_tool

BASE = "https://pypi.example/simple/x/"
JSON = "application/vnd.pypi.simple.v1+json"


# -- what upstream says --------------------------------------------------------------------

def _json(status: object) -> tuple[str | None, str | None]:
    listing = parse_json("x", BASE, {"files": [], "project-status": status})
    return listing.status, listing.status_reason


def _html(head: str) -> tuple[str | None, str | None]:
    listing = parse_html("x", BASE, f"<html><head>{head}</head><body></body></html>")
    return listing.status, listing.status_reason


def test_a_listing_states_the_project_status() -> None:
    assert _json({"status": "deprecated", "reason": "use y"}) == ("deprecated", "use y")
    assert _json({"status": "quarantined"}) == ("quarantined", None)
    assert _html('<meta name="pypi:project-status" content="archived">'
                 '<meta name="pypi:project-status-reason" content="done &amp; dusted">') == (
        "archived", "done & dusted")
    assert parse_json("x", BASE, {"files": []}).status is None


@pytest.mark.parametrize("status", [
    {"status": "active", "reason": "fine"}, {"status": "gone"}, {"status": "Deprecated"},
    {"status": ["deprecated"]}, {"status": None}, "deprecated", ["quarantined"], 7, None,
])
def test_anything_else_upstream_says_is_ignored(status: object) -> None:
    assert _json(status) == (None, None)


def test_a_hostile_reason_is_bounded_and_printable() -> None:
    status, reason = _json({"status": "deprecated", "reason": "\x1b[2Jx\u202e\n" + "y" * (1 << 20)})
    assert status == "deprecated" and reason is not None
    assert len(reason) <= 300 and reason.isprintable() and reason.startswith("\\x1b[2Jx\\u202e")
    assert _json({"status": "archived", "reason": {"a": 1}}) == ("archived", None)
    big = "z" * (1 << 20)
    status, reason = _html('<meta name="pypi:project-status" content="deprecated">'
                           f'<meta name="pypi:project-status-reason" content="{big}">'
                           '<meta name="pypi:project-status" content="active">')
    assert status == "deprecated" and reason == "z" * 300  # the first of each counts
    assert _html('<meta name="pypi:project-status" content="\x07quarantined">') == (None, None)


# -- the lock ------------------------------------------------------------------------------

def test_the_lock_keeps_upstream_status_and_checks_it() -> None:
    row = factories.locked("oldlib", "1.0")
    row = type(row)(**{**row.__dict__, "upstream_status": "deprecated",
                       "upstream_status_reason": "use newlib"})
    text = Lock([row, factories.locked("newlib", "2.0")]).to_toml()
    assert text.count("upstream_status") == 2  # status and reason of oldlib only
    again = Lock.from_toml(text).primary("oldlib")
    assert again is not None and again.upstream_status == "deprecated"
    assert again.upstream_status_reason == "use newlib"
    for bad in ('upstream_status = "gone"', 'upstream_status = "active"',
                'upstream_status_reason = "orphan"',
                'upstream_status = "archived"\nupstream_status_reason = "a\\u0007"'):
        hostile = text.replace('name = "newlib"', f'name = "newlib"\n{bad}')
        with pytest.raises(LockError, match="upstream_status"):
            Lock.from_toml(hostile)


def _upstream(settings: Settings, upstream: LocalUpstream) -> None:
    build_tool(upstream, settings)
    upstream.add("oldlib", "1.0")
    upstream.add("newlib", "2.0")
    upstream.statuses["oldlib"] = {"status": "deprecated", "reason": "use newlib"}


def _recipes(settings: Settings, old: str = "", new: str = "") -> None:
    factories.recipe(settings.root, "oldlib", 'alternatives = ["newlib"]\n' + old)
    factories.recipe(settings.root, "newlib", new)


def test_the_lock_records_what_upstream_says_and_the_ledger_each_change(
        project: Settings, upstream: LocalUpstream) -> None:
    _upstream(project, upstream)
    _recipes(project)
    lock_stage(project)
    locked = load_lock(project).primary("oldlib")
    assert locked is not None and (locked.upstream_status, locked.upstream_status_reason) == (
        "deprecated", "use newlib")
    upstream.html_only = True  # the same from HTML meta tags
    upstream.statuses["oldlib"] = {"status": "quarantined", "reason": "malware report"}
    lock_stage(project)
    locked = load_lock(project).primary("oldlib")
    assert locked is not None and locked.upstream_status == "quarantined"
    said = [(d["action"], d["reason"]) for d in ledger.decisions(project, "oldlib")
            if d["action"] == "upstream-status"]
    assert sorted(said) == [("upstream-status", "deprecated: use newlib"),
                            ("upstream-status", "quarantined: malware report")]
    assert held(None, locked) == ("upstream quarantined it (PEP 792): malware report; no new "
                                  "version is published")


# -- publishing applies it -----------------------------------------------------------------

def _status(settings: Settings, name: str = "oldlib") -> tuple[str, str | None, str | None]:
    record = Index.of(settings).record(name)
    assert record is not None
    return record.status, record.status_reason, record.status_source


@pytest.fixture
def published(project: Settings, upstream: LocalUpstream) -> Settings:
    _upstream(project, upstream)
    _recipes(project)
    lock_stage(project)
    publish_wheel(project, project.root / "work", "oldlib", "1.0")
    publish_wheel(project, project.root / "work", "newlib", "2.0")
    return project


def test_publishing_mirrors_upstream_and_applies_the_recipe_and_an_operator_wins(
        published: Settings) -> None:
    settings = published
    index = Index.of(settings)
    release_all(settings, [])
    assert _status(settings) == ("deprecated", "upstream: use newlib", "upstream")
    assert _status(settings, "newlib") == ("active", None, None)
    _recipes(settings, 'status = "quarantined"\nstatus_reason = "CVE-2099-1: unfixed"\n')
    release_all(settings, [])
    assert _status(settings) == ("quarantined", "CVE-2099-1: unfixed", "recipe")
    index.set_status("oldlib", "archived", "frozen by ops")
    assert apply_statuses(settings, index) == []
    assert _status(settings) == ("archived", "frozen by ops", "operator")
    index.set_status("oldlib", "active")  # hands it back to the recipe and upstream
    assert apply_statuses(settings, index) == ["oldlib: quarantined (CVE-2099-1: unfixed)"]
    _recipes(settings)  # the recipe says nothing: upstream's deprecated again
    assert apply_statuses(settings, index) == ["oldlib: deprecated (upstream: use newlib)"]
    catalog = json.loads((index.layout.records / "_catalog.json").read_text())
    assert catalog["oldlib"]["status_reason"] == "upstream: use newlib"
    assert "status_reason" not in catalog["newlib"]


def test_what_may_still_be_published(published: Settings) -> None:
    settings = published
    policy = Policy.load(settings)
    assert policy.held("oldlib") is None and policy.held("newlib") is None
    quarantined = parse_recipe(factories.recipe(settings.root, "newlib",
                                                'status = "archived"\n'), settings.recipes_dir)
    assert held(quarantined, None) == "its recipe sets status archived; no new version is " \
        "published"
    assert policy_status(quarantined, "deprecated", "x").source == "recipe"
    # upstream's archived is mirrored, and the factory's builds of it are still taken
    index = Index.of(settings)
    assert index.apply_status("oldlib", "archived", "upstream: no more releases", "upstream")
    publish_wheel(settings, settings.root / "work2", "oldlib", "1.1")
    index.set_status("oldlib", "archived", "ops")
    with pytest.raises(PublishError, match="oldlib is archived"):
        publish_wheel(settings, settings.root / "work3", "oldlib", "1.2")


# -- what clients see ----------------------------------------------------------------------

def test_pages_the_404_and_why_carry_the_status(published: Settings) -> None:
    settings = published
    index = Index.of(settings)
    release_all(settings, [])  # oldlib deprecated by upstream
    factories.recipe(settings.root, "banned", 'status = "quarantined"\n'
                     'status_reason = "typosquat"\nalternatives = ["newlib"]\n')
    index.write_status([row.to_dict() for row in component_status(settings, offline=True)])
    with running(create_app(index)) as url:
        page = httpx.get(f"{url}/simple/oldlib/", headers={"Accept": JSON}).json()
        assert page["project-status"] == {"status": "deprecated",
                                          "reason": "upstream: use newlib"}
        assert '<meta name="pypi:project-status" content="deprecated">' in httpx.get(
            f"{url}/simple/oldlib/").text
        refused = httpx.get(f"{url}/simple/banned/", headers={"Accept": JSON})
        assert refused.status_code == 404
        body = refused.json()
        assert body["verdict"] == "quarantined" and body["suggestions"] == ["newlib"]
        assert body["status"] == "quarantined" and body["status_reason"] == "typosquat"
        assert body["message"] == ("banned is quarantined: its files are not served (PEP 792) "
                                   "(typosquat); approved alternatives: newlib")
        text = httpx.get(f"{url}/simple/banned/", headers={"Accept": "text/html"}).text
        assert text.splitlines()[0] == body["message"]
    found = answer(why_knowledge(settings, "oldlib"), "oldlib")
    assert found.verdict == "served" and found.status == "deprecated"
    assert found.upstream_status == "deprecated" and found.suggestions == ("newlib",)
    assert found.message() == ("oldlib is served (newest 1.0); deprecated (PEP 792): upstream: "
                               "use newlib; approved alternatives: newlib")


def test_pip_installs_a_deprecated_project_and_not_a_quarantined_one(
        published: Settings, tmp_path: Path) -> None:
    settings = published
    index = Index.of(settings)
    release_all(settings, [])
    index.set_status("newlib", "quarantined", "pulled")

    def download(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check",
             "download", "--no-deps", "--no-cache-dir", "-d", str(tmp_path / name),
             "--index-url", f"{url}/simple/", name],
            capture_output=True, text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"})

    with running(create_app(index)) as url:
        ok, refused = download("oldlib"), download("newlib")
    assert ok.returncode == 0, ok.stderr
    assert [p.name for p in (tmp_path / "oldlib").iterdir()] == ["oldlib-1.0-py3-none-any.whl"]
    assert refused.returncode != 0 and "No matching distribution found for newlib" in (
        refused.stdout + refused.stderr)
