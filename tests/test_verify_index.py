"""factory verify against a real published index (built, signed, published by the fixture).

Every published wheel passes every check; each kind of tampering fails with a
message naming the check that caught it; lock and requirements files pin
artifacts by digest; reports render as JSON and HTML; usage errors exit 2.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from factory.attest.intoto import verify_intoto
from factory.attest.keys import public_key_path
from factory.errors import VerificationError
from factory.sign import init_authority
from factory.verify import Report, TargetError, exit_code, report_json, verify, write_html
from factory.verify.model import FAIL, PASS, Check
from tests import factories
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)

CHECKS = ("digest", "metadata", "signature", "provenance", "sbom", "pep740", "in-toto",
          "advisories", "upstream")


def statuses(report: Report) -> dict[str, dict[str, str]]:
    return {a.label: {c.name: c.status for c in a.checks} for a in report.artifacts}


def only(report: Report) -> dict[str, str]:
    assert len(report.artifacts) == 1, [a.label for a in report.artifacts]
    return {c.name: c.status for c in report.artifacts[0].checks}


def message(report: Report, check: str) -> str:
    found = report.artifacts[0].check(check)
    assert found is not None
    return found.message


@pytest.fixture
def copy(published_index: PublishedIndex, tmp_path: Path) -> PublishedIndex:  # noqa: F811
    return clone(published_index, tmp_path / "copy")


# -- everything published passes --------------------------------------------------------------
def test_every_published_wheel_passes_every_check(published_index: PublishedIndex) -> None:  # noqa: F811
    report = verify(published_index.settings, everything=True)
    assert report.ok, report_json(report)
    assert exit_code(report) == 0
    assert sorted(str(a.project) for a in report.artifacts) == ["alpha", "beta", "gamma"]
    for artifact in report.artifacts:
        assert {c.name: c.status for c in artifact.checks} == dict.fromkeys(CHECKS, PASS)
    provenance = report.artifacts[0].check("provenance")
    assert provenance is not None and "network none" in provenance.message
    assert "stored sdist" in provenance.message and "index record" in provenance.message


def test_name_version_and_wheel_file_targets(published_index: PublishedIndex) -> None:  # noqa: F811
    by_name = verify(published_index.settings, "beta==2.0")
    assert by_name.ok and by_name.artifacts[0].filename == "beta-2.0-py3-none-any.whl"
    by_file = verify(published_index.settings, str(published_index.wheel("gamma")))
    assert by_file.ok, report_json(by_file)
    missing = verify(published_index.settings, "beta==9.9")
    assert only(missing)["digest"] == FAIL and "no file of beta==9.9" in message(missing, "digest")
    assert exit_code(missing) == 1


def test_a_bare_wheel_copy_is_verified_with_the_index_evidence(
        published_index: PublishedIndex, tmp_path: Path) -> None:  # noqa: F811
    bare = tmp_path / published_index.wheel("alpha").name
    bare.write_bytes(published_index.wheel("alpha").read_bytes())
    assert verify(published_index.settings, str(bare)).ok
    bare.write_bytes(bare.read_bytes() + b"\0")
    report = verify(published_index.settings, str(bare))
    assert only(report)["digest"] == FAIL and only(report)["signature"] == FAIL
    assert "differs from the index record" in message(report, "digest")


# -- tampering ---------------------------------------------------------------------------------
def _jsonl(path: Path, predicate_suffix: str, change) -> None:  # type: ignore[no-untyped-def]
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        bundle = json.loads(line)
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        if statement["predicateType"].endswith(predicate_suffix):
            change(statement)
            payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
            bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
        out.append(json.dumps(bundle, sort_keys=True))
    path.write_text("\n".join(out) + "\n")


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_changed_wheel_bytes_fail_digest_signature_and_in_toto(copy: PublishedIndex) -> None:
    wheel = copy.wheel("alpha")
    data = bytearray(wheel.read_bytes())
    data[100] ^= 0xFF
    wheel.write_bytes(bytes(data))
    report = verify(copy.settings, "alpha==1.0")
    checks = only(report)
    assert checks["digest"] == checks["signature"] == checks["in-toto"] == FAIL
    assert "differs from the index record" in message(report, "digest")
    assert exit_code(report) == 1
    assert verify(copy.settings, "beta==2.0").ok  # the others are untouched


def test_changed_bundle_fails_signature(copy: PublishedIndex) -> None:
    path = copy.wheel("alpha").with_name(copy.wheel("alpha").name + ".sigstore.json")
    bundle = json.loads(path.read_text())
    bundle["messageSignature"]["signature"] = _flip_b64(bundle["messageSignature"]["signature"])
    path.write_text(json.dumps(bundle))
    report = verify(copy.settings, "alpha==1.0")
    assert only(report)["signature"] == FAIL
    assert "Sigstore bundle does not verify" in message(report, "signature")
    assert only(report)["provenance"] == PASS  # only what changed fails


def test_changed_provenance_fails_provenance(copy: PublishedIndex) -> None:
    path = copy.wheel("beta").with_name(copy.wheel("beta").name + ".intoto.jsonl")

    def network_host(statement: dict) -> None:  # type: ignore[type-arg]
        for product in statement["predicate"]["runDetails"]["byproducts"]:
            product.setdefault("annotations", {})["mode"] = "host"

    _jsonl(path, "slsa.dev/provenance/v1", network_host)
    report = verify(copy.settings, "beta==2.0")
    checks = only(report)
    assert checks["provenance"] == FAIL
    assert "signature does not verify" in message(report, "provenance")
    assert checks["in-toto"] == FAIL  # the signed statements are an attest product
    assert checks["sbom"] == PASS


def test_changed_sbom_fails_sbom(copy: PublishedIndex) -> None:
    path = copy.wheel("beta").with_name(copy.wheel("beta").name + ".cdx.json")
    sbom = json.loads(path.read_text())
    sbom["metadata"]["component"]["version"] = "2.0.post1"
    path.write_text(json.dumps(sbom, indent=2, sort_keys=True) + "\n")
    report = verify(copy.settings, "beta==2.0")
    assert only(report)["sbom"] == FAIL
    assert "differs from the signed SBOM" in message(report, "sbom")


def test_invalid_sbom_fails_schema_validation(copy: PublishedIndex) -> None:
    path = copy.wheel("beta").with_name(copy.wheel("beta").name + ".cdx.json")
    sbom = json.loads(path.read_text())
    sbom["metadata"]["component"]["unexpected"] = True
    path.write_text(json.dumps(sbom))
    report = verify(copy.settings, "beta==2.0")
    assert only(report)["sbom"] == FAIL
    assert "not valid CycloneDX 1.6" in message(report, "sbom")


def test_changed_link_fails_in_toto(copy: PublishedIndex) -> None:
    links = copy.wheel("gamma").with_name(copy.wheel("gamma").name + ".in-toto")
    link = next(links.glob("build.*.link"))
    envelope = json.loads(link.read_text())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    product = next(iter(payload["products"]))
    payload["products"][product]["sha256"] = "0" * 64
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    link.write_text(json.dumps(envelope))
    report = verify(copy.settings, "gamma==0.3")
    checks = only(report)
    assert checks["in-toto"] == FAIL
    assert {k for k, v in checks.items() if v == FAIL} == {"in-toto"}
    # The stock in-toto-verify agrees with the in-process verification.
    with pytest.raises(VerificationError):
        verify_intoto(links, copy.wheel("gamma"), public_key_path(copy.settings, "owner"))


def test_stock_in_toto_verify_accepts_what_we_accept(published_index: PublishedIndex) -> None:  # noqa: F811
    wheel = published_index.wheel("gamma")
    verify_intoto(wheel.with_name(wheel.name + ".in-toto"), wheel,
                  public_key_path(published_index.settings, "owner"))


def test_wrong_identity_fails_signature(published_index: PublishedIndex) -> None:  # noqa: F811
    report = verify(published_index.settings, "alpha==1.0",
                    identity="https://ci.example.invalid/other-builder")
    checks = only(report)
    assert checks["signature"] == checks["provenance"] == checks["pep740"] == FAIL
    assert "https://ci.example.invalid/other-builder" in message(report, "signature")
    assert checks["digest"] == checks["in-toto"] == PASS


def test_wrong_issuer_fails_signature(published_index: PublishedIndex) -> None:  # noqa: F811
    report = verify(published_index.settings, "alpha==1.0", issuer="https://evil.invalid")
    assert only(report)["signature"] == FAIL


def test_disallowed_builder_id_fails_provenance(published_index: PublishedIndex) -> None:  # noqa: F811
    report = verify(published_index.settings, "alpha==1.0",
                    builder_ids=("https://factory.invalid/builders/other",))
    assert only(report)["provenance"] == FAIL
    assert "is not allowed" in message(report, "provenance")


def test_foreign_trust_root_fails_signature(published_index: PublishedIndex,  # noqa: F811
                                            tmp_path: Path) -> None:
    other = factories.settings(tmp_path / "other", project="project")
    init_authority(other)  # a second, unrelated authority
    root = other.public_keys_dir / "trusted_root.json"
    report = verify(published_index.settings, "alpha==1.0", trusted_root=root)
    checks = only(report)
    assert checks["signature"] == checks["provenance"] == checks["sbom"] == FAIL
    assert "Sigstore bundle does not verify" in message(report, "signature")
    assert report.trust.trusted_root == str(root)


def test_advisory_affecting_the_version_fails_with_its_id(copy: PublishedIndex) -> None:
    folder = Path(copy.settings.advisories or "") / "alpha"
    folder.mkdir(parents=True)
    (folder / "PYSEC-2099-1.json").write_text(json.dumps({
        "id": "PYSEC-2099-1", "aliases": ["CVE-2099-0001"], "summary": "bad",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "alpha"},
                      "ranges": [{"type": "ECOSYSTEM",
                                  "events": [{"introduced": "0"}, {"fixed": "1.1"}]}]}],
    }))
    report = verify(copy.settings, "alpha==1.0")
    assert only(report)["advisories"] == FAIL
    assert "PYSEC-2099-1" in message(report, "advisories")
    assert "CVE-2099-0001" in message(report, "advisories")
    assert "fixed in 1.1" in message(report, "advisories")
    assert verify(copy.settings, "alpha==1.0", check_advisories=False).ok


# -- pinned targets ------------------------------------------------------------------------------
def _sha(published: PublishedIndex, name: str) -> str:
    return published.record(name).wheel_sha256


def test_requirements_file_with_hashes(published_index: PublishedIndex,  # noqa: F811
                                       tmp_path: Path) -> None:
    good = tmp_path / "requirements.txt"
    good.write_text(
        "--index-url http://127.0.0.1:1/simple/\n"
        f"alpha==1.0 \\\n    --hash=sha256:{_sha(published_index, 'alpha')}\n"
        f"beta==2.0 ; python_version >= '3.8' --hash=sha256:{_sha(published_index, 'beta')}"
        "  # comment\n")
    report = verify(published_index.settings, str(good))
    assert report.ok and len(report.artifacts) == 2
    bad = tmp_path / "bad.txt"
    bad.write_text(f"alpha==1.0 --hash=sha256:{'ab' * 32}\ngamma==0.3\nflask\n")
    report = verify(published_index.settings, str(bad))
    assert [a.ok for a in report.artifacts] == [False, False, False]
    messages = [a.check("digest").message for a in report.artifacts]  # type: ignore[union-attr]
    assert "is not a file the index publishes" in messages[0]
    assert "no --hash" in messages[1] and "not pinned" in messages[2]


def test_pylock_toml(published_index: PublishedIndex, tmp_path: Path) -> None:  # noqa: F811
    lock = tmp_path / "pylock.toml"
    rows = []
    for name in ("alpha", "beta"):
        record = published_index.record(name)
        rows.append(f'[[packages]]\nname = "{name}"\nversion = "{record.version}"\n'
                    f'wheels = [{{ name = "{record.wheel_filename}", '
                    f'url = "http://127.0.0.1/files/{record.wheel_filename}", '
                    f'hashes = {{ sha256 = "{record.wheel_sha256}" }} }}]\n')
    rows.append('[[packages]]\nname = "evil"\nversion = "1.0"\n'
                'sdist = { name = "evil-1.0.tar.gz", hashes = { sha256 = "00" } }\n')
    lock.write_text('lock-version = "1.0"\ncreated-by = "tests"\n' + "\n".join(rows))
    report = verify(published_index.settings, str(lock))
    assert [a.ok for a in report.artifacts] == [True, True, False]
    assert "evil" in report.artifacts[2].check("digest").message  # type: ignore[union-attr]


def test_uv_lock(published_index: PublishedIndex, tmp_path: Path) -> None:  # noqa: F811
    lock = tmp_path / "uv.lock"
    text = ('version = 1\nrequires-python = ">=3.11"\n\n'
            '[[package]]\nname = "app"\nversion = "0.1"\nsource = { virtual = "." }\n\n')
    record = published_index.record("gamma")
    text += ('[[package]]\nname = "gamma"\nversion = "0.3"\n'
             'source = { registry = "http://127.0.0.1/simple" }\n'
             f'wheels = [{{ url = "http://127.0.0.1/files/{record.wheel_filename}", '
             f'hash = "sha256:{record.wheel_sha256}", size = 1 }}]\n')
    lock.write_text(text)
    report = verify(published_index.settings, str(lock))
    assert report.ok and [a.project for a in report.artifacts] == ["gamma"]
    lock.write_text(text.replace(record.wheel_sha256, "cd" * 32))
    assert not verify(published_index.settings, str(lock)).ok


# -- usage and reports -----------------------------------------------------------------------
def test_usage_errors_exit_2(published_index: PublishedIndex, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(TargetError) as info:
        verify(published_index.settings, str(tmp_path / "nope.whl"))
    assert info.value.exit_code == 2
    with pytest.raises(TargetError):
        verify(published_index.settings, "alpha==1.0", everything=True)
    with pytest.raises(TargetError):
        verify(published_index.settings, "alpha==1.0", index_dir=tmp_path)


def test_json_and_html_reports(published_index: PublishedIndex, tmp_path: Path) -> None:  # noqa: F811
    report = verify(published_index.settings, everything=True)
    data = json.loads(report_json(report))
    assert data["summary"] == {**data["summary"], "artifacts": 3, "passed": 3, "ok": True}
    assert data["trust"]["trusted_root_sha256"] == report.trust.trusted_root_sha256
    assert data["artifacts"][0]["checks"][0]["name"] == "digest"
    page = write_html(report, tmp_path / "report.html").read_text()
    assert "PASS" in page and report.trust.trusted_root_sha256 in page
    assert report.trust.certificate_authorities[0]["sha256"] in page
    assert str(report.trust.owner_key_spki_sha256) in page and report.started in page
    for check in CHECKS:
        assert f"<th>{check}</th>" in page


def test_html_shows_failures_escaped(copy: PublishedIndex, tmp_path: Path) -> None:
    wheel = copy.wheel("alpha")
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    report = verify(copy.settings, str(wheel))
    report.artifacts[0].notes.append("<script>alert(1)</script>")
    page = write_html(report, tmp_path / "r.html").read_text()
    assert "FAIL" in page and "differs from the index record" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_run_prints_and_returns_the_exit_code(copy: PublishedIndex, tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from factory.cli.verify import run

    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    html = tmp_path / "audit.html"
    assert run(copy.settings, everything=True, html=html, console=console) == 0
    assert "PASS" in buffer.getvalue() and "3/3 artifacts passed" in buffer.getvalue()
    assert html.is_file()
    copy.wheel("beta").write_bytes(b"not a wheel")
    buffer.truncate(0)
    assert run(copy.settings, "beta==2.0", json_output=True, console=console) == 1
    data = json.loads(buffer.getvalue().lstrip("\0"))
    assert data["summary"]["failed"] == 1
    with pytest.raises(TargetError):
        run(copy.settings, "beta==2.0", everything=True, console=console)
    with pytest.raises(TargetError):
        run(copy.settings, console=console)


# -- the child verify --all forks before its imports (factory.verify.early) ------------------
_EARLY = """
import json, os, pickle, sys
from factory.verify import early as child, verify, wholeindex
settings = pickle.loads(open(sys.argv[1], "rb").read())
index = wholeindex.open_index(settings)
rows = lambda checks: [[c.name, c.status, c.message] for c in checks]
# The run adds the VEX feed's check (the parent's own: the child does not check it).
index_rows = lambda checks: rows(c for c in checks if c.name != "vex")
def report_rows(report):
    return [[a.label, c.name, c.status, c.message] for a in report.artifacts for c in a.checks]
