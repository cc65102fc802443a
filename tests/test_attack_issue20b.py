"""Attack pass on issue 20's verify speed-ups (by someone who did not write them).

The memo of verified signatures and chains (factory.verify.trust: MemoKeyring,
MemoTrustedRoot, ChainMemoVerifier), in-toto's validation planned once per class
(factory.verify.intoto), and the child `verify --all` forks before its imports
(factory.verify.early), attacked by whoever controls the served index tree (files,
links, sizes). Each case is a break, fixed in factory/ (the test says what broke), or
a case that held. No network, no containers.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify.policy import Identity
from sigstore_models.common.v1 import HashAlgorithm

from factory.sign import init_authority, open_signer
from factory.verify.model import FAIL, PASS
from tests import factories
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)
from tests.signing_fixtures import (
    IDENTITY,
    ISSUER,
    Signed,
    authority_fixture,  # noqa: F401 - fixture
    signed_fixture,  # noqa: F401 - fixture
)

POLICY = Identity(identity=IDENTITY, issuer=ISSUER)


@pytest.fixture
def copy(published_index: PublishedIndex, tmp_path: Path) -> PublishedIndex:  # noqa: F811
    return clone(published_index, tmp_path / "copy")


def _memo_verifier(root: Path) -> Any:
    from factory.verify.trust import ChainMemoVerifier

    return ChainMemoVerifier(trusted_root=TrustedRoot.from_file(str(root)))


def _hashed(data: bytes) -> Hashed:
    return Hashed(algorithm=HashAlgorithm.SHA2_256, digest=hashlib.sha256(data).digest())


# -- the memo of verified signatures and chains ---------------------------------------------
def test_held_a_bundle_verified_once_does_not_verify_other_data(signed: Signed) -> None:
    """Held: the memo keeps the certificate's chain and the log's signatures, never the
    artifact signature: the same bundle offered for other bytes fails, warm or cold."""
    verifier = _memo_verifier(signed.trusted_root)
    data = signed.wheel.read_bytes()
    verifier.verify_artifact(_hashed(data), Bundle.from_json(signed.bundle), POLICY)
    for other in (data + b"\0", data[:-1], b""):
        with pytest.raises(SigstoreError, match="[Ss]ignature|digest"):
            verifier.verify_artifact(_hashed(other), Bundle.from_json(signed.bundle), POLICY)
    # The DSSE statement's bundle offered as the wheel's message signature: refused.
    with pytest.raises((SigstoreError, ValueError)):
        verifier.verify_artifact(_hashed(data), Bundle.from_json(signed.statement_bundle),
                                 POLICY)


def test_held_no_memo_crosses_from_one_trusted_root_to_another(signed: Signed,
                                                               tmp_path: Path) -> None:
    """Held: two Trusts in one process (a second root in the same run, a long-lived caller):
    a warm verifier of the genuine root leaves nothing a rogue root's verifier uses, and
    the other way round; the rogue's keyrings never accept a triple the genuine verified."""
    from sigstore._internal.trust import KeyringPurpose

    rogue = factories.settings(tmp_path / "rogue", project="project")
    init_authority(rogue)  # same identity and issuer, other keys
    with open_signer(rogue) as signer:
        rogue_bundle = signer.sign_artifact(signed.wheel)
    data = signed.wheel.read_bytes()
    genuine = _memo_verifier(signed.trusted_root)
    genuine.verify_artifact(_hashed(data), Bundle.from_json(signed.bundle), POLICY)
    other = _memo_verifier(rogue.public_keys_dir / "trusted_root.json")
    other.verify_artifact(_hashed(data), Bundle.from_json(rogue_bundle), POLICY)
    with pytest.raises(SigstoreError):
        other.verify_artifact(_hashed(data), Bundle.from_json(signed.bundle), POLICY)
    with pytest.raises(SigstoreError):
        genuine.verify_artifact(_hashed(data), Bundle.from_json(rogue_bundle), POLICY)
    rings = [v._trusted_root.ct_keyring(KeyringPurpose.VERIFY) for v in (genuine, other)]
    assert rings[0] is not rings[1] and rings[0]._good and rings[1]._good
    assert not rings[0]._good & rings[1]._good


