"""The shortcuts that make `factory verify --all` fast decide as the slow paths do.

- factory.verify.trust.ChainMemoVerifier remembers a signing certificate's path to the
  root within one run: with the memo warm, a tampered bundle, a bundle from another
  authority and a wrong identity still fail, and a time outside the certificates'
  validity goes back to the library.
- factory.verify.sbom.canonical_equals answers as canonical_json does (orjson writes
  values without floats byte for byte as the standard library does).
- factory.verify.evidence.Evidence.parse says which parsed values hold a float, NaN or
  Infinity (those never take orjson's path).
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity

from factory._internal.atomic import canonical_json
from factory.sign import init_authority, open_signer
from factory.verify.evidence import Evidence
from factory.verify.sbom import canonical_equals
from factory.verify.trust import ChainMemoVerifier
from tests import factories
from tests.signing_fixtures import (
    IDENTITY,
    ISSUER,
    Signed,
    authority_fixture,  # noqa: F401 - fixture
    edit_bundle,
    signed_fixture,  # noqa: F401 - fixture
)
from tests.test_signing_verify import TAMPERINGS

POLICY = Identity(identity=IDENTITY, issuer=ISSUER)


def _warm(signed: Signed) -> ChainMemoVerifier:
    verifier = ChainMemoVerifier(trusted_root=TrustedRoot.from_file(str(signed.trusted_root)))
    verifier.verify_artifact(signed.wheel.read_bytes(), Bundle.from_json(signed.bundle), POLICY)
    return verifier


def test_the_chain_is_built_once_per_certificate(signed: Signed,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    library = Verifier._verify_chain_at_time

    def counting(self: Verifier, certificate: Any, when: Any) -> Any:
        built.append(when)
        return library(self, certificate, when)

    monkeypatch.setattr(Verifier, "_verify_chain_at_time", counting)
    verifier = _warm(signed)
    for _ in range(3):
        verifier.verify_artifact(signed.wheel.read_bytes(), Bundle.from_json(signed.bundle),
                                 POLICY)
        verifier.verify_dsse(Bundle.from_json(signed.statement_bundle), POLICY)
    assert len(built) == 1


@pytest.mark.parametrize("part", sorted(TAMPERINGS))
def test_a_tampered_bundle_fails_with_the_memo_warm(signed: Signed, part: str) -> None:
    verifier = _warm(signed)
    edit, message = TAMPERINGS[part]
    tampered = edit_bundle(signed.bundle, edit)
    with pytest.raises((SigstoreError, ValueError), match=message):
        verifier.verify_artifact(signed.wheel.read_bytes(), Bundle.from_json(tampered), POLICY)


def test_another_authority_fails_with_the_memo_warm(signed: Signed, tmp_path: Path) -> None:
    verifier = _warm(signed)
    rogue = factories.settings(tmp_path / "rogue", project="project")
    init_authority(rogue)  # same identity and issuer, other keys
    with open_signer(rogue) as signer:
        rogue_bundle = signer.sign_artifact(signed.wheel)
    with pytest.raises(SigstoreError, match="chain|certificate"):
        verifier.verify_artifact(signed.wheel.read_bytes(), Bundle.from_json(rogue_bundle),
                                 POLICY)


@pytest.mark.parametrize(("identity", "issuer"), [
    ("https://factory.invalid/builders/other", ISSUER),
    (IDENTITY, "https://accounts.google.com"),
])
def test_a_wrong_identity_fails_with_the_memo_warm(signed: Signed, identity: str,
                                                   issuer: str) -> None:
    verifier = _warm(signed)
    with pytest.raises(SigstoreError, match="do(es)? not match"):
        verifier.verify_artifact(signed.wheel.read_bytes(), Bundle.from_json(signed.bundle),
                                 Identity(identity=identity, issuer=issuer))


def test_a_time_outside_the_validity_goes_to_the_library(signed: Signed) -> None:
    from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult

    verifier = _warm(signed)
    cert = Bundle.from_json(signed.bundle).signing_certificate
    late = TimestampVerificationResult(source=TimestampSource.TRANSPARENCY_SERVICE,
                                       time=cert.not_valid_after_utc + timedelta(seconds=1))
    with pytest.raises(SigstoreError, match="chain"):
        verifier._verify_chain_at_time(cert, late)
    # The library counts the validity's ends as inside, as the memo does.
    end = TimestampVerificationResult(source=TimestampSource.TRANSPARENCY_SERVICE,
                                      time=cert.not_valid_after_utc)
    assert Verifier._verify_chain_at_time(verifier, cert, end)


# -- canonical JSON --------------------------------------------------------------------------
_TEXT = st.text(st.characters(exclude_categories=["Cs"]))  # JSON text is UTF-8
_SCALARS = (_TEXT | st.integers(min_value=-(2 ** 70), max_value=2 ** 70) | st.booleans()
            | st.none())
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_canonical_equals_agrees_with_canonical_json(value: Any) -> None:
    text = canonical_json(value).encode("utf-8")
    assert canonical_equals(text, value, integral=True)
    assert not canonical_equals(text + b" ", value, integral=True)
    assert not canonical_equals(text.replace(b"\n", b"\r\n"), value, integral=True)


@pytest.mark.parametrize("value", [1.0, [1e16], {"a": -0.0}, {"x": [0.5, 2]}])
def test_floats_are_decided_by_canonical_json(value: Any) -> None:
    text = canonical_json(value).encode()
    assert canonical_equals(text, value) and canonical_equals(text, value, integral=True)
    nan = {"n": math.nan}  # orjson writes null: never the fast path
    assert not canonical_equals(b'{\n  "n": null\n}\n', nan)


def test_evidence_knows_which_parsed_values_hold_floats(tmp_path: Path) -> None:
    ev = Evidence(tmp_path / "w.whl", "0" * 64, 0, tmp_path / "w.whl")
    plain = ev.parse(json.dumps({"a": [1, "x", None, True]}).encode())
    assert ev.integral(plain) and ev.parse(json.dumps({"a": [1, "x", None, True]}).encode()) \
        is plain
    for text in (b'{"a": 1.5}', b'[NaN]', b'{"b": [Infinity]}', b'[-Infinity]', b'[1e3]'):
        assert not ev.integral(ev.parse(text)), text
    assert not ev.integral({"a": 1})  # not a value it parsed


def test_the_pool_is_prepared_once_and_unfreezes_the_collector(monkeypatch) -> None:
    """_verify_all builds the SBOM validators before the workers fork (each inherits them,
    none builds its own) and leaves the garbage collector as it found it."""
    import gc

    from factory import verify
    from factory.verify import sbom

    prepared: list[bool] = []

    class Auditor:
        def prepare(self) -> None:
            sbom.warm_schema()
            prepared.append(gc.get_freeze_count() == 0)

        def verify(self, item: int) -> int:
            return item * 2

    monkeypatch.setattr(verify, "_PROCESSES_FROM", 2)
    out = list(verify._verify_all(Auditor(), list(range(4)), 2))  # type: ignore[arg-type]
    assert out == [0, 2, 4, 6] and prepared == [True]
    assert gc.get_freeze_count() == 0
    assert sbom._compiled.cache_info().currsize == 1
    assert sbom._validator.cache_info().currsize >= 1
