"""Intake: requests for components not approved yet, queued in the ledger.

A developer or an assistant asks for a project (`factory request`, the policy API's
POST /api/v1/requests, the MCP tool ``request_component``) with who asks and why.
The request is queued (``pending``) and answered with a token to poll. The platform
team decides (`factory requests approve|deny`); or policy decides, when the site sets
``[intake] auto_approve = true``: a request is approved by policy when ``factory add``
would approve its whole closure by itself (licences within the site policy, a release
no advisory affects, an sdist upstream, requirements met) and its name is not close to
an approved one (a look-alike is what a typosquat is; a human decides those). A name
upstream does not know is denied by policy (likely hallucinated).

Deciding by policy and fulfilling are one pass over the queue, in factory.intake_policy
(`factory requests process`, the factory-intake flow).

Everything a requester sends is untrusted and bounded: the requirement (a project
name with an optional range, at most 1,000 characters), the requester (100) and the
reason (500), made printable. At most MAX_OPEN requests are open at once, and at most
MAX_OPEN_PER_ORIGIN from one origin (an API client's address, its /64 for IPv6, or
the local user), which may also ask at most MAX_NEW_PER_ORIGIN_DAY times a day: a flood
gets one clear error each. A request is read and written under a lock of the state
directory, so asks at once count as asks one after the other. Asking again for a
name already open adds a vote to that request, and for a denied one answers the
denial, each as that request's public view (not its token, requester, origin or
reason); asking for a name already approved
answers what the index says of it. The requester is who the client says it is (the
API has no authentication); the origin is what the factory saw.

    ticket = submit(settings, knowledge, "attrs>=23", requester="ada", reason="for tests",
                    origin="api:10.0.0.5")
    decide(settings, ticket.token, approve=True, by="alice")
    status(settings, ticket.token).state          # "approved": the next pass fulfils it
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import func, select, update

from factory import ledger
from factory.advice import canonical
from factory.config import Settings
from factory.errors import FactoryError, one_line
from factory.ledger import RequestEntry
from factory.upstream.listing import is_project_name
from factory.why import DID_YOU_MEAN, NOT_APPROVED, Knowledge, answer, clip

PENDING, APPROVED, BUILDING = "pending", "approved", "building"
INSTALLABLE, DENIED, FAILED = "installable", "denied", "failed"
STATES = (PENDING, APPROVED, BUILDING, INSTALLABLE, DENIED, FAILED)
OPEN = (PENDING, APPROVED, BUILDING)
POLICY = "policy"  # decided_by of what policy decided

MAX_ASKED = 1000
MAX_REQUESTER = 100
MAX_REASON = 500
MAX_ORIGIN = 100
MAX_OPEN = 1000
MAX_OPEN_PER_ORIGIN = 20
# New requests from one origin in a day, however they were decided: policy denies an
# invented name within a pass, which frees its open slot at once.
MAX_NEW_PER_ORIGIN_DAY = 100
MAX_LISTED = 500
TOKEN_BYTES = 12  # 96 random bits: a token is a capability to read one request


class IntakeError(FactoryError):
    default_hint = "see `factory requests list`; docs/policy-api.md describes requests"


class QueueFull(IntakeError):
    """Too many open requests (from one origin, or in all)."""


@dataclass(frozen=True)
class Ticket:
    """One request as the requester and the platform team see it."""

    token: str
    name: str
    asked: str
    state: str
    detail: str
    requester: str
    origin: str
    reason: str
    votes: int
    decided_by: str | None
    version: str | None
    created: str
    updated: str

    @classmethod
    def of(cls, row: RequestEntry) -> Ticket:
        return cls(row.token, row.component, row.asked, row.state, row.detail or "",
                   row.requester, row.origin, row.reason or "", row.votes, row.decided_by,
                   row.version, _stamp(row.created), _stamp(row.updated))

    @property
    def open(self) -> bool:
        return self.state in OPEN

    def message(self) -> str:
        """One line: what was asked and where it stands."""
        line = f"request {self.token} for {self.asked}: {self.state}"
        if self.state == INSTALLABLE and self.version:
            line += f" ({self.name}=={self.version} is served)"
        return line + (f"; {self.detail}" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["message"] = self.message()
        return data

    def public(self) -> dict[str, Any]:
        """What anyone asking for the same project may see: where it stands, without
        the token (the capability to read the request), who asked, from where and why."""
        data = {k: v for k, v in self.__dict__.items() if k not in PRIVATE}
        data["message"] = f"a request for {self.asked}: {self.state}" + (
            f" ({self.version} is served)" if self.state == INSTALLABLE and self.version
            else "") + (f"; {self.detail}" if self.detail else "")
        return data


PRIVATE = ("token", "requester", "origin", "reason")


@dataclass(frozen=True)
class Submitted:
    """What a submission did: ``ticket`` (queued, or the open one it voted for) or,
    for a name the index already approves, ``answer`` (what the index says of it)."""

    ticket: Ticket | None
    answer: dict[str, Any] | None = None
    queued: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The answer a requester gets: their own request in full, or, for a project
        someone else asked for already, that request's public view (a vote must not
        hand out another requester's token, address and reason)."""
        request = None if self.ticket is None else self.ticket.to_dict() if self.queued \
            else self.ticket.public()
        return {"queued": self.queued, "request": request, "answer": self.answer}

    def message(self) -> str:
        if self.ticket is not None:
            if self.queued:
                return f"queued: {self.ticket.message()}"
            return f"already asked: {self.ticket.public()['message']}"
        assert self.answer is not None
        return f"not queued: {self.answer['message']}"


