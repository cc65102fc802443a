"""Attacking the `vex` index check (factory.verify.wholeindex.vex_check, factory.vex.verify_vex)
as someone who controls the index directory's files (not the auditor's keys/, not the
verifier's code), by a helper who did not write it. Each "WAS A BREAK" test failed on
commit 21486fc and holds since the fix that followed; the rest are attacks that held.
The fixes: jsonschema-rs answers only documents read with no float (as for SBOMs); a
signed payload that is no in-toto statement object is a failed row; an answers key the
index serves is named in the summary as not pinned, and `verify --all --key PEM` pins
one; the feed is read as the other trust files are (no link on the path, 256 KiB);
IRIs are checked in linear time (factory.verify.sbom._is_iri, tests/test_verify_iri.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from factory.attest.keys import load_signer
from factory.index import Index
from factory.verify import verify
from factory.verify.model import FAIL, PASS, SKIP, VEX, exit_code
from factory.verify.render import print_report
from factory.verify.view import IndexView
from factory.verify.wholeindex import vex_check
from factory.vex import (
    ENVELOPE_FILE,
    PREDICATE_TYPE,
    VEX_FILE,
    schema_errors,
    sign_vex,
    vex_bytes,
)
from tests.intoto_fixtures import copy_fixture  # noqa: F401  (the `copy` fixture)
from tests.pipeline_fixtures import PublishedIndex, published_index  # noqa: F401
from tests.test_verify_vex_feed import _check, _document, _serve_feed

ANSWERS = "answers.pub.pem"
ROOT = Path(__file__).parents[1]


# -- helpers ----------------------------------------------------------------------------------
def _attacker() -> tuple[object, bytes]:
    """A signer the attacker holds, and its public key as SPKI PEM."""
    from securesystemslib.signer import CryptoSigner

    signer = CryptoSigner.generate_ecdsa()
    return signer, signer.public_key.keyval["public"].encode()


def _envelope(payload: bytes, signer: object, payload_type: str | None = None) -> dict:
    from securesystemslib.dsse import Envelope

    from factory.advice import PAYLOAD_TYPE

    envelope = Envelope(payload, PAYLOAD_TYPE if payload_type is None else payload_type, {})
    envelope.sign(signer)  # type: ignore[arg-type]
    return envelope.to_dict()


def _statement(data: bytes, subject: list | None = None) -> bytes:
    from factory.advice import STATEMENT_TYPE

    return json.dumps({"_type": STATEMENT_TYPE, "predicateType": PREDICATE_TYPE,
                       "subject": subject if subject is not None else [
                           {"name": VEX_FILE,
                            "digest": {"sha256": hashlib.sha256(data).hexdigest()}}],
                       "predicate": {}}).encode()


def _write(trust: Path, data: bytes, envelope: dict | bytes) -> None:
    (trust / VEX_FILE).write_bytes(data)
    (trust / ENVELOPE_FILE).write_bytes(
        envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode())


def _unpinned(copy: PublishedIndex, pem: bytes) -> Path:
    """The auditor's keys/ pins no answers key (a checkout from before the feed, or an
    auditor who pinned --trusted-root and --owner-key, the only options there are); the
    index serves the attacker's key as its own."""
    (copy.settings.public_keys_dir / ANSWERS).unlink(missing_ok=True)
    served = copy.settings.index_dir / "trust" / ANSWERS
    served.write_bytes(pem)
    return served


def _row(copy: PublishedIndex, key: Path, pinned: bool = True) -> tuple[str, str]:
    check = vex_check(IndexView(copy.settings.index_dir, None), key, pinned)
    return check.status, check.message


def _two_statements_that_jsonschema_calls_equal() -> dict:
    """Two statements equal but for "version": 2**63 and 2.0**63: the same number to
    jsonschema's uniqueItems (2**63 == 2.0**63), two to jsonschema-rs."""
    document = _document()
    statement = document["statements"][0]  # type: ignore[index]
    document["statements"] = [dict(statement, version=2**63),  # type: ignore[arg-type]
                              dict(statement, version=float(2**63))]
    return document


