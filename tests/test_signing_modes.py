"""The three signing modes share the stock client path; misconfiguration fails clearly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from sigstore.models import Bundle, ClientTrustConfig

from factory.config import Settings
from factory.errors import ConfigError, SigningError, VerificationError
from factory.sign import init_authority, open_signer, verify_artifact
from factory.sign._authority import Authority, serve
from factory.sign._authority.log import TransparencyLog
from factory.sign.trust import client_trust_config
from tests import factories
from tests.signing_fixtures import IDENTITY, ISSUER


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "demo_pkg-1.0.0-py3-none-any.whl"
    path.write_bytes(b"wheel bytes")
    return path


def authority_at(base: Path) -> Settings:
    """A project under ``base`` with its embedded authority initialised."""
    settings = factories.settings(base, project="project")
    init_authority(settings)
    return settings


@contextmanager
def private_mode(tmp_path: Path, service: Authority) -> Iterator[Settings]:
    """While ``service`` serves: a factory (in tmp_path/factory) in private mode, with
    a trust config that names it."""
    with serve(service) as url:
        config = tmp_path / "org-trust-config.json"
        config.write_text(json.dumps(client_trust_config(service.keys, url)))
        yield factories.settings(tmp_path / "factory", project="project",
                                 signing_mode="private", trust_config=str(config))


def test_embedded_mode_needs_initialised_keys(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path, project="project")
    with pytest.raises(SigningError, match="no signing authority") as caught, open_signer(settings):
        pass
    assert "factory keys init" in caught.value.hint


@pytest.mark.parametrize(("mode", "said"), [
    ("keyfile", "keyfile"),  # an unknown mode
    ("private", "trust config"),  # private mode without a trust config
])
def test_an_unknown_or_incomplete_mode_is_a_config_error(tmp_path: Path, mode: str,
                                                         said: str) -> None:
    settings = factories.settings(tmp_path, project="project", signing_mode=mode)
    with pytest.raises(ConfigError, match=said), open_signer(settings):
        pass


def test_private_mode_signs_against_a_trust_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An organisation's private Sigstore, played by an authority in another state dir.
    org = authority_at(tmp_path / "org")
    service = Authority(org.authority_dir)
    wheel = _file(tmp_path)
    with private_mode(tmp_path, service) as settings:
        monkeypatch.setenv("SIGSTORE_ID_TOKEN", service.issue_token(IDENTITY, ISSUER))
        with open_signer(settings) as signer:
            bundle = signer.sign_artifact(wheel)
    root = org.public_keys_dir / "trusted_root.json"
    verify_artifact(wheel, bundle, root, IDENTITY, ISSUER)


def test_private_mode_without_token_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    org = authority_at(tmp_path / "org")
    monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
    settings = factories.settings(
        tmp_path / "factory",
        project="project",
        signing_mode="private",
        trust_config=str(org.authority_dir / "trust_config.json"),
    )
    with open_signer(settings) as signer, pytest.raises(SigningError, match="SIGSTORE_ID_TOKEN"):
        signer.sign_artifact(_file(tmp_path))


def test_private_mode_with_foreign_token_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = authority_at(tmp_path / "org")
    rogue = authority_at(tmp_path / "rogue")
    service = Authority(org.authority_dir)
    monkeypatch.setenv(
        "SIGSTORE_ID_TOKEN", Authority(rogue.authority_dir).issue_token(IDENTITY, ISSUER)
    )
    with (private_mode(tmp_path, service) as settings, open_signer(settings) as signer,
          pytest.raises(SigningError, match="401")):
        signer.sign_artifact(_file(tmp_path))


def test_bundle_without_signed_time_is_a_signing_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = factories.settings(tmp_path, project="project")
    init_authority(settings)
    answer = TransparencyLog.response

    def without_set(self: TransparencyLog, entry: Any) -> dict[str, Any]:
        response = answer(self, entry)
        for value in response.values():
            value["verification"]["signedEntryTimestamp"] = ""
        return response

    monkeypatch.setattr(TransparencyLog, "response", without_set)
    with open_signer(settings) as signer, pytest.raises(SigningError, match="no signed time"):
        signer.sign_artifact(_file(tmp_path))


@pytest.mark.network
def test_public_mode_signs_with_ambient_credential(tmp_path: Path) -> None:
    from id import IdentityError, detect_credential

    try:
        credential = detect_credential("sigstore")
    except IdentityError:
        credential = None
    if not credential:
        pytest.skip("no ambient OIDC credential (public Sigstore runs only in CI with OIDC)")
    settings = factories.settings(tmp_path, project="project", signing_mode="public")
    wheel = _file(tmp_path)
    with open_signer(settings) as signer:
        bundle = signer.sign_artifact(wheel)
    root = tmp_path / "public_trusted_root.json"
    root.write_text(ClientTrustConfig.production()._inner.trusted_root.to_json())
    cert = Bundle.from_json(bundle).signing_certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    identity = (
        san.get_values_for_type(x509.UniformResourceIdentifier)
        or san.get_values_for_type(x509.RFC822Name)
    )[0]
    issuer = cert.extensions.get_extension_for_oid(
        x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
    ).value.value.decode()  # type: ignore[attr-defined]
    verify_artifact(wheel, bundle, root, identity, issuer)
    with pytest.raises(VerificationError):
        verify_artifact(wheel, bundle, root, IDENTITY, ISSUER)
