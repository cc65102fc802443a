"""Project pages an auditor or developer can use (issue 20, item 7), and the VEX feed
refreshed on publish and held to the OpenVEX schema.

A page shows the newest version's summary, licence and dependencies (linked when this
index serves them, marked when it does not), the advisory history with its VEX status
per served version, the stock verify commands and each pure wheel's equivalence
statement; upstream's text on it is escaped and bounded, and the same inputs give the
same bytes, incrementally or by a full rebuild.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest

from factory.config import Settings, load_settings
from factory.errors import VerificationError
from factory.index import Index, about, human, regen
from factory.index.check import UNRECORDED, inspect_index
from factory.index.records import StoredFile, normalize
from factory.vex import ENVELOPE_FILE, VEX_FILE, check_schema, schema_errors, verify_vex
from factory.vex import vex_document as make_vex
from tests import factories
from tests.index_fixtures import make_sidecars, publish_killed_at, publish_wheel
from tests.security_fixtures import released_copy, stage_build

_GENERATED = re.compile(r"page generated [^.]*\.")


def _page(settings: Settings, project: str) -> str:
    return (settings.index_dir / "project" / project / "index.html").read_text()


def _publish(settings: Settings, work: Path, name: str, version: str,
             **options: object) -> None:
    wheel = factories.wheel(work / "dist", name, version, **options)  # type: ignore[arg-type]
    sdist = factories.sdist(work / "sdist", name, version)
    Index.of(settings).add(wheel, make_sidecars(work / "side", wheel, sdist), sdist, {})


def _same_as_rebuild(settings: Settings) -> None:
    root = settings.index_dir
    before = {p: _GENERATED.sub("", p.read_text()) for p in sorted(root.rglob("index.html"))}
    Index.of(settings).rebuild()
    after = {p: _GENERATED.sub("", p.read_text()) for p in sorted(root.rglob("index.html"))}
    assert before == after
    assert Index.of(settings).check() == []


# -- summary, licence, dependencies --------------------------------------------------------
def test_summary_licence_and_dependencies_linked_when_served(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path / "state")
    _publish(settings, tmp_path / "a", "app", "1.0", license="MIT OR Apache-2.0",
             requires=["lib[fast,socks]>=2; python_version < '3.12'", "absent-dep==1.*"],
             metadata=["Summary: The app that does things",
                       "Classifier: License :: OSI Approved :: MIT License"])
    page = _page(settings, "app")
    assert "The app that does things" in page
    assert "MIT OR Apache-2.0" in page and "License :: OSI Approved :: MIT License" in page
    dependencies = page[page.index('id="dependencies"'):page.index("</table>",
                                                                   page.index('id="dependencies"'))]
    assert 'href="../../project/lib/"' in dependencies and "fast,socks" in dependencies
    assert "&gt;=2" in dependencies and "python_version &lt; &#34;3.12&#34;" in dependencies
    assert dependencies.count("not on this index") == 2
    assert 'href="../../api/v1/why?requirement=absent-dep"' in dependencies
    _same_as_rebuild(settings)
    # lib appears: app's page (written before) now says lib is served, as a rebuild would
    _publish(settings, tmp_path / "l", "lib", "2.0")
    dependencies = _page(settings, "app").split('id="dependencies"')[1].split("</table>")[0]
    assert dependencies.count("not on this index") == 1
    assert dependencies.count('class="badge ok">served') == 1
    assert regen.dependents(Index.of(settings).layout, "lib") == ["app"]
    _same_as_rebuild(settings)


def test_hostile_metadata_is_rendered_inert_and_bounded(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path / "state")
    script = "<script>alert(1)</script>"
    _publish(settings, tmp_path / "h", "hostile", "1.0", license=script + "x" * 5000,
             requires=["q" * 300 + ">=1"]  # no file may be named after it
             + [f"dep{i}>=1" for i in range(about.MAX_DEPENDENCIES + 6)]
             + ["not a requirement !!"],
             metadata=[f"Summary: {script}\u202e\x1b[31m" + "y" * 10_000])
    page = _page(settings, "hostile")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "\u202e" not in page and "\x1b" not in page
    assert "y" * (about.MAX_SUMMARY + 1) not in page and "x" * (about.MAX_LICENSE + 1) not in page
    assert "and 8 more not" in page  # 207 + 1 lines, 200 shown
    assert 'href="../../project/qqq' not in page and "q" * 200 in page  # shown, not linked
    assert len(page) < 200_000
    _same_as_rebuild(settings)


# -- advisory history ----------------------------------------------------------------------
def test_advisory_history_shows_versions_fixes_and_vex_status(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path / "state")
    for version in ("1.0", "1.1", "2.0"):
        publish_wheel(settings, tmp_path / version, "adv", version)
    index = Index.of(settings)
    assert "not checked" in _page(settings, "adv").split("Advisory history")[1][:200]
    hit = {"id": "PYSEC-9999-1", "summary": "bad <thing>", "aliases": ["CVE-9999-1"],
           "fixed": "2.0"}
    index.record_advisories("adv", "1.0", [hit], "2026-01-01T00:00:00Z")
    index.record_advisories("adv", "1.1", [hit], "2026-01-01T00:00:00Z")
    index.record_advisories("adv", "2.0", [], "2026-01-01T00:00:00Z")
    history = _page(settings, "adv").split('id="advisories"')[1].split("</table>")[0]
    assert "PYSEC-9999-1" in history and "CVE-9999-1" in history and "bad &lt;thing&gt;" in history
    assert re.search(r"affected</span>\s*1\.1, 1\.0", history)
    assert re.search(r"fixed</span>\s*2\.0", history)
    assert "<td>2.0</td>" in history  # fixed in
    _same_as_rebuild(settings)


def test_a_clean_project_says_none_affects_it_and_points_to_the_feed(tmp_path: Path) -> None:
    """Every served version checked and clear: the page said "none known", while the feed
    stated advisories fixed before the served versions (which records do not hold; a
    helper's new-user pass). It says what it knows, and where the rest is."""
    settings = load_settings(root=tmp_path / "state")
    publish_wheel(settings, tmp_path / "1.0", "clean", "1.0")
    Index.of(settings).record_advisories("clean", "1.0", [], "2026-01-01T00:00:00Z")
    history = _page(settings, "clean").split("Advisory history")[1].split("</section>")[0]
    assert "none affects</span> a served version" in history and "none known" not in history
    assert 'href="../../.well-known/factory/vex.json"' in history
    _same_as_rebuild(settings)


# -- many versions -------------------------------------------------------------------------
def test_a_project_with_many_versions_shows_the_newest_in_full(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path / "state")
    count = human.FULL_VERSIONS + 5
    for i in range(count):
        publish_wheel(settings, tmp_path / str(i), "many", f"1.{i}")
    page = _page(settings, "many")
    assert page.count('class="stock-verify"') == human.FULL_VERSIONS
    older = page.split('id="older"')[1]
    assert "many-1.0-py3-none-any.whl" in older and "many-1.4-py3-none-any.whl" in older
    assert "many-1.5-py3-none-any.whl" not in older
    _same_as_rebuild(settings)


def test_the_older_list_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(root=tmp_path / "state")
    monkeypatch.setattr(human, "FULL_VERSIONS", 2)
    monkeypatch.setattr(human, "MAX_OLDER", 3)
    for i in range(8):
        publish_wheel(settings, tmp_path / str(i), "lots", f"0.{i}")
    page = _page(settings, "lots")
    assert page.count('class="stock-verify"') == 2
    assert page.split('id="older"')[1].count("<tr><td>") == 3
    assert "and 3 older file(s)" in page and "lots-0.3-" in page and "lots-0.2-" not in page


# -- the equivalence statement -------------------------------------------------------------
def _statement_bundle(subject: str, digest: str, predicate: dict) -> str:
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": subject, "digest": {"sha256": digest}}],
                 "predicateType": "https://factory.invalid/attestations/upstream-equivalence/v1",
                 "predicate": predicate}
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps({"dsseEnvelope": {"payload": payload, "payloadType":
                                        "application/vnd.in-toto+json", "signatures": []}})