# -- breaks -----------------------------------------------------------------------------------
def test_schema_non_unique_statements_are_not_valid_openvex() -> None:
    """WAS A BREAK: schema_errors takes jsonschema-rs's "valid" as final for any document; its
    uniqueItems tells 2**63 from 2.0**63 where jsonschema (the reference the check words
    its errors with) finds the two statements equal: "statements" is not unique."""
    from factory.vex import _validator

    document = json.loads(vex_bytes(_two_statements_that_jsonschema_calls_equal()))
    assert list(_validator().iter_errors(document))  # the reference validator: invalid
    assert schema_errors(document)  # was: [] (the compiled validator said valid)


def test_a_signed_schema_invalid_feed_does_not_pass(copy: PublishedIndex) -> None:
    """WAS A BREAK (same root cause, through the check): a feed the reference validator
    refuses verifies PASS as "valid OpenVEX"."""
    trust = _serve_feed(copy)
    data = vex_bytes(_two_statements_that_jsonschema_calls_equal())
    _write(trust, data, sign_vex(data, load_signer(copy.settings, "answers")))
    status, message = _check(copy)
    assert status == FAIL, message


def test_unpinned_key_a_signed_non_object_statement_is_a_failed_row(
        copy: PublishedIndex) -> None:
    """WAS A BREAK: with no pinned answers key the index's own is used (by design, said so);
    its holder signs a payload that is JSON but no object: statement.get() raises
    AttributeError out of verify_vex and vex_check (only VerificationError, ValueError and
    RecursionError are caught): a traceback, not a failed row."""
    trust = _serve_feed(copy)
    signer, pem = _attacker()
    key = _unpinned(copy, pem)
    data = (trust / VEX_FILE).read_bytes()
    for payload in (b"[]", b"null", b'"x"', b"1"):
        (trust / ENVELOPE_FILE).write_text(json.dumps(_envelope(payload, signer)))
        status, _ = _row(copy, key, pinned=False)  # was: AttributeError
        assert status == FAIL
    assert data == (trust / VEX_FILE).read_bytes()


def test_unpinned_answers_key_is_named_in_the_summary(copy: PublishedIndex) -> None:
    """WAS A BREAK: the root and owner key are pinned (keys/), the answers key is not (there is
    no option to pin it for --all: --key is for `verify answer`). The attacker turns a
    statement to not_affected, re-signs with their own key and serves that key (and the
    trust manifest to match). verify --all says PASS, "index sound", exit 0; the only
    word that the feed's key came from the index is in the vex row, which is printed
    with -v only; TrustInfo.served names the trusted root and owner key, never it."""
    trust = _serve_feed(copy)
    signer, pem = _attacker()
    _unpinned(copy, pem)
    work = copy.root / "attacker"
    work.mkdir()
    data = vex_bytes(_document("not_affected"))
    (work / VEX_FILE).write_bytes(data)
    (work / ENVELOPE_FILE).write_text(json.dumps(sign_vex(data, signer)))  # type: ignore[arg-type]
    (work / ANSWERS).write_bytes(pem)
    Index.of(copy.settings).publish_trust({name: work / name
                                           for name in (VEX_FILE, ENVELOPE_FILE, ANSWERS)})
    assert (trust / VEX_FILE).read_bytes() == data
    report = verify(copy.settings, everything=True, check_advisories=False, workers=1)
    buffer = io.StringIO()
    print_report(report, console=Console(file=buffer, width=4000, color_system=None))
    out = buffer.getvalue()
    assert [c.status for c in report.index if c.name == VEX] == [PASS]  # signed by it
    # Secure: the run does not read as sound and pinned without naming the answers key.
    assert "answers key" in out or exit_code(report) != 0, out[-600:]


