"""Trust material of the embedded authority, in the formats stock Sigstore tools read.

- ``trusted_root.json`` (media type trustedroot v0.1): the CA certificate, the
  CT key under ``ctlogs`` and the log key under ``tlogs``. Public: it goes to
  keys/ and is published with the index. Auditors verify with it alone.
- ``trust_config.json`` (clienttrustconfig v0.1): that root plus a signing
  config v0.2 naming the authority's Fulcio/Rekor URLs, for
  ``sigstore --trust-config FILE sign|verify ...``. Public too (a root and
  URLs): it also goes to keys/ and is served at
  /.well-known/factory/trust_config.json, so that an auditor runs the stock
  ``sigstore --trust-config trust_config.json verify identity ...`` with only
  what the index serves (``public_trust_config`` checks it before it is).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore.models import ClientTrustConfig, TrustedRoot

from factory._internal.atomic import canonical_json, write_text
from factory.config import Settings
from factory.sign._authority.ca import key_id
from factory.sign._authority.keys import ORGANIZATION, AuthorityKeys, ensure_keys

TRUSTED_ROOT = "trusted_root.json"
TRUST_CONFIG = "trust_config.json"
DEFAULT_PORT = 8710  # where `factory authority serve` listens; embedded signing uses a free port
OPERATOR = "artifact-factory"


def _time(keys: AuthorityKeys) -> str:
    return keys.created.isoformat().replace("+00:00", "Z")


def _public_key(key: ec.EllipticCurvePrivateKey, keys: AuthorityKeys) -> dict[str, Any]:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "rawBytes": base64.b64encode(der).decode(),
        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
        "validFor": {"start": _time(keys)},
    }


def _log(key: ec.EllipticCurvePrivateKey, keys: AuthorityKeys, url: str) -> dict[str, Any]:
    return {
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": _public_key(key, keys),
        "logId": {"keyId": base64.b64encode(key_id(key.public_key())).decode()},
    }


def trusted_root(keys: AuthorityKeys, url: str) -> dict[str, Any]:
    ca_der = keys.ca_cert.public_bytes(serialization.Encoding.DER)
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [_log(keys.log_key, keys, url)],
        "certificateAuthorities": [
            {
                "subject": {
                    "organization": ORGANIZATION,
                    "commonName": f"{ORGANIZATION} signing CA",
                },
                "uri": url,
                "certChain": {"certificates": [{"rawBytes": base64.b64encode(ca_der).decode()}]},
                "validFor": {"start": _time(keys)},
            }
        ],
        "ctlogs": [_log(keys.ct_key, keys, url)],
        "timestampAuthorities": [],
    }


def signing_config(keys: AuthorityKeys, url: str) -> dict[str, Any]:
    def service(service_url: str) -> dict[str, Any]:
        return {
            "url": service_url,
            "majorApiVersion": 1,
            "validFor": {"start": _time(keys)},
            "operator": OPERATOR,
        }

    return {
        "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
        "caUrls": [service(url)],
        "oidcUrls": [],
        "rekorTlogUrls": [service(url)],
        "tsaUrls": [],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    }


def client_trust_config(keys: AuthorityKeys, url: str) -> dict[str, Any]:
    return {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": trusted_root(keys, url),
        "signingConfig": signing_config(keys, url),
    }


def load_client_trust_config(keys: AuthorityKeys, url: str) -> ClientTrustConfig:
    """The stock client's view of the authority running at ``url``."""
    return ClientTrustConfig.from_json(json.dumps(client_trust_config(keys, url)))


def default_url(settings: Settings, port: int = DEFAULT_PORT) -> str:
    return f"http://{settings.authority_host}:{port}"


def _write_public(path: Path, value: dict[str, Any]) -> None:
    text = canonical_json(value)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return  # idempotent: leave an identical file (and its mtime) alone
    write_text(path, text)
    os.chmod(path, 0o644)


def init_authority(settings: Settings) -> None:
    """Create the authority's keys (once) and (re)write its public trust files."""
    keys = ensure_keys(settings.authority_dir)
    url = default_url(settings)
    root = trusted_root(keys, url)
    _write_public(settings.authority_dir / TRUSTED_ROOT, root)
    _write_public(settings.authority_dir / TRUST_CONFIG, client_trust_config(keys, url))
    # Parse what we wrote with the stock parsers: a format slip fails here, not at signing.
    TrustedRoot.from_file(str(settings.authority_dir / TRUSTED_ROOT))
    _ = load_client_trust_config(keys, url).signing_config
    _write_public(settings.public_keys_dir / TRUSTED_ROOT, root)
    _write_public(settings.public_keys_dir / TRUST_CONFIG, client_trust_config(keys, url))


_CONFIG_FIELDS = {"mediaType", "trustedRoot", "signingConfig"}
_PRIVATE_MARKS = (b"PRIVATE KEY", b"privateKey", b"private_key")


def public_trust_config(config: Path, root: Path) -> None:
    """Raise ValueError unless ``config`` is a ClientTrustConfig holding only public
    material (the trusted root ``root`` and a signing config) that the stock parser reads.

    It is published for anyone to fetch: no private key, nothing but the three fields,
    and its trusted root the very one published beside it (one root, not two).
    """
    data = config.read_bytes()
    if any(mark in data for mark in _PRIVATE_MARKS):
        raise ValueError(f"{config} mentions a private key")
    value = json.loads(data)
    if not isinstance(value, dict) or set(value) != _CONFIG_FIELDS:
        raise ValueError(f"{config} is not a ClientTrustConfig of exactly "
                         f"{', '.join(sorted(_CONFIG_FIELDS))}")
    if value["trustedRoot"] != json.loads(root.read_bytes()):
        raise ValueError(f"{config}'s trusted root is not {root}")
    parsed = ClientTrustConfig.from_json(data.decode("utf-8"))
    _ = parsed.trusted_root, parsed.signing_config  # both parse with the stock models
