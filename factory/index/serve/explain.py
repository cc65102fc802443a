"""The 404 of a name the index does not serve, explained (``factory.why``).

The answer says which case it is (not approved; close to an approved name; approved
but not published, and why) in JSON for a client that accepts JSON (pip and uv ask
for the Simple API's JSON first), else in one short line of text. It is made only
from what the index publishes anyway (records/_catalog.json, records/_status.json),
derived once per change of either (their stat keys) and matched in bounded time
(the last 4,096 answers are kept with them); never a redirect, never a fallback
to another index.

    explainer = Explainer(handlers._data, DamagedRecord)
    explainer.not_served(request, "reqests")   # 404: "... did you mean: requests"
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache, partial
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from factory.index.regen import STATUS_FILE
from factory.index.serve.files import StatCache, StatKey
from factory.index.serve.protocol import accept_of, media_ranges
from factory.index.validation import catalog_rows, status_rows
from factory.why import (
    NOT_APPROVED,
    NOT_PUBLISHED,
    SERVED,
    Answer,
    Knowledge,
    Release,
    answer,
    plausible,
)

log = logging.getLogger("factory.index.serve")

SHOWN = 300  # characters of a client-supplied name echoed in the log line
ANSWERS = 4096  # answers kept per version of the records (the same typo is asked again)
_JSON_TYPES = frozenset({"application/vnd.pypi.simple.v1+json",
                         "application/vnd.pypi.simple.latest+json", "application/json"})
# The body quotes the name asked: never to be sniffed as HTML by a browser showing it.
_HEADERS = {"Vary": "Accept", "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
Data = Callable[[str, Callable[[Any], Any]], tuple[StatKey, Any] | None]


def wants_json(request: Request) -> bool:
    """Does the client accept JSON (any JSON type the index speaks, q > 0)?"""
    return any(media in _JSON_TYPES and all(q > 0 for q in qualities)
               for media, qualities in media_ranges(accept_of(request)))


class Explainer:
    """Answers for the names the index does not serve, from the published catalog and
    status (``data`` reads a records/ file once per change, raising DamagedRecord)."""

    def __init__(self, data: Data, damaged: type[Exception],
                 releases: Callable[[str], list[Release] | None] | None = None) -> None:
        self._data, self._damaged, self._releases = data, damaged, releases
        self._cache = StatCache()

    def knowledge(self) -> Knowledge:
        """The approved and published names, indexed once per change of the records."""
        return self._current()[0]

    def answer(self, name: str) -> Answer:
        """``factory.why.answer`` for ``name``; the last answers are kept (bounded, and
        dropped with the records they came from)."""
        knowledge, cached = self._current()
        # Only names that reach the matching are kept: any other is answered at once,
        # and could only fill the cache with the longest escaped text.
        return cached(name) if plausible(name) else answer(knowledge, name)

    def _approved(self, project: str) -> bool:
        component = self.knowledge().components.get(project)
        return component is not None and component.approved

    def _current(self) -> tuple[Knowledge, Callable[[str], Answer]]:
        try:
            catalog = self._data("_catalog.json", catalog_rows)
            status = self._data(STATUS_FILE, status_rows)
        except self._damaged:  # logged where it was read; the 404 still answers
            catalog = status = None
        key = (catalog[0] if catalog else None, status[0] if status else None)
        found = self._cache.get("knowledge", key)
        if found is None:
            knowledge = Knowledge.from_rows(status[1] if status else (),
                                            catalog[1] if catalog else (), self._releases)
            found = (knowledge, lru_cache(maxsize=ANSWERS)(partial(answer, knowledge)))
            self._cache.put("knowledge", key, found)
        return found  # type: ignore[no-any-return]

    def not_served(self, request: Request, name: str) -> Response:
        """The 404 for ``name``: which case it is, and what to use instead."""
        found = self.answer(name)
        if found.verdict == SERVED:  # in the catalog, but its record is gone
            approved = found.project is not None and self._approved(found.project)
            found = replace(found, verdict=NOT_PUBLISHED if approved else NOT_APPROVED,
                            reason="approved, but not published on this server now"
                            if approved else "not an approved component of this index")
        log.warning("unknown project requested: %r -> 404 %s%s", name[:SHOWN], found.verdict,
                    f": did you mean {', '.join(found.suggestions)}" if found.suggestions else "")
        if wants_json(request):
            return Response(found.to_json(), status_code=404, media_type="application/json",
                            headers=_HEADERS)
        return PlainTextResponse(text(found), status_code=404, headers=_HEADERS)


def text(found: Answer) -> str:
    """One or two short lines: what the name is, and the way to get it approved."""
    line = found.message() + "\n"
    if found.verdict in ("not-approved", "did-you-mean"):
        line += "to use another component, ask the platform team to approve it\n"
    return line