def test_a_linked_trust_directory_fails_the_vex_row(copy: PublishedIndex,
                                                   tmp_path: Path) -> None:
    """WAS A BREAK: read_plain's O_NOFOLLOW guards the last component only: trust/ itself a
    link to a directory elsewhere is read through, and the feed there passes (a link
    in place of vex.json fails: test_a_link_in_place_of_the_feed_fails)."""
    trust = _serve_feed(copy)
    elsewhere = tmp_path / "elsewhere"
    os.replace(trust, elsewhere)
    trust.symlink_to(elsewhere, target_is_directory=True)
    status, message = _check(copy)
    assert status == FAIL, message


_CHILD = """
import json, os, resource, sys
from pathlib import Path
from factory.verify.view import IndexView
from factory.verify.wholeindex import vex_check
index, key, limit = IndexView(Path(sys.argv[1]), None), Path(sys.argv[2]), int(sys.argv[3])
if limit:  # address space: what is mapped now, and `limit` bytes more
    pages = int(open("/proc/self/statm").read().split()[0])
    now = pages * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (now + limit, now + limit))
check = vex_check(index, key, sys.argv[4] == "pinned")
print(json.dumps([check.status, check.message]))
"""


def _in_child(copy: PublishedIndex, key: Path, *, limit: int = 0, pinned: bool = True,
              timeout: float = 60) -> tuple[str, str] | str:
    """vex_check in a fresh interpreter: its row, or why there was none."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_CHILD), str(copy.settings.index_dir),
             str(key), str(limit), "pinned" if pinned else "served"],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return f"no answer in {timeout} s"
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1]
    status, message = json.loads(done.stdout)
    return status, message


def test_an_oversized_envelope_is_refused_before_it_is_parsed(copy: PublishedIndex) -> None:
    """WAS A BREAK: both files are read up to 64 MiB (_VEX_LIMIT; trust files are 256 KiB,
    TRUST_MAX_BYTES, and answers 4 MiB, advice.MAX_ENVELOPE). A 64 MiB envelope of
    empty objects is ~1.7 GB once json.loads has it, and verify_vex copies it again
    (json.loads(json.dumps(...))): with 1 GiB of address space to spare the verifier
    dies of MemoryError (a traceback), where a bound read would fail the row."""
    trust = _serve_feed(copy)
    pad = (60 << 20) // 3
    (trust / ENVELOPE_FILE).write_bytes(
        b'{"payloadType": "x", "payload": "", "signatures": [], "pad": ['
        + b"{}," * pad + b"{}]}")
    answer = _in_child(copy, copy.settings.public_keys_dir / ANSWERS, limit=1 << 30)
    assert isinstance(answer, tuple) and answer[0] == FAIL, answer


def test_unpinned_key_non_ascii_iris_do_not_hang_the_verifier(copy: PublishedIndex) -> None:
    """WAS A BREAK: with the index's own key, its holder signs a feed (240 KB in UTF-8: under
    even the 256 KiB of other trust files) of 40 statements whose "@id" are distinct
    3,000-character non-ASCII IRIs. The "iri" format goes to rfc3987-syntax's Earley
    parser (sbom._is_iri: about 1.6 s per such IRI here): about a minute of CPU for one
    feed; at the 64 MiB read limit, hours."""
    trust = _serve_feed(copy)
    signer, pem = _attacker()
    key = _unpinned(copy, pem)
    document = _document()
    statement = document["statements"][0]  # type: ignore[index]
    document["statements"] = [dict(statement, **{"@id": f"https://x.invalid/{i}/" + "ä" * 3000})
                              for i in range(40)]
    data = (json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False)
            + "\n").encode()
    assert len(data) < 256 * 1024
    _write(trust, data, sign_vex(data, signer))  # type: ignore[arg-type]
    answer = _in_child(copy, key, pinned=False, timeout=12)
    assert isinstance(answer, tuple), answer  # was: no answer in 12 s


# -- attacks that held ------------------------------------------------------------------------
def test_held_a_signature_from_the_served_feed_on_another_payload(copy: PublishedIndex) -> None:
    """The real signature (same keyid) moved onto a tampered statement, alone or beside
    an attacker's: DSSE signs the payload type and payload, so neither verifies."""
    trust = _serve_feed(copy)
    real = json.loads((trust / ENVELOPE_FILE).read_text())
    signer, _ = _attacker()
    data = vex_bytes(_document("not_affected"))
    forged = _envelope(_statement(data), signer)
    (trust / VEX_FILE).write_bytes(data)
    for signatures in (real["signatures"], real["signatures"] + forged["signatures"],
                       forged["signatures"] + real["signatures"],
                       real["signatures"] * 2):  # (a keyid twice: refused)
        (trust / ENVELOPE_FILE).write_text(json.dumps(dict(forged, signatures=signatures)))
        assert _check(copy)[0] == FAIL


