"""The benchmark harness: statistics, ratios against goals, discovery, failure handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import harness
from bench.harness import (
    BenchSetupError,
    Comparison,
    Context,
    Options,
    RatioSpec,
    Series,
    ratios,
    stats,
)
from tests import factories


def test_stats_median_min_max_of_odd_and_even_counts() -> None:
    odd = stats([3.0, 1.0, 2.0])
    assert odd is not None and (odd.median, odd.min, odd.max, odd.n) == (2.0, 1.0, 3.0, 3)
    even = stats([4.0, 1.0, 2.0, 10.0])
    assert even is not None and even.median == 3.0 and even.max == 10.0
    assert stats([]) is None


def _series(case: str, contender: str, samples: list[float], metric: str = "seconds") -> Series:
    return Series(case, contender, metric, "s", samples=samples)


def test_ratio_is_of_medians_and_checks_the_goal() -> None:
    series = [_series("set", "factory", [11.0, 10.0, 30.0]),
              _series("set", "bare", [9.0, 10.0, 10.0])]
    [within] = ratios(series, [RatioSpec("seconds", "factory", "bare", goal=1.15)])
    assert within.value == pytest.approx(1.1) and within.met is True
    [missed] = ratios(series, [RatioSpec("seconds", "factory", "bare", goal=1.0)])
    assert missed.met is False
    [higher] = ratios(series, [RatioSpec("seconds", "factory", "bare", goal=1.2, op=">=")])
    assert higher.met is False
    [no_goal] = ratios(series, [RatioSpec("seconds", "factory", "bare")])
    assert no_goal.met is None and no_goal.value == pytest.approx(1.1)


def test_ratio_per_case_and_a_failed_side_has_no_value() -> None:
    failed = _series("uv", "pypiserver", [])
    failed.failures.append("exit 1")
    series = [_series("pip", "factory", [2.0]), _series("pip", "pypiserver", [4.0]),
              _series("uv", "factory", [1.0]), failed,
              _series("json", "factory", [1.0])]  # the peer cannot do this case at all
    found = {r.case: r for r in ratios(series, [RatioSpec("seconds", "factory", "pypiserver",
                                                          goal=1.0)])}
    assert set(found) == {"pip", "uv"}
    assert found["pip"].value == 0.5 and found["pip"].met is True
    assert found["uv"].value is None and found["uv"].met is None
    assert "pypiserver" in found["uv"].why


def _context(tmp_path: Path, comparison: Comparison) -> Context:
    outcome = harness.Outcome(comparison)
    settings = factories.settings(tmp_path)
    return Context(settings, Options(), 2, tmp_path, tmp_path, outcome, log=lambda _: None)


def _comparison(run: object, name: str = "demo", number: int = 9) -> Comparison:
    return Comparison(number=number, name=name, title=name, run=run)  # type: ignore[arg-type]


def test_timed_records_seconds_or_the_failure_and_goes_on(tmp_path: Path) -> None:
    ctx = _context(tmp_path, _comparison(lambda c: None))
    assert ctx.timed("case", "ok", lambda: 42) == 42

    def broken() -> None:
        raise RuntimeError("first line\nthe build backend failed")

    assert ctx.timed("case", "broken", broken) is None
    ok = ctx.outcome.find("case", "ok", "seconds")
    bad = ctx.outcome.find("case", "broken", "seconds")
    assert ok is not None and len(ok.samples) == 1 and ok.samples[0] >= 0
    assert bad is not None and bad.samples == []
    assert bad.failures == ["RuntimeError: the build backend failed"]


def test_run_one_turns_errors_into_a_reported_outcome(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    seen: list[Path] = []

    def missing_peer(ctx: Context) -> None:
        seen.append(ctx.work)
        raise BenchSetupError("wrk is not installed", "apt-get install wrk")

    outcome = harness.run_one(_comparison(missing_peer), settings, Options(), tmp_path,
                              log=lambda _: None)
    assert outcome.error == "wrk is not installed (hint: apt-get install wrk)"
    assert seen and not seen[0].exists()  # its scratch directory is cleaned up

    def crash(ctx: Context) -> None:
        raise KeyError("boom")

    assert harness.run_one(_comparison(crash), settings, Options(), tmp_path,
                           log=lambda _: None).error == "KeyError: 'boom'"


def test_repeats_default_per_comparison_and_override() -> None:
    comparison = Comparison(1, "c", "c", run=lambda c: None, repeats=3, quick_repeats=1)
    assert harness.repeats_for(comparison, Options()) == 3
    assert harness.repeats_for(comparison, Options(quick=True)) == 1
    assert harness.repeats_for(comparison, Options(repeats=5, quick=True)) == 5
    assert harness.repeats_for(comparison, Options(repeats=0)) == 1


def test_discover_finds_every_comparison_module_in_issue_order() -> None:
    found = harness.discover()
    names = [c.name for c in found]
    assert {"cold_build", "install", "serve_load"} <= set(names)
    assert [c.number for c in found] == sorted(c.number for c in found)
    for comparison in found:
        assert comparison.method.strip(), f"{comparison.name} does not say how it measures"


def test_select_by_name_or_number_and_refuses_unknown_names() -> None:
    found = harness.discover()
    assert [c.name for c in harness.select(found, ["install", "1"])] == ["cold_build", "install"]
    assert harness.select(found, None) == found
    with pytest.raises(BenchSetupError, match="instal"):
        harness.select(found, ["instal"])


def test_rotation_gives_each_contender_each_slot() -> None:
    from bench.harness import rotated

    names = ["a", "b", "c"]
    orders = [rotated(names, i) for i in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert {order[0] for order in orders} == set(names) and rotated([], 5) == []
