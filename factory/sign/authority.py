"""Running the embedded authority for stock tools (`factory authority serve|token`).

``open_signer`` starts the authority by itself; these are for people who want
to point the stock ``sigstore`` CLI at it, e.g. to check interoperability:

    factory authority serve &            # http://127.0.0.1:8710, as trust_config.json says
    sigstore --trust-config .factory/authority/trust_config.json \\
        sign --identity-token "$(factory authority token)" FILE
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from factory.config import Settings
from factory.errors import SigningError
from factory.sign._authority import Authority, serve
from factory.sign.trust import DEFAULT_PORT


def issue_token(settings: Settings) -> str:
    """A 10-minute identity token for settings.identity/issuer (a secret: do not log it)."""
    return Authority(settings.authority_dir).issue_token(settings.identity, settings.issuer)


def serve_authority(
    settings: Settings,
    port: int = DEFAULT_PORT,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve the authority on settings.authority_host:port until ``stop`` is set (or Ctrl-C)."""
    authority = Authority(settings.authority_dir)
    stop = stop or threading.Event()
    try:
        with serve(authority, host=settings.authority_host, port=port) as url:
            if ready:
                ready(url)
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way out
                stop.wait()
    except OSError as exc:
        raise SigningError(
            f"cannot listen on {settings.authority_host}:{port}: {exc}",
            "pick another port with --port, or stop what is using it",
        ) from None