def test_held_keyid_tricks(copy: PublishedIndex) -> None:
    trust = _serve_feed(copy)
    envelope = json.loads((trust / ENVELOPE_FILE).read_text())
    for keyid in ("", "0" * 64, envelope["signatures"][0]["keyid"].upper(), None):
        signature = dict(envelope["signatures"][0], keyid=keyid)
        if keyid is None:
            del signature["keyid"]
        (trust / ENVELOPE_FILE).write_text(json.dumps(dict(envelope, signatures=[signature])))
        assert _check(copy)[0] == FAIL


@pytest.mark.parametrize("payload_type", ["application/vnd.in-toto+json ",
                                          "application/vnd.in-toto+JSON",
                                          "application/json", ""])
def test_held_payload_type_variants_even_when_signed(copy: PublishedIndex,
                                                     payload_type: str) -> None:
    trust = _serve_feed(copy)
    data = (trust / VEX_FILE).read_bytes()
    _write(trust, data, _envelope(_statement(data), load_signer(copy.settings, "answers"),
                                  payload_type))
    assert _check(copy)[0] == FAIL


def test_held_subject_variants_even_when_signed(copy: PublishedIndex) -> None:
    trust = _serve_feed(copy)
    data = (trust / VEX_FILE).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    good = {"name": VEX_FILE, "digest": {"sha256": digest}}
    signer = load_signer(copy.settings, "answers")
    for subject in ([good, {"name": "other.json", "digest": {"sha256": "0" * 64}}],
                    [{"name": VEX_FILE, "digest": {"sha256": digest.upper()}}],
                    [{"name": "./vex.json", "digest": {"sha256": digest}}],
                    [{"name": VEX_FILE, "digest": {"sha256": digest, "sha512": "0"}}],
                    [good, good], []):
        _write(trust, data, _envelope(_statement(data, subject), signer))
        assert _check(copy)[0] == FAIL, subject


@pytest.mark.parametrize("change", ["bom", "trailing", "duplicate key"])
def test_held_bytes_around_the_signed_feed(copy: PublishedIndex, change: str) -> None:
    trust = _serve_feed(copy)
    data = (trust / VEX_FILE).read_bytes()
    changed = {"bom": b"\xef\xbb\xbf" + data, "trailing": data + b" ",
               "duplicate key": data.replace(b'"status": "fixed"',
                                             b'"status": "fixed", "status": "not_affected"')
               }[change]
    assert changed != data
    (trust / VEX_FILE).write_bytes(changed)
    assert _check(copy)[0] == FAIL


@pytest.mark.parametrize("envelope", [
    b"[" * 100_000, b"1" * 5000, b"NaN", b'"x"', b"[1, 2]", b"\xff\xfe", b"",
    b'{"payload": "!!", "payloadType": "x", "signatures": []}',
    b'{"payload": "", "payloadType": "x", "signatures": [{"keyid": [], "sig": 1}]}',
    b'{"payload": 1e999, "payloadType": {}, "signatures": {}}',
    b'{"a": ' * 900 + b"1" + b"}" * 900])
def test_held_malformed_envelopes_fail_without_a_crash(copy: PublishedIndex,
                                                       envelope: bytes) -> None:
    trust = _serve_feed(copy)
    (trust / ENVELOPE_FILE).write_bytes(envelope)
    assert _check(copy)[0] == FAIL