def test_equivalence_verdict_and_reasons_shown_escaped(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path / "state")
    published = publish_wheel(settings, tmp_path / "e", "eq", "1.0")
    page = _page(settings, "eq")
    assert "not compared" in page.split("Upstream equivalence")[1][:300]
    index = Index.of(settings)
    record = index.record("eq")
    assert record is not None
    rel = f"files/eq/{published.filename}.equivalence.json"

    def shown(text: str, pinned: str | None = None) -> str:
        """The file's entry on the page with ``text`` as its recorded statement."""
        (settings.index_dir / rel).write_text(text)
        digest = hashlib.sha256(text.encode()).hexdigest()
        entry = dataclasses.replace(record.files[0], sidecars={
            **record.files[0].sidecars,
            about.EQUIVALENCE_KIND: [StoredFile(rel, pinned or digest, len(text))]})
        one = dataclasses.replace(record, files=[entry])
        facts = about.gather(one, about.reader(settings.index_dir), lambda name: False)
        page = human.render_project(one, settings.index_url, facts)
        return page.split("Upstream equivalence")[1].split("</dd>")[0]

    entry = shown(_statement_bundle(published.filename, published.sha256, {
        "verdict": "divergent", "upstream": {"filename": "eq-1.0-py3-none-any.whl"},
        "differences": [{"file": "eq-1.0.dist-info/WHEEL", "why": "different bytes",
                         "detail": "Generator: ours <b>hatchling 1.27</b>, upstream 1.26"},
                        {"file": "eq-1.0.dist-info/RECORD", "why": "different entries",
                         "detail": "follows the other differences"}],
        "backend": {"ours": "hatchling 1.27.0", "upstream": "hatchling 1.26.3",
                    "reason": "policy refused hatchling 1.26.3\u202e"}}))
    assert "divergent" in entry and "eq-1.0-py3-none-any.whl" in entry
    assert "eq-1.0.dist-info/WHEEL: different bytes" in entry
    assert "&lt;b&gt;hatchling 1.27&lt;/b&gt;" in entry and "<b>" not in entry
    assert "follows the other differences" in entry and "policy refused" in entry
    assert "\u202e" not in entry and 'href="../../files/eq/' in entry
    # a statement about another file, a file that is not the one pinned, or not JSON
    other = _statement_bundle(published.filename, "0" * 64, {"verdict": "equivalent"})
    assert "about another file" in shown(other)
    assert "not the file its record pins" in shown(other, pinned="1" * 64)
    assert "unreadable" in shown("{not json")
    many = {"verdict": "divergent", "differences": [
        {"file": f"f{i}.py", "why": "only in ours"} for i in range(about.MAX_REASONS + 3)]}
    assert "and 3 more" in shown(_statement_bundle(published.filename, published.sha256, many))


