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
from factory.index import Index
from factory.sign.tuf_repo import PREFIX, refresh
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)
from tests.security_fixtures import released_copy
from tests.test_verify_equivalence import _pin_upstream_wheel, repack


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


def test_a_replayed_old_signed_timestamp_or_a_dangling_pointer_is_re_signed_above(
        released_base: Path, tmp_path: Path) -> None:
    """BROKE: a copy of an older timestamp.json (validly signed, not expired) put back
    was kept, or re-signed as its version + 1, below what clients hold; and with the
    newest snapshot deleted (targets unchanged) the timestamp kept naming the missing
    file. The versions this state signed last are kept outside the index (state's
    tuf-signed.json) and are a floor; a pointer to a missing version is re-signed."""
    settings = released_copy(released_base, tmp_path)
    tuf = settings.index_dir / PREFIX
    files = {"trusted_root.json": (settings.public_keys_dir / "trusted_root.json").read_bytes(),
             "signing_config.v0.2.json": b"{}"}
    refresh(settings, files, tuf)
    old = (tuf / "timestamp.json").read_bytes()
    files["signing_config.v0.2.json"] = b"{ }"
    state = refresh(settings, files, tuf)
    current = state.versions["timestamp"]
    (tuf / "timestamp.json").write_bytes(old)  # a replay: signed, older
    state = refresh(settings, files, tuf)
    assert state.versions["timestamp"] > current
    timestamp = _signed(tuf / "timestamp.json")
    assert isinstance(timestamp, Timestamp) and timestamp.version > current
    newest = state.versions["snapshot"]
    (tuf / f"{newest}.snapshot.json").unlink()
    state = refresh(settings, files, tuf)
    timestamp = _signed(tuf / "timestamp.json")
    assert isinstance(timestamp, Timestamp)
    assert (tuf / f"{timestamp.snapshot_meta.version}.snapshot.json").is_file()
    assert timestamp.snapshot_meta.version > newest


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


# -- upstream's wheel, swapped after the lock (equivalence at publish and in watch) -------
def _corrupt_crc(wheel: Path) -> Path:
    """``wheel`` with one byte of its first member's data flipped (a bad CRC-32)."""
    import struct

    data = bytearray(wheel.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[26:30])
    data[30 + name_len + extra_len] ^= 0xFF
    wheel.write_bytes(bytes(data))
    return wheel


@pytest.fixture
def equivalent(published_index: PublishedIndex, tmp_path: Path) -> PublishedIndex:  # noqa: F811
    """A copy whose alpha 1.0 was found equivalent to the upstream wheel its lock pins."""
    from factory.sign import open_signer
    from factory.verify.equivalence import SUFFIX, Comparer

    copy = clone(published_index, tmp_path / "copy")
    ours = copy.wheel("alpha")
    _pin_upstream_wheel(copy.settings, repack(ours, tmp_path / "same" / ours.name))
    with open_signer(copy.settings) as signer, Comparer(copy.settings) as comparer:
        assert comparer.write(signer, "alpha", "1.0", ours, copy.record("alpha").wheel_sha256,
                              ours.with_name(ours.name + SUFFIX)) is not None
    return copy


def test_an_unreadable_upstream_wheel_is_a_note_in_the_watch_cycle_not_a_crash(
        equivalent: PublishedIndex, tmp_path: Path) -> None:
    """BROKE: upstream replaced its wheel (the lock pins the new one) with one whose member
    fails its CRC: recheck raised zipfile.BadZipFile out of the watch cycle (a traceback,
    and that cycle's advisories, VEX feed and TUF re-signing never ran, every cycle)."""
    from factory.verify.equivalence import recheck

    ours = equivalent.wheel("alpha")
    bad = _corrupt_crc(repack(ours, tmp_path / "new" / ours.name, {"alpha/__init__.py": b"x"}))
    _pin_upstream_wheel(equivalent.settings, bad)
    notes, alarms = recheck(equivalent.settings)
    assert alarms == [] and len(notes) == 1
    assert "not a readable wheel" in notes[0] and "CRC" in notes[0], notes


