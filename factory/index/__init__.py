"""The internal index: atomic publish, Simple API pages, human pages, serving, upload.

The index directory is a static tree (see ``records``) that any web server can
serve; ``serve`` adds content negotiation, the Integrity API and digest checks.
``Index`` (``changes``) is one index directory and the URL clients reach it at:
callers build it once and call its methods to publish, yank, check or rebuild.

Modules: ``records`` (the on-disk layout, the record types, the sidecar names),
``validation`` (the rules records follow; reading and writing them), ``intake``
(what a publish is given), ``store`` (immutable placement, the lock), ``changes``
(the Index), ``regen``/``pages``/``human`` (the pages; ``splice`` puts one
project's entry into the whole-index documents), ``check``/``pagediff``/
``tree`` (`factory index check`), ``serve/``, ``upload``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from factory._internal.lazy import lazy_attributes

if TYPE_CHECKING:
    from factory.index.changes import Index, PublishedFile, UnknownProjectError
    from factory.index.serve import create_app

# Imported on first use: the build and attest stages read the sidecar names in
# factory.index.records, and must not pay for the publisher and the server.
# (``serve`` and ``upload`` are the modules of those names, not re-exported.)
_LAZY = {
    "Index": "factory.index.changes",
    "PublishedFile": "factory.index.changes",
    "UnknownProjectError": "factory.index.changes",
    "create_app": "factory.index.serve",
}
__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["Index", "PublishedFile", "UnknownProjectError", "create_app"]
