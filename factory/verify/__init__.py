"""Auditor verification: one command, offline, with a pinned trust root.

``audit(index, trust, target)`` checks every artifact a target names (a wheel,
a ``name==version``, a requirements file with hashes, a pylock.toml or
uv.lock, a virtual environment, or the whole index) against the published
index and returns a Report with one named, explained Check per property:

- digest: the file's sha256 equals the index record and every attestation subject;
- metadata: the served .metadata (PEP 658) is the wheel's own METADATA;
- signature: its Sigstore bundle verifies against the pinned trusted root and
  the identity policy (identity + OIDC issuer);
- provenance: the signed SLSA provenance comes from an allowed builder id, names
  the locked source whose sha256 matches upstream's, and records network none;
- sbom: the CycloneDX 1.6 SBOM validates, binds to the wheel, equals the signed one;
- pep740: the PEP 740 attestations (publish, provenance, SBOM) verify for the file;
- in-toto: the layout (owner key) and the fetch/build/attest links verify;
- advisories: no known advisory affects the version;
- installed (venvs): the installed files are the published wheel's files.

The caller builds what is trusted and where (``open_index``, ``Trust.load``)
and prints the Report (``factory.verify.render``); nothing here prints. The
CLI (factory.cli.verify) does both; ``verify(settings, target)`` does the same
from the settings without printing. Nothing is fetched: the trusted root is
loaded once, and a whole index is spread over forked processes that inherit it.
Importing this package costs almost nothing: each name is loaded from its module on
first use, so that ``verify(everything=True)`` can start its early child
before the verifier's libraries (Sigstore, in-toto, jsonschema) are imported.
Reproducibility and equivalence with upstream: ``rebuild_and_compare`` and
``compare_with_upstream`` (factory.verify.reproduce / .equivalence).

Its parts:

- run.py: one run (``audit``, ``verify``): resolve, verify over forked workers, report;
- wholeindex.py: the index as a whole (``index_checks``);
- early.py: the child `verify --all` forks before its imports (pre-checks, index checks);
- model.py: results (Check, ArtifactReport, Report) and their JSON form;
- trust.py: the pinned trust (trusted root, owner key, identity policy) and its fingerprints;
- view.py: a read-only view of a published index directory;
- targets.py: what a TARGET names (wheel, name==version, lock files, a venv, the index);
- evidence.py: one wheel's digest and sidecars, read once;
- checks.py: the per-artifact checks, one row each;
- intoto.py: in-toto layout and link verification, in process;
- installed.py: an installed distribution against the published wheel's RECORD;
- sbom.py: fast CycloneDX 1.6 schema validation;
- render.py: Rich table, JSON and HTML reports;
- reproduce.py, equivalence.py: reproducibility and equivalence with upstream.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory._internal.plugins import plugins_off

if TYPE_CHECKING:
    from factory.config import Settings
    from factory.verify.checks import ALL_CHECKS, CHECK_TITLES
    from factory.verify.equivalence import Equivalence, compare_with_upstream
    from factory.verify.model import ArtifactReport, Check, Report, exit_code
    from factory.verify.render import report_json, write_html
    from factory.verify.reproduce import Rebuild, rebuild_and_compare
    from factory.verify.run import audit, local_lock
    from factory.verify.targets import TargetError
    from factory.verify.trust import Trust, TrustError
    from factory.verify.view import IndexView
    from factory.verify.wholeindex import open_index

# Where each public name lives; loaded on first use (PEP 562).
_LAZY = {
    "ALL_CHECKS": "factory.verify.checks",
    "CHECK_TITLES": "factory.verify.checks",
    "ArtifactReport": "factory.verify.model",
    "Check": "factory.verify.model",
    "Report": "factory.verify.model",
    "exit_code": "factory.verify.model",
    "Equivalence": "factory.verify.equivalence",
    "compare_with_upstream": "factory.verify.equivalence",
    "Rebuild": "factory.verify.reproduce",
    "rebuild_and_compare": "factory.verify.reproduce",
    "report_json": "factory.verify.render",
    "write_html": "factory.verify.render",
    "audit": "factory.verify.run",
    "local_lock": "factory.verify.run",
    "TargetError": "factory.verify.targets",
    "Trust": "factory.verify.trust",
    "TrustError": "factory.verify.trust",
    "IndexView": "factory.verify.view",
    "open_index": "factory.verify.wholeindex",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALL_CHECKS",
    "CHECK_TITLES",
    "ArtifactReport",
    "Check",
    "Equivalence",
    "IndexView",
    "Rebuild",
    "Report",
    "TargetError",
    "Trust",
    "TrustError",
    "audit",
    "compare_with_upstream",
    "exit_code",
    "local_lock",
    "open_index",
    "rebuild_and_compare",
    "report_json",
    "verify",
    "write_html",
]


def verify(
    settings: Settings,
    target: str | None = None,
    *,
    everything: bool = False,
    index_dir: Path | str | None = None,
    trusted_root: Path | None = None,
    owner_key: Path | None = None,
    answers_key: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    builder_ids: tuple[str, ...] = (),
    advisories: str | None = None,
    check_advisories: bool = True,
    ignore: tuple[str, ...] = (),
    workers: int | None = None,
    on_result: Callable[[ArtifactReport], None] | None = None,
) -> Report:
    """What `factory verify` checks, from the settings, without printing: the index, the
    trust and the advisory source are the settings' unless named
    (factory.verify.run.verify).

    With ``everything`` and an index directory, a forked child starts first
    (factory.verify.early: zip checks of wheels' bytes, then the index checks), and only then are
    the verifier's libraries imported: the two overlap on two cores.

    Raises TargetError (exit 2) for an unusable target or index, TrustError when
    the pinned trust cannot be loaded; every artifact problem is a failed Check.
    """
    plugins_off()  # before Sigstore's models are built (factory._internal.plugins)
    early = None
    if everything and not str(index_dir or "").startswith(("http://", "https://")):
        from factory.verify import early as child

        early = child.start(settings, Path(index_dir) if index_dir else None)
    try:
        from factory._internal.lazy import collector_paused

        with collector_paused():  # the verifier's imports: Sigstore, in-toto, pydantic
            from factory.verify import run
        return run.verify(settings, target, everything=everything, index_dir=index_dir,
                          trusted_root=trusted_root, owner_key=owner_key,
                          answers_key=answers_key, identity=identity,
                          issuer=issuer, builder_ids=builder_ids, advisories=advisories,
                          check_advisories=check_advisories, ignore=ignore, workers=workers,
                          on_result=on_result, early=early)
    finally:
        if early is not None:
            early.close()
