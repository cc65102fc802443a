"""The index over HTTP: a Starlette ASGI app, run by uvicorn.

Nothing is sent because it is on disk. Every page (the home page, the Simple
API's project list and project pages in HTML and JSON, the human project
pages) is rendered from the published records and cached by the record's stat
key; the static copies publishing writes beside them (for nginx,
docs/nginx.md) are only compared with it, and a copy that differs is logged,
never sent. Every file (distributions, sidecars, sources, trust material) is
found by its exact name in a record (trust material: in the manifest
publish_trust writes), opened without following a symbolic link, only if it is
a regular file inside the index directory, and sent only if its bytes match
the recorded digest (hashed once per change of its size, mtime, inode and
ctime). Small files are kept in memory once verified, within a byte budget, so
a repeat request costs one stat: no read, no hash, no hop to a thread.

Requests are screened before routing (``protocol``). It also adds what a plain
web server cannot: content negotiation by q-value (PEP 691), redirects to
normalized names, a 404 for any unknown project that says why and what instead
(never a redirect or a fallback to a public index), the Integrity API (PEP 740) and
the policy API under /api/v1/ (``api``: signed answers to "may I use this?"), and
the embedded transparency log under /log/ (tlog-tiles: factory.sign.tiles) and the
TUF repository of the index's Sigstore trust under /tuf/ (factory.sign.tuf_repo).

Modules: ``app`` (the handlers), ``files`` (reading the tree and the caches),
``protocol`` (screening, negotiation, the plain answers), ``explain`` (the 404 of
a name the index does not serve), ``api`` (the policy API).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.routing import Route

from factory.advice import Advisor, verifier_id
from factory.index.serve.api import PolicyApi
from factory.index.serve.app import DamagedRecord, IndexApp
from factory.index.serve.protocol import Screen, damaged

if TYPE_CHECKING:
    from securesystemslib.signer import Signer

    from factory.config import Settings
    from factory.index.changes import Index


def create_app(index: Index, signer: Signer | None = None,
               settings: Settings | None = None) -> Starlette:
    """The app serving ``index``; ``signer`` (the answers key) signs the policy API's
    answers (None: they go unsigned, their envelope null); requests for components are
    queued in the ledger of ``settings`` (None: not taken)."""
    handlers = IndexApp(index)
    advisor = Advisor(handlers.explain.knowledge, signer, verifier_id(index.base_url),
                      lookup=handlers.explain.answer)
    routes = [
        *PolicyApi(advisor, settings).routes(),
        Route("/", handlers.home),
        Route("/simple/", handlers.simple_root),
        Route("/simple", handlers.add_slash),
        Route("/simple/{project}/", handlers.simple_project),
        Route("/simple/{project}", handlers.add_slash),
        Route("/project/{project}/", handlers.human_project),
        Route("/project/{project}", handlers.add_slash),
        Route("/files/{project}/{path:path}", handlers.files),
        Route("/sources/{project}/{path:path}", handlers.sources),
        Route("/integrity/{project}/{version}/{filename}/provenance", handlers.integrity),
        Route("/.well-known/factory/", handlers.trust_index),
        Route("/.well-known/factory", handlers.add_slash),
        Route("/.well-known/factory/{path:path}", handlers.trust_file),
        Route("/log/{path:path}", handlers.log_file),
        Route("/tuf/{path:path}", handlers.tuf_file),
    ]
    app = Starlette(routes=routes, exception_handlers={DamagedRecord: damaged})
    # Trailing-slash redirects are the routes above: Starlette's own would echo the
    # Host header into an absolute Location.
    app.router.redirect_slashes = False
    app.add_middleware(Screen)
    app.state.index = handlers
    return app


# uvicorn's own defaults would take X-Forwarded-For from 127.0.0.1 as the client's
# address: any local process (or a proxy passing the header on) would choose the origin
# its requests count against (factory.intake's share per origin).
SERVER_OPTIONS: dict[str, Any] = {"server_header": False, "proxy_headers": False}


def serve(index: Index, host: str, port: int, signer: Signer | None = None,
          settings: Settings | None = None) -> None:
    """Run the index server until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    uvicorn.run(create_app(index, signer, settings), host=host, port=port, log_level="info",
                **SERVER_OPTIONS)
