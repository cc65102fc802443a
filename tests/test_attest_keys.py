"""Functionary keys: creation, idempotence, refusal to overwrite, signer URIs."""

from __future__ import annotations

import base64
import json
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner, Signature

from factory.attest.keys import (
    ROLES,
    find_key_material,
    init_keys,
    load_public_key,
    load_signer,
    private_key_path,
    public_key_path,
)
from factory.config import Settings, load_settings
from factory.errors import SigningError
from tests import factories
from tests.attest_fixtures import assert_no_key_material, make_record


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings(root=tmp_path)
    init_keys(s)
    return s


def test_init_creates_one_p256_pair_per_role(settings: Settings) -> None:
    for role in ROLES:
        priv = private_key_path(settings, role)
        assert stat.S_IMODE(priv.stat().st_mode) == 0o600
        assert priv.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
        key = serialization.load_pem_private_key(priv.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
        pub = public_key_path(settings, role)
        assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SPKI
        assert pub.parent == settings.root / "keys"
    assert stat.S_IMODE(settings.private_keys_dir.stat().st_mode) == 0o700
    assert not settings.private_keys_dir.is_relative_to(settings.public_keys_dir)


def test_public_directory_holds_no_private_material(settings: Settings) -> None:
    for path in settings.public_keys_dir.iterdir():
        assert not find_key_material(path.read_text(), settings), path


def test_fingerprints_list_every_role_with_its_keyid(settings: Settings) -> None:
    doc = json.loads((settings.public_keys_dir / "fingerprints.json").read_text())
    assert set(doc["keys"]) == set(ROLES)
    for role in ROLES:
        assert doc["keys"][role]["keyid"] == load_public_key(settings, role).keyid
        assert doc["keys"][role]["scheme"] == "ecdsa-sha2-nistp256"


def test_init_is_idempotent_and_never_overwrites(settings: Settings) -> None:
    before = {p: p.read_bytes() for p in [*settings.private_keys_dir.iterdir()]}
    before |= {p: p.read_bytes() for p in settings.public_keys_dir.iterdir()}
    init_keys(settings)
    after = {p: p.read_bytes() for p in [*settings.private_keys_dir.iterdir()]}
    after |= {p: p.read_bytes() for p in settings.public_keys_dir.iterdir()}
    assert before == after


def test_published_key_without_private_half_is_refused(settings: Settings) -> None:
    private_key_path(settings, "builder").unlink()
    with pytest.raises(SigningError, match="private key .* is missing") as err:
        init_keys(settings)
    assert "rotate" in err.value.hint
    assert public_key_path(settings, "builder").is_file()  # still the published one


def test_mismatched_pair_is_refused(settings: Settings) -> None:
    public_key_path(settings, "owner").write_bytes(
        public_key_path(settings, "fetcher").read_bytes()
    )
    with pytest.raises(SigningError, match="does not match"):
        init_keys(settings)


def test_missing_public_half_is_restored_from_private(settings: Settings) -> None:
    expected = public_key_path(settings, "attestor").read_bytes()
    public_key_path(settings, "attestor").unlink()
    init_keys(settings)
    assert public_key_path(settings, "attestor").read_bytes() == expected


def test_signer_signs_what_the_public_key_verifies(settings: Settings) -> None:
    signer = load_signer(settings, "builder")
    sig = signer.sign(b"payload")
    load_public_key(settings, "builder").verify_signature(sig, b"payload")
    assert signer.public_key.keyid == load_public_key(settings, "builder").keyid


def test_unknown_role_is_an_error(settings: Settings) -> None:
    with pytest.raises(SigningError, match="unknown key role"):
        load_signer(settings, "janitor")


def _external_key(tmp_path: Path) -> tuple[Path, bytes]:
    """A key kept outside the state dir, as a KMS would keep it; its public PEM."""
    signer = CryptoSigner.generate_ecdsa()
    path = tmp_path / "elsewhere" / "owner-kms.pem"
    path.parent.mkdir()
    path.write_bytes(signer.private_bytes)
    return path, signer.public_key._crypto_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_key_uri_file_replaces_the_local_key(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path)
    external, public_pem = _external_key(tmp_path)
    settings.private_keys_dir.mkdir(parents=True)
    (settings.private_keys_dir / "owner.uri").write_text(f"file2:{external}\n")
    settings.public_keys_dir.mkdir()
    public_key_path(settings, "owner").write_bytes(public_pem)
    init_keys(settings)
    assert not private_key_path(settings, "owner").exists()  # no local key made
    sig: Signature = load_signer(settings, "owner").sign(b"x")
    load_public_key(settings, "owner").verify_signature(sig, b"x")


def test_key_uri_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(root=tmp_path)
    init_keys(settings)
    external, public_pem = _external_key(tmp_path)
    public_key_path(settings, "owner").write_bytes(public_pem)
    monkeypatch.setenv("FACTORY_KEY_OWNER", f"file2:{external}")
    signer = load_signer(settings, "owner")
    assert signer.public_key.keyid == load_public_key(settings, "owner").keyid
    signer.public_key.verify_signature(signer.sign(b"x"), b"x")


def test_key_uri_without_public_key_is_refused(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path)
    settings.private_keys_dir.mkdir(parents=True)
    (settings.private_keys_dir / "owner.uri").write_text("awskms:alias/factory-owner")
    with pytest.raises(SigningError, match="uses a key URI"):
        init_keys(settings)


def test_bad_key_uri_is_a_factory_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTORY_KEY_BUILDER", "nosuchkms:key/1")
    with pytest.raises(SigningError, match="cannot load the builder signer"):
        load_signer(settings, "builder")


# -- the secret scanner behind assert_no_key_material --------------------------------
def test_record_helper_accepts_a_clean_record(settings: Settings, tmp_path: Path) -> None:
    wheel, sdist = factories.wheel(tmp_path / "w"), factories.sdist(tmp_path / "s")
    assert_no_key_material(make_record(wheel, sdist), settings)


@pytest.mark.parametrize("leak", ["path", "pem", "der-b64", "scalar-hex", "scalar-int"])
def test_record_helper_catches_key_material(settings: Settings, tmp_path: Path, leak: str) -> None:
    wheel, sdist = factories.wheel(tmp_path / "w"), factories.sdist(tmp_path / "s")
    path = private_key_path(settings, "builder")
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    value = key.private_numbers().private_value
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    secret = {
        "path": str(path),
        "pem": path.read_text(),
        "der-b64": base64.b64encode(der).decode(),
        "scalar-hex": f"{value:064x}",
        "scalar-int": str(value),
    }[leak]
    record = make_record(wheel, sdist)
    leaky = replace(record, builder_settings={**record.builder_settings, "env": {"X": secret}})
    with pytest.raises(AssertionError, match="key material"):
        assert_no_key_material(leaky, settings)


def test_concurrent_inits_agree_on_one_key_per_role(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path)
    with ThreadPoolExecutor(4) as pool:
        errors = [f.exception() for f in [pool.submit(init_keys, settings) for _ in range(4)]]
    assert errors == [None] * 4
    init_keys(settings)  # raises if a public key does not match its private key
    for role in ROLES:
        signer = load_signer(settings, role)
        load_public_key(settings, role).verify_signature(signer.sign(b"x"), b"x")


def test_repository_keys_directory_is_public_only() -> None:
    repo_keys = Path(__file__).resolve().parents[1] / "keys"
    for path in repo_keys.rglob("*"):
        if path.is_file():
            assert not path.name.endswith(".pem.key"), path
            assert b"PRIVATE KEY" not in path.read_bytes(), path
