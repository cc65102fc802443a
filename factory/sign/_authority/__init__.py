"""The embedded authority: the factory's own private Sigstore.

A Fulcio-compatible CA with a CT key (ca.py), a Rekor v1-compatible
transparency log (log.py, merkle.py, entries.py), an identity-token issuer
(tokens.py), their keys (keys.py), and the HTTP server the stock client talks
to (server.py). Private: the pipeline uses it through factory.sign.
"""

from factory.sign._authority.server import serve
from factory.sign._authority.service import Authority

__all__ = ["Authority", "serve"]
