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

Fulfilling an approved request runs the same path as `factory add`, then builds and
publishes what it added; the request ends ``installable`` (with the version served)
or ``failed`` (with one line saying why). One fulfilment runs at a time per state
directory (a file lock); a request left ``building`` by a crash is taken again by the
next run, which completes it.

Everything a requester sends is untrusted and bounded: the requirement (a project
name with an optional range, at most 1,000 characters), the requester (100) and the
reason (500), made printable. At most MAX_OPEN requests are open at once, and at most
MAX_OPEN_PER_ORIGIN from one origin (an API client's address, or the local user): a
flood gets one clear error each. Asking again for a name already open adds a vote to
that request; asking for a name already approved answers what the index says of it.
The requester is who the client says it is (the API has no authentication); the
origin is what the factory saw.

    ticket = submit(settings, knowledge, "attrs>=23", requester="ada", reason="for tests",
                    origin="api:10.0.0.5")
    decide(settings, ticket.token, approve=True, by="alice")
    fulfil_approved(settings)                     # add, build, publish
    status(settings, ticket.token).state          # "installable"
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import func, select, update

from factory import ledger
from factory.config import Settings
from factory.errors import FactoryError, one_line
from factory.ledger import RequestEntry
from factory.upstream.listing import is_project_name
from factory.why import DID_YOU_MEAN, NOT_APPROVED, SERVED, Knowledge, answer, clip

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


@dataclass(frozen=True)
class Submitted:
    """What a submission did: ``ticket`` (queued, or the open one it voted for) or,
    for a name the index already approves, ``answer`` (what the index says of it)."""

    ticket: Ticket | None
    answer: dict[str, Any] | None = None
    queued: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"queued": self.queued,
                "request": self.ticket.to_dict() if self.ticket else None,
                "answer": self.answer}

    def message(self) -> str:
        if self.ticket is not None:
            verb = "queued" if self.queued else "already asked"
            return f"{verb}: {self.ticket.message()}"
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
    return clip(" ".join(value.split()), limit) or default


def canonical_asked(req: Requirement) -> str:
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" \
        if req.extras else ""
    return canonicalize_name(req.name) + extras + ",".join(
        sorted(str(s) for s in req.specifier))


# -- the queue ------------------------------------------------------------------------
def submit(settings: Settings, knowledge: Knowledge, asked: object, requester: object = None,
           reason: object = None, origin: str = "cli") -> Submitted:
    """Queue a request for ``asked`` (or vote for the open one of that project, or
    answer what the index says of a project it approves already)."""
    req = parse_asked(asked)
    who = _field(requester, "requester", MAX_REQUESTER, "anonymous")
    why = _field(reason, "reason", MAX_REASON)
    where = clip(origin, MAX_ORIGIN)
    name = canonicalize_name(req.name)
    known = answer(knowledge, name)
    if known.verdict not in (NOT_APPROVED, DID_YOU_MEAN):
        return Submitted(None, known.to_dict())  # approved already: nothing to ask
    with ledger.session(settings) as db:
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
                           asked=canonical_asked(req), requester=who, origin=where,
                           reason=why, state=PENDING, detail=detail)
        db.add(row)
        db.flush()
        ticket = Ticket.of(row)
    ledger.record_decision(settings, name, "requested",
                           one_line(f"{ticket.token} by {who} ({where}): {why}", 600))
    return Submitted(ticket, queued=True)


def _room(db: Any, origin: str) -> None:
    """QueueFull when the queue, or this origin's share of it, is full."""
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
    """Requests, oldest first (only those in ``states`` when given)."""
    with ledger.session(settings) as db:
        query = select(RequestEntry).order_by(RequestEntry.id).limit(limit)
        if states:
            query = query.where(RequestEntry.state.in_(states))
        return [Ticket.of(row) for row in db.scalars(query)]


def decide(settings: Settings, token: str, approve: bool, by: str,
           reason: str = "") -> Ticket:
    """Approve (to be fulfilled) or deny an open or denied request."""
    key = _token(token)
    who = _field(by, "decider", MAX_REQUESTER, "operator")
    why = _field(reason, "reason", MAX_REASON)
    with ledger.session(settings) as db:
        row = db.scalars(select(RequestEntry).where(RequestEntry.token == key)).first()
        if row is None:
            raise IntakeError("no such request", "check the token with `factory requests "
                              "list`")
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


def _set(settings: Settings, key: str, state: str, detail: str = "",
         version: str | None = None, when: tuple[str, ...] | None = None) -> bool:
    """Move request ``key`` to ``state`` (only from ``when``, if given)."""
    with ledger.session(settings) as db:
        query = update(RequestEntry).where(RequestEntry.token == key).values(
            state=state, detail=one_line(detail, 600), version=version, updated=datetime.now(UTC))
        if when:
            query = query.where(RequestEntry.state.in_(when))
        return bool(db.execute(query).rowcount)  # type: ignore[attr-defined]