def test_a_swapped_wheel_with_a_huge_central_directory_is_not_parsed(
        equivalent: PublishedIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BROKE: the member bound was checked after zipfile had parsed the whole central
    directory: a 64 MiB wheel of 800,000 empty members cost about 0.7 GiB and 36 s per
    open (at lock, and twice per side at each publish and watch cycle). The end record is
    read first now (its declared count and its central directory's size)."""
    import zipfile

    from factory.lock import backend
    from factory.verify import equivalence
    from factory.verify.equivalence import Comparer

    ours = equivalent.wheel("alpha")
    many = repack(ours, tmp_path / "many" / ours.name, {"alpha/__init__.py": b"y"})
    monkeypatch.setattr(equivalence, "MAX_MEMBERS", 3)
    monkeypatch.setattr(backend, "MAX_MEMBERS", 3)
    _pin_upstream_wheel(equivalent.settings, many)
    opened: list[object] = []
    real = zipfile.ZipFile

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, file: object, *args: object, **kwargs: object) -> None:
            opened.append(getattr(file, "name", file))
            super().__init__(file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile, "ZipFile", Counting)
    with Comparer(equivalent.settings) as comparer:
        assert comparer.compare("alpha", "1.0", ours, "0" * 64) is None
    assert "declares 5 members (more than 3)" in comparer.notes[0], comparer.notes
    assert backend.wheel_generator(many, "alpha", "1.0") is None
    assert {str(name) for name in opened} <= {str(ours)}, opened  # upstream's never parsed
    from factory._internal.zipcount import too_large

    with many.open("rb") as handle:  # a count that lies is caught by the directory's size
        assert "central directory" in (too_large(handle, 100, max_directory=64) or "")


# -- project pages: upstream's Requires-Dist ------------------------------------------------
def test_a_dependency_name_longer_than_a_file_name_does_not_stop_the_publish(
        tmp_path: Path) -> None:
    """BROKE: PEP 508 sets no length on a name: a wheel whose METADATA required a 300
    character name failed its publish with 'cannot write to the index ... File name too
    long' (blaming the index's disk), as the page looked up records/<name>.json and noted
    records/_dependents/<name>.json. Such a name is shown, never linked or looked up.
    Held with it: a URL requirement ('javascript:') and markup are text, never a link."""
    from factory.config import load_settings
    from factory.index import regen
    from tests.test_project_pages import _page, _publish

    settings = load_settings(root=tmp_path / "state")
    long = "a" * 300
    _publish(settings, tmp_path / "h", "hostile", "1.0",
             requires=[f"{long}>=1", "evil @ javascript:alert(1)",
                       'ok[x"><b>]>=1; extra == "<script>"'])
    page = _page(settings, "hostile")
    section = page.split('id="dependencies"')[1].split("</table>")[0]
    assert f"../../project/{long}/" not in section and long in section
    assert 'href="javascript' not in page and "<script>" not in page and "<b>" not in page
    assert 'href="../../project/evil/"' in section  # its name links, its URL is text
    assert regen.dependents(Index.of(settings).layout, "evil") == ["hostile"]
    assert Index.of(settings).check() == []


# -- hostile HTTP clients on /tuf/ (held) ------------------------------------------------------
def test_the_tuf_route_answers_only_repository_names_to_hostile_paths(
        tuf_repo: tuple[Settings, Path, dict[str, bytes]]) -> None:
    """Held: encoded dots and slashes, NULs, backslashes, leading zeros, 11-digit versions,
    a target name with another digest shape, a directory of the tree, other methods (no
    body, never a write), a Range (the whole file or nothing, never another file)."""
    import httpx

    from factory.index.serve import create_app
    from tests.index_fixtures import running

    settings, tuf, _files = tuf_repo
    (tuf / "1.root.json.bak").write_text("private")
    (settings.index_dir / "secret.json").write_text("private")
    with running(create_app(Index.of(settings))) as url, httpx.Client(base_url=url) as client:
        for path in ("/tuf/%2e%2e/secret.json", "/tuf/..%2fsecret.json",
                     "/tuf/%2E%2E%2Fsecret.json",
                     "/tuf/1.root.json%00", "/tuf/1.root.json%00.bak", "/tuf/1.root.json.bak",
                     "/tuf/01.root.json", "/tuf/00000000001.root.json",
                     "/tuf/99999999999.snapshot.json", "/tuf/targets/..%2f1.root.json",
                     "/tuf/targets%2f..%2f1.root.json", "/tuf/.%2e/.%2e/keys/tuf_root.pub.pem",
                     "/tuf/targets/" + "A" * 64 + ".trusted_root.json", "/tuf/1.ROOT.json",
                     "/tuf/1.root.json/", "/tuf//1.root.json", "/tuf/targets",
                     "/tuf/1.root.json\\..\\secret.json",
                     "/tuf/timestamp.json;x", "/tuf/" + "9" * 5000 + ".root.json"):
            answer = client.get(path)
            assert answer.status_code in (400, 404, 414), (path, answer.status_code)
            assert b"private" not in answer.content
        ok = client.get("/tuf/%31.root.json")  # the same name, percent-encoded: the file
        assert ok.status_code == 200 and ok.content == (tuf / "1.root.json").read_bytes()
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            answer = client.request(method, "/tuf/timestamp.json", content=b"{}")
            assert answer.status_code == 405, (method, answer.status_code)
        assert (tuf / "timestamp.json").read_bytes() != b"{}"
        head = client.head("/tuf/timestamp.json")
        assert head.status_code == 200 and head.content == b""
        ranged = client.get("/tuf/timestamp.json", headers={"Range": "bytes=0-3, 5-1000000"})
        assert ranged.status_code in (200, 206, 416)
        assert ranged.content in (b"", (tuf / "timestamp.json").read_bytes()) or \
            ranged.content in (tuf / "timestamp.json").read_bytes()


# -- a hostile Debian mirror: InRelease (held) ---------------------------------------------
def test_an_inrelease_of_two_signed_texts_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: a mirror prepends its own clear-signed Release (signed by a key the keyring
    lacks: NO_PUBKEY, not BADSIG) to a genuine one, so that a reader of the first SHA256
    section would take its Sources.xz pin: gpgv refuses multiple plaintexts (no GOODSIG)."""
    import shutil
    import subprocess

    from factory.build import debian

    if shutil.which("gpg") is None or shutil.which("gpgv") is None:
        pytest.skip("gpg or gpgv is not installed")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    def gpg(*args: str) -> bytes:
        return subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", *args],
                              env=env, check=True, capture_output=True, timeout=60).stdout

    gpg("--quick-gen-key", "Archive <archive@invalid>", "ed25519", "sign", "never")
    gpg("--quick-gen-key", "Mirror <mirror@invalid>", "ed25519", "sign", "never")
    keyring = tmp_path / "archive.gpg"
    keyring.write_bytes(gpg("--export", "Archive"))
    texts = {}
    for who, digest in (("Mirror", "e"), ("Archive", "a")):
        plain = tmp_path / f"{who}.txt"
        plain.write_text(f"Codename: trixie\nSHA256:\n {digest * 64} 100 "
                         "main/source/Sources.xz\n")
        texts[who] = gpg("-u", who, "--clearsign", "-o", "-", str(plain))
    monkeypatch.setattr(debian, "KEYRING", keyring)
    assert b"a" * 64 in debian.verify_release(texts["Archive"])  # the keyring is the one used
    with pytest.raises(debian.LookupUnavailable, match="no good signature"):
        debian.verify_release(texts["Mirror"] + texts["Archive"])
    with pytest.raises(debian.LookupUnavailable, match="no good signature"):
        debian.verify_release(texts["Mirror"])
    # Text outside the signature is never returned.
    spliced = b"SHA256:\n " + b"e" * 64 + b" 100 main/source/Sources.xz\n" + texts["Archive"]
    assert b"e" * 64 not in debian.verify_release(spliced)


def test_a_metadata_or_record_inflated_to_millions_of_lines_is_not_parsed(
        published_index: PublishedIndex, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """BROKE: upstream's METADATA was parsed whole as headers for the per-file reasons (19
    MiB of 'A: b' lines: 23 s and 1.2 GiB; the bound was 512 MiB, which deflate makes from
    half a MiB of wheel), and RECORD whole into a set. Past 1 MiB (METADATA) and 32 MiB
    (RECORD) they are compared as bytes only, and the reason says so."""
    import zipfile

    from factory.verify import equivalence
    from factory.verify.equivalence import compare_wheels, explain

    ours = published_index.wheel("alpha")
    with zipfile.ZipFile(ours) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        metadata = archive.read(meta)
    inflated = metadata.replace(b"\n\n", b"\n" + b"A: b\n" * 2_000_000 + b"\n", 1)
    lines = b"".join(b"x/%d.py,sha256=,0\n" % i for i in range(2_000_000))
    theirs = repack(ours, tmp_path / "up" / ours.name, {meta: inflated, record: lines})
    # "Not parsed" counted, not timed: the bytes each parser is given.
    parsed: dict[str, list[int]] = {"headers": [], "record": []}
    real_headers, real_record = equivalence._headers, equivalence._record_lines

    def headers(data: bytes) -> tuple[list[tuple[str, str]], str]:
        parsed["headers"].append(len(data))
        return real_headers(data)

    def record_lines(data: bytes) -> set[str]:
        parsed["record"].append(len(data))
        return real_record(data)

    monkeypatch.setattr(equivalence, "_headers", headers)
    monkeypatch.setattr(equivalence, "_record_lines", record_lines)
    files = {f["file"]: f for f in explain(ours, theirs)}
    assert "not compared" in files[meta]["detail"]
    assert files[record]["why"] == "different entries"
    assert compare_wheels(ours, theirs)[1] == [f"{meta}: different bytes",
                                              f"{record}: different entries"]
    assert max(parsed["headers"], default=0) < len(inflated) // 100, parsed["headers"]
    assert parsed["record"] == [], parsed["record"]


def test_a_tuf_directory_planted_as_a_link_is_neither_written_nor_served(
        tuf_repo: tuple[Settings, Path, dict[str, bytes]], tmp_path: Path) -> None:
    """BROKE: refresh wrote through index/tuf (or tuf/targets) when it was a symbolic link:
    signed metadata and targets went into whatever directory the link named. Refused
    now, nothing written; the route never served through it (held)."""
    import shutil

    import httpx

    from factory.index.serve import create_app
    from tests.index_fixtures import running

    settings, tuf, files = tuf_repo
    elsewhere = tmp_path / "elsewhere"
    shutil.move(tuf, elsewhere)
    tuf.symlink_to(elsewhere)
    (elsewhere / "timestamp.json").unlink()
    with pytest.raises(SigningError, match="symbolic link"):
        refresh(settings, files, tuf)
    assert not (elsewhere / "timestamp.json").exists()
    with running(create_app(Index.of(settings))) as url:
        assert httpx.get(f"{url}/tuf/1.root.json").status_code in (404, 500)
    tuf.unlink()
    shutil.move(elsewhere, tuf)
    shutil.move(tuf / "targets", tmp_path / "targets")
    (tuf / "targets").symlink_to(tmp_path / "targets")
    with pytest.raises(SigningError, match="symbolic link"):
        refresh(settings, {**files, "signing_config.v0.2.json": b"{\n}"}, tuf)


def test_a_fifo_planted_as_a_statement_or_a_wheel_does_not_hang_the_watch_cycle(
        equivalent: PublishedIndex, tmp_path: Path) -> None:
    """BROKE: recheck (each watch cycle) opened the recorded statement with open(): a FIFO
    planted there blocked the cycle for ever (and with it the TUF re-signing: clients fail
    closed after 7 days); the compared wheels likewise. Opened without blocking now and
    refused unless regular: the statement is unreadable, the wheel a note."""
    import threading

    from factory.verify.equivalence import SUFFIX, read_statement, recheck

    ours = equivalent.wheel("alpha")
    statement = ours.with_name(ours.name + SUFFIX)
    _pin_upstream_wheel(equivalent.settings, repack(ours, tmp_path / "new" / ours.name,
                                                    {"alpha/__init__.py": b"z = 1\n"}))
    kept = statement.read_bytes()
    statement.unlink()
    os.mkfifo(statement)
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(recheck(equivalent.settings)),
                              daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # unblock the thread so the test run can end
        with open(statement, "wb"):
            pass
        worker.join(10)
        pytest.fail("recheck blocked on a FIFO planted as the statement")
    assert len(done) == 1  # (an unreadable statement is compared again, as the first ones)
    assert read_statement(statement) is None
    statement.unlink()
    statement.write_bytes(kept)
    wheel_bytes = ours.read_bytes()
    ours.unlink()
    os.mkfifo(ours)
    worker = threading.Thread(target=lambda: done.append(recheck(equivalent.settings)),
                              daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():
        with open(ours, "wb"):
            pass
        worker.join(10)
        pytest.fail("recheck blocked on a FIFO planted as the wheel")
    notes, alarms = done[-1]  # type: ignore[misc]
    assert alarms == [] and "not a readable wheel" in notes[0], notes
    ours.unlink()
    ours.write_bytes(wheel_bytes)


def test_a_damaged_tuf_repository_does_not_stop_the_publish(
        released_base: Path, tmp_path: Path) -> None:
    """BROKE: a publish re-signs the TUF repository before its first wheel; a root version
    planted or damaged in index/tuf/ (one file an attacker of the index tree, or a bad
    disk, can leave) raised out of it and nothing was published, every run. The wheels
    are published now and the report says why /tuf/ was not re-signed (as the watch
    cycle and `factory index rebuild` already did)."""
    from factory.publish import release_all
    from tests.security_fixtures import stage_build

    site = released_copy(released_base, tmp_path)
    tuf = site.index_dir / PREFIX
    (tuf / "2.root.json").write_bytes((tuf / "1.snapshot.json").read_bytes())
    report = release_all(site, [stage_build(site, "gamma")])
    assert [p.project for p in report.published] == ["gamma"]
    assert report.tuf_problem is not None and "2.root.json" in report.tuf_problem


def test_a_member_inflating_to_many_mib_is_hashed_not_held(
        published_index: PublishedIndex, tmp_path: Path) -> None:  # noqa: F811
    """BROKE (memory): every member of both wheels was held in memory to compare them, up
    to 512 MiB a side, twice per comparison (the differences, then the reasons): a half
    MiB upstream wheel held a GiB per publish and watch cycle. Members are hashed as they
    inflate now; only the dist-info WHEEL, METADATA and RECORD are kept (bounded)."""
    import tracemalloc
    import zipfile

    from factory.verify.equivalence import compare_wheels, explain

    ours = published_index.wheel("alpha")
    theirs = repack(ours, tmp_path / "up" / ours.name)
    with (zipfile.ZipFile(theirs, "a", zipfile.ZIP_DEFLATED) as archive,
          archive.open("alpha/data.bin", "w") as member):
        for _ in range(64):
            member.write(bytes(1 << 20))
    assert theirs.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        assert compare_wheels(ours, theirs)[1] == ["alpha/data.bin: only upstream"]
        assert {f["file"] for f in explain(ours, theirs)} == {"alpha/data.bin"}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
