"""Benchmark reports: the JSON document, the markdown table and the chart made from it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import machine, report
from bench.harness import Comparison, Options, Outcome, RatioSpec, Series

MACHINE = {"cpu": "Test CPU", "cores": 2, "memory_gib": 23.4, "os": "Debian GNU/Linux 12",
           "kernel": "6.1", "docker": "20.10.24", "python": "3.11.7"}


def _outcomes() -> list[Outcome]:
    build = Comparison(1, "cold_build", "Cold build", run=lambda c: None,
                       ratios=(RatioSpec("seconds", "factory", "bare", goal=1.15),),
                       method="How it is measured.")
    done = Outcome(build, series=[
        Series("approved set", "factory", "seconds", "s", samples=[60.0, 62.0, 70.0]),
        Series("approved set", "bare", "seconds", "s", samples=[50.0, 50.0, 52.0]),
    ], notes=["a note"], info={"fromager": "fromager 0.101.0"}, seconds=300.0)
    load = Comparison(6, "serve_load", "Load", run=lambda c: None)
    missing = Outcome(load, error="wrk is not installed (hint: apt-get install wrk)")
    return [done, missing]


def _doc() -> dict[str, object]:
    return report.document(_outcomes(), MACHINE, Options(quick=True), "20260101T000000Z", 321.0)


def test_markdown_leads_with_ratios_and_labels_absolute_figures() -> None:
    text = report.markdown(_doc())
    ratios_at, measured_at = text.index("## Ratios"), text.index("## Measurements")
    assert ratios_at < measured_at
    assert "machine-specific" in text and "Ratios are the headline" in text
    # median 62 / median 50 = 1.24 > 1.15: the goal is missed and says so
    row = "| 1 | Cold build | approved set | seconds | factory / bare | 1.24 | <= 1.15 | **no** |"
    assert row in text
    assert "| 1 | approved set | factory | seconds | 62.0 s | 60.0 s | 70.0 s | 3 | – |" in text
    assert "2 cores (Test CPU), 23.4 GiB, Debian GNU/Linux 12" in text
    assert "Docker 20.10.24" in text
    assert "**Not measured:** wrk is not installed" in text
    assert "How it is measured." in text and "- fromager: fromager 0.101.0" in text


def test_values_are_formatted_in_their_units() -> None:
    assert report.fmt(1.2345, "s") == "1.23 s"
    assert report.fmt(123.45, "s") == "123.5 s"
    assert report.fmt(1536, "B") == "1.50 KiB"
    assert report.fmt(3 * (1 << 20), "B") == "3.00 MiB"
    assert report.fmt(2699.4, "req/s") == "2,699 req/s"
    assert report.fmt(0, "count") == "0"
    assert report.fmt(None, "s") == "–"


def test_write_makes_json_markdown_and_png(tmp_path: Path) -> None:
    doc = _doc()
    paths = report.write(doc, tmp_path)
    assert paths["json"].name == "20260101T000000Z.json"
    loaded = json.loads(paths["json"].read_text())
    assert loaded["machine"]["cores"] == 2
    first = loaded["comparisons"][0]
    assert first["series"][0]["stats"] == {"median": 62.0, "min": 60.0, "max": 70.0, "n": 3}
    assert first["ratios"][0]["met"] is False
    assert loaded["comparisons"][1]["error"].startswith("wrk is not installed")
    # the markdown re-rendered from the stored JSON is the one written
    assert paths["md"].read_text() == report.markdown(loaded)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".tmp-*"))


def test_machine_description_names_what_the_figures_depend_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "docker_version", lambda: "20.10.24")
    found = machine.describe()
    assert found["cores"] == os.cpu_count()
    assert found["memory_gib"] is None or found["memory_gib"] > 0
    assert found["cpu"] and found["os"] and found["python"].startswith("3.")
    assert "Docker 20.10.24" in machine.one_line(found)
