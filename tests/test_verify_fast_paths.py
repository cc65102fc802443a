"""The shortcuts that make `factory verify --all` fast decide as the slow paths do.

- factory.verify.trust.ChainMemoVerifier remembers a signing certificate's path to the
  root within one run: with the memo warm, a tampered bundle, a bundle from another
  authority and a wrong identity still fail, and a time outside the certificates'
  validity goes back to the library.
- factory.verify.sbom.canonical_equals answers as canonical_json does (orjson writes
  values without floats byte for byte as the standard library does).
- factory.verify.trust.MemoKeyring remembers exact signatures that verified (an SCT
  verified once per certificate): a flipped byte in a signature, its data or an SCT
  inside a re-issued certificate still fails with the memo warm.
- factory.verify.intoto validates in-toto objects as in-toto's own walk does.
- factory.verify.evidence.Evidence.parse says which parsed values hold a float, NaN or
  Infinity (those never take orjson's path).
"""

from __future__ import annotations

import base64
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


# -- the keyrings' memo (SCT, checkpoint and SET signatures) ----------------------------------
def _counting_keyring(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every signature the library's Keyring checks (after the memo), by its data."""
    from sigstore._internal.trust import Keyring

    checked: list[bytes] = []
    library = Keyring.verify

    def counting(self: Keyring, *, key_id: bytes, signature: bytes, data: bytes) -> None:
        checked.append(data)
        library(self, key_id=key_id, signature=signature, data=data)  # type: ignore[arg-type]

    monkeypatch.setattr(Keyring, "verify", counting)
    return checked


def test_a_signature_verified_once_is_not_verified_again(signed: Signed,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    checked = _counting_keyring(monkeypatch)
    verifier = _warm(signed)
    assert len(checked) == 3  # the SCT, the checkpoint, the signed entry timestamp
    for _ in range(2):
        verifier.verify_artifact(signed.wheel.read_bytes(), Bundle.from_json(signed.bundle),
                                 POLICY)
    assert len(checked) == 3
    # Another bundle of the same certificate: its checkpoint and SET are new, its SCT is not.
    verifier.verify_dsse(Bundle.from_json(signed.statement_bundle), POLICY)
    assert len(checked) == 5 and len(set(checked)) == 5


def test_the_memo_keyring_keeps_only_exact_successes(signed: Signed) -> None:
    from sigstore._internal.sct import (
        _get_issuer_cert,
        _get_signed_certificate_timestamp,
        _pack_digitally_signed,
    )
    from sigstore._internal.trust import KeyID, KeyringPurpose
    from sigstore._utils import key_id

    verifier = _warm(signed)
    leaf = Bundle.from_json(signed.bundle).signing_certificate
    sct = _get_signed_certificate_timestamp(leaf)
    issuer = _get_issuer_cert(verifier._fulcio_certificate_chain)
    data = _pack_digitally_signed(sct, leaf, key_id(issuer.public_key()))  # type: ignore[arg-type]
    ring = verifier._trusted_root.ct_keyring(KeyringPurpose.VERIFY)
    assert ring is verifier._trusted_root.ct_keyring(KeyringPurpose.VERIFY)  # built once
    ring.verify(key_id=KeyID(sct.log_id), signature=sct.signature, data=data)  # remembered
    flipped = bytearray(sct.signature)
    flipped[-1] ^= 1
    for signature, signed_data in ((bytes(flipped), data), (sct.signature, data[:-1] + b"x")):
        with pytest.raises(SigstoreError):
            ring.verify(key_id=KeyID(sct.log_id), signature=signature, data=signed_data)


def _with_flipped_sct(signed: Signed) -> str:
    """The wheel's bundle, its certificate re-issued by the same CA with one bit of the
    embedded SCT's signature flipped: it chains, and only its SCT is wrong."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from factory.sign._authority.ca import SCT_LIST_OID

    data = json.loads(signed.bundle)
    material = data["verificationMaterial"]["certificate"]
    leaf = x509.load_der_x509_certificate(base64.b64decode(material["rawBytes"]))
    ca_key = serialization.load_pem_private_key(
        (signed.settings.authority_dir / "ca-key.pem").read_bytes(), password=None)
    builder = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(leaf.issuer)
               .public_key(leaf.public_key()).serial_number(leaf.serial_number)
               .not_valid_before(leaf.not_valid_before_utc)
               .not_valid_after(leaf.not_valid_after_utc))
    for extension in leaf.extensions:
        value = extension.value
        if extension.oid == SCT_LIST_OID:
            raw = bytearray(value.public_bytes())
            raw[-1] ^= 1  # the last byte of the SCT's ECDSA signature
            value = x509.UnrecognizedExtension(SCT_LIST_OID, bytes(raw))
        builder = builder.add_extension(value, critical=extension.critical)
    forged = builder.sign(ca_key, hashes.SHA384())  # type: ignore[arg-type]
    material["rawBytes"] = base64.b64encode(forged.public_bytes(
        serialization.Encoding.DER)).decode()
    return json.dumps(data)


def test_a_flipped_sct_fails_with_the_good_certificate_checked_first(signed: Signed) -> None:
    forged = _with_flipped_sct(signed)
    fresh = Verifier(trusted_root=TrustedRoot.from_file(str(signed.trusted_root)))
    with pytest.raises(SigstoreError, match="SCT") as alone:
        fresh.verify_artifact(signed.wheel.read_bytes(), Bundle.from_json(forged), POLICY)
    verifier = _warm(signed)  # the good certificate's chain and SCT remembered
    with pytest.raises(SigstoreError, match="SCT") as warm:
        verifier.verify_artifact(signed.wheel.read_bytes(), Bundle.from_json(forged), POLICY)
    assert str(warm.value) == str(alone.value)


# -- in-toto's self-validation -----------------------------------------------------------------
def _in_toto_objects() -> list[Any]:
    from in_toto.models.layout import Inspection, Layout, Step
    from in_toto.models.link import Link

    return [
        Link(name="build", materials={"a": {"sha256": "0" * 64}}, products={},
             byproducts={"return-value": 0}, command=["true"]),
        Step(name="build", expected_command=["true"], threshold=1),
        Inspection(name="receive", run=["true"]),
        Layout(steps=[Step(name="build")], inspect=[Inspection(name="receive")]),
    ]


def test_in_toto_validation_calls_what_the_library_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """factory.verify.intoto's ValidationMixin.validate reads the same properties and calls
    the same _validate_ methods in the same order as in-toto's own walk."""
    import inspect as inspect_module

    from factory.verify import intoto

    for obj in _in_toto_objects():
        library = [name for name, _ in inspect_module.getmembers(obj, inspect_module.ismethod)
                   if name.startswith("_validate_")]
        plan = intoto._validation_plan(type(obj))
        assert plan is not None and list(plan[1]) == library, type(obj).__name__
        assert list(plan[0]) == [name for name in dir(type(obj))
                                 if isinstance(inspect_module.getattr_static(type(obj), name),
                                               property)]


@pytest.mark.parametrize("spoil", [
    lambda link: setattr(link, "byproducts", {"x": 1.5}),  # signable_bytes refuses a float
    lambda link: setattr(link, "materials", ["not a dict"]),
    lambda link: setattr(link, "command", "not a list"),
    lambda link: setattr(link, "_type", "layout"),
])
def test_in_toto_validation_fails_as_the_library_does(spoil: Any) -> None:
    from factory.verify import intoto

    link = _in_toto_objects()[0]
    spoil(link)
    with pytest.raises(Exception) as library:
        intoto._LIBRARY_VALIDATE(link)
    with pytest.raises(type(library.value)) as ours:
        link.validate()
    assert str(ours.value) == str(library.value)


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

    from factory.verify import run as verify
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


def _outcome(check: Any, argument: Any) -> Any:
    try:
        return check(argument)
    except Exception as exc:  # noqa: BLE001 - compared: the same exception both ways
        return type(exc)


def test_the_early_zip_check_agrees_with_the_inspection(tmp_path: Path) -> None:
    """factory.verify.early.zip_intact (bytes in memory) finds what the in-toto inspection
    (factory.verify.intoto._zip_ok, the file) finds, an exception included."""
    import zipfile

    from factory.verify.early import zip_intact
    from factory.verify.intoto import _zip_ok

    good = tmp_path / "good.whl"
    with zipfile.ZipFile(good, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for n in range(5):
            archive.writestr(f"pkg/m{n}.py", f"value = {n!r}\n" * 200)
    data = good.read_bytes()
    corrupt = bytearray(data)
    corrupt[60] ^= 0xFF  # inside the first member's compressed bytes
    cases = [data, bytes(corrupt), data[: len(data) // 2], b"not a zip", b""]
    outcomes = []
    for n, case in enumerate(cases):
        path = tmp_path / f"case{n}.whl"
        path.write_bytes(case)
        outcomes.append(_outcome(zip_intact, case))
        assert outcomes[-1] == _outcome(_zip_ok, path), n
    assert outcomes[0] is True and outcomes[3] is False and outcomes[1] is not True
