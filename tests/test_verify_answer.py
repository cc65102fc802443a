"""`factory verify answer FILE|-`: a saved signed answer of the policy API or MCP, checked
with the answers key (the state's, --key PEM or the one an index serves): one line,
PASS or FAIL, exit 1 on failure; and a list answer shows each line as a single answer
shows its subject, its digest still of the whole text.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner

from factory.advice import (
    MAX_SAVED,
    SUBJECT_NAME,
    Advisor,
    canonical,
    subject_digest,
    verify_saved,
)
from factory.attest.keys import init_keys, load_signer
from factory.cli.verify import verify_answer_file
from factory.config import Settings, load_settings
from factory.errors import VerificationError
from factory.why import Knowledge

_KEY = ec.generate_private_key(ec.SECP256R1())
_PEM = _KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
_OTHER = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _advisor(signer: CryptoSigner | None = None) -> Advisor:
    known = Knowledge.from_rows([{"name": n, "published": "1.0"} for n in
                                 ("requests", "flask", "six")])
    return Advisor(lambda: known, signer or CryptoSigner(_KEY), "http://factory.test/api/v1/")


def _cli(*args: str, stdin: bytes | None = None, root: Path | None = None
         ) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **({"FACTORY_ROOT": str(root)} if root else {})}
    return subprocess.run([sys.executable, "-m", "factory.cli", "verify", "answer", *args],
                          input=stdin, env=env, capture_output=True, timeout=120)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(_advisor().check("reqests").to_dict()), encoding="utf-8")
    return path


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "answers.pub.pem"
    path.write_bytes(_PEM)
    return path


def test_a_real_signed_answer_passes_with_its_verdict(saved: Path, key: Path) -> None:
    done = _cli(str(saved), "--key", str(key))
    assert done.returncode == 0, done
    line = done.stdout.decode().strip()
    assert line.startswith("PASS: reqests -> did-you-mean:") and "requests" in line
    assert len(line.splitlines()) == 1
    # a bare envelope, from stdin
    envelope = json.loads(saved.read_text())["envelope"]
    done = _cli("-", "--key", str(key), stdin=json.dumps(envelope).encode())
    assert done.returncode == 0 and done.stdout.decode().startswith("PASS: reqests ->")


def test_list_and_search_answers_pass() -> None:
    advisor = _advisor()
    for signed in (advisor.check_list("requests\nflask==1.0\nnumpy\n"), advisor.search("fla")):
        statement, answer = verify_saved(json.dumps(signed.to_dict()).encode(), _PEM)
        assert answer == signed.answer and statement["subject"]


def test_a_tampered_answer_fails(saved: Path, key: Path, tmp_path: Path) -> None:
    data = json.loads(saved.read_text())
    data["answer"]["verdict"] = "served"  # the answer beside the envelope, edited
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data), encoding="utf-8")
    done = _cli(str(edited), "--key", str(key))
    assert done.returncode == 1
    assert done.stdout.decode().strip() == ("FAIL: the answer beside the envelope is not the "
                                            "answer signed")
    # the signed payload itself, edited: the signature no longer verifies
    data = json.loads(saved.read_text())
    payload = json.loads(base64.b64decode(data["envelope"]["payload"]))
    payload["predicate"]["answer"]["verdict"] = "served"
    data["envelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    data["answer"] = payload["predicate"]["answer"]
    edited.write_text(json.dumps(data), encoding="utf-8")
    done = _cli(str(edited), "--key", str(key))
    assert done.returncode == 1 and done.stdout.decode().startswith("FAIL: ")
    assert "does not verify" in done.stdout.decode()


def test_a_wrong_key_fails(saved: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(_OTHER)
    done = _cli(str(saved), "--key", str(other))
    assert done.returncode == 1 and "does not verify with the answers key" in done.stdout.decode()
    not_a_key = tmp_path / "junk.pem"
    not_a_key.write_bytes(b"-----BEGIN PUBLIC KEY-----\nxx\n")
    done = _cli(str(saved), "--key", str(not_a_key))
    assert done.returncode == 1 and done.stdout.decode().startswith("FAIL: ")


def test_a_huge_file_and_not_json_fail_in_one_line(tmp_path: Path, key: Path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as handle:  # sparse: MAX_SAVED + 1 MiB, read no further than allowed
        handle.truncate(MAX_SAVED + 2**20)
    done = _cli(str(huge), "--key", str(key))
    assert done.returncode == 1 and b"larger than" in done.stdout
    for junk in (b"not json", b"[1, 2]", b"\xff\xfe", b"[" * 100_000, b'{"answer": 1}',
                 b'{"answer": {}, "envelope": null}', b'{"payload": "!!"}'):
        done = _cli("-", "--key", str(key), stdin=junk)
        assert done.returncode == 1, junk
        out = done.stdout.decode().strip()
        assert out.startswith("FAIL: ") and len(out.splitlines()) == 1 and not done.stderr, junk
    assert _cli(str(tmp_path / "absent.json"), "--key", str(key)).returncode == 1
    assert _cli("--key", str(key)).returncode == 2  # no FILE


def test_the_key_of_the_state_dir_or_of_an_index(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "recipes").mkdir(parents=True)
    (root / "factory.toml").write_text('[factory]\nstate_dir = "state"\n', encoding="utf-8")
    settings: Settings = load_settings(root)
    init_keys(settings)
    signed = _advisor(load_signer(settings, "answers")).check("flask")
    path = tmp_path / "flask.json"
    path.write_text(json.dumps(signed.to_dict()), encoding="utf-8")
    done = _cli(str(path), root=root)
    assert done.returncode == 0 and done.stdout.decode().startswith("PASS: flask -> served")
    assert verify_answer_file(lambda: settings, str(path), None, None) == 0
    pem = (settings.public_keys_dir / "answers.pub.pem").read_bytes()
    with _serving({"/.well-known/factory/answers.pub.pem": pem}) as url:
        assert verify_answer_file(lambda: settings, str(path), None, url) == 0
        assert verify_answer_file(lambda: settings, str(path), None, url + "/nothing") == 1
    with _serving({"/.well-known/factory/answers.pub.pem": b"x" * (1 << 20)}) as url:
        assert verify_answer_file(lambda: settings, str(path), None, url) == 1  # bounded


def test_a_list_line_is_shown_as_a_subject_is_and_signed_whole() -> None:
    long_line = "requests==2.32.3; python_version >= '3.8' and " + " or ".join(
        f"platform_machine == 'arch{i}'" for i in range(30))
    assert SUBJECT_NAME < len(long_line) < 1000
    signed = _advisor().check_list([long_line, "flask"])
    shown = signed.answer["answers"][0]["requirement"]
    subject = signed.statement["subject"][0]
    assert shown == long_line[:SUBJECT_NAME] + "…"
    assert subject["name"] == canonical(long_line)[:SUBJECT_NAME] + "…"
    assert subject["digest"]["sha256"] == subject_digest(canonical(long_line))
    single = _advisor().check(long_line).statement["subject"][0]
    assert single == subject  # the same subject as when the line is asked alone
    with pytest.raises(VerificationError):
        verify_saved(b"{}", _PEM)


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


class _serving:
    def __init__(self, files: dict[str, bytes]) -> None:
        handler = type("H", (_Handler,), {"files": files})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