def test_the_server_renders_what_the_publish_wrote(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from factory.index.serve import create_app

    settings = load_settings(root=tmp_path / "state")
    _publish(settings, tmp_path / "a", "app", "1.0", requires=["lib>=1"],
             metadata=["Summary: served by both"])
    client = TestClient(create_app(Index.of(settings)))
    assert client.get("/project/app/").text == _page(settings, "app")
    _publish(settings, tmp_path / "l", "lib", "1.0")
    served = client.get("/project/app/").text
    assert served == _page(settings, "app") and 'class="badge ok">served' in served


# -- the VEX feed --------------------------------------------------------------------------
def test_a_broken_vex_document_fails_the_schema(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path / "state")
    publish_wheel(settings, tmp_path / "v", "vexed", "1.0")
    index = Index.of(settings)
    index.record_advisories("vexed", "1.0", [{"id": "PYSEC-1", "fixed": ""}],
                            "2026-01-01T00:00:00Z")
    records = [r for p in index.projects() if (r := index.record(p)) is not None]
    document = make_vex(records, None, settings.index_url)
    assert schema_errors(document) == []
    broken = json.loads(json.dumps(document))
    del broken["statements"][0]["action_statement"]  # affected needs one
    broken["statements"][0]["status"] = "exploited"
    broken["timestamp"] = "yesterday"
    errors = schema_errors(broken)
    assert len(errors) >= 2 and any("statements[0]" in e for e in errors)
    with pytest.raises(VerificationError, match="not valid OpenVEX"):
        check_schema(broken)
    with pytest.raises(VerificationError):
        check_schema(dict(document, statements=[]))  # OpenVEX needs a statement


def _osv(directory: Path, project: str, ident: str, fixed: str) -> Path:
    folder = directory / project
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ident}.json").write_text(json.dumps({
        "id": ident, "summary": f"old {project}", "affected": [{
            "package": {"ecosystem": "PyPI", "name": project},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                        {"fixed": fixed}]}]}]}))
    return directory


