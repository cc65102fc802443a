"""The intake queue (issue 18): requests for components not approved yet, queued in the
ledger with who asked and why; decided by the platform team or by policy; fulfilled by
`factory add`, build and publish (tests/test_intake_e2e.py builds for real)."""

from __future__ import annotations

import json

import pytest

from factory import intake, ledger
from factory.config import Settings
from factory.intake import (
    APPROVED,
    BUILDING,
    DENIED,
    FAILED,
    INSTALLABLE,
    PENDING,
    IntakeError,
    QueueFull,
    Ticket,
    decide,
    listing,
    set_state,
    status,
    submit,
)
from factory.intake_policy import process
from factory.watch import why_knowledge
from factory.why import Knowledge
from tests import factories
from tests.factories import cli
from tests.local_upstream import LocalUpstream, build_tools


@pytest.fixture(autouse=True)
def approved_one(project: Settings) -> None:
    """A factory approves something before anyone asks it for more."""
    factories.recipe(project.root, "flask", "")


def knows(settings: Settings) -> Knowledge:
    return why_knowledge(settings, "")


def ask(settings: Settings, asked: str, who: str = "ada", why: str = "for the tests",
        origin: str = "api:10.0.0.1") -> intake.Submitted:
    return submit(settings, knows(settings), asked, who, why, origin)


def test_a_request_is_queued_with_who_asked_and_why_and_polled_by_token(
        project: Settings) -> None:
    done = ask(project, "Attrs>=23", "ada", "need it for\x1b[2J the parser")
    assert done.queued and done.ticket is not None
    ticket = status(project, done.ticket.token)
    assert (ticket.name, ticket.asked, ticket.state) == ("attrs", "attrs>=23", PENDING)
    assert ticket.requester == "ada" and ticket.origin == "api:10.0.0.1"
    assert "\x1b" not in ticket.reason and "the parser" in ticket.reason
    assert len(ticket.token) == 24
    decisions = ledger.decisions(project, "attrs")
    assert decisions[0]["action"] == "requested" and ticket.token in decisions[0]["reason"]


def test_asking_again_votes_for_the_open_request(project: Settings) -> None:
    first = ask(project, "attrs")
    again = ask(project, "attrs>=22", "grace", origin="api:10.0.0.2")
    assert not again.queued and again.ticket is not None and first.ticket is not None
    assert again.ticket.token == first.ticket.token
    assert status(project, first.ticket.token).votes == 2
    assert len(listing(project)) == 1


def test_a_denied_name_answers_its_denial_until_a_human_changes_it(project: Settings) -> None:
    first = ask(project, "leftpad")
    assert first.ticket is not None
    decide(project, first.ticket.token, False, "alice", "use the stdlib")
    again = ask(project, "leftpad")
    assert not again.queued and again.ticket is not None
    assert again.ticket.state == DENIED and "use the stdlib" in again.ticket.detail
    decide(project, first.ticket.token, True, "bob", "we changed our minds")
    assert status(project, first.ticket.token).state == APPROVED


def test_an_approved_project_is_not_queued_the_index_answer_is_returned(
        project: Settings) -> None:
    factories.recipe(project.root, "requests", "")
    done = ask(project, "requests")
    assert not done.queued and done.ticket is None and done.answer is not None
    assert done.answer["verdict"] == "approved-not-published"
    assert listing(project) == []


def test_a_look_alike_of_an_approved_name_is_queued_for_a_human_saying_so(
        project: Settings) -> None:
    factories.recipe(project.root, "requests", "")
    done = ask(project, "reqests")
    assert done.queued and done.ticket is not None
    assert "close to approved requests" in done.ticket.detail


@pytest.mark.parametrize("asked", [
    "", "   ", "attrs @ https://evil.example/attrs.tar.gz", 'attrs; os_name == "nt"',
    "attrs\x00", "a" * 201, "x" * 5000, "../etc/passwd", "attrs==1.0 --hash=sha256:00",
    "аttrs",  # a Cyrillic а: not a name an index can have
])
def test_what_is_no_project_name_with_a_range_is_one_error(project: Settings,
                                                           asked: str) -> None:
    with pytest.raises(IntakeError) as caught:
        ask(project, asked)
    assert "\n" not in caught.value.message and len(caught.value.message) < 200
    assert listing(project) == []


