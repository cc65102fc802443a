"""`factory.why`: the answer to "may I install this, and if not, what instead?".

The matching a developer or an assistant relies on (typos, transpositions,
separators, look-alike and confusable characters, case), the answers for
approved components that are not served or whose version is blocked, and the
bounds on hostile input (length, control characters, time at 10,000 names).
"""

from __future__ import annotations

import json
import random
import string

import pytest

from factory import why
from factory.similar import Matcher, Pattern, distance, fold
from factory.why import (
    Component,
    Knowledge,
    Release,
    answer,
    parse_request,
    with_upstream,
)

APPROVED = ["requests", "six", "flask", "urllib3", "idna", "python-dateutil", "click",
            "markupsafe", "charset-normalizer", "jinja2", "pip", "np", "numpy", "boto3"]


def _knowledge(names: list[str] = APPROVED, **releases: list[Release]) -> Knowledge:
    rows = [{"name": n, "published": "1.0", "allowed": ">=0"} for n in names]
    return Knowledge.from_rows(rows, releases=lambda project: releases.get(project))


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    return _knowledge()


@pytest.mark.parametrize(("asked", "meant"), [
    ("reqests", "requests"),  # a letter dropped
    ("requestss", "requests"),  # doubled
    ("reqeusts", "requests"),  # transposed
    ("rquests", "requests"),
    ("sux", "six"),  # three letters: one edit is still offered
    ("flaks", "flask"),
    ("urlib3", "urllib3"),
    ("pythondateutil", "python-dateutil"),  # separators dropped
    ("python_date_util", "python-dateutil"),
    ("charset_normaliser", "charset-normalizer"),
    ("r\u0435qu\u0435sts", "requests"),  # Cyrillic "е" twice
    ("fl\u0430sk", "flask"),  # Cyrillic "а"
    ("b\u043eto3", "boto3"),  # Cyrillic "о"
    ("n\u03c5mpy", "numpy"),  # Greek upsilon
    ("ｒｅｑｕｅｓｔｓ", "requests"),  # full-width (NFKC)
    ("r\u00e9quests", "requests"),  # an accent
    ("c1ick", "click"),  # 1 for l
    ("rnarkupsafe", "markupsafe"),  # rn for m
    ("b0to3", "boto3"),  # 0 for o
    ("jinja", "jinja2"),
])
def test_a_near_miss_is_offered_the_approved_name(knowledge: Knowledge, asked: str,
                                                  meant: str) -> None:
    found = answer(knowledge, asked)
    assert found.verdict == "did-you-mean", found
    assert found.suggestions[0] == meant
    assert found.project is None  # never silently taken for the approved one
    assert f"did you mean: {meant}" in found.message()


@pytest.mark.parametrize("asked", ["requests", "Requests", "REQUESTS", "python_dateutil",
                                   "Python.DateUtil", "six"])
def test_an_approved_name_in_any_spelling_pep_503_allows_is_served(knowledge: Knowledge,
                                                                  asked: str) -> None:
    found = answer(knowledge, asked)
    assert found.verdict == "served" and found.installable
    assert found.project in APPROVED and not found.suggestions


@pytest.mark.parametrize("asked", ["invented-internal-package-name", "leftpad", "ab", "zz",
                                   "x", "tensorflow", "nq"])
def test_names_close_to_nothing_are_not_approved(knowledge: Knowledge, asked: str) -> None:
    found = answer(knowledge, asked)
    assert found.verdict == "not-approved" and not found.suggestions
    assert found.message() == f"{asked} is not an approved component of this index"


def test_two_letter_names_do_not_match_everything() -> None:
    matcher = Matcher(["np", "pip", "six", "ab", "cd"])
    assert [s.name for s in matcher.suggest(fold("nq"))] == []
    assert [s.name for s in matcher.suggest(fold("ac"))] == []
    assert [s.name for s in matcher.suggest(fold("siz"))] == ["six"]


def test_suggestions_are_approved_names_best_first_at_most_five() -> None:
    names = ["abcdef", "abcdeg", "abcdxy", "abcdez", "abcdeh", "abcdei", "abcdej", "abcxyz"]
    found = answer(_knowledge(names), "abcdee")
    assert len(found.suggestions) == 5
    assert set(found.suggestions) <= set(names)
    assert "abcdxy" not in found.suggestions  # two edits away; the others are one
    assert json.loads(found.to_json())["details"]["abcdef"] == "a typo"


