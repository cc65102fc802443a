"""What the summary line and the JSON summary claim: nothing is counted as passed
that was not verified, and the index is "sound" only when its checks all ran."""

from __future__ import annotations

import io
import json

from rich.console import Console

from factory.verify.model import (
    IGNORED,
    INDEX_CHECKS,
    ArtifactReport,
    Report,
    TrustInfo,
    exit_code,
    failed,
    passed,
    skipped,
)
from factory.verify.render import print_report, report_json, write_html


def _trust() -> TrustInfo:
    return TrustInfo(trusted_root="keys/trusted_root.json", trusted_root_sha256="ab" * 32,
                     certificate_authorities=[], transparency_logs=[], ct_logs=[],
                     owner_key="keys/owner.pub.pem", owner_key_spki_sha256=None,
                     identity="https://factory.invalid/builders/docker",
                     issuer="https://factory.invalid", builder_ids=[], index="index",
                     advisories=None)


def _artifact(label: str, *checks: tuple[str, str]) -> ArtifactReport:
    report = ArtifactReport(label=label, filename=None, project=label, version="1",
                            sha256=None)
    for status, message in checks:
        report.checks.append({"pass": passed, "fail": failed, "skip": skipped}[status](
            "digest", message))
    return report


def _report(artifacts: list[ArtifactReport], index: list | None = None) -> Report:
    return Report(target="--all", started="s", finished="f", seconds=1.0, trust=_trust(),
                  artifacts=artifacts, titles={"digest": "digest"}, index=index or [])


def _line(report: Report) -> str:
    buffer = io.StringIO()
    print_report(report, console=Console(file=buffer, width=4000, color_system=None))
    return buffer.getvalue().strip().splitlines()[-1]


def test_ignored_distributions_are_not_counted_as_passed() -> None:
    report = _report([_artifact("a", ("pass", "ok")), _artifact("b", ("pass", "ok")),
                      _artifact("pip", ("skip", f"{IGNORED} (--ignore)"))])
    summary = report.summary
    assert (summary["artifacts"], summary["verified"], summary["passed"]) == (3, 2, 2)
    assert summary["ignored"] == ["pip"]
    assert report.ok and exit_code(report) == 0
    assert "2/2 artifacts passed, 1 ignored on request in" in _line(report)
    assert json.loads(report_json(report))["summary"]["ignored"] == ["pip"]


def test_a_run_that_ignored_everything_verified_nothing_and_is_no_pass() -> None:
    report = _report([_artifact("pip", ("skip", f"{IGNORED} (--ignore)"))])
    assert not report.ok and exit_code(report) == 1
    assert report.summary["passed"] == 0 and report.summary["verified"] == 0


def test_the_index_is_sound_only_when_its_checks_all_ran_and_passed() -> None:
    ok = [_artifact("a", ("pass", "ok"))]
    ran = _report(ok, [passed(name, "fine") for name in INDEX_CHECKS])
    assert ran.index_sound is True and "index sound" in _line(ran)
    not_run = _report(ok, [skipped(name, "verified by URL: the directory is not served")
                           for name in INDEX_CHECKS])
    assert not_run.index_sound is None
    assert "index sound" not in _line(not_run) and "index not checked" in _line(not_run)
    assert exit_code(not_run) == 3  # and it is no PASS
    one_skipped = _report(ok, [passed(n, "fine") for n in INDEX_CHECKS[:-1]]
                          + [skipped(INDEX_CHECKS[-1], "could not run")])
    assert "index sound" not in _line(one_skipped)
    broken = _report(ok, [failed(INDEX_CHECKS[0], "bad")]
                     + [skipped(n, "no") for n in INDEX_CHECKS[1:]])
    assert broken.index_sound is False and "1 index problem(s)" in _line(broken)
    assert json.loads(report_json(not_run))["summary"]["index_sound"] is None


def test_the_html_report_says_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ok = [_artifact("a", ("pass", "ok")), _artifact("pip", ("skip", f"{IGNORED} (--ignore)"))]
    not_run = _report(ok, [skipped(name, "verified by URL") for name in INDEX_CHECKS])
    page = tmp_path / "r.html"
    write_html(not_run, page)
    text = page.read_text()
    assert "1 of 1 artifacts passed every check that ran, 1 ignored on request" in text
    assert "index not checked" in text and "no index problem" not in text
