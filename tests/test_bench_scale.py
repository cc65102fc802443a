"""The pieces of the index-scale and backtracking comparisons (no timing here): the
synthetic index is one the index code accepts, and the backtracking scenario does
force pip to backtrack."""

from __future__ import annotations

import json
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from bench import backtrack, harness, index_scale
from factory.index import Index
from tests import factories
from tests.index_fixtures import make_sidecars


def test_both_comparisons_are_discovered_with_their_goals() -> None:
    found = {c.name: c for c in harness.discover()}
    assert {"index_scale", "backtrack"} <= set(found)
    scale = found["index_scale"].ratios
    assert any(r.numerator == index_scale.LARGE and r.denominator == index_scale.EMPTY
               and r.goal == 1.2 for r in scale)
    assert any(r.denominator == index_scale.GOAL for r in scale)
    assert any(r.numerator == "factory" and r.denominator == "pypiserver" and r.goal == 1.0
               for r in found["backtrack"].ratios)


def test_synthetic_index_is_sound_and_takes_a_publish(tmp_path: Path) -> None:
    root = tmp_path / "index"
    index_scale.populate(root, 7, 3, 2)
    index = Index(root, index_scale.BASE_URL)
    assert index.projects() == ["synth-00007", "synth-00008", "synth-00009"]
    assert index.check(deep=True) == []
    record = index.record("synth-00008")
    assert record is not None and record.versions() == ["1.0.0", "1.1.0"]
    assert set(record.files[0].sidecars) == {"provenance", "sbom", "build", "sigstore", "intoto"}
    # A publish into it, as the comparison times, leaves it sound.
    wheel = factories.wheel(tmp_path / "dist", "synth-00008", "2.0.0")
    sdist = factories.sdist(tmp_path / "sdist", "synth-00008", "2.0.0")
    index.add(wheel, make_sidecars(tmp_path / "side", wheel, sdist), sdist)
    assert index.check(deep=True) == []


def _compatible(requires: list[str], constraint: str) -> bool:
    """Whether some published dep satisfies both ``requires`` and the constraint."""
    deps = [Version(v) for name, v, _ in backtrack.releases() if name == backtrack.DEP]
    allowed: SpecifierSet = Requirement(constraint).specifier
    for text in requires:
        allowed &= Requirement(text).specifier
    return any(v in allowed for v in deps)


def test_backtracking_scenario_leaves_only_the_oldest_top() -> None:
    tops = [(Version(v), requires) for name, v, requires in backtrack.releases()
            if name == backtrack.TOP]
    assert len(tops) == backtrack.RELEASES
    ok = [v for v, requires in tops if _compatible(requires, backtrack.CONSTRAINT)]
    assert ok == [min(v for v, _ in tops)]  # pip must try every newer one first


def test_pip_runs_with_fresh_caches_the_constraint_and_one_index(tmp_path: Path) -> None:
    for case in backtrack.CASES:
        command = backtrack.pip_command(["py"], case, "http://127.0.0.1:1/simple/",
                                        tmp_path / "c.txt", tmp_path / "out")
        assert "--no-cache-dir" in command and command[-1] == backtrack.TOP
        assert command[command.index("-c") + 1] == str(tmp_path / "c.txt")
        assert command[command.index("--index-url") + 1] == "http://127.0.0.1:1/simple/"
        assert "--extra-index-url" not in command and "--find-links" not in command
    dry = backtrack.pip_command(["py"], backtrack.DRY_RUN, "u", tmp_path / "c", tmp_path / "o")
    assert "--dry-run" in dry and dry[dry.index("--report") + 1] == str(tmp_path / "o")


def test_what_pip_chose_is_read_from_the_report_or_the_target(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"install": [
        {"metadata": {"name": "top", "version": "1.0.0"}},
        {"metadata": {"name": "dep", "version": "1.0.0"}}]}))
    assert backtrack.chosen(backtrack.DRY_RUN, report) == {"top": "1.0.0", "dep": "1.0.0"}
    target = tmp_path / "target"
    (target / "top-1.0.0.dist-info").mkdir(parents=True)
    (target / "dep-2.1.0.dist-info").mkdir()
    (target / "top").mkdir()
    assert backtrack.chosen(backtrack.INSTALL, target) == {"top": "1.0.0", "dep": "2.1.0"}
