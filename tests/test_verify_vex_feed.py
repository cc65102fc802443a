"""`verify --all` checks the signed OpenVEX feed the index serves (the `vex` index
check): what the factory says about advisories is what its answers key signed.

Found by a helper's new-user pass: a statement turned from `fixed` to `not_affected`
(the trust manifest's size and digest updated to match) verified PASS, as nothing
checked the feed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from factory.attest.keys import load_signer
from factory.index import Index
from factory.verify import verify
from factory.verify.model import FAIL, PASS, SKIP, VEX
from factory.verify.view import IndexView
from factory.verify.wholeindex import vex_check
from factory.vex import CONTEXT, ENVELOPE_FILE, VEX_FILE, check_schema, sign_vex, vex_bytes
from tests.intoto_fixtures import copy_fixture  # noqa: F401  (the `copy` fixture)
from tests.pipeline_fixtures import PublishedIndex, published_index  # noqa: F401


def _document(status: str = "fixed") -> dict[str, object]:
    document = {"@context": CONTEXT, "@id": "https://factory.invalid/vex/1",
                "author": "artifact-factory", "timestamp": "2026-12-01T00:00:00Z",
                "version": 1,
                "statements": [{"vulnerability": {"name": "PYSEC-0000-1"},
                                "products": [{"@id": "pkg:pypi/alpha@1.0.0"}],
                                "status": status}]}
    if status == "not_affected":
        document["statements"][0]["justification"] = "vulnerable_code_not_present"  # type: ignore[index]
    check_schema(document)
    return document


def _serve_feed(copy: PublishedIndex) -> Path:
    """The feed, published as factory.vex.publish_vex publishes it (recorded in the trust
    manifest)."""
    work = copy.root / "vex-work"
    work.mkdir(exist_ok=True)
    data = vex_bytes(_document())
    (work / VEX_FILE).write_bytes(data)
    (work / ENVELOPE_FILE).write_text(json.dumps(
        sign_vex(data, load_signer(copy.settings, "answers"))))
    Index.of(copy.settings).publish_trust({VEX_FILE: work / VEX_FILE,
                                           ENVELOPE_FILE: work / ENVELOPE_FILE})
    return copy.settings.index_dir / "trust"


def _check(copy: PublishedIndex, key: Path | None = None) -> tuple[str, str]:
    index = IndexView(copy.settings.index_dir, None)
    check = vex_check(index, key or copy.settings.public_keys_dir / "answers.pub.pem")
    return check.status, check.message


def test_a_signed_feed_passes_and_a_changed_one_fails(copy: PublishedIndex) -> None:
    trust = _serve_feed(copy)
    assert _check(copy) == (PASS, "1 OpenVEX statements, signed by the answers key "
                                  f"{copy.settings.public_keys_dir / 'answers.pub.pem'}")
    (trust / VEX_FILE).write_bytes(vex_bytes(_document("not_affected")))  # schema-valid too
    status, message = _check(copy)
    assert status == FAIL and "another vex.json" in message


def test_a_feed_re_signed_by_another_key_fails(copy: PublishedIndex, tmp_path: Path) -> None:
    trust = _serve_feed(copy)
    from securesystemslib.signer import CryptoSigner

    other = CryptoSigner.generate_ecdsa()
    data = vex_bytes(_document("not_affected"))
    (trust / VEX_FILE).write_bytes(data)
    (trust / ENVELOPE_FILE).write_text(json.dumps(sign_vex(data, other)))
    status, message = _check(copy)
    assert status == FAIL and "does not verify with the answers key" in message


@pytest.mark.parametrize("gone", [VEX_FILE, ENVELOPE_FILE])
def test_half_a_feed_fails(copy: PublishedIndex, gone: str) -> None:
    trust = _serve_feed(copy)
    (trust / gone).unlink()
    status, message = _check(copy)
    assert status == FAIL and gone in message


def test_a_link_in_place_of_the_feed_fails(copy: PublishedIndex, tmp_path: Path) -> None:
    trust = _serve_feed(copy)
    elsewhere = tmp_path / "vex.json"
    os.replace(trust / VEX_FILE, elsewhere)
    (trust / VEX_FILE).symlink_to(elsewhere)
    assert _check(copy)[0] == FAIL


def test_no_feed_passes_and_no_key_is_a_check_not_run(copy: PublishedIndex,
                                                      tmp_path: Path) -> None:
    status, message = _check(copy)
    assert status == PASS and "no OpenVEX feed served" in message
    _serve_feed(copy)
    index = IndexView(copy.settings.index_dir, None)
    assert vex_check(index, None).status == SKIP


def test_verify_all_fails_on_a_changed_feed(copy: PublishedIndex) -> None:
    trust = _serve_feed(copy)
    report = verify(copy.settings, everything=True, check_advisories=False, workers=1)
    assert report.ok and [c.status for c in report.index if c.name == VEX] == [PASS]
    (trust / VEX_FILE).write_bytes(vex_bytes(_document("not_affected")))
    report = verify(copy.settings, everything=True, check_advisories=False, workers=1)
    assert not report.ok and [c.status for c in report.index if c.name == VEX] == [FAIL]


def test_the_answers_key_can_be_pinned_by_hand(copy: PublishedIndex, tmp_path: Path) -> None:
    """An auditor whose keys/ holds no answers key pins it (`verify --all --key PEM`);
    without it the index's own is used and the summary names it as not pinned."""
    _serve_feed(copy)
    pinned = copy.settings.public_keys_dir / "answers.pub.pem"
    mine = tmp_path / "answers.pub.pem"
    mine.write_bytes(pinned.read_bytes())
    pinned.unlink()
    served = verify(copy.settings, everything=True, check_advisories=False, workers=1)
    assert "answers key" in served.trust.served
    by_hand = verify(copy.settings, everything=True, check_advisories=False, workers=1,
                     answers_key=mine)
    assert by_hand.ok and "answers key" not in by_hand.trust.served
    other = tmp_path / "other.pub.pem"
    other.write_bytes(_pem_of_new_key())
    wrong = verify(copy.settings, everything=True, check_advisories=False, workers=1,
                   answers_key=other)
    assert [c.status for c in wrong.index if c.name == VEX] == [FAIL]


def _pem_of_new_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