def test_publish_refreshes_the_signed_vex_feed(released_base: Path, tmp_path: Path) -> None:
    from factory.publish import release_all

    site = released_copy(released_base, tmp_path)
    osv = _osv(tmp_path / "osv", "gamma", "PYSEC-0000-7", "0.9")  # fixed before 1.0.0
    _osv(osv, "gamma", "PYSEC-0000-8", "1.1")  # affects 1.0.0
    site = dataclasses.replace(site, advisories=str(osv))
    trust = site.index_dir / "trust"
    report = release_all(site, [stage_build(site, "gamma")])
    assert [p.project for p in report.published] == ["gamma"]
    assert report.advisories_problem is None
    data = (trust / VEX_FILE).read_bytes()
    document = verify_vex(data, json.loads((trust / ENVELOPE_FILE).read_text()),
                          (trust / "answers.pub.pem").read_bytes())
    statements = {s["vulnerability"]["name"]: s for s in document["statements"]}
    assert statements["PYSEC-0000-7"]["status"] == "fixed"
    assert statements["PYSEC-0000-8"]["status"] == "affected"
    assert "yanked" in statements["PYSEC-0000-8"]["action_statement"]
    assert statements["PYSEC-0000-8"]["products"][0]["@id"] == "pkg:pypi/gamma@1.0.0"
    record = Index.of(site).record(normalize("gamma"))
    assert record is not None and record.files[0].yanked  # checked as watch would
    # the page says what the record knows: the advisory that hit a served version
    history = _page(site, "gamma").split('id="advisories"')[1].split("</table>")[0]
    assert re.search(r"PYSEC-0000-8.*affected</span>\s*1\.0\.0", history, re.S)


# -- a killed first publish of a dependency -----------------------------------------------------


def test_a_killed_first_publish_of_a_dependency_still_updates_its_dependents(
        tmp_path: Path) -> None:
    number = 1
    while True:
        settings = load_settings(root=tmp_path / f"run{number}")
        publish_wheel(settings, tmp_path / "app", "app", "1.0", requires=["lib>=1"])
        killed = publish_killed_at(settings, tmp_path / "lib", "lib", "1.0", number)
        publish_wheel(settings, tmp_path / "next", "another", "1.0")  # completes the change
        findings = inspect_index(settings.index_dir, settings.index_url)
        assert [str(f) for f in findings if f.area != UNRECORDED] == [], number
        if Index.of(settings).record("lib") is not None:  # committed before the kill
            assert 'class="badge ok">served' in _page(settings, "app"), number
        if not killed:
            break
        number += 1
        assert number < 80
    assert number > 10
