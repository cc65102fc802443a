"""One pass over the intake queue (factory.intake): pending requests decided by policy
where the site allows it, approved ones fulfilled (`factory add`, build, publish).

Policy (``[intake] auto_approve = true``) approves a request when ``factory add`` would
approve its whole closure by itself and no name in it is close to an approved one, or
to another request approved (a look-alike is what a typosquat is); it denies a name
upstream does not know (likely hallucinated); it leaves the rest to a human, saying
why, and does not walk upstream for them again. Each of its writes is made only from
pending: a human who decided meanwhile stands. What policy approved is judged again
at fulfilment, on the very walk whose recipes are written.

One pass runs at a time per state directory (a file lock); a request a crash left
``building`` is taken again by the next pass, which completes it.

    done = process(settings, lambda: why_knowledge(settings, ""))
    done.summary()    # "1 approved by policy, 0 denied by policy, 2 left for a human; ..."
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import select

from factory import ledger
from factory.config import Settings
from factory.errors import FactoryError
from factory.intake import (
    APPROVED,
    BUILDING,
    FAILED,
    INSTALLABLE,
    MAX_OPEN,
    PENDING,
    POLICY,
    Ticket,
    decide_pending,
    listing,
    set_state,
    state_lock,
    status,
)
from factory.ledger import RequestEntry
from factory.similar import Matcher, fold
from factory.why import (
    DID_YOU_MEAN,
    NOT_APPROVED,
    NOT_PUBLISHED,
    SERVED,
    VERSION_BLOCKED,
    Knowledge,
    answer,
)


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
    with state_lock(settings, "intake.lock"):  # one pass at a time
        for ticket in listing(settings, (PENDING,), limit=MAX_OPEN):
            if auto and not ticket.detail.startswith(JUDGED):
                _by_policy(settings, knowledge(), ticket, done)
            else:  # a human decides (policy judged it once; it does not walk it again)
                done.left.append(ticket)
        todo = listing(settings, (APPROVED, BUILDING), limit=MAX_OPEN)
        if todo:
            done.fulfilled = _fulfil(settings, todo, fulfiller or fulfil_by_building,
                                     knowledge)
    return done


JUDGED = "needs a human: "  # detail of a request policy judged and left to a human


def _by_policy(settings: Settings, knowledge: Knowledge, ticket: Ticket,
               done: Processed) -> None:
    """Decide ``ticket`` by policy. Every write is only from pending: a human who
    decided it meanwhile (during the dry run's walk of upstream) stands."""
    from factory.approve import add

    def leave(why: str) -> None:
        if set_state(settings, ticket.token, PENDING, why, when=(PENDING,)):
            done.left.append(status(settings, ticket.token))

    def decided(approve: bool, why: str) -> None:
        ticket_now = decide_pending(settings, ticket.token, approve, POLICY, why)
        if ticket_now is not None:
            (done.approved if approve else done.denied).append(ticket_now)

    known = answer(knowledge, ticket.name)
    if known.verdict in (SERVED, NOT_PUBLISHED, VERSION_BLOCKED):  # approved since asked
        decided(True, "approved since it was asked")
        return
    if known.verdict not in (NOT_APPROVED, DID_YOU_MEAN):  # quarantined since ...
        leave(f"{JUDGED}{ticket.name}: {known.reason}")
        return
    near = look_alikes(settings, knowledge, [ticket.name], ticket.name)
    if near:
        leave(JUDGED + near)
        return
    try:
        report = add(settings, [policy_asks(ticket)], dry_run=True)
    except FactoryError as exc:  # upstream unreachable ...: the next pass tries again
        leave(f"policy could not decide: {exc.message}")
        return
    unknown = [n for n in report.needs_human
               if n.key == ticket.name and " does not know " in n.problem]
    problem = None if unknown else judge_closure(settings, knowledge, ticket, report)
    if unknown:
        decided(False, "upstream has no project of that name (hallucinated, or a typo?)")
    elif problem:
        leave(JUDGED + problem)
    else:
        decided(True, "within the site policy: " + ", ".join(
            f"{p.key} {p.version} ({p.license})" for p in report.added[:5]))


def judge_closure(settings: Settings, knowledge: Knowledge, ticket: Ticket,
                  report: Any) -> str | None:
    """Why policy may not approve what ``report`` (add's walk for ``ticket``) would
    approve (None: it may): what needs a human or waits for it, the lock's problems,
    and any name in the closure close to an approved one or a request's."""
    if report.needs_human:
        first = report.needs_human[0]
        return f"{first.key}: {first.problem}"
    if report.held_back:
        return f"{report.held_back[0][0].key} waits for {report.held_back[0][1]}"
    if report.lock_problems:
        return "the lock has problems"
    wanted = Requirement(ticket.asked).specifier
    for proposed in report.added:
        if proposed.key == ticket.name and not wanted.contains(proposed.version):
            return (f"the range asked ({wanted}) does not hold {proposed.version}, the "
                    "release add takes by itself")
    return look_alikes(settings, knowledge, [p.key for p in report.added], ticket.name) or None


def policy_asks(ticket: Ticket) -> str:
    """What policy walks for ``ticket``: the project (and extras) without the range
    asked. The range is the requester's wish, not the recipe's: "fine<1" or
    "fine>=2.0a1" would have written a recipe held to an old line, or a pre-release."""
    req = Requirement(ticket.asked)
    return ticket.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "")


