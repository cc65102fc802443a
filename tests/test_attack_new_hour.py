"""Attack pass on what issue 20 added last: the TUF repository writer and its route,
upstream's wheel at lock and publish (equivalence), the project pages, the Debian source
chain. Each case is a break, fixed in factory/ (the test says what broke), or a case
that held. No network: the released index of the session, local files, 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Snapshot, Timestamp
from tuf.api.serialization.json import JSONSerializer

from factory.config import Settings
from factory.errors import SigningError
from factory.sign.tuf_repo import PREFIX, refresh
from tests.security_fixtures import released_copy


# -- the TUF repository on disk, tampered between runs -------------------------------------
@pytest.fixture
def tuf_repo(released_base: Path, tmp_path: Path) -> tuple[Settings, Path, dict[str, bytes]]:
    """A released index whose repository is at version 3 (timestamp, snapshot, targets)."""
    settings = released_copy(released_base, tmp_path)
    tuf = settings.index_dir / PREFIX
    files = {"trusted_root.json": (settings.public_keys_dir / "trusted_root.json").read_bytes(),
             "signing_config.v0.2.json": b"{}"}
    refresh(settings, files, tuf)
    files["signing_config.v0.2.json"] = b"{ }"
    state = refresh(settings, files, tuf)
    assert state.versions == {"root": 1, "timestamp": 3, "snapshot": 3, "targets": 3}
    return settings, tuf, files


def _signed(path: Path) -> object:
    return Metadata.from_bytes(path.read_bytes()).signed


def _served(tuf: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in tuf.glob("*.json")}


def _no_rollback(tuf: Path, before: dict[str, bytes], old: dict[str, int]) -> None:
    """Nothing a client may hold was rewritten in place, and every version grew."""
    after = _served(tuf)
    rewritten = [n for n, b in before.items() if n != "timestamp.json" and after.get(n) != b]
    assert rewritten == [], f"consistent snapshot files rewritten in place: {rewritten}"
    timestamp = _signed(tuf / "timestamp.json")
    assert isinstance(timestamp, Timestamp)
    assert timestamp.version > old["timestamp"]
    assert timestamp.snapshot_meta.version >= old["snapshot"]
    snapshot = _signed(tuf / f"{timestamp.snapshot_meta.version}.snapshot.json")
    assert isinstance(snapshot, Snapshot)
    assert snapshot.meta["targets.json"].version >= old["targets"]


def test_a_deleted_timestamp_never_makes_refresh_sign_a_rollback(
        tuf_repo: tuple[Settings, Path, dict[str, bytes]]) -> None:
    """BROKE: with timestamp.json gone (withheld, lost), refresh started again at version
    1 and rewrote 1.snapshot.json and 1.targets.json in place: every client holding
    version 3 refused the repository as a rollback, for good."""
    settings, tuf, files = tuf_repo
    before = _served(tuf)
    (tuf / "timestamp.json").unlink()
    files["signing_config.v0.2.json"] = b"{  }"
    refresh(settings, files, tuf)
    _no_rollback(tuf, before, {"timestamp": 3, "snapshot": 3, "targets": 3})


def test_a_planted_unsigned_timestamp_chooses_no_version(
        tuf_repo: tuple[Settings, Path, dict[str, bytes]]) -> None:
    """BROKE: a timestamp.json signed by no key of the root was re-signed (good) but its
    version and its snapshot pointer were taken as the repository's: version 1 pointing
    at 1.snapshot.json made refresh sign versions below what clients hold."""
    settings, tuf, files = tuf_repo
    before = _served(tuf)
    md = Metadata.from_bytes((tuf / "timestamp.json").read_bytes())
    assert isinstance(md.signed, Timestamp)
    md.signed.version = 1
    md.signed.snapshot_meta.version = 1
    md.signatures.clear()
    (tuf / "timestamp.json").write_bytes(md.to_bytes(JSONSerializer()))
    refresh(settings, files, tuf)
    _no_rollback(tuf, before, {"timestamp": 3, "snapshot": 3, "targets": 3})


def test_a_deleted_newest_snapshot_or_targets_version_is_not_reused(
        tuf_repo: tuple[Settings, Path, dict[str, bytes]]) -> None:
    """BROKE: a missing N.snapshot.json (the one the timestamp names) made refresh write
    snapshot and targets version 1 again, over the files clients had."""
    settings, tuf, files = tuf_repo
    (tuf / "3.snapshot.json").unlink()
    (tuf / "3.targets.json").unlink()
    before = _served(tuf)
    refresh(settings, files, tuf)
    _no_rollback(tuf, before, {"timestamp": 3, "snapshot": 3, "targets": 3})
    assert (tuf / "4.snapshot.json").is_file()


def test_a_planted_huge_version_stops_refresh_in_one_line(
        tuf_repo: tuple[Settings, Path, dict[str, bytes]]) -> None:
    """A file named beyond the served names (10 digits) would make the next version one
    no client can fetch: refused, nothing signed."""
    settings, tuf, files = tuf_repo
    (tuf / "9999999999.targets.json").write_text("{}")
    (tuf / "timestamp.json").unlink()
    with pytest.raises(SigningError, match="planted"):
        refresh(settings, files, tuf)
    assert not (tuf / "timestamp.json").exists()


def test_a_link_or_fifo_planted_in_the_repository_is_never_read_through(
        tuf_repo: tuple[Settings, Path, dict[str, bytes]]) -> None:
    """BROKE (bounded read only): refresh read timestamp.json and the file it rewrote
    with read_bytes(), through a link, whole (a link to a large file filled memory, one to
    the private key was parsed). Now read as the route reads: no link, no FIFO, bounded."""
    settings, tuf, files = tuf_repo
    (tuf / "timestamp.json").unlink()
    os.symlink(settings.private_keys_dir / "tuf_root.pem.key", tuf / "timestamp.json")
    with pytest.raises(SigningError, match="not a regular file") as raised:
        refresh(settings, files, tuf)
    assert "PRIVATE" not in str(raised.value)
    (tuf / "timestamp.json").unlink()
    os.mkfifo(tuf / "timestamp.json")
    with pytest.raises(SigningError, match="not a regular file"):
        refresh(settings, files, tuf)  # did not block
    (tuf / "timestamp.json").unlink()
    refresh(settings, files, tuf, now=datetime.now(UTC) + timedelta(seconds=5))
    assert json.loads((tuf / "timestamp.json").read_bytes())["signed"]["version"] > 3