def _reissued(signed: Signed, edit: str) -> str:
    """The wheel's bundle, its certificate re-issued by the same CA (the embedded SCT
    copied as it is) with another serial or one more extension: it chains; only the SCT
    can tell."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    data = json.loads(signed.bundle)
    material = data["verificationMaterial"]["certificate"]
    leaf = x509.load_der_x509_certificate(base64.b64decode(material["rawBytes"]))
    ca_key = serialization.load_pem_private_key(
        (signed.settings.authority_dir / "ca-key.pem").read_bytes(), password=None)
    builder = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(leaf.issuer)
               .public_key(leaf.public_key())
               .serial_number(x509.random_serial_number() if edit == "serial"
                              else leaf.serial_number)
               .not_valid_before(leaf.not_valid_before_utc)
               .not_valid_after(leaf.not_valid_after_utc))
    for extension in leaf.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    if edit == "extension":
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.99"), b"\x0c\x01x"), critical=False)
    forged = builder.sign(ca_key, hashes.SHA384())  # type: ignore[arg-type]
    material["rawBytes"] = base64.b64encode(forged.public_bytes(
        serialization.Encoding.DER)).decode()
    return json.dumps(data)


@pytest.mark.parametrize("edit", ["serial", "extension"])
def test_held_a_reissued_certificate_with_the_good_sct_fails_warm(signed: Signed,
                                                                 edit: str) -> None:
    """Held: the CA re-issues the signing certificate with another serial or one more
    extension and the good certificate's SCT copied in: with the good certificate's chain
    and SCT remembered, the new one's SCT is checked against its own bytes and fails, with
    the library's message."""
    from sigstore.verify import Verifier

    forged = _reissued(signed, edit)
    data = signed.wheel.read_bytes()
    fresh = Verifier(trusted_root=TrustedRoot.from_file(str(signed.trusted_root)))
    with pytest.raises(SigstoreError) as alone:
        fresh.verify_artifact(_hashed(data), Bundle.from_json(forged), POLICY)
    warm = _memo_verifier(signed.trusted_root)
    warm.verify_artifact(_hashed(data), Bundle.from_json(signed.bundle), POLICY)
    with pytest.raises(SigstoreError) as memo:
        warm.verify_artifact(_hashed(data), Bundle.from_json(forged), POLICY)
    assert str(memo.value) == str(alone.value) and "SCT" in str(memo.value)


