"""The index's TUF repository (factory.sign.tuf_repo) with the stock `sigstore --instance`.

The released index runs under ``create_app``; an auditor with the stock sigstore CLI
(a HOME of its own in tmp: its TUF cache never touches the machine's) runs the
``sigstore --instance`` commands the project page prints: trust-instance with the
served 1.root.json (trust on first use, as the page says), then verify identity,
which refreshes the metadata from /tuf/. A tampered wheel fails; an expired
timestamp, a tampered targets.json and a forged target are refused; `factory index
tuf` makes an expired repository current again. Then the repository itself: chained
roots, idempotent refresh, the route's grammar and bounds, the index check.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer
from typer.testing import CliRunner

from factory.attest.keys import load_signer
from factory.cli import app
from factory.config import Settings
from factory.errors import SigningError
from factory.index import Index
from factory.index.serve import create_app
from factory.publish import publish_tuf
from factory.sign.tuf_repo import PREFIX, refresh
from tests.index_fixtures import running
from tests.security_fixtures import released_copy

ALPHA = "alpha-1.0.0-py3-none-any.whl"
BIN = Path(sys.executable).parent  # the venv's sigstore


@pytest.fixture
def served(released_base: Path, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    settings = released_copy(released_base, tmp_path)
    with running(create_app(Index.of(settings))) as url:
        yield settings, url


def _instance_commands(settings: Settings, url: str, filename: str) -> str:
    page = httpx.get(f"{url}/project/alpha/").text
    section = page.split(f'id="{filename}"', 1)[1]
    found = re.search(r'<pre class="stock-instance">(.*?)</pre>', section, re.S)
    assert found, "no `sigstore --instance` commands on the project page"
    return html.unescape(found.group(1)).replace(settings.index_url.rstrip("/"), url)


def _sh(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    home.mkdir(exist_ok=True)
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home)}  # its own TUF cache
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=home, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def _verify(script: str) -> str:
    """The `sigstore --instance ... verify identity` command of ``script``."""
    return re.search(r"^sigstore \S+ \S+ verify .*?(?<!\\)$", script,  # type: ignore[union-attr]
                     re.S | re.M).group(0)


def _tuf(settings: Settings) -> Path:
    return settings.index_dir / PREFIX


def _resign(settings: Settings, name: str, change: object) -> None:
    """Re-sign ``name`` of the served repository with the online key after ``change``
    (a function of its Signed), as a holder of the online key could."""
    path = _tuf(settings) / name
    md: Metadata = Metadata.from_bytes(path.read_bytes())  # type: ignore[type-arg]
    change(md.signed)  # type: ignore[operator]
    md.sign(load_signer(settings, "tuf_online"))
    path.write_bytes(md.to_bytes(JSONSerializer()))


def test_the_page_instance_commands_verify_with_stock_sigstore_and_refuse_tampering(
        served: tuple[Settings, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from factory.cli._app import _State

    # the in-process CLI below must read this project's settings, not ones an earlier test
    # of the session left loaded (the CLI loads them once per process)
    monkeypatch.setattr(_State, "settings", None)
    settings, url = served
    script = _instance_commands(settings, url, ALPHA)
    assert f"--instance {url}/tuf trust-instance" in script
    home = " ".join(html.unescape(httpx.get(f"{url}/").text).split())
    assert f"sigstore --instance {settings.index_url.rstrip('/')}/tuf trust-instance" in home
    auditor = tmp_path / "auditor"
    result = _sh(script, auditor)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {ALPHA}" in result.stderr
    # The client's cache holds the index's trusted root, fetched and checked through TUF.
    cached = list(auditor.glob(".cache/sigstore-python/tuf/*/trusted_root.json"))
    assert [p.read_bytes() for p in cached] == [
        (settings.public_keys_dir / "trusted_root.json").read_bytes()]
    # After trust-instance, --offline verifies from that cache without asking the index.
    offline = _verify(script).replace(" verify identity ", " verify identity --offline ")
    assert _sh(offline, auditor).returncode == 0

    def expire(signed: Timestamp) -> None:  # an index that nobody refreshed for a week
        signed.version += 1
        signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    _resign(settings, "timestamp.json", expire)
    stale = _sh(_verify(script), auditor)
    assert stale.returncode != 0
    assert "Failed to refresh TUF metadata" in stale.stderr, stale.stderr
    # `factory index tuf` re-signs it (what cron runs on an idle index).
    done = CliRunner().invoke(app, ["index", "tuf"], env={
        "FACTORY_ROOT": str(settings.root), "FACTORY_STATE_DIR": str(settings.state_dir)})
    assert done.exit_code == 0, done.output
    assert "timestamp version 3" in " ".join(done.output.split())

    wheel = auditor / ALPHA
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    tampered = _sh(_verify(script), auditor)
    assert tampered.returncode != 0 and "FAIL" in tampered.stderr  # (the metadata refreshed)
    assert "Failed to refresh TUF metadata" not in tampered.stderr


def test_a_tampered_targets_json_or_a_forged_target_is_refused(
        served: tuple[Settings, str], tmp_path: Path) -> None:
    settings, url = served
    script = _instance_commands(settings, url, ALPHA)
    trust = script.split("\ncurl -fsSO", 1)[0]  # the trust-instance part
    tuf = _tuf(settings)

    # A forged trusted root under the digest targets.json names: its hash does not match.
    target = next(tuf.glob("targets/*.trusted_root.json"))
    original = target.read_bytes()
    target.write_bytes(json.dumps({**json.loads(original), "tlogs": []}).encode())
    forged = _sh(trust, tmp_path / "forged")
    assert forged.returncode != 0
    target.write_bytes(original)

    # targets.json edited by someone without the online key: its signature fails.
    path = tuf / "1.targets.json"
    value = json.loads(path.read_bytes())
    value["signed"]["expires"] = "2099-01-01T00:00:00Z"
    path.write_text(json.dumps(value))
    edited = _sh(trust, tmp_path / "edited")
    assert edited.returncode != 0
    assert "Failed to refresh TUF metadata" in edited.stderr


# -- the repository ------------------------------------------------------------------------
@pytest.fixture
def repo(released_base: Path, tmp_path: Path) -> Settings:
    return released_copy(released_base, tmp_path)


def _version(tuf: Path, name: str) -> int:
    return int(Metadata.from_bytes((tuf / name).read_bytes()).signed.version)


def test_refresh_is_idempotent_and_renews_each_role_before_it_expires(repo: Settings) -> None:
    index, tuf = Index.of(repo), _tuf(repo)
    assert sorted(p.name for p in tuf.iterdir()) == [
        "1.root.json", "1.snapshot.json", "1.targets.json", "targets", "timestamp.json"]
    assert all(oct(p.stat().st_mode)[-3:] == "644" for p in tuf.rglob("*.json"))
    assert publish_tuf(repo, index).written == []  # type: ignore[union-attr]

    files = {"trusted_root.json": (repo.public_keys_dir / "trusted_root.json").read_bytes(),
             "signing_config.v0.2.json": b"{}"}
    later = datetime.now(UTC) + timedelta(days=2)
    state = refresh(repo, {**files}, tuf, now=later)  # a day and more: timestamp re-signed
    assert state.versions == {"root": 1, "timestamp": 2, "snapshot": 2, "targets": 2}
    state = refresh(repo, files, tuf, now=later + timedelta(days=300))
    assert state.versions == {"root": 2, "timestamp": 3, "snapshot": 3, "targets": 3}
    # Version 2 of the root is signed by the key version 1 names: the chain a client walks.
    one = Metadata[Root].from_bytes((tuf / "1.root.json").read_bytes())
    two = Metadata[Root].from_bytes((tuf / "2.root.json").read_bytes())
    one.signed.verify_delegate("root", two.signed_bytes, two.signatures)
    assert two.signed.keys == one.signed.keys
    snapshot = Metadata[Snapshot].from_bytes((tuf / "3.snapshot.json").read_bytes())
    assert snapshot.signed.meta["targets.json"].version == 3
    targets = Metadata[Targets].from_bytes((tuf / "3.targets.json").read_bytes())
    assert set(targets.signed.targets) == set(files)


def test_a_damaged_online_file_is_re_signed_not_endorsed(repo: Settings) -> None:
    tuf = _tuf(repo)
    path = tuf / "1.targets.json"
    value = json.loads(path.read_bytes())
    value["signatures"][0]["sig"] = "00" * 64
    path.write_text(json.dumps(value))
    state = publish_tuf(repo, Index.of(repo))
    assert state is not None and state.versions["targets"] == 2
    assert _version(tuf, "timestamp.json") == 2


def test_a_root_of_another_root_key_or_a_broken_chain_is_refused(repo: Settings) -> None:
    tuf = _tuf(repo)
    (tuf / "3.root.json").write_bytes((tuf / "1.root.json").read_bytes())
    with pytest.raises(SigningError, match="not 1..N"):
        publish_tuf(repo, Index.of(repo))
    (tuf / "3.root.json").unlink()
    for role in ("tuf_root",):  # a new root key: a rotation this code does not do
        (repo.private_keys_dir / f"{role}.pem.key").unlink()
        (repo.public_keys_dir / f"{role}.pub.pem").unlink()
    from factory.attest.keys import init_keys
    init_keys(repo)
    with pytest.raises(SigningError, match="another root key"):
        publish_tuf(repo, Index.of(repo))


def test_a_new_online_key_gets_a_new_root_version_and_versions_only_grow(
        repo: Settings) -> None:
    from factory.attest.keys import init_keys

    (repo.private_keys_dir / "tuf_online.pem.key").unlink()
    (repo.public_keys_dir / "tuf_online.pub.pem").unlink()
    init_keys(repo)
    state = publish_tuf(repo, Index.of(repo))
    assert state is not None
    assert state.versions == {"root": 2, "timestamp": 2, "snapshot": 2, "targets": 2}


def test_the_route_serves_only_repository_files_bounded_and_never_a_link(
        repo: Settings) -> None:
    tuf = _tuf(repo)
    (tuf / "notes.txt").write_text("private")
    os.symlink(repo.private_keys_dir / "tuf_root.pem.key", tuf / "7.root.json")
    (tuf / "8.root.json").write_bytes(b"x" * (600 * 1024))
    with running(create_app(Index.of(repo))) as url, httpx.Client(base_url=url) as client:
        ok = client.get("/tuf/1.root.json")
        assert ok.status_code == 200 and ok.headers["cache-control"] == "no-cache"
        target = next(tuf.glob("targets/*.trusted_root.json")).name
        immutable = client.get(f"/tuf/targets/{target}")
        assert immutable.status_code == 200 and "immutable" in immutable.headers["cache-control"]
        assert client.get("/tuf/2.root.json").status_code == 404  # the client's "no newer root"
        assert client.get("/tuf/timestamp.json", headers={
            "If-None-Match": client.get("/tuf/timestamp.json").headers["etag"]}).status_code == 304
        for path in ("/tuf/", "/tuf/notes.txt", "/tuf/targets/", "/tuf/0.root.json",
                     "/tuf/root.json", "/tuf/targets/trusted_root.json"):
            assert client.get(path).status_code == 404, path
        for path in ("/tuf/7.root.json", "/tuf/8.root.json"):
            refused = client.get(path)
            assert refused.status_code == 500 and b"PRIVATE" not in refused.content, path
    problems = Index.of(repo).check(deep=False)
    assert any("tuf/notes.txt" in p for p in problems)
    assert not any("timestamp.json" in p or "targets/" in p for p in problems)


def test_the_watch_cycle_re_signs_an_expiring_timestamp_and_says_when_it_cannot(
        repo: Settings) -> None:
    from factory.watch import WatchResult, refresh_tuf

    def expire(signed: Timestamp) -> None:
        signed.version += 1
        signed.expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)

    _resign(repo, "timestamp.json", expire)
    assert refresh_tuf(repo, Index.of(repo)) is None
    assert _version(_tuf(repo), "timestamp.json") == 3
    _resign(repo, "timestamp.json", expire)
    (repo.private_keys_dir / "tuf_online.pem.key").unlink()
    problem = refresh_tuf(repo, Index.of(repo))
    assert problem and "tuf_online" in problem
    assert "TUF repository NOT re-signed" in WatchResult(tuf_problem=problem).summary()