def test_distance_is_the_bounded_restricted_damerau_levenshtein_distance() -> None:
    assert distance("requests", "reqeusts", 2) == 1  # a transposition is one edit
    assert distance("requests", "rqeuests", 2) == 1
    assert distance("kitten", "sitting", 3) == 3
    assert distance("kitten", "sitting", 1) == 2  # bounded: "more than 1"
    assert distance("ca", "abc", 3) == 3  # restricted: no edit of a transposed pair
    assert distance("", "abc", 5) == 3


def _count_matching(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Counts the matching work ``answer`` does: each ``fold`` of an asked name, each
    name the index offers as a candidate, each exact distance measured."""
    counts: dict[str, list[int]] = {"fold": [], "candidates": [], "distance": []}
    real_fold, real_candidates = why.fold, Matcher._candidates
    real_distance = Pattern.distance

    def counted_fold(name: str) -> str:
        counts["fold"].append(len(name))
        return real_fold(name)

    def candidates(self: Matcher, key: str, bound: int) -> set[str]:
        found = real_candidates(self, key, bound)
        counts["candidates"].append(len(found))
        return found

    def distance_(self: Pattern, other: str) -> int:
        counts["distance"].append(1)
        return real_distance(self, other)

    monkeypatch.setattr(why, "fold", counted_fold)
    monkeypatch.setattr(Matcher, "_candidates", candidates)
    monkeypatch.setattr(Pattern, "distance", distance_)
    return counts


def test_a_hostile_name_is_answered_fast_printable_and_without_matching(
        knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch) -> None:
    # "Fast" is no clock here: a name that cannot be a project name is never folded nor
    # matched, whatever its length (the cost of an answer is the cost of that work).
    counts = _count_matching(monkeypatch)
    for asked in ("a" * 5000, "requests" + "\x1b[31m", "req\u202euests", "re\nquests",
                  "requests/../../etc", "a" * 201):
        found = answer(knowledge, asked)
        assert counts == {"fold": [], "candidates": [], "distance": []}, asked
        assert found.verdict == "not-approved" and not found.suggestions
        assert found.name.isprintable() and len(found.name) <= 201
        assert found.message().isprintable()
        json.loads(found.to_json())
    assert "\\x1b" in answer(knowledge, "requests\x1b[31m").name


def test_ten_thousand_approved_names_answer_within_milliseconds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(18)
    names = {"requests"}
    while len(names) < 10_000:
        size = rng.randint(4, 16)
        names.add("".join(rng.choice(string.ascii_lowercase) for _ in range(size)))
    knowledge = _knowledge(sorted(names))
    asked = ["reqests", "r\u0435quests", "abcdefgh", "zzzzzzzzzzzzzz", "x" * 200] + [
        n[:3] + "q" + n[4:] for n in rng.sample(sorted(names), 50)]
    # The work of an answer does not grow with the approved names: the index offers a
    # few candidates and only those are measured (seen: at most 3 of 10,000 for each
    # name asked; a scan of the names would measure thousands). Counted, not timed.
    counts = _count_matching(monkeypatch)
    for name in asked:
        for seen in counts.values():
            seen.clear()
        answer(knowledge, name)
        assert sum(counts["candidates"]) <= 20 and len(counts["distance"]) <= 20, (
            name, sum(counts["candidates"]), len(counts["distance"]))
    assert answer(knowledge, "reqests").suggestions[0] == "requests"


def test_an_approved_component_not_published_says_why() -> None:
    rows = [
        {"name": "flask", "locked": "3.1.0", "published": None,
         "refused": "3.1.0: the wheel's requirements name evil, not an approved component"},
        {"name": "idna", "locked": "3.10", "alarm": "3.10: upstream re-uploaded idna-3.10.tar.gz"},
        {"name": "six", "locked": "1.17.0", "failed": "1.17.0: exit status 1"},
        {"name": "click", "locked": "8.2.0"},
        {"name": "jinja2"},
    ]
    knowledge = Knowledge.from_rows(rows)
    reasons = {row["name"]: answer(knowledge, row["name"]) for row in rows}
    assert {a.verdict for a in reasons.values()} == {"approved-not-published"}
    assert "admission gate refused" in reasons["flask"].reason
    assert "evil" in reasons["flask"].reason
    assert "upstream alarm" in reasons["idna"].reason
    assert "build failed: 1.17.0: exit status 1" in reasons["six"].reason
    assert "locked at 8.2.0, but not built or published yet" in reasons["click"].reason
    assert "not locked or built yet" in reasons["jinja2"].reason


def test_a_blocked_version_says_why_and_what_instead() -> None:
    releases = [Release("2.31.0", True, "advisory GHSA-9wx4-h78v-vm56", ("GHSA-9wx4-h78v-vm56",)),
                Release("2.32.3"), Release("2.33.0", True, "broken")]
    knowledge = Knowledge.from_rows(
        [{"name": "requests", "published": "2.32.3", "allowed": ">=2.31,<3",
          "locked": "2.32.3"}], releases=lambda p: releases if p == "requests" else None)
    yanked = answer(knowledge, "requests", "2.31.0")
    assert yanked.verdict == "version-blocked" and not yanked.installable
    assert yanked.reason == "yanked: advisory GHSA-9wx4-h78v-vm56"
    assert yanked.advisories == ("GHSA-9wx4-h78v-vm56",) and yanked.instead == "2.32.3"
    assert yanked.message().endswith("use requests==2.32.3 instead")
    outside = answer(knowledge, "requests", "1.0")
    assert outside.reason == "not in the approved range >=2.31,<3" and outside.instead == "2.32.3"
    unbuilt = answer(knowledge, "requests", "2.32.4")
    assert unbuilt.reason == "not built by this factory (locked: 2.32.3)"
    assert answer(knowledge, "requests", "2.32.3").verdict == "served"
    assert answer(knowledge, "requests", "2.32.3.0").verdict == "served"  # PEP 440 equal


def test_every_version_yanked_is_not_published_and_quarantine_is_said() -> None:
    releases = [Release("1.0", True, "advisory PYSEC-1")]
    knowledge = Knowledge.from_rows(
        [{"name": "six"}, {"name": "idna"}],
        [{"name": "six", "latest": None}, {"name": "idna", "latest": "3.10",
                                          "status": "quarantined",
                                          "status_reason": "under review"}],
        releases=lambda p: releases if p == "six" else None)
    gone = answer(knowledge, "six")
    assert gone.verdict == "approved-not-published"
    assert "every published version is yanked: 1.0: advisory PYSEC-1" in gone.reason
    held = answer(knowledge, "idna")
    assert held.verdict == "quarantined" and "under review" in held.reason


def test_rows_from_disk_are_read_as_untrusted() -> None:
    knowledge = Knowledge.from_rows(
        [{"name": "Not-Normalized"}, {"name": ["x"]}, {"name": "a" * 300}, {"nothing": 1},
         {"name": "flask", "refused": "1.0: \x1b]0;owned\x07" + "y" * 1000, "locked": 5}],
        [{"name": "../../etc"}, {"name": "six", "latest": "\x1b[2J1.0"}])
    assert set(knowledge.components) == {"flask", "six"}
    flask = answer(knowledge, "flask")
    assert flask.reason.isprintable() and len(flask.reason) < 400
    assert knowledge.components["flask"].locked is None  # not text: dropped
    assert answer(knowledge, "six").reason.isprintable()
    assert answer(knowledge, "six").verdict == "served"
    assert not knowledge.components["six"].approved  # published, but no recipe row


def test_upstream_tells_a_hallucinated_name_from_an_unapproved_one(
        knowledge: Knowledge) -> None:
    invented = answer(knowledge, "fastjsonparserx")
    assert with_upstream(invented, "unknown").verdict == "unknown-upstream"
    exists = with_upstream(invented, "exists")
    assert exists.verdict == "not-approved" and "ask the platform team" in exists.reason
    typo = with_upstream(answer(knowledge, "reqests"), "unknown")
    assert typo.verdict == "did-you-mean" and typo.upstream == "unknown"
    served = with_upstream(answer(knowledge, "requests"), "exists")
    assert served.verdict == "served"


@pytest.mark.parametrize(("text", "expected"), [
    ("requests", ("requests", None)), ("requests==2.32.3", ("requests", "2.32.3")),
    (" flask == 3.1 ", ("flask", "3.1"))])
def test_requests_parse(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_request(text) == expected


@pytest.mark.parametrize("text", ["", "==1.0", "requests==", "requests==not a version",
                                  "requests==" + "1" * 100])
def test_bad_requests_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_request(text)


def test_a_component_is_a_frozen_value() -> None:
    component = Component("six")
    with pytest.raises(AttributeError):
        component.name = "seven"  # type: ignore[misc]
