"""The embedded authority: keys, trust files, certificate profile, and its log."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot

from factory.config import Settings
from factory.errors import VerificationError
from factory.sign import init_authority, open_signer
from factory.sign._authority import Authority, serve, service
from factory.sign._authority.ca import OIDC_ISSUER_OID, OIDC_ISSUER_V2_OID
from factory.sign._authority.log import ENTRIES_FILE, TransparencyLog
from factory.sign._authority.merkle import (
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
)
from factory.sign.transparency import (
    check_consistency,
    checkpoint_of,
    consistency_proof,
    current_checkpoint,
    verify_checkpoint,
)
from tests import factories
from tests.signing_fixtures import (
    IDENTITY,
    ISSUER,
    Signed,
    authority_fixture,  # noqa: F401 - fixture
    signed_fixture,  # noqa: F401 - fixture
)

# -- Merkle tree ----------------------------------------------------------------


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH, written the obvious way."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def test_merkle_proofs_match_rfc6962_for_every_size() -> None:
    tree, leaves = MerkleTree(), [leaf_hash(b"entry %d" % i) for i in range(33)]
    for leaf in leaves:
        tree.append(leaf)
    for size in range(1, 34):
        root = tree.root(size)
        assert root == _reference_root(leaves[:size])
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert root_from_inclusion(leaves[index], index, size, proof) == root
        for first in range(1, size + 1):
            verify_consistency(
                first, tree.root(first), size, root, tree.consistency_proof(first, size)
            )


def test_merkle_rejects_forged_consistency() -> None:
    tree = MerkleTree()
    for i in range(11):
        tree.append(leaf_hash(b"%d" % i))
    proof = tree.consistency_proof(5, 11)
    forked = MerkleTree()
    for i in range(11):
        forked.append(leaf_hash(b"fork" if i == 3 else b"%d" % i))
    with pytest.raises(ValueError):
        verify_consistency(5, forked.root(5), 11, tree.root(11), proof)
    with pytest.raises(ValueError):
        verify_consistency(5, tree.root(5), 11, tree.root(11), proof[:-1])
    with pytest.raises(ValueError):
        verify_consistency(5, tree.root(5), 11, tree.root(11), [*proof[:-1], bytes(32)])


# -- keys and trust files -------------------------------------------------------


def test_init_is_idempotent_and_keeps_keys_private(authority: Settings) -> None:
    directory = authority.authority_dir
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    (authority.public_keys_dir / "trusted_root.json").unlink()
    init_authority(authority)
    after = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    assert before == after  # keys, CA certificate and trust files unchanged
    assert (authority.public_keys_dir / "trusted_root.json").read_bytes() == before[
        "trusted_root.json"
    ]
    for key in directory.glob("*-key.pem"):
        assert key.stat().st_mode & 0o077 == 0, key
    public = (authority.public_keys_dir / "trusted_root.json").read_text()
    assert "PRIVATE" not in public


def test_trust_files_parse_with_stock_client(authority: Settings) -> None:
    root = TrustedRoot.from_file(str(authority.authority_dir / "trusted_root.json"))
    assert len(root.get_fulcio_certs()) == 1
    config = ClientTrustConfig.from_json(
        (authority.authority_dir / "trust_config.json").read_text()
    )
    signing = config.signing_config
    assert signing.get_fulcio().url == "http://127.0.0.1:8710"
    assert len(signing.get_tlogs()) == 1


def test_leaf_certificate_has_the_fulcio_profile(signed: Signed) -> None:
    cert = Bundle.from_json(signed.bundle).signing_certificate
    assert cert.subject == x509.Name([])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [IDENTITY]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]
    v1 = cert.extensions.get_extension_for_oid(OIDC_ISSUER_OID).value
    v2 = cert.extensions.get_extension_for_oid(OIDC_ISSUER_V2_OID).value
    assert isinstance(v1, x509.UnrecognizedExtension) and v1.value == ISSUER.encode()
    assert isinstance(v2, x509.UnrecognizedExtension)
    assert v2.value == b"\x0c" + bytes([len(ISSUER)]) + ISSUER.encode()
    scts = cert.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)
    assert len(scts.value) == 1
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.total_seconds() == 600


# -- the log: persistence, crashes, concurrency -----------------------------------


def _log(settings: Settings) -> TransparencyLog:
    return Authority(settings.authority_dir).log


def test_log_persists_across_restarts(signed: Signed) -> None:
    log = _log(signed.settings)
    assert log.size == 5  # the fixture signed five times
    root = log.info()["rootHash"]
    assert _log(signed.settings).info()["rootHash"] == root
    assert log.append(b'{"x":1}').index == 5


def test_torn_write_is_dropped_and_the_log_does_not_fork(signed: Signed) -> None:
    old_checkpoint = checkpoint_of(signed.bundle)
    entries = signed.settings.authority_dir / "log" / ENTRIES_FILE
    with entries.open("ab") as handle:  # a crash in the middle of an unacknowledged append
        handle.write(b'{"logIndex":5,"integratedTime":1,"bo')
    log = _log(signed.settings)
    assert log.size == 5
    assert log.append(b'{"after":"crash"}').index == 5
    assert all(json.loads(line) for line in entries.read_bytes().splitlines())
    new_checkpoint = current_checkpoint(signed.settings)
    old = verify_checkpoint(old_checkpoint, signed.trusted_root)
    proof = consistency_proof(signed.settings, old.size)
    check_consistency(old_checkpoint, new_checkpoint, proof, signed.trusted_root)


_APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from factory.sign._authority import Authority
    log = Authority(Path(sys.argv[1])).log
    n = 0
    while True:
        entry = log.append(b'{"n":%d}' % n)
        print(entry.index, flush=True)  # acknowledged only after the durable write
        n += 1
    """
)