out = {"here": rows(wholeindex.index_checks(index))}
started = child.start(settings, None)
import time; time.sleep(float(sys.argv[2]))  # the parent's imports, as it were
facts = started.facts()
out["facts"] = facts.zip_ok
out["sbom facts"], out["sboms done"] = facts.sbom_error, facts.sboms_done
out["child"] = rows(started.index_checks())
out["again"] = rows(started.index_checks())
report = verify(settings, everything=True)  # forks its own child
out["report"] = index_rows(report.index)
out["vex"] = [c.status for c in report.index if c.name == "vex"]
out["artifacts"] = report_rows(report)
real_start = child.start
child.start = lambda *a, **k: None  # the same run without the child
alone = verify(settings, everything=True)
out["alone"] = [index_rows(alone.index), report_rows(alone)]
unread = real_start(settings, None)
unread.close()  # a run that ended early: the child is gone, reaped
try:
    os.waitpid(unread._pid, 0)
    out["reaped"] = False
except ChildProcessError:
    out["reaped"] = True
def broken(index):
    raise RuntimeError("the child fails")
child.index_checks = broken
failing = real_start(settings, None)
failing.facts()
out["failed child"] = failing.index_checks()
print(json.dumps(out))
"""


def _early(settings: object, tmp_path: Path, wait: float = 3.0) -> dict[str, Any]:
    """Run _EARLY in a fresh interpreter (no thread running, so the run forks its child)."""
    import pickle
    import subprocess
    import sys

    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(settings))
    done = subprocess.run([sys.executable, "-c", _EARLY, str(state), str(wait)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_early_child_finds_what_the_run_finds(copy: PublishedIndex, tmp_path: Path) -> None:
    out = _early(copy.settings, tmp_path)
    assert len(out["facts"]) == 3 and set(out["facts"].values()) == {True}
    assert out["sboms done"] and list(out["sbom facts"].values()) == [None] * 3  # valid
    assert out["here"] == out["child"] == out["again"] == out["report"] == out["alone"][0]
    assert [row[1] for row in out["here"]] == [PASS] * 4 and out["vex"] == [PASS]
    assert out["artifacts"] == out["alone"][1]
    assert out["reaped"] and out["failed child"] is None
    # A page, an SBOM and a wheel changed after publishing: with the child's facts and
    # checks the run finds what it finds alone, word for word.
    page = next((copy.index_dir / "simple").glob("*/index.html"))
    page.write_text(page.read_text() + "<!-- changed -->")
    sbom = copy.wheel("alpha").with_name(copy.wheel("alpha").name + ".cdx.json")
    document = json.loads(sbom.read_text())
    document["bomFormat"] = "SPDX"
    sbom.write_text(json.dumps(document))
    wheel = copy.wheel("beta")
    data = bytearray(wheel.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside a member's compressed bytes
    wheel.write_bytes(bytes(data))
    out = _early(copy.settings, tmp_path)
    assert False in out["facts"].values() or len(out["facts"]) < 3  # (zlib.error: no fact)
    assert any(error and "SPDX" in error for error in out["sbom facts"].values())
    assert out["here"] == out["child"] == out["report"] == out["alone"][0]
    assert any(row[0] == "pages" and row[1] == FAIL for row in out["child"])
    assert out["artifacts"] == out["alone"][1]
    failures = {(row[0], row[1]) for row in out["artifacts"] if row[2] == FAIL}
    assert any(check == "sbom" for _, check in failures)
    assert any(check == "in-toto" for _, check in failures)


def test_a_child_stopped_at_once_leaves_the_work_to_the_run(copy: PublishedIndex,
                                                            tmp_path: Path) -> None:
    out = _early(copy.settings, tmp_path, wait=0.0)  # however far it got, the same report
    assert out["artifacts"] == out["alone"][1]
    assert out["child"] == out["here"]


def test_facts_about_other_bytes_are_not_used(copy: PublishedIndex) -> None:
    """The run uses a fact only for the bytes it was found for (their sha256): a fact about
    the published bytes says nothing of a wheel changed since."""
    import hashlib

    from factory.verify import early, run
    from factory.verify.trust import Trust
    from factory.verify.wholeindex import open_index

    wheel = copy.wheel("beta")
    facts = early.Facts(zip_ok={hashlib.sha256(wheel.read_bytes()).hexdigest(): True})
    data = bytearray(wheel.read_bytes())
    data[len(data) // 3] ^= 0xFF
    wheel.write_bytes(bytes(data))

    class Told:
        root = copy.index_dir

        def facts(self) -> early.Facts:
            return facts

        def index_checks(self) -> None:
            return None

    index = open_index(copy.settings)
    report = run.audit(index, Trust.load(copy.settings, index.root), "beta==2.0",
                       early=Told())  # type: ignore[arg-type]
    checks = {c.name: c for c in report.artifacts[0].checks}
    # Computed for these bytes: the inspection fails (with the fact, the rules would).
    assert checks["in-toto"].status == FAIL and "intact zip" in checks["in-toto"].message


def test_the_childs_sbom_answer_is_used_for_those_bytes_only(copy: PublishedIndex) -> None:
    """The ``sbom`` check takes the child's schema answer for the SBOM bytes it gathered
    (the run then never loads the schema validator); an answer about other bytes (the
    SBOM as published, changed since) is not used: the check validates the bytes it has."""
    import hashlib

    from factory.verify import early, run
    from factory.verify.trust import Trust
    from factory.verify.wholeindex import open_index

    sbom = copy.wheel("alpha").with_name(copy.wheel("alpha").name + ".cdx.json")

    def audit_with(facts: early.Facts) -> dict[str, Check]:
        class Told:
            root = copy.index_dir

            def facts(self) -> early.Facts:
                return facts

            def index_checks(self) -> None:
                return None

        index = open_index(copy.settings)
        report = run.audit(index, Trust.load(copy.settings, index.root), "alpha==1.0",
                           early=Told())  # type: ignore[arg-type]
        return {c.name: c for c in report.artifacts[0].checks}

    said = early.Facts(sbom_error={hashlib.sha256(sbom.read_bytes()).hexdigest(): "told"})
    checks = audit_with(said)  # (a child never says this of a valid SBOM: it shows use)
    assert checks["sbom"].status == FAIL and checks["sbom"].message.endswith(": told")
    published = hashlib.sha256(sbom.read_bytes()).hexdigest()
    document = json.loads(sbom.read_text())
    document["bomFormat"] = "SPDX"
    sbom.write_text(json.dumps(document))
    checks = audit_with(early.Facts(sbom_error={published: None}, sboms_done=True))
    assert checks["sbom"].status == FAIL and "SPDX" in checks["sbom"].message


_NOT_BEFORE_THE_WORK = """
import json, pickle, sys, time
from factory.verify import early, run, verify
settings = pickle.loads(open(sys.argv[1], "rb").read())
real_start, real_verify_all = early.start, run._verify_all
def start(*args, **kwargs):
    started = real_start(*args, **kwargs)
    time.sleep(3.0)  # the parent's imports, as it were: the child checks the SBOMs
    return started