@pytest.mark.parametrize("field", ["requester", "reason"])
def test_oversized_or_odd_requester_and_reason_are_bounded(project: Settings,
                                                           field: str) -> None:
    args = {"requester": "ada", "reason": "why"}
    with pytest.raises(IntakeError):
        submit(project, knows(project), "attrs", **{**args, field: "x" * 1_000_000})
    with pytest.raises(IntakeError):
        submit(project, knows(project), "attrs", **{**args, field: ["not", "text"]})
    limit = intake.MAX_REQUESTER if field == "requester" else intake.MAX_REASON
    done = submit(project, knows(project), "attrs", **{**args, field: "y" * limit * 2})
    assert done.ticket is not None
    kept = getattr(done.ticket, field)
    assert len(kept) == limit and kept.endswith("…")  # cut, says so, fits its column


def test_a_flood_from_one_origin_stops_at_its_share_others_still_ask(
        project: Settings) -> None:
    for i in range(intake.MAX_OPEN_PER_ORIGIN):
        assert ask(project, f"flood-{i}", origin="api:10.6.6.6").queued
    with pytest.raises(QueueFull) as caught:
        ask(project, "flood-one-more", origin="api:10.6.6.6")
    assert "api:10.6.6.6" in caught.value.message
    assert ask(project, "honest", origin="api:10.0.0.9").queued
    # a decided request frees its slot
    first = listing(project)[0]
    decide(project, first.token, False, "alice", "no")
    assert ask(project, "flood-one-more", origin="api:10.6.6.6").queued


def test_the_whole_queue_is_bounded(project: Settings,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake, "MAX_OPEN", 3)
    for i in range(3):
        ask(project, f"p{i}", origin=f"api:10.0.0.{i}")
    with pytest.raises(QueueFull, match="3 requests are open"):
        ask(project, "p9", origin="api:10.0.0.9")


@pytest.mark.parametrize("token", ["", "0" * 23, "g" * 24, "../" * 8, "0" * 10_000, None, 7])
def test_a_token_that_names_no_request_is_one_error(project: Settings, token: object) -> None:
    with pytest.raises(IntakeError, match="no such request"):
        status(project, token)
    with pytest.raises(IntakeError, match="no such request"):
        status(project, "0" * 24)


def test_only_open_denied_or_failed_requests_are_decided(project: Settings) -> None:
    done = ask(project, "attrs")
    assert done.ticket is not None
    token = done.ticket.token
    set_state(project, token, INSTALLABLE, "built", "23.1.0")
    with pytest.raises(IntakeError, match="is installable"):
        decide(project, token, False, "alice", "too late")


# -- processing: policy decides, approved requests are fulfilled ------------------------
class Fulfiller:
    """Records what it is asked to fulfil and answers as told. The real fulfilment
    (add, build in Docker, publish) is tests/test_intake_e2e.py; these tests are
    about the queue's states around it."""

    def __init__(self, answer: tuple[str, str, str | None]) -> None:
        self.answer, self.asked, self.states = answer, [], []

    def __call__(self, settings: Settings,
                 todo: list[Ticket]) -> dict[str, tuple[str, str, str | None]]:
        self.asked.append([t.name for t in todo])
        self.states.append([status(settings, t.token).state for t in todo])
        return {t.token: self.answer for t in todo}


def test_without_auto_approval_pending_requests_wait_for_a_human(project: Settings) -> None:
    ask(project, "attrs")
    run = Fulfiller((INSTALLABLE, "built", "1.0"))
    done = process(project, lambda: knows(project), run, auto_approve=False)
    assert [t.name for t in done.left] == ["attrs"] and run.asked == []


def test_approved_requests_are_fulfilled_and_marked_building_meanwhile(
        project: Settings) -> None:
    done = ask(project, "attrs")
    assert done.ticket is not None
    decide(project, done.ticket.token, True, "alice")
    run = Fulfiller((FAILED, "attrs==1.0: build failed", None))
    result = process(project, lambda: knows(project), run, auto_approve=False)
    assert run.asked == [["attrs"]] and run.states == [[BUILDING]]
    ticket = result.fulfilled[0]
    assert ticket.state == FAILED and "build failed" in ticket.detail


def test_a_run_that_says_installable_but_the_index_does_not_serve_it_fails(
        project: Settings) -> None:
    done = ask(project, "attrs")
    assert done.ticket is not None
    decide(project, done.ticket.token, True, "alice")
    result = process(project, lambda: knows(project), Fulfiller((INSTALLABLE, "ok", "1.0")),
                     auto_approve=False)
    assert result.fulfilled[0].state == FAILED
    assert "not served" in result.fulfilled[0].detail


def test_a_request_a_crash_left_building_is_taken_again_by_the_next_run(
        project: Settings) -> None:
    done = ask(project, "attrs")
    assert done.ticket is not None
    decide(project, done.ticket.token, True, "alice")
    set_state(project, done.ticket.token, BUILDING, "adding, building and publishing")
    run = Fulfiller((FAILED, "still broken", None))
    process(project, lambda: knows(project), run, auto_approve=False)
    assert run.asked == [["attrs"]]
    assert status(project, done.ticket.token).state == FAILED


