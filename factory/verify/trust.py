"""The pinned trust of one verification run: loaded once, shared by every check.

Which trusted root: the ``--trusted-root`` the auditor names; else the
project's ``keys/trusted_root.json`` (the copy pinned in the repository); else
the one the index publishes under ``trust/``. The repository's copy wins over
the index's because an attacker who can change the index can change its
``trust/`` too. The in-toto owner key is chosen the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import Certificate
from sigstore._internal.trust import CTKeyring, Keyring, KeyringPurpose, RekorKeyring
from sigstore.errors import Error as SigstoreError
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity
from sigstore_models.trustroot import v1 as trustroot_v1

if TYPE_CHECKING:
    from sigstore._internal.timestamp import TimestampVerificationResult

from factory._internal.plainfile import NotPlain, read_plain
from factory.attest.keys import ANSWERS_KEY, OWNER_KEY, in_toto_key
from factory.config import Settings
from factory.errors import VerificationError
from factory.index.records import Layout
from factory.verify.model import TrustInfo

TRUSTED_ROOT = "trusted_root.json"
_TRUST_LIMIT = 16 << 20  # bytes of a trusted root or key file (Sigstore's public root: 7 KiB)


class TrustError(VerificationError):
    """The pinned trust itself is missing or unusable: nothing can be verified (exit 2)."""

    exit_code = 2

    default_hint = "pass --trusted-root PATH (and --owner-key PATH) with the factory's public keys"


def pick(explicit: Path | None, candidates: list[Path], what: str) -> Path:
    if explicit is not None:
        if not explicit.is_file():
            raise TrustError(f"{what} {explicit} does not exist")
        return explicit
    for path in candidates:
        if path.is_file():
            return path
    raise TrustError(f"no {what} found (looked in {', '.join(str(p) for p in candidates)})")


@dataclass(frozen=True)
class Policy:
    """Who must have signed, and which builders are allowed."""

    identity: str
    issuer: str
    builder_ids: frozenset[str]

    def sigstore(self) -> Identity:
        return Identity(identity=self.identity, issuer=self.issuer)


class Trust:
    """The loaded trusted root, owner key and policy."""

    def __init__(self, trusted_root: Path, owner_key: Path, policy: Policy) -> None:
        self.trusted_root_path = trusted_root
        self.owner_key_path = owner_key
        self.answers_key_path: Path | None = None
        self.policy = policy
        # Each file is read once: what verifies is what the report fingerprints (a file
        # swapped after loading would otherwise be described in place of the one used).
        self._root_bytes = _read_once(trusted_root, "trusted root")
        self._owner_bytes = _read_once(owner_key, "in-toto owner key")
        try:
            self.verifier = ChainMemoVerifier(trusted_root=TrustedRoot(
                trustroot_v1.TrustedRoot.from_json(self._root_bytes)))
        except (ValueError, SigstoreError) as exc:
            raise TrustError(f"cannot load the trusted root {trusted_root}: "
                             f"{_first_line(exc)}") from None
        self.owner_key = _in_toto_key(self._owner_bytes, owner_key)

    @classmethod
    def load(cls, settings: Settings, index_root: Path, *, trusted_root: Path | None = None,
             owner_key: Path | None = None, answers_key: Path | None = None,
             identity: str | None = None,
             issuer: str | None = None, builder_ids: tuple[str, ...] = ()) -> Trust:
        """The trust named (an auditor's own files, identity, builders), else the pinned one:
        the repository's keys/ before the index's trust/, the settings' identity and issuer."""
        trust_dir = Layout(index_root).trust
        root = pick(trusted_root, [settings.public_keys_dir / TRUSTED_ROOT,
                                   trust_dir / TRUSTED_ROOT], "trusted root")
        owner = pick(owner_key, [settings.public_keys_dir / OWNER_KEY, trust_dir / OWNER_KEY],
                     "in-toto owner key")
        wanted = identity or settings.identity
        # The factory's builder.id is its signing identity (docs/provenance.md).
        policy = Policy(wanted, issuer or settings.issuer, frozenset(builder_ids or (wanted,)))
        trust = cls(root, owner, policy)
        # The key the VEX feed is checked with (factory.verify.wholeindex.vex_check), as the
        # others: keys/ before the index's own; none found is a check that cannot run.
        candidates = [settings.public_keys_dir / ANSWERS_KEY, trust_dir / ANSWERS_KEY]
        trust.answers_key_path = pick(answers_key, candidates, "answers key") if answers_key \
            else next((p for p in candidates if p.is_file()), None)
        return trust

    def info(self, index: Path | str, advisories: str | None) -> TrustInfo:
        raw = self._root_bytes
        try:
            root: dict[str, Any] = json.loads(raw)
        except ValueError:
            root = {}
        return TrustInfo(
            trusted_root=str(self.trusted_root_path),
            trusted_root_sha256=hashlib.sha256(raw).hexdigest(),
            certificate_authorities=_authorities(root),
            transparency_logs=[_log_id(t) for t in root.get("tlogs", [])],
            ct_logs=[_log_id(t) for t in root.get("ctlogs", [])],
            owner_key=str(self.owner_key_path),
            owner_key_spki_sha256=_spki_sha256(self._owner_bytes),
            identity=self.policy.identity,
            issuer=self.policy.issuer,
            builder_ids=sorted(self.policy.builder_ids),
            index=str(index),
            advisories=advisories,
        )


def _first_line(exc: Exception) -> str:
    """What a parser's error says first (pydantic's run to a line per field and a URL)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2])[:300] if lines else type(exc).__name__


class ChainMemoVerifier(Verifier):
    """sigstore's Verifier, remembering within one run which signing certificates chain
    to the pinned root.

    Every bundle of one signing session carries the same leaf certificate, and the
    library builds and checks its path to the root again for each bundle (about a third
    of a bundle's verification). Path validation at a time T depends on T only through
    the validity periods of the certificates on the path; everything else it checks is a
    property of the certificates and this verifier's root store. So once the leaf (by its
    exact DER bytes) chained at one time, it chains at any time within the validity
    periods of the leaf and of every certificate on that path (inclusive, as RFC 5280
    and the library's path validation count them), and the path is not built again; at
    any other time, or for any other certificate, the library decides. Only successes
    are kept (a certificate that failed is always checked anew), and everything else
    about each bundle is verified every time by the library: its
    signature, the SCT, the identity policy, the log entry's inclusion proof, signed
    checkpoint and promise, and the times.
    """

    _LIMIT = 1024  # distinct signing certificates remembered per run

    def __init__(self, *, trusted_root: TrustedRoot) -> None:
        super().__init__(trusted_root=MemoTrustedRoot(trusted_root))
        self._chains: dict[bytes, tuple[list[Certificate], Any, Any]] = {}

    def _verify_chain_at_time(self, certificate: Certificate,
                              timestamp_result: TimestampVerificationResult,
                              ) -> list[Certificate]:
        der = certificate.public_bytes(serialization.Encoding.DER)
        known = self._chains.get(der)
        if known is not None and known[1] <= timestamp_result.time <= known[2]:
            return list(known[0])
        chain: list[Certificate] = super()._verify_chain_at_time(certificate, timestamp_result)
        path = [certificate, *chain]
        if len(self._chains) < self._LIMIT:
            self._chains[der] = (list(chain), max(c.not_valid_before_utc for c in path),
                                 min(c.not_valid_after_utc for c in path))
        return chain


class MemoKeyring(Keyring):
    """A keyring of the pinned root (the CT log's or the transparency log's keys) that
    remembers, within one run, which exact (key id, signature, data) verified.

    Whether a signature verifies is a function of those bytes and the keys alone, so a
    triple that verified once verifies again: the SCT of a signing certificate (the same
    bytes in every bundle of one signing session) and a checkpoint's note signed once
    are checked by ECDSA once. Only successes are kept, keyed by the exact bytes (no
    digest of them), so a signature, note or certificate that differs in one bit is a
    new triple and is verified by the library; past LIMIT triples nothing more is kept
    (and everything is still verified)."""

    LIMIT = 1 << 14

    def __init__(self, inner: Keyring) -> None:
        # The library's keys, parsed once (it parses them again for every bundle).
        self._keyring = inner._keyring
        self._good: set[tuple[bytes, bytes, bytes]] = set()

    def verify(self, *, key_id: bytes, signature: bytes, data: bytes) -> None:
        triple = (bytes(key_id), bytes(signature), bytes(data))
        if triple in self._good:
            return
        super().verify(key_id=key_id, signature=signature, data=data)  # type: ignore[arg-type]
        if len(self._good) < self.LIMIT:
            self._good.add(triple)


class MemoTrustedRoot(TrustedRoot):
    """The pinned trusted root, whose keyrings are MemoKeyrings.

    The library builds a new keyring (parsing every key) for each bundle from the keys
    valid for the purpose at that moment; here the keys are still selected every time
    the same way (the library's own selection), and the keyring of one selection (the
    keys' exact bytes and kinds) is built once and reused."""

    def __init__(self, root: TrustedRoot) -> None:
        super().__init__(root._inner)
        self._rings: dict[tuple[str, KeyringPurpose, tuple[tuple[bytes, Any], ...]],
                          MemoKeyring] = {}

    def _ring(self, kind: str, purpose: KeyringPurpose, made: Keyring,
              keys: tuple[tuple[bytes, Any], ...]) -> MemoKeyring:
        ring = self._rings.get((kind, purpose, keys))
        if ring is None:
            ring = self._rings[(kind, purpose, keys)] = MemoKeyring(made)
        return ring

    def rekor_keyring(self, purpose: KeyringPurpose) -> RekorKeyring:
        keys = _selection(self._get_tlog_keys(self._inner.tlogs, purpose))
        ring = self._rings.get(("rekor", purpose, keys))
        return RekorKeyring(ring or self._ring("rekor", purpose,
                                               super().rekor_keyring(purpose), keys))

    def ct_keyring(self, purpose: KeyringPurpose) -> CTKeyring:
        keys = _selection(self._get_tlog_keys(self._inner.ctlogs, purpose))
        ring = self._rings.get(("ct", purpose, keys))
        return CTKeyring(ring or self._ring("ct", purpose, super().ct_keyring(purpose), keys))


def _selection(keys: Any) -> tuple[tuple[bytes, Any], ...]:
    return tuple((bytes(k.raw_bytes or b""), k.key_details) for k in keys)


def _read_once(path: Path, what: str) -> bytes:
    """The bytes of the regular file at ``path`` (a link the auditor made is followed),
    opened without blocking (a FIFO swapped in after ``pick``), at most _TRUST_LIMIT."""
    try:
        data = read_plain(path, _TRUST_LIMIT, follow_links=True)
    except NotPlain as exc:
        raise TrustError(f"the {what} {path}: {exc.why}") from None
    if data is None:
        raise TrustError(f"the {what} {path} does not exist")
    return data


def _in_toto_key(pem: bytes, path: Path) -> dict[str, Any]:
    """The owner key in the dict form in-toto's verifylib expects."""
    try:
        return in_toto_key(pem)
    except (ValueError, TypeError) as exc:
        raise TrustError(f"cannot load the in-toto owner key {path}: {exc}") from None


def _spki_sha256(pem: bytes) -> str | None:
    try:
        public = serialization.load_pem_public_key(pem)
    except ValueError:
        return None
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _authorities(root: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for ca in root.get("certificateAuthorities", []):
        for cert in ca.get("certChain", {}).get("certificates", []):
            der = base64.b64decode(cert.get("rawBytes", ""))
            try:
                subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
            except ValueError:
                subject = "(unparsable certificate)"
            out.append({"subject": subject, "sha256": hashlib.sha256(der).hexdigest()})
    return out


def _log_id(log: dict[str, Any]) -> str:
    key_id = log.get("logId", {}).get("keyId", "")
    try:
        return base64.b64decode(key_id).hex()
    except ValueError:
        return str(key_id)
