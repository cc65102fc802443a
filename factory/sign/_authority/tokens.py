"""The authority's identity-token issuer: short-lived OIDC-shaped JWTs.

The factory's control plane holds the token key and asks for a token for its
build identity; the CA accepts only tokens signed by that key. The claims are
those sigstore-python's ``IdentityToken`` requires (``aud`` = "sigstore").
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

AUDIENCE = "sigstore"
TOKEN_LIFETIME = 600


class TokenError(Exception):
    """The token is not one this authority issued, or is expired."""


def issue_token(key: ec.EllipticCurvePrivateKey, identity: str, issuer: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": identity,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now - 5,
        "exp": now + TOKEN_LIFETIME,
    }
    if "@" in identity and "://" not in identity:
        claims["email"] = identity
        claims["email_verified"] = True
    return jwt.encode(claims, key, algorithm="ES256")


def verify_token(public_key: ec.EllipticCurvePublicKey, token: str) -> tuple[str, str]:
    """Return (identity, issuer) of a token this authority issued."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,
            algorithms=["ES256"],
            audience=AUDIENCE,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"identity token rejected: {exc}") from None
    return str(claims["sub"]), str(claims["iss"])