def test_a_fulfilment_that_raises_fails_its_requests_with_one_line(project: Settings) -> None:
    from factory.errors import UpstreamError

    done = ask(project, "attrs")
    assert done.ticket is not None
    decide(project, done.ticket.token, True, "alice")

    def broken(settings: Settings, todo: list[Ticket]) -> dict[str, tuple[str, str, None]]:
        raise UpstreamError("upstream is down")

    process(project, lambda: knows(project), broken, auto_approve=False)
    ticket = status(project, done.ticket.token)
    assert ticket.state == FAILED and ticket.detail == "upstream is down"


def test_policy_approves_what_add_approves_alone_and_leaves_the_rest(
        project: Settings, upstream: LocalUpstream) -> None:
    build_tools(upstream, project)
    upstream.add("fine", "1.0.0", requires=["helper"])
    upstream.add("helper", "2.0.0", license="BSD-3-Clause")
    upstream.add("copyleft", "1.0.0", license="GPL-3.0-only")
    factories.recipe(project.root, "requests", "")
    tokens = {name: ask(project, name).ticket.token  # type: ignore[union-attr]
              for name in ("fine", "copyleft", "no-such-project", "reqests")}
    run = Fulfiller((FAILED, "not built in this test", None))
    done = process(project, lambda: knows(project), run, auto_approve=True)
    assert [t.name for t in done.approved] == ["fine"]
    assert "fine 1.0.0 (MIT)" in done.approved[0].detail
    assert "fine 1.0.0 (MIT)" in ledger.decisions(project, "fine")[0]["reason"]
    assert status(project, tokens["fine"]).decided_by == "policy"
    denied = status(project, tokens["no-such-project"])
    assert denied.state == DENIED and "hallucinated" in denied.detail
    left = status(project, tokens["copyleft"])
    assert left.state == PENDING and "needs a human" in left.detail and "GPL" in left.detail
    assert status(project, tokens["reqests"]).state == PENDING  # a look-alike: a human
    assert run.asked == [["fine"]]  # only what policy approved was fulfilled
    assert not (project.recipes_dir / "copyleft.toml").exists()


def test_the_cli_queues_lists_approves_and_denies(project: Settings) -> None:
    queued = cli(project, "request", "attrs>=23", "--reason", "parsing", "--json")
    assert queued.returncode == 0, queued.stderr
    token = json.loads(queued.stdout)["request"]["token"]
    other = json.loads(cli(project, "request", "leftpad", "--json").stdout)["request"]["token"]
    listed = cli(project, "requests", "list", "--json")
    assert [t["name"] for t in json.loads(listed.stdout)] == ["attrs", "leftpad"]
    assert json.loads(listed.stdout)[0]["origin"].startswith("cli:")
    denied = cli(project, "requests", "deny", other, "--reason", "use the stdlib")
    assert denied.returncode == 0 and "denied" in denied.stdout
    shown = cli(project, "requests", "show", token)
    assert "pending" in shown.stdout
    bad = cli(project, "requests", "show", "nope")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "no such request" in bad.stderr and "Traceback" not in bad.stderr
    wrong = cli(project, "requests", "list", "--state", "bogus")
    assert wrong.returncode == 1 and "no such state" in wrong.stderr
    approved = cli(project, "requests", "approve", token, "--no-build", "--json")
    assert json.loads(approved.stdout)["state"] == APPROVED


@pytest.mark.docker  # runs with the Prefect-server tests (a real server, shared per session)
def test_the_intake_flow_decides_by_policy_on_a_real_prefect_server(
        prefect_api: str, project: Settings, upstream: LocalUpstream,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.deploy import deployments
    from flows.intake import intake as intake_flow

    build_tools(upstream, project)
    upstream.add("copyleft", "1.0.0", license="GPL-3.0-only")
    (project.root / "factory.toml").write_text(
        (project.root / "factory.toml").read_text() + "[intake]\nauto_approve = true\n")
    monkeypatch.setenv("FACTORY_ROOT", str(project.root))
    ghost = ask(project, "no-such-project").ticket
    gpl = ask(project, "copyleft").ticket
    assert ghost is not None and gpl is not None
    result = intake_flow()
    assert result["denied"] == [ghost.token] and result["left"] == [gpl.token]
    assert result["fulfilled"] == {}
    assert status(project, ghost.token).decided_by == "policy"
    names = {d.name for d in deployments(600)}  # type: ignore[attr-defined]
    assert "intake" in names