@pytest.mark.parametrize("kind", ["fifo", "directory", "sparse 1 GB", "dangling link"])
def test_held_odd_files_in_place_of_the_feed(copy: PublishedIndex, kind: str,
                                             tmp_path: Path) -> None:
    trust = _serve_feed(copy)
    path = trust / (ENVELOPE_FILE if kind == "directory" else VEX_FILE)
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "sparse 1 GB":
        with open(path, "wb") as handle:
            handle.truncate(1 << 30)
    else:
        path.symlink_to(tmp_path / "nothing")
    assert _check(copy)[0] == FAIL


def test_held_a_linked_answers_key_is_still_the_index_s_own(copy: PublishedIndex,
                                                           tmp_path: Path) -> None:
    """keys/ pins nothing; trust/answers.pub.pem is a link to a PEM elsewhere: followed
    (the key is read with follow_links), but audit calls it served, not pinned."""
    from factory.verify.run import _served

    trust = _serve_feed(copy)
    elsewhere = tmp_path / ANSWERS
    elsewhere.write_bytes((copy.settings.public_keys_dir / ANSWERS).read_bytes())
    key = _unpinned(copy, b"")
    key.unlink()
    key.symlink_to(elsewhere)
    assert _served(key, trust)
    assert _row(copy, key, pinned=not _served(key, trust)) == (
        PASS, f"1 OpenVEX statements, signed by the answers key {key} (served by the index "
              "itself, not pinned)")


def test_held_no_answers_key_is_a_skip_exit_3_and_not_sound(copy: PublishedIndex) -> None:
    """Neither keys/ nor trust/ has the answers key (the manifest rewritten to match):
    the vex row is a SKIP, the run exits 3 and the summary does not say "index sound"."""
    _serve_feed(copy)
    (copy.settings.public_keys_dir / ANSWERS).unlink()
    (copy.settings.index_dir / "trust" / ANSWERS).unlink()
    manifest = copy.settings.index_dir / "records" / "_trust.json"
    files = json.loads(manifest.read_text())
    files["files"].pop(ANSWERS, None)
    manifest.write_text(json.dumps(files))
    report = verify(copy.settings, everything=True, check_advisories=False, workers=1)
    assert [c.status for c in report.index if c.name == VEX] == [SKIP]
    assert not report.index_failures(), report.index_failures()
    assert exit_code(report) == 3 and report.index_sound is None
    buffer = io.StringIO()
    print_report(report, console=Console(file=buffer, width=4000, color_system=None))
    assert "index sound" not in buffer.getvalue() and "index not checked" in buffer.getvalue()


def test_held_float_and_integer_versions_jsonschema_rs_agrees_with() -> None:
    """The other number differences tried: jsonschema-rs is stricter or equal there."""
    for a, b in ((1, 1.0), (5, 5.0), (2**53, float(2**53)), (2**100, 2**100)):
        document = _document()
        statement = document["statements"][0]  # type: ignore[index]
        document["statements"] = [dict(statement, version=a),  # type: ignore[arg-type]
                                  dict(statement, version=b)]
        assert schema_errors(json.loads(vex_bytes(document)))
    for value in (0.5, float("nan"), float("inf"), True, 0):
        document = _document()
        document["version"] = value
        assert schema_errors(json.loads(json.dumps(document)))


def test_held_base64_variants_of_the_real_payload(copy: PublishedIndex) -> None:
    """The real signature over the real payload, re-encoded (urlsafe, unpadded): the
    payload decoded is the same bytes, so this is the same signed statement: PASS is
    right, and the feed is the signed one."""
    trust = _serve_feed(copy)
    envelope = json.loads((trust / ENVELOPE_FILE).read_text())
    raw = base64.b64decode(envelope["payload"])
    for encoded in (base64.b64encode(raw).decode().rstrip("="),
                    base64.urlsafe_b64encode(raw).decode()):
        (trust / ENVELOPE_FILE).write_text(json.dumps(dict(envelope, payload=encoded)))
        status = _check(copy)[0]
        assert status in (PASS, FAIL)