def verify_all(auditor, items, workers, meanwhile):
    def seen():
        loaded[:] = sorted(m for m in WATCHED if m in sys.modules)
        meanwhile()
    return real_verify_all(auditor, items, workers, seen)
WATCHED = ("jsonschema", "cyclonedx", "rfc3986_validator", "factory.index.check", "jinja2",
           "prefect", "sqlalchemy", "starlette", "fastapi", "uvicorn")
loaded = ["not reached"]
early.start, run._verify_all, run._PROCESSES_FROM = start, verify_all, 1
report = verify(settings, everything=True, workers=2)
print(json.dumps({"loaded": loaded, "failed": report.summary["failed"],
                  "checks": sorted({c.name for a in report.artifacts for c in a.checks})}))
"""


def test_verify_all_forks_its_workers_before_loading_what_the_child_did(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """When the early child has checked every SBOM and runs the index checks, the run's
    own process forks its workers without the schema validator (jsonschema, the
    CycloneDX schemas), the index checker (page rendering) or the server side (Prefect,
    SQLAlchemy, Starlette) loaded: each would be paid before any wheel is verified. The
    report still has every check."""
    import pickle
    import subprocess
    import sys

    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    done = subprocess.run([sys.executable, "-c", _NOT_BEFORE_THE_WORK, str(state)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["loaded"] == [] and seen["failed"] == 0
    assert {"digest", "metadata", "signature", "provenance", "sbom", "pep740",
            "in-toto"} <= set(seen["checks"])


_ON_A_TERMINAL = r"""
import io, json, pickle, sys, threading
from rich.console import Console
from factory.cli.verify import run
from factory.verify import early

