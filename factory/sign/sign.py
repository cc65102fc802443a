"""Signing through the stock sigstore-python client, in all three modes.

Every mode ends in ``SigningContext.from_trust_config(ClientTrustConfig)``;
only where the trust config and the identity token come from differs:

- ``embedded``: the factory's own authority, started on 127.0.0.1 (a free
  port) for the duration; it mints the token for settings.identity/issuer.
- ``private``: an organisation's Sigstore, from settings.trust_config (a
  ClientTrustConfig JSON file, or the https URL of its TUF repository after
  ``sigstore trust-instance``); the token comes from SIGSTORE_ID_TOKEN.
- ``public``: public-good Sigstore, with the ambient OIDC credential of the
  CI (GitHub Actions, GitLab, Buildkite, ...).

Every bundle is checked before it is handed out: it must carry signed time
(a Rekor SET or an RFC 3161 timestamp) and verify against the trust config's
own root. A bundle that would fail an auditor fails here instead.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from sigstore import dsse
from sigstore._internal.fulcio.client import ExpiredCertificate, FulcioClientError
from sigstore._internal.rekor import RekorClientError
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.oidc import ExpiredIdentity, IdentityError, IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier
from sigstore_models.common.v1 import HashAlgorithm

from factory._internal.atomic import sha256_file
from factory.config import Settings
from factory.errors import ConfigError, SigningError
from factory.sign._authority.server import serve
from factory.sign._authority.service import Authority
from factory.sign.tiles import PREFIX
from factory.sign.trust import load_client_trust_config

TOKEN_ENV = "SIGSTORE_ID_TOKEN"
MODES = ("embedded", "private", "public")
CERT_RENEWAL = 300.0  # seconds a signing certificate is reused

# What the stock client raises when a service or token fails (KeyError: a
# service answered with missing fields); wrapped into SigningError so the CLI
# shows one line and a hint.
_CLIENT_ERRORS = (
    SigstoreError,
    IdentityError,
    ExpiredIdentity,
    FulcioClientError,
    ExpiredCertificate,
    RekorClientError,
    requests.RequestException,
    ValueError,
    KeyError,
)


def _describe(exc: BaseException) -> str:
    """One line about a client failure, with the service's own message if it sent one."""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if isinstance(cause, requests.HTTPError) and cause.response is not None:
        try:
            detail = cause.response.json().get("message", "")
        except ValueError:
            detail = cause.response.text[:200]
        text = f"{text} (HTTP {cause.response.status_code}: {detail})"
    return text


def _sha256(path: Path) -> bytes:
    return bytes.fromhex(sha256_file(path))


def has_signed_time(bundle: Bundle) -> bool:
    """True when the bundle proves when it was signed (SET or RFC 3161 timestamp)."""
    entry = bundle.log_entry._inner
    promise = entry.inclusion_promise
    if entry.integrated_time and promise and promise.signed_entry_timestamp:
        return True
    tsv = bundle.verification_material.timestamp_verification_data
    return bool(tsv and tsv.rfc3161_timestamps)


class _WholeBundle:
    """Verification policy that accepts any identity: the signer checks the bundle
    is complete and valid; who signed is the auditor's policy (verify.py)."""

    def verify(self, cert: Any) -> None:
        return None


class Signer:
    """Signs files and in-toto statements; returns Sigstore bundle JSON."""

    def __init__(self, context: SigningContext, verifier: Verifier, token: Callable[[], str]):
        self._context = context
        self._verifier = verifier
        self._token = token
        self._signer: Any = None
        self._renew_at = 0.0
        self._lock = threading.Lock()  # pipelines sign from worker threads

    def _client(self) -> Any:
        # One short-lived certificate (10 minutes at Fulcio and here) serves
        # many signatures; renew it well before it expires, with a new token.
        with self._lock:
            if self._signer is None or time.monotonic() >= self._renew_at:
                with self._context.signer(IdentityToken(self._token())) as signer:
                    self._signer = signer
                self._renew_at = time.monotonic() + CERT_RENEWAL
            return self._signer

    def sign_artifact(self, path: Path) -> str:
        hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=_sha256(path))
        try:
            bundle = self._client().sign_artifact(hashed)
            self._check(
                bundle, lambda: self._verifier.verify_artifact(hashed, bundle, _WholeBundle())
            )
        except _CLIENT_ERRORS as exc:
            raise SigningError(f"signing {path.name} failed: {_describe(exc)}") from None
        return bundle.to_json()

    def sign_statement(self, statement: dict[str, Any]) -> str:
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        try:
            bundle = self._client().sign_dsse(dsse.Statement(payload))
            self._check(bundle, lambda: self._verifier.verify_dsse(bundle, _WholeBundle()))
        except _CLIENT_ERRORS as exc:
            raise SigningError(
                f"signing a {statement.get('predicateType')} statement failed: {_describe(exc)}"
            ) from None
        return bundle.to_json()

    def _check(self, bundle: Bundle, verify: Callable[[], object]) -> None:
        if not has_signed_time(bundle):
            raise SigningError(
                "the transparency log returned no signed time (no SET, no RFC 3161 timestamp)",
                "the bundle could not be verified later; check the signing config's Rekor/TSA",
            )
        verify()  # identity is the auditor's policy; here we check the bundle is whole


