"""`factory.why` with PEP 792 status and the alternatives a recipe names: a refused or
deprecated project names what to use instead, only among what may be used (approved,
served, not quarantined); a deprecated or archived project stays served, with a status
and a one-line notice."""

from __future__ import annotations

from typing import Any

from factory.why import Knowledge, Release, answer

ALTERNATIVES = ["newlib", "unpublished", "banned", "retired", "newlib"]


def _knowledge(status: str = "active", reason: str | None = None, published: str | None = "1.0",
               **extra: Any) -> Knowledge:
    rows: list[dict[str, Any]] = [
        {"name": "oldlib", "allowed": ">=1", "locked": "1.0", "published": published,
         "alternatives": ALTERNATIVES, **extra},
        {"name": "newlib", "published": "2.0"}, {"name": "unpublished", "locked": "1.0"},
        {"name": "banned", "published": "1.0"}]
    catalog = [{"name": "newlib", "latest": "2.0"},
               {"name": "banned", "latest": "1.0", "status": "quarantined"},
               {"name": "retired", "latest": "1.0"}]  # published, no longer approved
    if published:
        catalog.append({"name": "oldlib", "latest": published, "status": status,
                        "status_reason": reason})
    releases = {"oldlib": [Release("1.0")] if published else []}
    return Knowledge.from_rows(rows, catalog, lambda project: releases.get(project))


def test_quarantined_names_the_offered_alternatives() -> None:
    found = answer(_knowledge("quarantined", "malware report"), "oldlib")
    assert found.verdict == "quarantined" and found.suggestions == ("newlib",)
    assert (found.status, found.status_reason) == ("quarantined", "malware report")
    assert found.details == {"newlib": "an approved alternative to oldlib (its recipe)"}
    assert found.message() == ("oldlib is quarantined: its files are not served (PEP 792) "
                               "(malware report); approved alternatives: newlib")


def test_deprecated_and_archived_stay_served_with_a_notice() -> None:
    for status in ("deprecated", "archived"):
        found = answer(_knowledge(status, "superseded by newlib"), "oldlib")
        assert found.verdict == "served" and found.installable
        assert (found.status, found.status_reason) == (status, "superseded by newlib")
        assert found.suggestions == ("newlib",)
        assert found.message() == (f"oldlib is served (newest 1.0); {status} (PEP 792): "
                                   "superseded by newlib; approved alternatives: newlib")
        data = found.to_dict()
        assert data["status"] == status and data["suggestions"] == ["newlib"]
        assert "\n" not in data["message"]
    pinned = answer(_knowledge("deprecated"), "oldlib", "1.0")
    assert pinned.verdict == "served" and pinned.status == "deprecated"
    assert pinned.reason == "served; deprecated (PEP 792)"


def test_an_active_served_project_offers_nothing_instead() -> None:
    found = answer(_knowledge(), "oldlib")
    assert found.verdict == "served" and found.suggestions == () and found.status is None
    assert found.message() == "oldlib is served (newest 1.0)"


def test_blocked_version_and_not_published_name_the_alternatives() -> None:
    blocked = answer(_knowledge(), "oldlib", "0.9")
    assert blocked.verdict == "version-blocked" and blocked.instead == "1.0"
    assert blocked.suggestions == ("newlib",)
    assert blocked.message() == ("oldlib==0.9 is not in the approved range >=1; use "
                                 "oldlib==1.0 instead; approved alternatives: newlib")
    unpublished = answer(_knowledge(published=None, failed="1.0: boom"), "oldlib")
    assert unpublished.verdict == "approved-not-published"
    assert unpublished.suggestions == ("newlib",)


def test_hostile_alternatives_in_a_row_are_left_out() -> None:
    rows = [{"name": "oldlib", "published": "1.0", "alternatives": [
        "newlib", 7, "New_Lib", "x\x1b[2J", "a" * 300, *["newlib"] * 50]},
        {"name": "newlib", "published": "1.0"}]
    knowledge = Knowledge.from_rows(rows, [{"name": "oldlib", "latest": "1.0",
                                            "status": "deprecated"}])
    assert knowledge.components["oldlib"].alternatives == ("newlib",)
    not_a_list = Knowledge.from_rows([{"name": "oldlib", "alternatives": "newlib"}])
    assert not_a_list.components["oldlib"].alternatives == ()


def test_a_did_you_mean_still_says_so() -> None:
    found = answer(_knowledge("deprecated"), "oldlbi")
    assert found.verdict == "did-you-mean" and "did you mean: oldlib" in found.message()
