"""Tampering and trust: what an attacker who can write to the index directory,
or who holds another authority, cannot get past the verifier or `factory serve`.

The index is released for real (attest, sign with the embedded authority,
in-toto, publish); each test tampers with its own copy.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from factory._internal.atomic import sha256_file, write_json
from factory.config import Settings
from factory.index import Index
from factory.index.records import Layout
from factory.index.serve import create_app
from factory.index.validation import load_record, save_record
from factory.verify import verify
from tests import factories
from tests.index_fixtures import running
from tests.security_fixtures import released_copy

JSON = "application/vnd.pypi.simple.v1+json"
ALPHA = "alpha-1.0.0-py3-none-any.whl"
BETA = "beta-1.0.0-py3-none-any.whl"


@pytest.fixture
def index(released_base: Path, tmp_path: Path) -> Settings:
    settings = released_copy(released_base, tmp_path)
    assert verify(settings, everything=True, check_advisories=False).ok  # intact to start
    return settings


@pytest.fixture
def client(index: Settings) -> Iterator[httpx.Client]:
    with running(create_app(Index.of(index))) as url, httpx.Client(base_url=url) as client:
        yield client


def files(settings: Settings, project: str) -> Path:
    return Layout(settings.index_dir).files(project)


def failing(settings: Settings, **kwargs: object) -> dict[str, set[str]]:
    """{wheel: names of the failed checks} of a verification of the whole index."""
    report = verify(settings, everything=True, check_advisories=False, **kwargs)  # type: ignore[arg-type]
    return {str(a.filename): {c.name for c in a.failures()} for a in report.artifacts
            if not a.ok}


def recorded_as_is(settings: Settings, project: str, rel_suffix: str) -> None:
    """Make the record vouch for the tampered sidecar too (an attacker with full write)."""
    layout = Layout(settings.index_dir)
    record = load_record(layout, project)
    assert record is not None
    for entry in record.files:
        for group in entry.sidecars.values():
            for stored in group:
                if stored.path.endswith(rel_suffix):
                    path = settings.index_dir / stored.path
                    stored.sha256, stored.size = sha256_file(path), path.stat().st_size
    save_record(layout, record)


def test_a_replaced_wheel_is_refused_by_serve_and_fails_verification(
        index: Settings, client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    wheel = files(index, "alpha") / ALPHA
    evil = factories.wheel(index.root / "evil", "alpha", "1.0.0", metadata=("Summary: evil",))
    shutil.copyfile(evil, wheel)
    with caplog.at_level(logging.ERROR, logger="factory.index.serve"):
        response = client.get(f"/files/alpha/{ALPHA}")
    assert response.status_code == 500 and b"PK" not in response.content
    assert "REFUSED" in caplog.text and ALPHA in caplog.text
    assert "digest" in failing(index)[ALPHA]
    assert any(ALPHA in p for p in Index.of(index).check())
    # Even with the record rewritten to vouch for it, the signatures do not.
    layout = Layout(index.index_dir)
    record = load_record(layout, "alpha")
    assert record is not None
    record.files[0].sha256, record.files[0].size = sha256_file(wheel), wheel.stat().st_size
    save_record(layout, record)
    assert client.get(f"/files/alpha/{ALPHA}").status_code == 200  # the record is the root
    assert "signature" in failing(index)[ALPHA]  # ... but the auditor's check is not fooled


@pytest.mark.parametrize("page", ["index.json", "index.html"])
def test_a_replaced_page_is_never_sent(index: Settings, client: httpx.Client, page: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    path = index.index_dir / "simple" / "alpha" / page
    honest = client.get("/simple/alpha/", headers={"Accept": JSON if page.endswith("json")
                                                   else "text/html"}).content
    forged = path.read_text().replace(f"../../files/alpha/{ALPHA}", "https://evil.invalid/a.whl")
    forged = forged.replace(sha256_file(files(index, "alpha") / ALPHA), "0" * 64)
    assert forged != path.read_text()
    path.write_text(forged)
    with caplog.at_level(logging.ERROR, logger="factory.index.serve"):
        served = client.get("/simple/alpha/", headers={"Accept": JSON if page.endswith("json")
                                                       else "text/html"}).content
    assert served == honest
    assert b"evil.invalid" not in served
    assert "REFUSED page" in caplog.text
    assert not failing(index)  # the files themselves are intact


def test_a_page_with_no_record_is_no_project(index: Settings, client: httpx.Client) -> None:
    fake = index.index_dir / "simple" / "evil"
    fake.mkdir()
    (fake / "index.json").write_text(json.dumps({"meta": {"api-version": "1.1"}, "name": "evil",
                                                 "files": [{"filename": "evil-1-py3-none-any.whl",
                                                            "url": "https://evil.invalid/e.whl",
                                                            "hashes": {}}]}))
    assert client.get("/simple/evil/", headers={"Accept": JSON}).status_code == 404


def test_substituted_provenance_fails_verification(index: Settings, client: httpx.Client) -> None:
    # beta's (genuine, validly signed) provenance put in alpha's place.
    target = files(index, "alpha") / (ALPHA + ".provenance")
    shutil.copyfile(files(index, "beta") / (BETA + ".provenance"), target)
    assert client.get(f"/files/alpha/{ALPHA}.provenance").status_code == 500
    assert client.get(f"/integrity/alpha/1.0.0/{ALPHA}/provenance").status_code == 500
    recorded_as_is(index, "alpha", ".provenance")
    assert "pep740" in failing(index)[ALPHA]


def test_substituted_slsa_statements_fail_verification(index: Settings) -> None:
    target = files(index, "alpha") / (ALPHA + ".intoto.jsonl")
    shutil.copyfile(files(index, "beta") / (BETA + ".intoto.jsonl"), target)
    recorded_as_is(index, "alpha", ".intoto.jsonl")
    assert failing(index)[ALPHA] & {"provenance", "digest", "in-toto"}


def test_a_bundle_from_a_foreign_authority_fails_verification(
        index: Settings, tmp_path: Path) -> None:
    from factory.sign import init_authority, open_signer

    # same identity and issuer, another authority
    foreign = factories.settings(tmp_path / "foreign", project="project")
    init_authority(foreign)
    wheel = files(index, "alpha") / ALPHA
    with open_signer(foreign) as signer:
        bundle = signer.sign_artifact(wheel)
    (files(index, "alpha") / (ALPHA + ".sigstore.json")).write_text(bundle + "\n")
    recorded_as_is(index, "alpha", ".sigstore.json")
    assert "signature" in failing(index)[ALPHA]


def test_after_a_key_rotation_old_signatures_do_not_verify(index: Settings,
                                                          tmp_path: Path) -> None:
    from factory.attest.keys import init_keys
    from factory.sign import init_authority

    rotated = factories.settings(tmp_path / "rotated", project="project")
    init_authority(rotated)
    init_keys(rotated)
    root = rotated.public_keys_dir / "trusted_root.json"
    owner = rotated.public_keys_dir / "owner.pub.pem"
    found = failing(index, trusted_root=root)
    assert set(found) == {ALPHA, BETA} and all("signature" in f for f in found.values())
    found = failing(index, owner_key=owner)
    assert set(found) == {ALPHA, BETA} and all("in-toto" in f for f in found.values())


def test_a_replaced_sbom_fails_verification(index: Settings) -> None:
    path = files(index, "alpha") / (ALPHA + ".cdx.json")
    sbom = json.loads(path.read_text())
    sbom.setdefault("components", []).append({"type": "library", "name": "backdoor",
                                              "version": "1"})
    write_json(path, sbom)
    recorded_as_is(index, "alpha", ".cdx.json")
    assert "sbom" in failing(index)[ALPHA]