def look_alikes(settings: Settings, knowledge: Knowledge, names: list[str], own: str) -> str:
    """Which of ``names`` is close to an approved name (quarantined or not) or to another
    request that was approved (in this pass too, before its recipe exists): "" if none.
    A look-alike is what a typosquat is; a human decides those."""
    with ledger.session(settings) as db:
        asked = set(db.scalars(select(RequestEntry.component).where(
            RequestEntry.state.in_((APPROVED, BUILDING, INSTALLABLE)))))
    # The approved names' matcher is the knowledge's own (built once for them); the
    # few others (quarantined, asked and approved) get a small one.
    others = Matcher((set(knowledge.components) - knowledge.matcher.names | asked) - {own})
    for name in names:
        found = [s.name for matcher in (knowledge.matcher, others)
                 for s in matcher.suggest(fold(name)) if s.name not in (name, own)]
        if found:
            return (f"{name} is close to {', '.join(found[:3])}: a typo, or a look-alike "
                    "name? a human decides")
    return ""


def _fulfil(settings: Settings, todo: list[Ticket], fulfiller: Fulfiller,
            knowledge: Callable[[], Knowledge]) -> list[Ticket]:
    for ticket in todo:
        set_state(settings, ticket.token, BUILDING, "adding, building and publishing",
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
        set_state(settings, ticket.token, state, detail, version)
    return [status(settings, t.token) for t in todo]


def fulfil_by_building(settings: Settings,
                       todo: list[Ticket]) -> dict[str, tuple[str, str, str | None]]:
    """Add every approved request, then build and publish what they need: token ->
    (state, detail, version). What a human approved is one `factory add`; what policy
    approved is judged again on the very walk whose recipes are written (upstream may
    answer the real add otherwise than the dry run policy judged), and goes back to a
    human if policy would not approve it now."""
    from factory.approve import AddReport, add, parse_asked, propose, write_proposed
    from factory.watch import why_knowledge

    outcome: dict[str, tuple[str, str, str | None]] = {}
    reports: list[AddReport] = []
    human = [t for t in todo if t.decided_by != POLICY]
    if human:
        reports.append(add(settings, [t.asked for t in human]))
    for ticket in todo:
        if ticket.decided_by != POLICY:
            continue
        asked = parse_asked([policy_asks(ticket)])
        report = propose(settings, asked)
        problem = judge_closure(settings, why_knowledge(settings, ""), ticket, report)
        if problem:
            outcome[ticket.token] = (PENDING, f"{JUDGED}upstream answers otherwise than when "
                                     f"policy approved it: {problem}", None)
            continue
        reports.append(write_proposed(settings, report, asked))
    blocked = {n.key: f"needs a human: {n.problem}" for r in reports for n in r.needs_human}
    blocked.update({p.key: f"waits for {cause}" for r in reports for p, cause in r.held_back})
    added = {p.key for r in reports for p in r.added}
    names = sorted(added | {t.name for t in todo if t.token not in outcome} - set(blocked))
    built = _build_and_publish(settings, names) if names else {}
    for ticket in todo:
        if ticket.token in outcome:
            continue
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