settings = pickle.loads(open(sys.argv[1], "rb").read())
seen = {}
real = early.start
def start(*args, **kwargs):
    seen["threads"] = threading.active_count()
    seen["child"] = (child := real(*args, **kwargs)) is not None
    return child
early.start = start
screen = io.StringIO()
code = run(settings, everything=True, console=Console(file=screen, force_terminal=True,
                                                       width=200), check_advisories=False)
seen["code"], seen["threads after"] = code, threading.active_count()
print(json.dumps(seen))
"""


def test_on_a_terminal_verify_all_still_forks_its_early_child(copy: PublishedIndex,
                                                               tmp_path: Path) -> None:
    """The progress line is drawn by each result, not by Rich's refresh thread: that thread
    ran before verify was called, so on a terminal (where users run it) the early child was
    never forked and the worker pool forked with a thread running."""
    import pickle
    import subprocess
    import sys

    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    done = subprocess.run([sys.executable, "-c", _ON_A_TERMINAL, str(state)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"threads": 1, "child": True, "code": 0, "threads after": 1}


def test_workers_are_sent_a_few_artifacts_at_a_time_whatever_the_index_size() -> None:
    """The end of a large run does not wait on one worker's big last batch: a worker gets
    at most a few artifacts at a time (the per-wheel cost stays flat as the index grows)."""
    from factory.verify.run import _chunk

    assert [_chunk(n, 2) for n in (8, 40, 10_000)] == [1, 2, 4]
    assert _chunk(100_000, 8) == 4 and _chunk(3, 8) == 1


_AT_EXIT = """
import atexit, gc, json, pickle, runpy, sys
from factory.cli import _app
_app._State.settings = pickle.loads(open(sys.argv[1], "rb").read())
before = gc.get_freeze_count()
# Registered first, so run last (atexit runs the newest first): what the exit finds.
atexit.register(lambda: print(json.dumps({"before": before, "at exit": gc.get_freeze_count()})))
sys.argv = ["factory", "verify", "--all", "--json", "--no-advisories"]
runpy.run_module("factory.cli", run_name="__main__", alter_sys=True)  # the program
"""


def test_the_verify_command_leaves_the_collector_nothing_to_walk_at_exit(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """`factory verify` freezes the collector's objects at exit (gc.freeze), so the
    interpreter's last collections do not walk everything Sigstore and pydantic made
    (about 0.1 s of each run); the report is out, whole, first."""
    import pickle
    import subprocess
    import sys

    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    done = subprocess.run([sys.executable, "-c", _AT_EXIT, str(state)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    *report, last = done.stdout.strip().splitlines()
    assert json.loads("\n".join(report))["summary"]["failed"] == 0
    seen = json.loads(last)
    assert seen["before"] == 0 and seen["at exit"] > 0
