"""`factory why NAME[==VERSION]`: the index's answer, on the command line.

The project approves requests (2.32.3 served; 2.31.0 yanked for an advisory),
flask (its wheel refused by the admission gate) and six (not locked yet); the
local upstream knows leftpad but not an invented name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factory import ledger
from factory.config import Settings
from factory.index import Index
from tests import factories
from tests.index_fixtures import publish_wheel
from tests.local_upstream import LocalUpstream

ADVISORY = {"id": "GHSA-9wx4-h78v-vm56", "summary": "leaks credentials", "aliases": [],
            "fixed": "2.32.0"}


def factory(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACTORY_ROOT": str(settings.root)}
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def approved(project: Settings, tmp_path: Path) -> Settings:
    for name, body in (("requests", 'versions = ">=2.31,<3"\n'), ("flask", ""), ("six", "")):
        factories.recipe(project.root, name, body)
    for version in ("2.31.0", "2.32.3"):
        publish_wheel(project, tmp_path / "work", "requests", version)
    index = Index.of(project)
    index.record_advisories("requests", "2.31.0", [ADVISORY], "2026-01-01T00:00:00Z")
    index.yank("requests", "2.31.0", "advisory GHSA-9wx4-h78v-vm56")
    ledger.record_decision(project, "flask", "refused",
                           "its wheel requires evil-package, not an approved component", "3.1.0")
    return project


def test_a_served_name_exits_0(approved: Settings) -> None:
    result = factory(approved, "why", "Requests", "--offline")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Requests is served (newest 2.32.3)"


def test_a_typo_names_the_approved_project(approved: Settings) -> None:
    result = factory(approved, "why", "reqests", "--offline", "--json")
    assert result.returncode == 1, result.stderr
    found = json.loads(result.stdout)
    assert found["verdict"] == "did-you-mean" and found["suggestions"] == ["requests"]
    assert found["upstream"] is None  # --offline: not asked
    text = factory(approved, "why", "r\u0435quests", "--offline")  # Cyrillic "е"
    assert text.returncode == 1
    assert "did you mean: requests" in text.stdout


def test_a_yanked_version_gives_the_advisory_and_a_version_instead(approved: Settings) -> None:
    result = factory(approved, "why", "requests==2.31.0", "--json", "--offline")
    assert result.returncode == 1, result.stderr
    found = json.loads(result.stdout)
    assert found["verdict"] == "version-blocked"
    assert found["reason"] == "yanked: advisory GHSA-9wx4-h78v-vm56"
    assert found["advisories"] == ["GHSA-9wx4-h78v-vm56"] and found["instead"] == "2.32.3"
    outside = factory(approved, "why", "requests==2.0", "--offline")
    assert outside.returncode == 1
    assert outside.stdout.strip() == ("requests==2.0 is not in the approved range <3,>=2.31; "
                                      "use requests==2.32.3 instead")
    assert factory(approved, "why", "requests==2.32.3", "--offline").returncode == 0


def test_an_approved_but_refused_component_says_why(approved: Settings) -> None:
    result = factory(approved, "why", "flask", "--json", "--offline")
    assert result.returncode == 1
    found = json.loads(result.stdout)
    assert found["verdict"] == "approved-not-published"
    assert "admission gate refused its wheel: 3.1.0: its wheel requires evil-package" \
        in found["reason"]
    six = json.loads(factory(approved, "why", "six", "--json", "--offline").stdout)
    assert six["reason"] == "approved, but not locked or built yet"


def test_upstream_tells_a_hallucinated_name_from_an_unapproved_one(
        approved: Settings, upstream: LocalUpstream) -> None:
    upstream.add("leftpad", "1.0.0")
    invented = factory(approved, "why", "fastjsonparserx", "--json")
    assert invented.returncode == 1, invented.stderr
    assert json.loads(invented.stdout)["verdict"] == "unknown-upstream"
    known = json.loads(factory(approved, "why", "leftpad", "--json").stdout)
    assert known["verdict"] == "not-approved" and known["upstream"] == "exists"
    offline = json.loads(factory(approved, "why", "fastjsonparserx", "--offline",
                                 "--json").stdout)
    assert offline["verdict"] == "not-approved" and offline["upstream"] is None


def test_usage_errors_exit_2_and_hostile_names_print_inert(approved: Settings) -> None:
    bad = factory(approved, "why", "requests==not-a-version", "--offline")
    assert bad.returncode == 2 and "not a version" in bad.stderr
    hostile = factory(approved, "why", "evil\x1b]0;owned\x07name", "--offline")
    assert hostile.returncode == 1
    assert "\x1b" not in hostile.stdout and "\\x1b" in hostile.stdout