def _stamp(when: datetime | None) -> str:
    if when is None:
        return ""
    when = when if when.tzinfo else when.replace(tzinfo=UTC)  # SQLite drops the zone
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- input ----------------------------------------------------------------------------
def parse_asked(text: object) -> Requirement:
    """The requirement asked for: a project name with an optional version range."""
    if not isinstance(text, str):
        raise IntakeError("the requirement must be text")
    if len(text) > MAX_ASKED:
        raise IntakeError(f"the requirement is {len(text)} characters long; at most "
                          f"{MAX_ASKED} are taken", "ask for NAME or NAME<range>")
    try:
        req = Requirement(text.strip())
    except InvalidRequirement:
        raise IntakeError(f"{clip(text.strip(), 80)!r} is not NAME or NAME<range>",
                          'ask e.g. for "attrs" or "attrs>=23"') from None
    if req.url or req.marker or not is_project_name(req.name) or len(req.name) > 200:
        raise IntakeError(f"{clip(text.strip(), 80)!r} is not a project name with an "
                          "optional version range", 'ask e.g. for "attrs>=23"')
    return req


def _field(value: object, what: str, limit: int, default: str = "") -> str:
    """A requester's free text: printable, on one line, bounded."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise IntakeError(f"the {what} must be text")
    if len(value) > limit * 4:  # far over: refuse rather than keep a tenth of it
        raise IntakeError(f"the {what} is {len(value)} characters long; at most {limit} "
                          "are kept")
    return bounded(" ".join(value.split()), limit) or default


def bounded(text: str, limit: int) -> str:
    """``text`` made printable and cut to at most ``limit`` characters, the "…" that
    marks a cut included: it goes into a column of that length (PostgreSQL refuses a
    longer value)."""
    shown = clip(text, limit)
    return shown if len(shown) <= limit else clip(text, limit - 1)


# -- the queue ------------------------------------------------------------------------
def submit(settings: Settings, knowledge: Knowledge, asked: object, requester: object = None,
           reason: object = None, origin: str = "cli") -> Submitted:
    """Queue a request for ``asked`` (or vote for the open one of that project, or
    answer what the index says of a project it approves already)."""
    req = parse_asked(asked)
    who = _field(requester, "requester", MAX_REQUESTER, "anonymous")
    why = _field(reason, "reason", MAX_REASON)
    where = bounded(origin, MAX_ORIGIN)
    name = canonicalize_name(req.name)
    known = answer(knowledge, name)
    if known.verdict not in (NOT_APPROVED, DID_YOU_MEAN):
        return Submitted(None, known.to_dict())  # approved already: nothing to ask
    with _queue_lock(settings), ledger.session(settings) as db:
        same = db.scalars(select(RequestEntry).where(
            RequestEntry.component == name,
            RequestEntry.state.in_((*OPEN, DENIED))).order_by(RequestEntry.id.desc())).first()
        if same is not None:
            if same.state != DENIED:
                same.votes += 1
            return Submitted(Ticket.of(same))
        _room(db, where)
        detail = ""
        if known.verdict == DID_YOU_MEAN:
            detail = ("close to approved " + ", ".join(known.suggestions) +
                      ": a human decides (a typo, or a look-alike name?)")
        row = RequestEntry(token=secrets.token_hex(TOKEN_BYTES), component=name,
                           asked=canonical(str(req)), requester=who, origin=where,
                           reason=why, state=PENDING, detail=detail)
        db.add(row)
        db.flush()
        ticket = Ticket.of(row)
    ledger.record_decision(settings, name, "requested",
                           one_line(f"{ticket.token} by {who} ({where}): {why}", 600))
    return Submitted(ticket, queued=True)


@contextmanager
def state_lock(settings: Settings, name: str) -> Iterator[None]:
    """Holds the lock file ``name`` of this state directory (exclusive, across
    processes and threads alike)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.state_dir / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _queue_lock(settings: Settings) -> Any:
    """The lock a request is read and written under: two asks at once for one name made
    two rows, and a burst from one origin passed its share (each counted before the
    other wrote), whatever the ledger."""
    return state_lock(settings, "intake-queue.lock")


