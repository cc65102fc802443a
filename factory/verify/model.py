"""Verification results: one Check per property, grouped per artifact, in one Report.

A check passes, fails, or is skipped (it could not run, e.g. the advisory source
is unreachable); only a failure makes the report fail, but a skip nobody asked
for makes it incomplete: never a PASS (``exit_code``: 3). Everything here
serialises to plain JSON (``to_dict``), which is also what ``--json`` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"
IGNORED = "ignored on request"  # a venv's distribution named by --ignore

# The checks of one artifact (names, titles, order) are the rows of factory.verify.checks.

# The checks of the index as a whole (`verify --all`), as factory.index.check names them.
RECORDS, PAGES, FILES, METADATA, UNRECORDED = "records", "pages", "files", "metadata", "unrecorded"
VEX = "vex"
INDEX_CHECKS = (RECORDS, PAGES, FILES, METADATA, UNRECORDED, VEX)
INDEX_CHECK_TITLES = {
    RECORDS: "every project record loads: JSON of the right shape, paths inside the index",
    PAGES: "every page served (Simple API HTML and JSON, human pages) is what the records "
           "render",
    FILES: "every file a record names is a regular file of the recorded size and sha256, "
           "with its required sidecars",
    METADATA: "every .metadata (PEP 658) is the METADATA inside its wheel",
    UNRECORDED: "no file in a served area that no record names",
    VEX: "the OpenVEX feed (/.well-known/factory/vex.json) is valid OpenVEX, signed by the "
         "pinned answers key",
}


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    message: str

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def passed(name: str, message: str) -> Check:
    return Check(name, PASS, message)


def failed(name: str, message: str) -> Check:
    return Check(name, FAIL, message)


def skipped(name: str, message: str) -> Check:
    return Check(name, SKIP, message)


@dataclass
class ArtifactReport:
    """Everything verified about one file (and, for a venv, its installed copy)."""

    label: str  # how the target named it: a path, "name==version", "venv: name 1.0"
    filename: str | None
    project: str | None
    version: str | None
    sha256: str | None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(c.failed for c in self.checks)

    @property
    def ignored(self) -> bool:
        """Left out on request (a venv's distribution named by --ignore): not verified,
        so neither passed nor failed."""
        return bool(self.checks) and all(
            c.status == SKIP and c.message.startswith(IGNORED) for c in self.checks)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


@dataclass
class TrustInfo:
    """What the verification trusted, with fingerprints a reviewer can compare."""

    trusted_root: str
    trusted_root_sha256: str
    certificate_authorities: list[dict[str, str]]
    transparency_logs: list[str]  # log IDs (base64), as in the trusted root
    ct_logs: list[str]
    owner_key: str
    owner_key_spki_sha256: str | None
    identity: str
    issuer: str
    builder_ids: list[str]
    index: str
    advisories: str | None
    # The trusted root or owner key came from the verified index's own trust/ (served
    # by it, nothing pinned): the checks then show the files are what this index
    # signed, not that the index is the one meant (trust on first use; said so).
    from_index: bool = False
    # Which of them it was ("trusted root", "owner key"): what to pin.
    served: list[str] = field(default_factory=list)


@dataclass
class Report:
    target: str
    started: str  # RFC 3339 UTC
    finished: str
    seconds: float
    trust: TrustInfo
    artifacts: list[ArtifactReport]
    # What each check of an artifact establishes, by name, in the order of the table's columns.
    titles: dict[str, str]
    tool: str = "artifact-factory verify"
    # The index as a whole (pages, records, unrecorded files): `verify --all` only.
    index: list[Check] = field(default_factory=list)
    # Checks left out on request (--no-advisories, --ignore): name -> why. Named in the
    # summary, they do not make the run incomplete.
    requested: dict[str, str] = field(default_factory=dict)

    @property
    def skipped(self) -> dict[str, str]:
        """Checks that did not run although nobody asked to leave them out: name -> why
        (the first reason given). A run with any is not a PASS (exit 3, see exit_code)."""
        out: dict[str, str] = {}
        for check in [c for a in self.artifacts for c in a.checks] + self.index:
            if (check.status == SKIP and check.name not in self.requested
                    and not check.message.startswith(IGNORED)):
                out.setdefault(check.name, check.message)
        return out

    @property
    def ok(self) -> bool:
        """Nothing failed, and something was verified (a run whose every artifact was
        ignored on request verified nothing: not a PASS)."""
        return (any(not a.ignored for a in self.artifacts) and all(a.ok for a in self.artifacts)
                and not any(c.failed for c in self.index))

    @property
    def index_sound(self) -> bool | None:
        """The index checks all ran and passed (True), one failed (False), or they did not
        all run or were not asked for (None): "index sound" is said only when True."""
        if not self.index or any(c.failed for c in self.index):
            return False if self.index else None
        return True if all(c.status == PASS for c in self.index) else None

    def index_failures(self) -> list[Check]:
        return [c for c in self.index if c.failed]

    @property
    def summary(self) -> dict[str, Any]:
        failing = [a for a in self.artifacts if not a.ok]
        ignored = [a.label for a in self.artifacts if a.ignored]
        per_second = len(self.artifacts) / self.seconds if self.seconds > 0 else None
        return {
            "artifacts": len(self.artifacts),
            "verified": len(self.artifacts) - len(ignored),
            "passed": len(self.artifacts) - len(failing) - len(ignored),
            "failed": len(failing),
            "ignored": ignored,
            "ok": self.ok,
            "artifacts_per_second": round(per_second, 1) if per_second else None,
            "index_failed": len(self.index_failures()),
            "index_sound": self.index_sound,
            "complete": not self.skipped,
            "skipped": self.skipped,
            "skipped_on_request": self.requested,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "target": self.target,
            "started": self.started,
            "finished": self.finished,
            "seconds": round(self.seconds, 3),
            "summary": self.summary,
            "trust": asdict(self.trust),
            "checks": self.titles,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "index_checks": INDEX_CHECK_TITLES if self.index else {},
            "index": [asdict(c) for c in self.index],
        }


EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3


def exit_code(report: Report, allow_skipped: bool = False) -> int:
    """0: every check ran and passed; 1: a check failed; 3: none failed but one did not
    run although nobody asked to leave it out (advisories unreachable, say), unless
    ``allow_skipped``. (2: a usage error or unusable trust, raised before a report.)"""
    if not report.ok:
        return EXIT_FAIL
    return EXIT_INCOMPLETE if report.skipped and not allow_skipped else EXIT_PASS