def test_the_signing_side_verifier_follows_the_roots_bytes(signed: Signed,
                                                            tmp_path: Path) -> None:
    """Broke: factory.sign.bundles kept one parsed Verifier per (path, mtime_ns) of the
    trusted root: a root replaced in place with its modification time set back (utime,
    or two writes in one tick of a coarse clock) kept verifying with the root the file
    no longer holds, in any long-lived process (watch, serve, publish). The Verifier is
    kept by the sha256 of the root's bytes now."""
    from factory.errors import VerificationError
    from factory.sign.bundles import verify_artifact

    root = tmp_path / "root.json"
    shutil.copyfile(signed.trusted_root, root)
    verify_artifact(signed.wheel, signed.bundle, root, IDENTITY, ISSUER)
    stamp = root.stat()
    shutil.copyfile(_rogue_root(tmp_path), root)  # another root, the same path and mtime
    os.utime(root, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    with pytest.raises(VerificationError, match="signature check failed"):
        verify_artifact(signed.wheel, signed.bundle, root, IDENTITY, ISSUER)


# -- the trusted root and owner key, read once ----------------------------------------------
def _rogue_root(tmp_path: Path) -> Path:
    rogue = factories.settings(tmp_path / "rogue", project="project")
    init_authority(rogue)
    return rogue.public_keys_dir / "trusted_root.json"


def test_the_report_fingerprints_the_root_that_verified(copy: PublishedIndex,
                                                        tmp_path: Path) -> None:
    """Broke: the trusted root was parsed when the run loaded it and read again for the
    report's fingerprint (trusted_root_sha256, the CAs, the log ids). A root file
    swapped between the two (the index's trust/ when nothing is pinned) verified with
    one root and reported the other's sha256: an auditor comparing the fingerprint
    with the published one saw the genuine root. The bytes are read once now; the
    report describes the root that verified."""
    from factory.verify import Trust

    root = tmp_path / "root.json"
    genuine = copy.settings.public_keys_dir / "trusted_root.json"
    shutil.copyfile(_rogue_root(tmp_path), root)
    used = hashlib.sha256(root.read_bytes()).hexdigest()
    trust = Trust.load(copy.settings, copy.index_dir, trusted_root=root)
    shutil.copyfile(genuine, root)  # swapped after it was loaded
    info = trust.info(copy.index_dir, None)
    assert info.trusted_root_sha256 == used
    assert info.trusted_root_sha256 != hashlib.sha256(genuine.read_bytes()).hexdigest()


def test_the_report_fingerprints_the_owner_key_that_verified(copy: PublishedIndex,
                                                             tmp_path: Path) -> None:
    """Broke, as the root: the in-toto owner key was loaded, then read again for the
    report's owner_key_spki_sha256. Read once now."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from factory.verify import Trust

    genuine = copy.settings.public_keys_dir / "owner.pub.pem"
    key = tmp_path / "owner.pub.pem"
    rogue = ec.generate_private_key(ec.SECP256R1()).public_key()
    key.write_bytes(rogue.public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    trust = Trust.load(copy.settings, copy.index_dir, owner_key=key)
    used = hashlib.sha256(rogue.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    shutil.copyfile(genuine, key)
    assert trust.info(copy.index_dir, None).owner_key_spki_sha256 == used


def test_a_root_linked_out_of_the_served_trust_is_still_served_by_the_index(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """Broke: with nothing pinned, the root comes from the index's trust/, and the summary
    says so (trust SERVED BY THE INDEX ITSELF). That was decided on resolved paths, so
    trust/trusted_root.json planted as a link to a file outside the index read as
    pinned: the attacker's root, and no warning. A file reached through the served
    trust/ is the index's, wherever a link points."""
    from factory.verify import Trust
    from factory.verify.run import audit
    from factory.verify.wholeindex import open_index

    # No root pinned in the repository (the owner key is: only the root comes from trust/).
    (copy.settings.public_keys_dir / "trusted_root.json").unlink()
    served = copy.index_dir / "trust" / "trusted_root.json"
    outside = tmp_path / "elsewhere.json"
    shutil.move(served, outside)
    served.symlink_to(outside)
    index = open_index(copy.settings)
    trust = Trust.load(copy.settings, index.root)
    assert trust.trusted_root_path == served
    report = audit(index, trust, "alpha==1.0", workers=1)
    assert report.trust.from_index


def test_held_a_served_root_that_is_a_fifo_or_device_is_refused(copy: PublishedIndex) -> None:
    """Held (and now read as one regular file): a FIFO or device where the root was meant
    is no root (exit 2), never a hang."""
    from factory.verify import Trust, TrustError

    for name in ("trusted_root.json", "owner.pub.pem"):
        (copy.settings.public_keys_dir / name).unlink()
    served = copy.index_dir / "trust" / "trusted_root.json"
    served.unlink()
    os.mkfifo(served)
    with pytest.raises(TrustError):
        Trust.load(copy.settings, copy.index_dir)
    served.unlink()
    served.symlink_to("/dev/zero")
    with pytest.raises(TrustError):
        Trust.load(copy.settings, copy.index_dir)


# -- zip bombs: the early child's pre-check and the in-toto inspection ------------------------
def _bomb(entries: int, kernel_mib: int, name: bytes = b"pkg/data.bin") -> bytes:
    """One deflated member of zeros, named by ``entries`` central-directory entries: a
    few KiB that inflate ``entries`` x ``kernel_mib`` MiB, and testzip() finds intact."""
    raw = b"\0" * (kernel_mib << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = deflate.compress(raw) + deflate.flush()
    crc = zlib.crc32(raw)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), len(raw),
                        len(name), 0) + name
    body = local + data
    entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data),
                        len(raw), len(name), 0, 0, 0, 0, 0, 0) + name
    directory = entry * entries
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, entries, entries, len(directory),
                      len(body), 0)
    return body + directory + end