def _room(db: Any, origin: str) -> None:
    """QueueFull when the queue, or this origin's share of it (open now, or new in the
    last day), is full."""
    opened = RequestEntry.state.in_(OPEN)
    total = db.scalar(select(func.count()).select_from(RequestEntry).where(opened))
    if total >= MAX_OPEN:
        raise QueueFull(f"{total} requests are open; no more are queued now",
                        "ask again once the platform team has decided some")
    mine = db.scalar(select(func.count()).select_from(RequestEntry).where(
        opened, RequestEntry.origin == origin))
    if mine >= MAX_OPEN_PER_ORIGIN:
        raise QueueFull(f"{mine} requests from {origin} are open; at most "
                        f"{MAX_OPEN_PER_ORIGIN} are", "poll their status, or ask the "
                        "platform team to decide them")
    today = db.scalar(select(func.count()).select_from(RequestEntry).where(
        RequestEntry.origin == origin,
        RequestEntry.created >= datetime.now(UTC) - timedelta(days=1)))
    if today >= MAX_NEW_PER_ORIGIN_DAY:
        raise QueueFull(f"{today} requests from {origin} in the last day; at most "
                        f"{MAX_NEW_PER_ORIGIN_DAY} are taken", "ask again tomorrow, or ask "
                        "the platform team")


def _token(token: object) -> str:
    if not isinstance(token, str) or len(token) != TOKEN_BYTES * 2 or not all(
            c in "0123456789abcdef" for c in token):
        raise IntakeError("no such request", "a request token is 24 hexadecimal characters, "
                          "as the request answered")
    return token


def status(settings: Settings, token: object) -> Ticket:
    """The request ``token`` names."""
    key = _token(token)
    with ledger.session(settings) as db:
        row = db.scalars(select(RequestEntry).where(RequestEntry.token == key)).first()
        if row is None:
            raise IntakeError("no such request", "check the token the request answered")
        return Ticket.of(row)


def listing(settings: Settings, states: tuple[str, ...] = (),
            limit: int = MAX_LISTED) -> list[Ticket]:
    """The newest ``limit`` requests, oldest first (only those in ``states`` when
    given): past ``limit`` rows of history, the oldest ones hid every new request."""
    with ledger.session(settings) as db:
        query = select(RequestEntry).order_by(RequestEntry.id.desc()).limit(limit)
        if states:
            query = query.where(RequestEntry.state.in_(states))
        return [Ticket.of(row) for row in db.scalars(query)][::-1]


def decide(settings: Settings, token: str, approve: bool, by: str,
           reason: str = "") -> Ticket:
    """Approve (to be fulfilled) or deny an open or denied request."""
    ticket = _decide(settings, token, approve, by, reason, None)
    assert ticket is not None  # None only where only_from is given
    return ticket


def decide_pending(settings: Settings, token: str, approve: bool, by: str,
                   reason: str = "") -> Ticket | None:
    """Approve or deny a request that is still pending (what policy decides); None if
    it is not: a human decided it meanwhile, and that stands."""
    return _decide(settings, token, approve, by, reason, (PENDING,))


def _decide(settings: Settings, token: str, approve: bool, by: str, reason: str,
            only_from: tuple[str, ...] | None) -> Ticket | None:
    key = _token(token)
    who = _field(by, "decider", MAX_REQUESTER, "operator")
    why = _field(reason, "reason", MAX_REASON)
    with _queue_lock(settings), ledger.session(settings) as db:
        row = db.scalars(select(RequestEntry).where(RequestEntry.token == key)).first()
        if row is None:
            raise IntakeError("no such request", "check the token with `factory requests "
                              "list`")
        if only_from is not None and row.state not in only_from:
            return None
        if row.state not in (PENDING, DENIED, FAILED) and not (approve and row.state ==
                                                                  APPROVED):
            raise IntakeError(f"request {key} is {row.state}; only a pending, denied or "
                              "failed request can be decided", "see `factory requests list`")
        row.state, row.decided_by = (APPROVED if approve else DENIED), who
        row.detail = why if not approve else (f"approved: {why}" if why else "")
        ticket = Ticket.of(row)
    ledger.record_decision(settings, ticket.name, "request-approved" if approve
                           else "request-denied", one_line(f"{key} by {who}: {why}", 600))
    return ticket


def set_state(settings: Settings, key: str, state: str, detail: str = "",
         version: str | None = None, when: tuple[str, ...] | None = None) -> bool:
    """Move request ``key`` to ``state`` (only from ``when``, if given); back to
    pending, it is nobody's decision."""
    changes: dict[str, Any] = {"state": state, "detail": one_line(detail, 600),
                               "version": version, "updated": datetime.now(UTC)}
    if state == PENDING:
        changes["decided_by"] = None
    with ledger.session(settings) as db:
        query = update(RequestEntry).where(RequestEntry.token == key).values(**changes)
        if when:
            query = query.where(RequestEntry.state.in_(when))
        return bool(db.execute(query).rowcount)  # type: ignore[attr-defined]