def test_killed_writer_loses_nothing_it_acknowledged(authority: Settings) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(authority.authority_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        acknowledged: list[int] = []
        assert proc.stdout is not None
        while len(acknowledged) < 20:
            acknowledged.append(int(proc.stdout.readline()))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    log = _log(authority)
    assert log.size >= len(acknowledged)
    for index in acknowledged:
        assert log.entry(index).body == b'{"n":%d}' % index
    assert log.append(b'{"after":"kill"}').index == log.size - 1


def test_two_processes_share_one_log_without_forking(authority: Settings) -> None:
    first, second = _log(authority), _log(authority)
    indices = []
    for n in range(6):
        log = first if n % 2 else second
        indices.append(log.append(b'{"n":%d}' % n).index)
    assert indices == list(range(6))
    assert first.info()["rootHash"] == second.info()["rootHash"]


# -- the HTTP service -------------------------------------------------------------


def test_server_listens_on_loopback_and_serves_consistency(signed: Signed) -> None:
    authority = Authority(signed.settings.authority_dir)
    older = checkpoint_of(signed.bundle)
    with serve(authority) as url:
        assert url.startswith("http://127.0.0.1:")
        head = requests.get(f"{url}/api/v1/log", timeout=10).json()
        proof = requests.get(
            f"{url}/api/v1/log/proof",
            params={"firstSize": 4, "lastSize": head["treeSize"]},
            timeout=10,
        ).json()
        entry = requests.get(f"{url}/api/v1/log/entries", params={"logIndex": 3}, timeout=10)
        assert entry.status_code == 200
    old, new = check_consistency(
        older, head["signedTreeHead"], proof["hashes"], signed.trusted_root
    )
    assert (old.size, new.size) == (4, 5)
    with pytest.raises(VerificationError, match="not consistent"):
        check_consistency(older, head["signedTreeHead"], ["00" * 32], signed.trusted_root)


def test_checkpoint_of_another_log_is_rejected(signed: Signed, tmp_path: Path) -> None:
    rogue = factories.settings(tmp_path / "rogue", project="project")
    init_authority(rogue)
    with pytest.raises(VerificationError, match="not signed by a log of the trusted root"):
        verify_checkpoint(current_checkpoint(rogue), signed.trusted_root)


def test_ca_refuses_tokens_it_did_not_issue(authority: Settings, tmp_path: Path) -> None:
    rogue = factories.settings(tmp_path / "rogue", project="project")
    init_authority(rogue)
    rogue_token = Authority(rogue.authority_dir).issue_token(IDENTITY, ISSUER)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM)
    body = {"certificateSigningRequest": base64.b64encode(pem).decode()}
    with serve(Authority(authority.authority_dir)) as url:

        def ask(token: str) -> requests.Response:
            return requests.post(f"{url}/api/v2/signingCert", json=body,
                                 headers={"Authorization": f"Bearer {token}"}, timeout=10)

        assert ask(rogue_token).status_code == 401
        token = Authority(authority.authority_dir).issue_token(IDENTITY, ISSUER)
        assert ask(token).status_code == 201