def _quoted_overlap() -> bytes:
    """Two members whose byte ranges overlap (the second's local header inside the first's
    compressed bytes): every byte in range, nothing named twice."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("b.txt", b"B" * 100)
    second = inner.getvalue()
    second_local = second[:second.index(b"PK\x01\x02")]
    name = b"a.txt"
    payload = second_local  # member a "contains" member b's local header and data
    crc = zlib.crc32(payload)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(payload),
                        len(payload), len(name), 0) + name
    offset_b = len(local)
    b_info = zipfile.ZipFile(io.BytesIO(second)).infolist()[0]
    entries = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(payload),
                          len(payload), len(name), 0, 0, 0, 0, 0, 0) + name
    entries += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, b_info.CRC,
                           b_info.compress_size, b_info.file_size, 5, 0, 0, 0, 0, 0,
                           offset_b) + b"b.txt"
    body = local + payload
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, len(entries), len(body), 0)
    return body + entries + end


def test_an_overlapping_zip_is_not_intact_and_is_not_inflated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: the early child pre-checks every wheel with testzip() before anything is
    verified, and the parent waits for the wheel at hand before it forks its workers; the
    in-toto inspection in each worker does the same before the layout's rules. A wheel
    whose central directory names one deflated member many times passes testzip() (every
    CRC checks) after inflating entries x member: 65 KiB named 8 times inflate 512 MiB
    (1.6 s here); 6 MB naming 64 MiB 100,000 times is some 6 TB (hours), and `verify
    --all` sat in the child's pre-check. Now both read the central directory first: no two
    members' bytes overlap, at most 100,000 members, declared sizes adding to at most
    MAX_UNPACKED, else the archive is not intact (without inflating a byte)."""
    from factory.verify import zipcheck
    from factory.verify.early import zip_intact
    from factory.verify.intoto import _zip_ok

    inflated: list[int] = []
    library = zlib.decompressobj

    def counting(*args: Any) -> Any:
        inflated.append(1)
        return library(*args)

    bomb = _bomb(8, 64)
    assert zipfile.ZipFile(io.BytesIO(_bomb(2, 1))).testzip() is None  # the library: intact
    path = tmp_path / "bomb.whl"
    path.write_bytes(bomb)
    monkeypatch.setattr(zlib, "decompressobj", counting)
    assert zip_intact(bomb) is False and _zip_ok(path) is False
    assert zip_intact(_quoted_overlap()) is False
    assert inflated == []
    # Declared sizes past the bound: not inflated either (each member declares its size).
    honest = io.BytesIO()
    with zipfile.ZipFile(honest, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(3):
            archive.writestr(f"pkg/m{n}.bin", b"\0" * (1 << 20))
    monkeypatch.setattr(zipcheck, "MAX_UNPACKED", 2 << 20)
    assert zip_intact(honest.getvalue()) is False and inflated == []
    monkeypatch.setattr(zipcheck, "MAX_UNPACKED", 4 << 20)
    assert zip_intact(honest.getvalue()) is True


def test_held_an_honest_wheel_is_still_intact_both_ways(copy: PublishedIndex,
                                                        tmp_path: Path) -> None:
    """Held: the factory's own wheels pass the bounded check, in memory and as a file."""
    from factory.verify.early import zip_intact
    from factory.verify.intoto import _zip_ok

    for name in ("alpha", "beta", "gamma"):
        wheel = copy.wheel(name)
        assert zip_intact(wheel.read_bytes()) is True and _zip_ok(wheel) is True


def test_held_a_fact_about_corrupt_bytes_does_not_fail_the_genuine_wheel(
        copy: PublishedIndex) -> None:
    """Held (the reverse of test_verify_index's case): the child read a corrupt wheel that
    was then put back; its 'not intact' is about those bytes only, and the genuine wheel
    the worker gathers passes in-toto."""
    from factory.verify import early, run
    from factory.verify.trust import Trust
    from factory.verify.wholeindex import open_index

    wheel = copy.wheel("beta")
    data = bytearray(wheel.read_bytes())
    data[len(data) // 3] ^= 0xFF
    facts = early.Facts(zip_ok={hashlib.sha256(bytes(data)).hexdigest(): False})

    class Told:
        root = copy.index_dir.resolve()

        def facts(self) -> early.Facts:
            return facts

        def index_checks(self) -> None:
            return None

    index = open_index(copy.settings)
    report = run.audit(index, Trust.load(copy.settings, index.root), "beta==2.0",
                       early=Told())  # type: ignore[arg-type]
    assert report.artifacts[0].check("in-toto").status == PASS  # type: ignore[union-attr]


# -- the early child -------------------------------------------------------------------------
_RUN = """
import json, os, pickle, sys, time
from pathlib import Path
from factory.verify import early as child, verify, wholeindex
settings = pickle.loads(open(sys.argv[1], "rb").read())
mode = sys.argv[2]
rows = lambda checks: [[c.name, c.status, c.message] for c in checks]
out = {}
if mode == "flip":
    current = Path(sys.argv[3])
    started = child.start(settings, current)
    out["started"] = started is not None
    started.facts()
    current.unlink()
    current.symlink_to(Path(sys.argv[4]))  # the index directory flipped under the run
    real_start = child.start
    child.start = lambda *a, **k: started
    report = verify(settings, everything=True, index_dir=current)
    out["report"] = rows(report.index)
    child.start = lambda *a, **k: None
    out["alone"] = rows(verify(settings, everything=True, index_dir=current).index)
elif mode == "bomb":
    started = child.start(settings, None)
    out["started"] = started is not None
    time.sleep(3)  # the parent's imports, as it were (the child may get anywhere by then)
    out["facts"] = started.facts().zip_ok
    out["index"] = rows(started.index_checks())
elif mode == "worker-dies":
    from factory.verify import run
    run._PROCESSES_FROM = 2
    real = run._verify_in_child
    def dying(item):
        if item.project == "beta":
            os._exit(9)  # as the kernel's OOM killer would end it
        return real(item)
    run._verify_in_child = dying
    child.start = lambda *a, **k: None
    report = verify(settings, everything=True, workers=2)
    out["started"] = True
    out["rows"] = [[a.label, c.name, c.status, c.message] for a in report.artifacts
                   for c in a.checks]
    out["index"] = rows(report.index)
elif mode == "orphan":
    def forever(index):
        time.sleep(600)
        return []
    child.index_checks = forever
    started = child.start(settings, None)
    started.facts()
    print(started._pid, flush=True)
    os.kill(os.getpid(), 9)  # the run killed while the child checks the index
print(json.dumps(out))
"""


def _run(settings: Any, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """_RUN in a fresh interpreter (no thread running, so the child is forked)."""
    import pickle

    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(settings))
    return subprocess.run([sys.executable, "-c", _RUN, str(state), *args],
                          capture_output=True, text=True, timeout=300)


def _out(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    assert result.pop("started")
    return result


def test_the_childs_index_checks_are_of_the_directory_the_run_verifies(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """Broke: the run used the child's index checks when the child had been started for
    the same index path, compared as given; with --index naming a link (a 'current'
    pointing at the served tree) flipped between the child's start and the run, the
    report gave the records/pages/files verdicts of the tree the link named before
    (PASS) for artifacts of the one it names now (a changed page). The child reads the
    directory the path resolved to when it started, and the run uses its answers only
    for that directory."""
    tampered = clone(copy, tmp_path / "tampered")
    page = next((tampered.index_dir / "simple").glob("*/index.html"))
    page.write_text(page.read_text() + "<!-- changed -->")
    current = tmp_path / "current"
    current.symlink_to(copy.index_dir)
    out = _out(_run(copy.settings, tmp_path, "flip", str(current), str(tampered.index_dir)))
    assert any(row[0] == "pages" and row[1] == FAIL for row in out["alone"])
    assert out["report"] == out["alone"]


def test_a_bomb_in_the_index_leaves_the_child_bounded(copy: PublishedIndex,
                                                      tmp_path: Path) -> None:
    """Broke with the zip bomb above: a wheel of the index replaced by one (its record
    unchanged) held the child's pre-check, and the parent waiting for it. Now the child
    answers that wheel not intact at once, the others intact, and checks the index."""
    from factory.verify.early import _pre_check

    wheel = copy.wheel("beta")
    bomb = _bomb(2000, 64)  # 128 GB if inflated
    wheel.write_bytes(bomb)
    sha = hashlib.sha256(bomb).hexdigest()
    assert _pre_check(wheel) == [{"zip": [sha, False]}]  # what the child says of it
    out = _out(_run(copy.settings, tmp_path, "bomb"))
    assert out["facts"].get(sha, False) is False
    assert set(out["facts"]) <= {sha} | {hashlib.sha256(copy.wheel(n).read_bytes())
                                         .hexdigest() for n in ("alpha", "gamma")}
    assert any(row[0] == "files" and row[1] == FAIL for row in out["index"])


def test_the_child_does_not_outlive_a_killed_run(copy: PublishedIndex, tmp_path: Path) -> None:
    """Broke: a run killed outright (SIGKILL, an OOM kill, a CI timeout's SIGTERM) left its
    child checking the index to the end (as long as the index checks take); it noticed
    only when it wrote its answer. The child now asks the kernel to kill it when the
    process that forked it dies (PR_SET_PDEATHSIG)."""
    import time

    done = _run(copy.settings, tmp_path, "orphan")
    assert done.returncode == -9
    pid = int(done.stdout.split()[0])
    for _ in range(200):  # until the kernel has delivered the signal (not a timing test)
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state in ("Z", "X"):
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("the early child outlived the run")


def test_a_worker_that_dies_fails_its_artifacts_not_the_run(copy: PublishedIndex,
                                                            tmp_path: Path) -> None:
    """Broke: a forked worker that died (the OOM killer on a huge sidecar parsed whole, a
    crash in compiled code) raised BrokenProcessPool out of verify --all: a traceback,
    and every result already verified was lost. The artifacts the dead pool did not
    answer for now each fail in one line (never pass), the others and the index checks
    are reported."""
    out = _out(_run(copy.settings, tmp_path, "worker-dies"))
    by_label: dict[str, list[list[str]]] = {}
    for label, name, status, message in out["rows"]:
        by_label.setdefault(label, []).append([name, status, message])
    assert len(by_label) == 3
    beta = next(rows for label, rows in by_label.items() if label.startswith("beta"))
    assert beta[0][1] == FAIL and "verifier process died" in beta[0][2]
    assert all(row[0] != "pages" or row[1] == PASS for row in out["index"])


# -- evidence read through links ----------------------------------------------------------------
@pytest.mark.parametrize("target", ["/proc/self/mem", "/proc/self/pagemap"])
def test_a_wheel_linked_to_a_proc_file_fails_its_digest(copy: PublishedIndex,
                                                        target: str) -> None:
    """Broke: the worker hashed the wheel through path.open(), which follows a link. A
    published wheel replaced by a link to /proc/self/mem (a 'regular file' whose read
    fails with EIO) raised OSError out of the worker: verify crashed with a traceback
    (the whole run, every other artifact's result lost); one to /proc/self/pagemap (a
    'regular file' of size 0 that reads 256 GiB of zeros) held each worker for minutes.
    A wheel is now read as one regular file, no more bytes than its size when opened;
    anything else fails the digest check in one line."""
    from factory.verify import verify

    wheel = copy.wheel("alpha")
    wheel.unlink()
    wheel.symlink_to(target)
    report = verify(copy.settings, "alpha==1.0", workers=1)
    checks = {c.name: c for c in report.artifacts[0].checks}
    assert checks["digest"].status == FAIL
    assert "cannot be read" in checks["digest"].message


def test_an_equivalence_statement_linked_elsewhere_is_not_read(copy: PublishedIndex) -> None:
    """Broke: the upstream-equivalence statement beside a wheel was read with
    path.read_text() (through a link, whole): linked to /proc/self/pagemap it read 256
    GiB into the worker's memory. It is read as the other sidecars are (a regular file,
    no link, bounded): a link is a statement that cannot be read, a failed row."""
    from factory.verify import verify
    from factory.verify.checks import EQUIVALENCE_SUFFIX

    wheel = copy.wheel("alpha")
    statement = wheel.with_name(wheel.name + EQUIVALENCE_SUFFIX)
    if statement.exists():
        statement.unlink()
    statement.symlink_to("/proc/self/pagemap")
    report = verify(copy.settings, "alpha==1.0", workers=1)
    checks = {c.name: c for c in report.artifacts[0].checks}
    assert checks["upstream"].status == FAIL


def test_a_wheel_name_at_the_bound_fails_its_rows_not_the_run(copy: PublishedIndex) -> None:
    """Broke: a record may name a wheel of up to 255 bytes (one path component), but a
    sidecar's name adds its suffix: for a 240-byte wheel name, W.equivalence.json is
    past the file system's bound and Path.is_file() raises ENAMETOOLONG (it is not one
    of the errors pathlib swallows). That was asked outside the rows' error handling
    (whether the equivalence row applies), so verify crashed with a traceback; above
    241 bytes gathering the wheel's sidecars did the same. Whether a row applies and
    gathering the evidence now fail that artifact's rows at worst."""
    from factory.verify import verify

    path = copy.index_dir / "records" / "alpha.json"
    record = json.loads(path.read_text())
    entry = record["files"][0]
    old = entry["filename"]
    entry["sidecars"].pop("equivalence", None)
    for size in (240, 250):
        new = "alpha-1.0-py3-none-" + "x" * (size - 23) + ".whl"
        assert len(new) == size
        path.write_text(json.dumps(record).replace(old, new))
        files = copy.index_dir / "files" / "alpha"
        for found in sorted(files.iterdir()):
            if found.name.startswith(old):
                try:
                    found.rename(files / (new + found.name[len(old):]))
                except OSError:  # past the bound: cannot exist
                    shutil.rmtree(found) if found.is_dir() else found.unlink()
        report = verify(copy.settings, "alpha==1.0", workers=1)
        assert not report.ok and report.artifacts[0].check("digest") is not None
        old = new
        record = json.loads(path.read_text())


_IN_TOTO_ROW = """
import json, pickle, sys
from factory.verify import verify
settings = pickle.loads(open(sys.argv[1], "rb").read())
report = verify(settings, "beta==2.0", workers=1)
row = report.artifacts[0].check("in-toto")
print(json.dumps([row.status, row.message]))
"""


@pytest.mark.parametrize("plant", ["fifo", "link", "layout-link", "directory-link"])
def test_in_toto_files_are_read_as_evidence_is(copy: PublishedIndex, tmp_path: Path,
                                               plant: str) -> None:
    """Broke: the layout and links under W.in-toto/ were read by in-toto's Metadata.load,
    open() and json.load: a FIFO planted as the build step's link blocked the worker for
    ever (verify never finished); a link to /dev/zero or /proc/self/pagemap would read
    until memory ran out; a link to a genuine file elsewhere was followed. They are read
    as every other piece of evidence now (a regular file, no link, bounded): the in-toto
    row fails in one line naming the file. (A subprocess with a deadline, so that the old
    behaviour fails the test instead of hanging it.)"""
    import pickle

    layout_dir = copy.wheel("beta").with_name(copy.wheel("beta").name + ".in-toto")
    build = next(layout_dir.glob("build.*.link"))
    if plant == "fifo":
        build.unlink()
        os.mkfifo(build)
    elif plant == "link":
        moved = tmp_path / build.name
        shutil.move(build, moved)
        build.symlink_to(moved)  # the genuine bytes, through a link
    elif plant == "layout-link":
        layout = layout_dir / "root.layout"
        moved = tmp_path / "root.layout"
        shutil.move(layout, moved)
        layout.symlink_to(moved)
    else:
        moved = tmp_path / "elsewhere"
        shutil.move(layout_dir, moved)
        layout_dir.symlink_to(moved)
    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    try:
        done = subprocess.run([sys.executable, "-c", _IN_TOTO_ROW, str(state)],
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("verify hung reading the in-toto directory")
    assert done.returncode == 0, done.stderr[-2000:]
    status, message = json.loads(done.stdout)
    assert status == FAIL
    assert "symbolic link" in message or "not a regular file" in message, message


class _Blocked(Exception):
    """Raised by _Deadline (not an OSError: the code under test may catch those)."""


class _Deadline:
    """SIGALRM after ``seconds``: a read that blocks fails the test instead of hanging it."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        import signal

        def expired(*_: Any) -> None:
            raise _Blocked("blocked reading a planted file")

        self._old = signal.signal(signal.SIGALRM, expired)
        signal.alarm(self.seconds)

    def __exit__(self, *_: Any) -> None:
        import signal

        signal.alarm(0)
        signal.signal(signal.SIGALRM, self._old)


@pytest.mark.parametrize("plant", ["fifo", "link"])
def test_pylock_identities_read_the_provenance_as_evidence(copy: PublishedIndex,
                                                           tmp_path: Path, plant: str) -> None:
    """Broke: `verify pylock.toml` with attestation-identities read the served
    W.provenance with stat() and read_bytes(): a FIFO there blocked verify for ever (a
    link to /proc/self/pagemap stats as 0 bytes and read 256 GiB into memory), and a
    link to a genuine provenance elsewhere was followed. Read as evidence now: the item
    says the provenance is unreadable."""
    from factory.verify.targets import identity_problem, published_item
    from factory.verify.wholeindex import open_index

    index = open_index(copy.settings)
    published = index.by_version("alpha", "1.0")[0]
    item = published_item(published, published.filename)
    provenance = published.path.with_name(published.path.name + ".provenance")
    identities = [json.loads(provenance.read_text())["attestation_bundles"][0]["publisher"]]
    assert identity_problem(item, identities) is None  # as served: it matches
    if plant == "fifo":
        provenance.unlink()
        os.mkfifo(provenance)
    else:
        moved = tmp_path / provenance.name
        shutil.move(provenance, moved)
        provenance.symlink_to(moved)
    with _Deadline(20):
        problem = identity_problem(item, identities)
    assert problem is not None and "unreadable" in problem


def test_rebuild_reads_the_build_record_as_evidence(copy: PublishedIndex) -> None:
    """Broke: `verify --rebuild` read the served W.build.json with read_text(): a FIFO
    there blocked it for ever. Read as evidence now: one VerificationError line, before
    any container is started."""
    from factory.errors import VerificationError
    from factory.verify.reproduce import _rebuild_one
    from factory.verify.wholeindex import open_index

    index = open_index(copy.settings)
    published = index.by_version("alpha", "1.0")[0]
    record = published.path.with_name(published.path.name + ".build.json")
    record.unlink()
    os.mkfifo(record)
    with _Deadline(20), pytest.raises(VerificationError, match="cannot be read"):
        _rebuild_one(copy.settings, index, published)


def test_a_wheel_name_with_glob_characters_gathers_only_its_own_files(tmp_path: Path) -> None:
    """Broke: a wheel's sidecars were gathered with glob(name + '.*'), and a wheel file name
    may hold '*', '?' or '[' in a tag (packaging accepts them; a record may name one): for
    x-1.0-py3-none-a*.whl the pattern took x-1.0-py3-none-any.whl's sidecars as its own
    (their digests went into the in-toto inspection's materials). The name is literal now."""
    from factory.verify.evidence import gather
    from factory.verify.targets import Item

    mine = tmp_path / "x-1.0-py3-none-a*.whl"
    mine.write_bytes(b"wheel")
    (tmp_path / "x-1.0-py3-none-a*.whl.sigstore.json").write_text("{}")
    (tmp_path / "x-1.0-py3-none-any.whl").write_bytes(b"other")
    (tmp_path / "x-1.0-py3-none-any.whl.sigstore.json").write_text("{}")
    evidence = gather(Item(label="x", wheel=mine))
    assert sorted(evidence.held) == ["x-1.0-py3-none-a*.whl", "x-1.0-py3-none-a*.whl.sigstore.json"]


# -- in-toto's validation planned once per class ----------------------------------------------
def test_held_a_link_with_extra_or_validator_named_fields_fails_as_the_library(
        tmp_path: Path) -> None:
    """Held: a signed link's JSON is what an attacker writes; extra fields, one named like
    a validator, or a subclass never reach a plan made for another class: the verdict
    is the library's own."""
    from in_toto.models.link import Link

    from factory.verify import intoto

    base = {"_type": "link", "name": "build", "materials": {}, "products": {},
            "byproducts": {}, "command": [], "environment": {}}
    for extra in ({"_validate_name": "x"}, {"extra": 1}, {"validate": 1}):
        data = dict(base, **extra)
        outcomes = []
        for validate in (intoto._LIBRARY_VALIDATE, intoto._validate):
            original = intoto.ValidationMixin.validate
            intoto.ValidationMixin.validate = validate  # type: ignore[method-assign]
            try:
                Link.read(dict(data))
                outcomes.append("ok")
            except Exception as exc:  # noqa: BLE001 - compared both ways
                outcomes.append(f"{type(exc).__name__}: {exc}")
            finally:
                intoto.ValidationMixin.validate = original  # type: ignore[method-assign]
        assert outcomes[0] == outcomes[1], extra

    class Sneaky(Link):
        @property
        def trap(self) -> Any:
            raise RuntimeError("read by the library's walk")

    Link.read(dict(base)).validate()  # the plain class planned first
    fields = {k: v for k, v in base.items() if k != "_type"}
    with pytest.raises(RuntimeError, match="read by the library"):
        Sneaky(**fields)  # validates itself when made: the subclass's own plan
    assert intoto._validation_plan(Sneaky) != intoto._validation_plan(Link)
    Link(**fields).validate()


def test_held_every_published_wheel_still_passes(copy: PublishedIndex) -> None:
    """Held: after the fixes above the published index passes every check."""
    from factory.verify import verify

    report = verify(copy.settings, everything=True, workers=1)
    assert report.ok
    assert all(c.status == PASS for c in report.index)