def publish_log(settings: Settings, authority: Authority | None = None,
                quiet: bool = False) -> int:
    """Publish the embedded log's entries and a signed checkpoint in the index's ``log/``
    (served at /log/); returns the tree size published. ``quiet``: a failure is logged,
    not raised (an error already on its way out must not be hidden by this one)."""
    try:
        authority = authority or Authority(settings.authority_dir)
        return authority.log.publish(settings.index_dir / PREFIX)
    except (OSError, SigningError) as exc:
        if not quiet:
            raise
        logging.getLogger(__name__).warning("the transparency log was not published: %s", exc)
        return 0


def _context(config: ClientTrustConfig) -> tuple[SigningContext, Verifier]:
    try:
        return SigningContext.from_trust_config(config), Verifier(trusted_root=config.trusted_root)
    except _CLIENT_ERRORS as exc:
        raise SigningError(f"the signing configuration is unusable: {exc}") from None


def _private_config(settings: Settings) -> ClientTrustConfig:
    source = settings.trust_config
    if not source:
        raise ConfigError(
            "signing mode 'private' needs a trust config",
            "set [signing] trust_config to a ClientTrustConfig JSON file or a TUF URL",
        )
    try:
        if source.startswith("https://"):
            return ClientTrustConfig.from_tuf(source)
        return ClientTrustConfig.from_json(Path(source).read_text(encoding="utf-8"))
    except (OSError, *_CLIENT_ERRORS) as exc:
        raise SigningError(
            f"cannot load the trust config {source}: {exc}",
            "for a TUF URL run `sigstore trust-instance` first; for a file check its path",
        ) from None


def _env_token() -> str:
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise SigningError(
            f"no identity token in {TOKEN_ENV}", f"export {TOKEN_ENV} from your OIDC provider"
        )
    return token


def _ambient_token() -> str:
    from id import IdentityError as AmbientError
    from id import detect_credential

    try:
        token = detect_credential("sigstore")
    except AmbientError as exc:
        raise SigningError(f"ambient OIDC credential failed: {exc}") from None
    if not token:
        raise SigningError(
            "no ambient OIDC credential for public Sigstore",
            "run in CI with an OIDC token (GitHub Actions: `id-token: write`) or use 'embedded'",
        )
    return token


@contextmanager
def open_signer(settings: Settings) -> Iterator[Signer]:
    """A Signer for settings.signing_mode, valid for the block."""
    mode = settings.signing_mode
    if mode == "embedded":
        authority = Authority(settings.authority_dir)
        # Every entry this session appended is published for monitors (/log/ of the
        # index: factory.sign.tiles), also when the session stopped on an error.
        try:
            with serve(authority, host=settings.authority_host) as url:
                context, verifier = _context(load_client_trust_config(authority.keys, url))
                yield Signer(context, verifier,
                             lambda: authority.issue_token(settings.identity, settings.issuer))
        except BaseException:
            publish_log(settings, authority, quiet=True)
            raise
        publish_log(settings, authority)
        return
    if mode == "private":
        config, token = _private_config(settings), _env_token
    elif mode == "public":
        try:
            config = ClientTrustConfig.production()
        except _CLIENT_ERRORS as exc:
            raise SigningError(f"cannot fetch the public Sigstore trust root: {exc}") from None
        token = _ambient_token
    else:
        raise ConfigError(
            f"unknown signing mode {mode!r}", f"set [signing] mode to one of: {', '.join(MODES)}"
        )
    context, verifier = _context(config)
    yield Signer(context, verifier, token)