def test_log_refuses_entries_it_cannot_verify(signed: Signed) -> None:
    entry = json.loads(signed.bundle)["verificationMaterial"]["tlogEntries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    body["spec"]["data"]["hash"]["value"] = "00" * 32  # signature no longer matches
    with serve(Authority(signed.settings.authority_dir)) as url:
        refused = requests.post(f"{url}/api/v1/log/entries", json=body, timeout=10)
        assert refused.status_code == 400
        assert "signature" in refused.json()["message"]
        junk = requests.post(f"{url}/api/v1/log/entries", json={"kind": "rpm"}, timeout=10)
        assert junk.status_code == 400
    assert _log(signed.settings).size == 5


def test_signing_many_files_reuses_one_certificate(authority: Settings, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    files = []
    for n in range(10):
        files.append(tmp_path / f"f{n}")
        files[-1].write_bytes(b"%d" % n)
    # The cost of a signature past the first, counted rather than timed: no new token and
    # no new certificate (the embedded authority runs in this process).
    issued: list[str] = []
    real_leaf, real_token = service.issue_leaf, Authority.issue_token
    monkeypatch.setattr(service, "issue_leaf",
                        lambda *a, **k: issued.append("certificate") or real_leaf(*a, **k))
    monkeypatch.setattr(Authority, "issue_token",
                        lambda self, *a: issued.append("token") or real_token(self, *a))
    with open_signer(authority) as signer:
        bundles = [Bundle.from_json(signer.sign_artifact(f)) for f in files]
    assert issued == ["token", "certificate"]
    assert len({b.signing_certificate.serial_number for b in bundles}) == 1
    assert [b.log_entry._inner.log_index for b in bundles] == list(range(10))


def test_serve_authority_runs_until_stopped(authority: Settings) -> None:
    import threading

    from factory.sign.authority import serve_authority

    urls: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_authority, args=(authority, 0, urls.append, stop), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 60  # a generous wait for the server to start
    while not urls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert urls, "the authority did not start in 60 s"
    bundle = requests.get(f"{urls[0]}/api/v2/trustBundle", timeout=10).json()
    assert "BEGIN CERTIFICATE" in bundle["chains"][0]["certificates"][0]
    stop.set()
    thread.join(timeout=60)  # a hang guard: it stops when told
    assert not thread.is_alive()


def test_signer_is_usable_from_worker_threads(authority: Settings, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from factory.sign import verify_artifact

    files = []
    for n in range(8):
        files.append(tmp_path / f"t{n}")
        files[-1].write_bytes(b"thread %d" % n)
    with open_signer(authority) as signer, ThreadPoolExecutor(4) as pool:
        bundles = list(pool.map(signer.sign_artifact, files))
    root = authority.public_keys_dir / "trusted_root.json"
    for path, bundle in zip(files, bundles, strict=True):
        verify_artifact(path, bundle, root, IDENTITY, ISSUER)
    assert _log(authority).size == 8


def _raw(url: str, data: bytes, wait: float = 20.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as conn:
        conn.sendall(data)
        return conn.recv(4096)


def test_hostile_requests_get_an_answer_and_no_traceback(
        signed: Signed, capfd: pytest.CaptureFixture[str]) -> None:
    """A non-numeric Content-Length was a ValueError: socketserver's traceback on the
    operator's terminal and the connection dropped unanswered."""
    with serve(Authority(signed.settings.authority_dir)) as url:
        for length in (b"abc", b"-5", b"1e3", b"+2", b"0x2", b"9" * 40):
            answer = _raw(url, b"POST /api/v1/log/entries HTTP/1.1\r\nContent-Length: "
                          + length + b"\r\n\r\n{}")
            assert answer.startswith(b"HTTP/1.1 400 "), (length, answer[:80])
        for _ in range(5):  # gone before its answer: a broken pipe, which is routine
            host, port = url.removeprefix("http://").split(":")
            conn = socket.create_connection((host, int(port)), timeout=10)
            conn.sendall(b"GET /api/v1/log/entries/%ff HTTP/1.1\r\n\r\n")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # a reset, not a polite close
        assert requests.get(f"{url}/api/v1/log", timeout=10).status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err[:400]


def test_a_silent_connection_is_closed_at_the_idle_limit(
        signed: Signed, monkeypatch: pytest.MonkeyPatch) -> None:
    import factory.sign._authority.server as server

    monkeypatch.setattr(server, "IDLE_SECONDS", 0.5)
    with serve(Authority(signed.settings.authority_dir)) as url:
        # half a request, then silence: the server hangs up rather than keep a thread
        assert _raw(url, b"POST /api/v1/log/entries HTTP/1.1\r\nContent-Length: 5\r\n\r\n[1,",
                    wait=60) == b""