# -- deciding by policy and fulfilling ---------------------------------------------------
@contextmanager
def _one_at_a_time(settings: Settings) -> Iterator[None]:
    """Holds the intake lock of this state directory (one fulfilment at a time)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.state_dir / "intake.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class Processed:
    """What one pass over the queue did."""

    approved: list[Ticket]  # by policy
    denied: list[Ticket]  # by policy
    left: list[Ticket]  # pending, for a human
    fulfilled: list[Ticket]  # installable or failed now

    def summary(self) -> str:
        done = sum(t.state == INSTALLABLE for t in self.fulfilled)
        return (f"{len(self.approved)} approved by policy, {len(self.denied)} denied by "
                f"policy, {len(self.left)} left for a human; {done} installable, "
                f"{len(self.fulfilled) - done} failed")


Fulfiller = Callable[[Settings, list[Ticket]], dict[str, tuple[str, str, str | None]]]


def process(settings: Settings, knowledge: Callable[[], Knowledge],
            fulfiller: Fulfiller | None = None, auto_approve: bool | None = None) -> Processed:
    """One pass: decide pending requests by policy (when the site allows it), then
    fulfil every approved request (and any a crash left building)."""
    auto = settings.intake_auto_approve if auto_approve is None else auto_approve
    done = Processed([], [], [], [])
    with _one_at_a_time(settings):
        for ticket in listing(settings, (PENDING,)):
            if auto:
                _by_policy(settings, knowledge(), ticket, done)
            else:
                done.left.append(ticket)
        todo = listing(settings, (APPROVED, BUILDING))
        if todo:
            done.fulfilled = _fulfil(settings, todo, fulfiller or fulfil_by_building,
                                     knowledge)
    return done


def _by_policy(settings: Settings, knowledge: Knowledge, ticket: Ticket,
               done: Processed) -> None:
    from factory.approve import add

    known = answer(knowledge, ticket.name)
    if known.verdict == DID_YOU_MEAN:
        done.left.append(ticket)  # a look-alike of an approved name: a human decides
        return
    if known.verdict != NOT_APPROVED:  # approved since it was asked: fulfil it
        decide(settings, ticket.token, True, POLICY, "approved since it was asked")
        done.approved.append(status(settings, ticket.token))
        return
    try:
        report = add(settings, [ticket.asked], dry_run=True)
    except FactoryError as exc:
        _set(settings, ticket.token, PENDING, f"policy could not decide: {exc.message}")
        done.left.append(status(settings, ticket.token))
        return
    unknown = [n for n in report.needs_human
               if n.key == ticket.name and " does not know " in n.problem]
    if unknown:
        decide(settings, ticket.token, False, POLICY, "upstream has no project of that "
               "name (hallucinated, or a typo?)")
        done.denied.append(status(settings, ticket.token))
    elif report.ok:
        decide(settings, ticket.token, True, POLICY, "within the site policy: "
               + ", ".join(f"{p.key} {p.version} ({p.license})" for p in report.added[:5]))
        done.approved.append(status(settings, ticket.token))
    else:
        first = (report.needs_human[0].problem if report.needs_human else
                 f"{report.held_back[0][0].key} waits for {report.held_back[0][1]}"
                 if report.held_back else "the lock has problems")
        who = report.needs_human[0].key if report.needs_human else ticket.name
        _set(settings, ticket.token, PENDING, f"needs a human: {who}: {first}")
        done.left.append(status(settings, ticket.token))


def _fulfil(settings: Settings, todo: list[Ticket], fulfiller: Fulfiller,
            knowledge: Callable[[], Knowledge]) -> list[Ticket]:
    for ticket in todo:
        _set(settings, ticket.token, BUILDING, "adding, building and publishing",
             when=(APPROVED, BUILDING))
    try:
        outcome = fulfiller(settings, todo)
    except FactoryError as exc:
        outcome = {t.token: (FAILED, exc.message, None) for t in todo}
    served = knowledge()
    for ticket in todo:
        state, detail, version = outcome.get(ticket.token, (FAILED, "not fulfilled", None))
        known = answer(served, ticket.name)
        if known.verdict == SERVED:  # what the index says wins over what the run said
            state, version = INSTALLABLE, version or known.version
            detail = detail if state == INSTALLABLE and detail else "served"
        elif state == INSTALLABLE:
            state, detail = FAILED, f"not served: {known.reason}"
        _set(settings, ticket.token, state, detail, version)
    return [status(settings, t.token) for t in todo]


def fulfil_by_building(settings: Settings,
                       todo: list[Ticket]) -> dict[str, tuple[str, str, str | None]]:
    """Add every approved request (one `factory add`), then build and publish what
    they need: token -> (state, detail, version)."""
    from factory.approve import add

    outcome: dict[str, tuple[str, str, str | None]] = {}
    report = add(settings, [t.asked for t in todo])
    blocked = {n.key: f"needs a human: {n.problem}" for n in report.needs_human}
    blocked.update({p.key: f"waits for {cause}" for p, cause in report.held_back})
    names = sorted({p.key for p in report.added} | {t.name for t in todo} - set(blocked))
    built = _build_and_publish(settings, names) if names else {}
    for ticket in todo:
        if ticket.name in blocked:
            outcome[ticket.token] = (FAILED, blocked[ticket.name], None)
        elif ticket.name in built:
            outcome[ticket.token] = built[ticket.name]
        else:
            outcome[ticket.token] = (FAILED, "nothing was built for it", None)
    return outcome


def _build_and_publish(settings: Settings,
                       names: list[str]) -> dict[str, tuple[str, str, str | None]]:
    """Fetch, plan, build and publish ``names`` (and the build tools they still lack):
    name -> (state, detail, version) for each name built or failed."""
    from factory.build.executor import run_plan
    from factory.fetch import fetch_stage
    from factory.plan import make_plan
    from factory.publish import release_all

    refused: dict[str, str] = {}
    fetch_stage(settings, names=set(names), failed=refused)
    plan = make_plan(settings, names)
    run = run_plan(settings, plan, None, refused=refused)
    report = release_all(settings, run.records)
    found: dict[str, tuple[str, str, str | None]] = {}
    for nid, why in {**refused, **run.failed}.items():
        found[canonicalize_name(nid.split("==")[0])] = (FAILED, f"{nid}: {why}", None)
    for record in run.records:
        found[canonicalize_name(record.component)] = (INSTALLABLE, "built and published",
                                                      record.version)
    for refusal in report.refused:
        found[canonicalize_name(refusal.component)] = (
            FAILED, f"refused at publishing: {refusal.reason}", None)
    return found

