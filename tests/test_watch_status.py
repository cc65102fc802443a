"""Advisory yanks, status and the ledger, on a published index (no containers)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from factory import ledger
from factory.config import Settings
from factory.index import Index
from factory.index.records import Layout
from factory.index.validation import load_record
from factory.lock import lock_stage
from factory.watch import check_advisories, component_status
from tests import factories
from tests.index_fixtures import publish_wheel
from tests.local_upstream import LocalUpstream, build_tool


def advisory(project: Settings, ident: str, name: str, introduced: str, fixed: str) -> None:
    (project.root.parent / "advisories" / f"{ident}.json").write_text(json.dumps({
        "id": ident, "summary": f"{name} is broken",
        "affected": [{"package": {"ecosystem": "PyPI", "name": name}, "ranges": [
            {"type": "ECOSYSTEM", "events": [{"introduced": introduced}, {"fixed": fixed}]}]}]}))


def test_advisory_yanks_affected_published_versions(project: Settings, tmp_path: Path) -> None:
    publish_wheel(project, tmp_path / "a", "alpha", "1.0")
    publish_wheel(project, tmp_path / "b", "alpha", "1.1")
    assert check_advisories(project, Index.of(project)) == []
    advisory(project, "ADV-7", "alpha", "1.0", "1.1")
    assert check_advisories(project, Index.of(project)) == [("alpha", "1.0", "advisory ADV-7")]
    record = load_record(Layout(project.index_dir), "alpha")
    assert record is not None
    files = {f.version: f for f in record.files}
    assert files["1.0"].yanked and files["1.0"].yanked_reason == "advisory ADV-7"
    assert files["1.0"].advisories and files["1.0"].advisories[0]["id"] == "ADV-7"
    assert not files["1.1"].yanked and files["1.1"].advisories == []
    assert check_advisories(project, Index.of(project)) == []  # already yanked: not again
    decisions = ledger.decisions(project, "alpha")
    assert [(d["action"], d["version"], d["reason"]) for d in decisions] == [
        ("yanked", "1.0", "advisory ADV-7")]


def alpha_published(project: Settings, upstream: LocalUpstream, tmp_path: Path,
                    recipe: str) -> None:
    """setuptools approved; alpha 1.0 (ten days old) approved by ``recipe``, locked and
    published."""
    build_tool(upstream, project)
    upstream.add("alpha", "1.0", age_days=10)
    factories.recipe(project.root, "alpha", recipe)
    lock_stage(project)
    publish_wheel(project, tmp_path / "a", "alpha", "1.0")


def test_status_shows_what_waits_to_be_published(project: Settings, upstream: LocalUpstream,
                                                  tmp_path: Path) -> None:
    alpha_published(project, upstream, tmp_path, 'versions = "<2"\n')
    upstream.add("alpha", "1.1", age_days=2)
    upstream.add("alpha", "2.0", age_days=1)
    rows = {r.name: r for r in component_status(project)}
    alpha = rows["alpha"]
    assert (alpha.newest_upstream, alpha.locked, alpha.published) == ("2.0", "1.0", "1.0")
    assert alpha.waiting_days is not None and 1.9 < alpha.waiting_days < 2.1  # 1.1, in range
    assert rows["setuptools"].published is None
    offline = {r.name: r for r in component_status(project, offline=True)}
    assert offline["alpha"].newest_upstream is None and offline["alpha"].published == "1.0"


def test_ledger_keeps_builds_in_order(project: Settings) -> None:
    for version in ("1.0", "1.1"):
        ledger.record_build(project, component="alpha", version=version, outcome="built",
                            sdist_sha256="a" * 64, wheel_filename=f"alpha-{version}.whl")
    ledger.record_build(project, component="alpha", version="1.2", outcome="failed",
                        sdist_sha256="b" * 64, error="compiler exploded")
    rows = ledger.builds(project, "alpha")
    assert [(r["version"], r["outcome"]) for r in rows] == [
        ("1.2", "failed"), ("1.1", "built"), ("1.0", "built")]
    assert rows[0]["error"] == "compiler exploded"
    assert (project.state_dir / "ledger.db").is_file()


def test_status_and_index_check_cli(project: Settings, tmp_path: Path) -> None:
    import os

    factories.recipe(project.root, "alpha")
    publish_wheel(project, tmp_path / "a", "alpha", "1.0")
    env = {**os.environ, "FACTORY_ROOT": str(project.root)}
    run = [sys.executable, "-m", "factory.cli"]
    result = subprocess.run([*run, "status", "--offline", "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["published"] == "1.0"
    check = subprocess.run([*run, "index", "check", "--json"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert json.loads(check.stdout) == {"ok": True, "problems": []}
    wheel = next((project.index_dir / "files" / "alpha").glob("*.whl"))
    wheel.write_bytes(b"tampered")
    check = subprocess.run([*run, "index", "check"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 1 and wheel.name in check.stderr


def test_watch_cycle_puts_the_status_on_the_home_page(project: Settings, upstream: LocalUpstream,
                                                      tmp_path: Path) -> None:
    from factory.watch import watch_cycle

    alpha_published(project, upstream, tmp_path, 'versions = "<2"\ntrack = "patch"\n')
    upstream.add("alpha", "1.0.1", age_days=1)
    result = watch_cycle(project)
    assert result.rebuild == ["alpha"]  # the lock moved; the rebuild flow takes it from here
    home = (project.index_dir / "index.html").read_text()
    assert 'id="status"' in home
    row = home[home.index("<td>alpha</td>"):]
    row = row[: row.index("</tr>")]
    assert "1.0.1" in row and "1 d" in row  # locked 1.0.1, published 1.0, waiting a day


def test_an_unreachable_advisory_source_is_said_loudly_and_the_cycle_goes_on(
        project: Settings, upstream: LocalUpstream, tmp_path: Path) -> None:
    """OSV's archive cannot be reached (nothing cached): the cycle still locks and
    publishes the status, says advisories were NOT CHECKED in its summary, in `factory
    status` and on the home page, yanks nothing and leaves the signed VEX feed as it was."""
    from factory.attest.keys import init_keys
    from factory.watch import advisories_problem, watch_cycle

    alpha_published(project, upstream, tmp_path, 'versions = "<2"\n')
    init_keys(project)
    # fixed before the published 1.0: a statement for the feed (OpenVEX needs one)
    advisory(project, "ADV-OLD", "alpha", "0", "0.5")
    assert advisories_problem(project) is None  # the test's OSV directory
    watch_cycle(project)
    vex = project.index_dir / "trust" / "vex.json"
    checked = vex.read_bytes()  # written from the source that could be read
    offline = dataclasses.replace(project, advisories="http://127.0.0.1:9/osv/PyPI/all.zip")
    result = watch_cycle(offline)
    assert result.advisories_problem and "unreachable" in result.advisories_problem
    assert "advisories NOT CHECKED" in result.summary() and result.yanked == []
    assert "not fetched yet, or unreachable" in (advisories_problem(offline) or "")
    rows = component_status(offline, offline=True)
    assert rows and all(r.advisories_problem for r in rows)
    home = (project.index_dir / "index.html").read_text()
    row = home[home.index("<td>alpha"):]
    assert "NOT CHECKED" in row[: row.index("</tr>")]
    assert vex.read_bytes() == checked  # never rewritten from a source not read
    decisions = ledger.decisions(project, "*")
    assert decisions[0]["action"] == "advisories-not-checked"


def test_a_lock_with_an_unreachable_advisory_source_goes_on_and_says_so(
        project: Settings, upstream: LocalUpstream) -> None:
    from factory.lock import lock_report

    build_tool(upstream, project)
    upstream.add("alpha", "1.0", age_days=10)
    factories.recipe(project.root, "alpha", "")
    offline = dataclasses.replace(project, advisories="http://127.0.0.1:9/osv/PyPI/all.zip")
    report = lock_report(offline)
    assert report.lock.primary("alpha") is not None  # locked all the same
    assert report.advisories_problem and "unreachable" in report.advisories_problem
    (project.root / "factory.toml").write_text(
        (project.root / "factory.toml").read_text().replace(
            f'advisories = "{project.advisories}"',
            'advisories = "http://127.0.0.1:9/osv/PyPI/all.zip"'))
    done = factories.cli(project, "lock")
    assert done.returncode == 0, done.stderr
    assert "advisories NOT CHECKED while locking" in done.stderr and "Traceback" not in done.stderr
