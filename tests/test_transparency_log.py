"""The embedded transparency log, published (C2SP tlog-tiles under /log/) and watched:
`factory log verify` and `factory log monitor` (factory.sign.monitor).

The format and the tile arithmetic are checked on a synthetic log (no signing, no
fsync per entry); the rest on a released index (alpha and beta signed for real),
copied before anything is tampered with.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from factory.config import Settings
from factory.errors import VerificationError
from factory.index import Index, create_app
from factory.sign._authority.keys import load_keys
from factory.sign._authority.log import sign_note
from factory.sign._authority.static import write_static
from factory.sign.monitor import (
    DirectorySource,
    HttpSource,
    TrustedRoot,
    check_consistency,
    load_trusted_root,
    monitor,
    read_log,
    verify_log,
)
from factory.sign.sign import open_signer
from factory.sign.tiles import (
    CHECKPOINT,
    MAX_CHECKPOINT_BYTES,
    entries_path,
    entry_bundle,
    index_path,
    parse_checkpoint,
    parse_entry_bundle,
    parse_path,
    tile_path,
)
from tests import factories
from tests.security_fixtures import released_copy
from tests.signing_fixtures import (
    IDENTITY,
    ISSUER,
    entry_timestamps,
    log_root,
    synthetic_log,
)

# -- the format ----------------------------------------------------------------------------------


def test_tile_paths_follow_tlog_tiles() -> None:
    assert index_path(0) == "000" and index_path(1000) == "x001/000"
    assert index_path(1234067) == "x001/x234/067"
    assert tile_path(0, 1234067, 8) == "tile/0/x001/x234/067.p/8"
    assert entries_path(2, 256) == "tile/entries/002"
    for path, parsed in [("tile/0/x001/x234/067.p/8", ("tile", 0, 1234067, 8)),
                         ("tile/entries/002", ("entries", -1, 2, 256)),
                         ("timestamps/001.p/5", ("timestamps", -1, 1, 5)),
                         ("checkpoint", ("checkpoint", 0, 0, 0)),
                         ("checkpoints/605", ("checkpoints", 0, 605, 0))]:
        assert parse_path(path) == parsed
    for bad in ["tile/0/../000", "tile/0/1", "tile/0/000.p/256", "tile/0/000.p/0",
                "tile/0/x000/001", "tile/6/000", "tile/0/000/", "tile/0/00\u0663",
                "checkpoints/007", "records/alpha.json", "tile/entries/000.p/5/x", ""]:
        assert parse_path(bad) is None, bad


def test_tiles_across_tile_boundaries_grow_and_verify(tmp_path: Path) -> None:
    """600 entries (two full tiles, a partial, a level-1 tile), then 800: the published
    tree verifies each time, the partials of a tile gone full go, full tiles stay byte for
    byte, and an earlier checkpoint still verifies from what is published."""
    key = ec.generate_private_key(ec.SECP256R1())
    bodies = [f"entry {i}".encode() * (i % 7 + 1) for i in range(800)]
    out = tmp_path / "log"
    write_static(out, *synthetic_log(key, bodies[:600]), entry_timestamps(key))
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["checkpoint", "checkpoints/600", "tile/0/000", "tile/0/001",
                     "tile/0/002.p/88", "tile/1/000.p/2", "tile/entries/000",
                     "tile/entries/001", "tile/entries/002.p/88", "timestamps/000",
                     "timestamps/001", "timestamps/002.p/88"]
    full = (out / "tile/entries/001").read_bytes()
    first = read_log(DirectorySource(out), log_root(key))
    assert first.size == 600 and first.entries[599].body == bodies[599]
    assert first.entries[5].integrated_time == 1_700_000_005

    # the same size again: nothing written
    assert write_static(out, *synthetic_log(key, bodies[:600]), entry_timestamps(key)) == 0
    write_static(out, *synthetic_log(key, bodies), entry_timestamps(key))
    assert not (out / "tile/entries/002.p/88").exists()
    assert (out / "tile/entries/002").is_file() and (out / "tile/entries/003.p/32").is_file()
    assert not (out / "tile/0/002.p").exists() and (out / "tile/1/000.p/3").is_file()
    assert (out / "tile/1/000.p/2").is_file()  # its tile is not full yet: kept
    assert (out / "tile/entries/001").read_bytes() == full
    second = read_log(DirectorySource(out), log_root(key))
    check_consistency(second, (out / "checkpoints/600").read_bytes())

    # the checkpoint of 600 again: its partials are gone, read from the full tiles
    # (tlog-tiles lets a log drop a partial once the full tile is there)
    shutil.copy(out / "checkpoints/600", out / CHECKPOINT)
    assert read_log(DirectorySource(out), log_root(key)).size == 600
    (out / "tile/0/002").unlink()
    with pytest.raises(VerificationError, match=r"^tile/0/002.p/88 is not published"):
        read_log(DirectorySource(out), log_root(key))


def test_a_log_that_does_not_extend_the_published_one_is_not_published_over_it(
        tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    write_static(tmp_path, *synthetic_log(key, [b"a", b"b", b"c"]), entry_timestamps(key))
    with pytest.raises(Exception, match="does not extend"):
        write_static(tmp_path, *synthetic_log(key, [b"a", b"B", b"c", b"d"]),
                     entry_timestamps(key))
    with pytest.raises(Exception, match="does not extend"):
        write_static(tmp_path, *synthetic_log(key, [b"a", b"b"]), entry_timestamps(key))


@pytest.mark.parametrize("data, message", [
    (b"x" * (MAX_CHECKPOINT_BYTES + 1), "larger than"),
    ("origin\n08\n{}\n\n\u2014 k AAAAAAAA\n", "tree size"),
    ("origin\n1_000\n{}\n\n\u2014 k AAAAAAAA\n", "tree size"),
    ("origin\n99999999999999\n{}\n\n\u2014 k AAAAAAAA\n", "tree size"),
    ("origin\n3\nnot-base64\n\n\u2014 k AAAAAAAA\n", "root hash"),
    ("origin\n3\n{}\n\u2014 k AAAAAAAA\n", "signed note"),
    ("origin\n3\n{}\n\n- k AAAAAAAA\n", "signature line"),
    ("origin\n3\n{}\n\n" + "\u2014 k AAAAAAAA\n" * 17, "signatures"),
    (b"\xff\xfe", "UTF-8"),
])
def test_a_malformed_or_huge_checkpoint_is_one_error(tmp_path: Path, data: str | bytes,
                                                     message: str) -> None:
    raw = data if isinstance(data, bytes) else \
        data.format(base64.b64encode(b"r" * 32).decode()).encode()
    (tmp_path / CHECKPOINT).write_bytes(raw)
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(VerificationError, match=message) as caught:
        read_log(DirectorySource(tmp_path), log_root(key))
    assert "\n" not in caught.value.message


def test_entry_bundles_are_exact() -> None:
    bundle = entry_bundle([b"one", b"", b"three"])
    assert parse_entry_bundle(bundle, 3) == [b"one", b"", b"three"]
    for bad, width in [(bundle, 2), (bundle, 4), (bundle[:-1], 3), (bundle + b"\x00", 3)]:
        with pytest.raises(ValueError):
            parse_entry_bundle(bad, width)
    with pytest.raises(ValueError, match="does not fit"):
        entry_bundle([b"x" * 65536])


# -- a released index --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def released_log(released_base: Path) -> Settings:
    return factories.settings(released_base, project="project")


@pytest.fixture
def copy(released_base: Path, tmp_path: Path) -> Settings:
    return released_copy(released_base, tmp_path)


def _trusted(settings: Settings) -> TrustedRoot:
    return load_trusted_root((settings.public_keys_dir / "trusted_root.json").read_bytes())


def _log_dir(settings: Settings, tmp_path: Path) -> Path:
    """A copy of the published log to tamper with."""
    shutil.copytree(settings.index_dir / "log", tmp_path / "log")
    return tmp_path / "log"


def _bundle_path(log: Path) -> Path:
    (path,) = list((log / "tile" / "entries").rglob("*[0-9]"))
    return path


def test_releasing_publishes_the_log_and_it_verifies(released_log: Settings,
                                                     tmp_path: Path) -> None:
    root = _trusted(released_log)
    source = DirectorySource(released_log.index_dir)
    first = verify_log(source, root, tmp_path)
    assert first.previous is None and first.kept is not None and first.kept.is_file()
    # two wheels: each signed, and each statement (SLSA, SBOM ..., publish) too
    assert first.log.size >= 4 and first.log.size % 2 == 0
    note = parse_checkpoint((released_log.index_dir / "log" / CHECKPOINT).read_bytes())
    assert note.origin == load_keys(released_log.authority_dir).origin
    again = verify_log(source, root, tmp_path)
    assert again.previous is not None and again.previous.size == first.log.size


def test_a_tampered_entry_fails(released_log: Settings, tmp_path: Path) -> None:
    log = _log_dir(released_log, tmp_path)
    path = _bundle_path(log)
    data = bytearray(path.read_bytes())
    at = data.index(b"sha256") + 10
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="do not give the checkpoint's root") as caught:
        read_log(DirectorySource(log), _trusted(released_log))
    assert "\n" not in caught.value.message


def test_a_dropped_entry_fails(released_log: Settings, tmp_path: Path) -> None:
    log = _log_dir(released_log, tmp_path)
    path = _bundle_path(log)
    width = int(path.name)
    bodies = parse_entry_bundle(path.read_bytes(), width)
    path.write_bytes(entry_bundle(bodies[:2] + bodies[3:]))
    with pytest.raises(VerificationError, match=f"holds {width - 1} entries"):
        read_log(DirectorySource(log), _trusted(released_log))


def test_a_forged_checkpoint_fails(released_log: Settings, tmp_path: Path) -> None:
    log = _log_dir(released_log, tmp_path)
    note = parse_checkpoint((log / CHECKPOINT).read_bytes())
    text = note.signed.decode()
    forger = ec.generate_private_key(ec.SECP256R1())
    (log / CHECKPOINT).write_text(sign_note(forger, text))
    with pytest.raises(VerificationError, match="not signed by the log key of the trusted root"):
        read_log(DirectorySource(log), _trusted(released_log))
    # the log's own key hint, with another key's signature: a forgery, said as one
    (_name, hint, _sig) = note.signatures[0]
    forged = sign_note(forger, text).rsplit(" ", 1)[0]
    raw = base64.b64decode(sign_note(forger, text).rsplit(" ", 1)[1])
    (log / CHECKPOINT).write_text(f"{forged} {base64.b64encode(hint + raw[4:]).decode()}\n")
    with pytest.raises(VerificationError, match="signature is invalid"):
        read_log(DirectorySource(log), _trusted(released_log))


def _rewritten(settings: Settings, log: Path, bodies: list[bytes]) -> None:
    """Publish at ``log`` a log of ``bodies`` signed with the real log key (a log that
    rewrote its history)."""
    keys = load_keys(settings.authority_dir)
    entries, tree, _note = synthetic_log(keys.log_key, bodies)
    root = base64.b64encode(tree.root(len(bodies))).decode()
    shutil.rmtree(log)
    write_static(log, entries, tree,
                 sign_note(keys.log_key, f"{keys.origin}\n{len(bodies)}\n{root}\n"),
                 entry_timestamps(keys.log_key))


def test_a_rewritten_history_fails_against_the_kept_checkpoint(released_log: Settings,
                                                               tmp_path: Path) -> None:
    log = _log_dir(released_log, tmp_path)
    root = _trusted(released_log)
    kept = verify_log(DirectorySource(log), root, tmp_path / "state")
    bodies = [e.body for e in kept.log.entries]
    # the same key, a longer log, but entry 1 replaced: not an extension of what was seen
    _rewritten(released_log, log, [bodies[0], b'{"forged":1}', *bodies[2:], b'{"more":1}'])
    read_log(DirectorySource(log), root)  # well-formed and signed on its own
    with pytest.raises(VerificationError, match="rewrote its history") as caught:
        verify_log(DirectorySource(log), root, tmp_path / "state")
    assert "\n" not in caught.value.message
    # and a shorter log (a rollback) signed with the same key
    _rewritten(released_log, log, bodies[:3])
    with pytest.raises(VerificationError, match="the log shrank"):
        verify_log(DirectorySource(log), root, tmp_path / "state")


def test_a_smaller_checkpoint_that_is_not_a_prefix_fails(released_log: Settings,
                                                         tmp_path: Path) -> None:
    keys = load_keys(released_log.authority_dir)
    log = read_log(DirectorySource(released_log.index_dir), _trusted(released_log))
    bodies = [e.body for e in log.entries]
    other = [bodies[0], b'{"not":"what the log holds"}', bodies[2]]
    _entries, tree, _note = synthetic_log(keys.log_key, other)
    root = base64.b64encode(tree.root(3)).decode()
    older = sign_note(keys.log_key, f"{keys.origin}\n3\n{root}\n").encode()
    with pytest.raises(VerificationError, match="rewrote its history"):
        check_consistency(log, older, "given checkpoint")
    prefix = synthetic_log(keys.log_key, bodies[:3])[1].root(3)
    good = sign_note(keys.log_key,
                     f"{keys.origin}\n3\n{base64.b64encode(prefix).decode()}\n").encode()
    assert check_consistency(log, good).size == 3


def test_a_huge_entry_bundle_is_one_error(released_log: Settings, tmp_path: Path) -> None:
    log = _log_dir(released_log, tmp_path)
    path = _bundle_path(log)
    with path.open("ab") as handle:
        handle.truncate(256 * 65537 + 1)
    with pytest.raises(VerificationError, match="larger than"):
        read_log(DirectorySource(log), _trusted(released_log))


def test_monitor_lists_the_factory_identity_and_flags_another(copy: Settings,
                                                              tmp_path: Path) -> None:
    """A signature made with the embedded authority under another identity (anyone who
    can reach its token key can) is in the log: the monitor names it, exit 1."""
    before = read_log(DirectorySource(copy.index_dir), _trusted(copy)).size
    mallory = dataclasses.replace(copy, identity="mallory@attacker.invalid")
    stray = tmp_path / "stray.whl"
    stray.write_bytes(b"not the factory's")
    with open_signer(mallory) as signer:
        signer.sign_artifact(stray)
    log = read_log(DirectorySource(copy.index_dir), _trusted(copy))
    assert log.size == before + 1

    ours = monitor(log, IDENTITY, ISSUER)
    assert len(ours.listed) == before and not ours.alarm
    assert [s.index for s in ours.listed] == sorted(range(before), reverse=True)
    assert all(s.identity == IDENTITY and s.trusted_ca for s in ours.listed)

    watch = monitor(log, IDENTITY, expect=[IDENTITY])
    assert watch.alarm and len(watch.unexpected) == 1
    (odd,) = watch.unexpected
    digest = hashlib.sha256(stray.read_bytes()).hexdigest()
    assert (odd.index, odd.identity, odd.digest) == (before, "mallory@attacker.invalid",
                                                     f"sha256:{digest}")

    # the CLI, as an auditor runs it: one line per entry, newest first, exit 1
    state = tmp_path / "auditor"
    done = factories.cli(copy, "log", "monitor", "--index", str(copy.index_dir),
                         "--expect", IDENTITY, FACTORY_STATE_DIR=str(state))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == before + 1 and lines[0].split()[1] == str(before)
    assert "mallory@attacker.invalid" in lines[0] and digest in lines[0]
    assert "UNEXPECTED" in done.stderr and "mallory@attacker.invalid" in done.stderr
    ok = factories.cli(copy, "log", "verify", "--index", str(copy.index_dir),
                       FACTORY_STATE_DIR=str(state))
    assert ok.returncode == 0 and "consistent with the earlier checkpoint" in ok.stdout
    # An identity that matches nothing (a trailing slash): the identities the log holds
    # are named, as it was exit 0 with "0 of N entries" and nothing to go on.
    assert watch.seen == {IDENTITY, "mallory@attacker.invalid"}
    none = factories.cli(copy, "log", "monitor", "--index", str(copy.index_dir),
                         "--identity", IDENTITY + "/", FACTORY_STATE_DIR=str(state))
    assert none.returncode == 0 and f"0 of {before + 1} entries" in none.stderr
    assert "identities in the log" in none.stderr and IDENTITY in none.stderr


def test_the_log_over_http(released_log: Settings, tmp_path: Path) -> None:
    """`factory serve` serves /log/ (the tlog-tiles paths only, from the tree, never
    through a link); the monitor reads it over HTTP as from the directory."""
    with TestClient(create_app(Index.of(released_log))) as client:
        checkpoint = client.get("/log/checkpoint")
        assert checkpoint.status_code == 200
        assert checkpoint.headers["cache-control"] == "no-cache"
        assert checkpoint.content == (released_log.index_dir / "log/checkpoint").read_bytes()
        for bad in ["/log/../records/_catalog.json", "/log/records/alpha.json",
                    "/log/tile/0/000.p/0", "/log/tile/9/000", "/log/tile/entries/999"]:
            assert client.get(bad).status_code == 404, bad
        source = HttpSource("http://testserver", client)
        log = verify_log(source, load_trusted_root(source.trusted_root() or b""), tmp_path)
        assert log.log.size == read_log(DirectorySource(released_log.index_dir),
                                        _trusted(released_log)).size


def test_the_server_refuses_a_log_file_that_is_a_link(copy: Settings) -> None:
    log = copy.index_dir / "log"
    (log / CHECKPOINT).unlink()
    (log / CHECKPOINT).symlink_to(copy.authority_dir / "tlog-key.pem")
    with TestClient(create_app(Index.of(copy))) as client:
        answer = client.get("/log/checkpoint")
        assert answer.status_code == 500 and b"PRIVATE" not in answer.content


def test_timestamps_are_signed(released_log: Settings, tmp_path: Path) -> None:
    log = _log_dir(released_log, tmp_path)
    (path,) = list((log / "timestamps").rglob("*[0-9]"))
    lines = path.read_bytes().splitlines()
    value = json.loads(lines[0])
    value["integratedTime"] += 3600  # the log's time moved: its SET no longer holds
    path.write_bytes(b"\n".join([json.dumps(value).encode(), *lines[1:]]) + b"\n")
    with pytest.raises(VerificationError, match="entry 0's signed time"):
        read_log(DirectorySource(log), _trusted(released_log))


def test_index_check_takes_the_log_and_names_a_stray_file_in_it(copy: Settings) -> None:
    index = Index.of(copy)
    assert index.check() == []
    (copy.index_dir / "log" / "tile" / "notes.txt").write_text("put there")
    (problem,) = index.check()
    assert "log/tile/notes.txt" in problem and "transparency log" in problem


@pytest.mark.parametrize("argv, says", [
    (["--from", "/nonexistent"], "--from: /nonexistent: no such file"),
    (["--trusted-root", "/nonexistent"], "--trusted-root: /nonexistent: no such file"),
    (["--from", "{readme}"], "--from {readme} is not a log checkpoint"),
    (["--trusted-root", "{readme}"], "--trusted-root {readme}: the trusted root is malformed"),
])
def test_a_file_named_wrongly_is_a_usage_error(tmp_path: Path, argv: list[str],
                                              says: str) -> None:
    """--from and --trusted-root naming the wrong file: exit 2, the option named, a hint
    about what to give (it said exit 1 and "do not install it"; a helper's new-user
    pass), before the log is read."""
    from typer.testing import CliRunner

    from factory.cli._app import app
    from factory.sign.monitor import NamedFileError

    readme = tmp_path / "README"
    readme.write_text("not a checkpoint\n")
    argv = [a.format(readme=readme) for a in argv]
    runner = CliRunner()
    import factory.cli.tlog  # noqa: F401  (registers `log`)

    done = runner.invoke(app, ["log", "verify", "--index", str(tmp_path / "nowhere"), *argv])
    assert isinstance(done.exception, NamedFileError), done.output
    assert done.exception.exit_code == 2 and says.format(readme=readme) in \
        done.exception.message
    assert "do not install" not in done.exception.hint
