"""The index as a whole (records, pages, files, what no record names), and the published
index a run verifies against.

``index_checks`` runs factory.index.check over a published index directory. It needs
neither Sigstore nor in-toto: `verify --all` runs it in the child it forks before
importing them (factory.verify.early). factory.index.check (page rendering, Jinja, the
TUF and log layouts: about 90 ms of imports) is imported inside ``index_checks``, so
that the child pays for it after the fork, not the run before it.
"""

from __future__ import annotations

import json
from pathlib import Path

from factory._internal.plainfile import NotPlain, read_plain
from factory.config import Settings
from factory.errors import VerificationError
from factory.index.records import IndexCorruptError, ProjectRecord, list_projects
from factory.verify.model import (
    FILES,
    PAGES,
    RECORDS,
    UNRECORDED,
    VEX,
    Check,
    failed,
    passed,
    skipped,
)
from factory.verify.targets import TargetError
from factory.verify.view import IndexView


def open_index(settings: Settings, index_dir: Path | None = None) -> IndexView:
    """The published index to verify against: ``index_dir`` (an auditor's copy) or the
    settings' own, whose pages were rendered with the settings' URL. TargetError if none.
    (An index URL: ``verify`` fetches it, factory.verify.remote.)"""
    root = index_dir or settings.index_dir
    try:
        same = root.resolve() == settings.index_dir.resolve()
    except (OSError, RuntimeError) as exc:  # (a link loop: RuntimeError on Python 3.11)
        raise TargetError(f"no published index at {root}: the path does not resolve "
                          f"({exc})", "pass --index PATH (the directory holding records/ "
                          "and files/, not a loop of links)") from None
    index = IndexView(root, settings.index_url if same else None)
    if not index.exists():
        raise TargetError(f"no published index at {index.root}",
                          "pass --index PATH (the directory holding records/ and files/)")
    return index



def index_checks(index: IndexView) -> list[Check]:
    """The index as a whole: one failed Check per problem, else one passed Check per kind.

    Files are checked for type and size here; their bytes by each artifact's checks
    (the wheel and every sidecar beside it against the record in `digest`, the
    .metadata against the wheel in `metadata`, the rest by their signatures).
    """
    from factory.index.check import inspect_index  # after the fork (see the docstring)

    def load(project: str) -> ProjectRecord | None:
        record = index.record(project)
        if record is None and project in index.corrupt:
            raise IndexCorruptError(index.corrupt[project])
        return record

    findings = inspect_index(index.root, index.base_url, deep=False, wheels=False, load=load)
    projects = len(list_projects(index.layout)) if index.exists() else 0
    checks: list[Check] = []
    for name in (RECORDS, PAGES, FILES, UNRECORDED):
        found = [f for f in findings if f.area == name]
        checks += [failed(name, str(f)) for f in found] or [passed(name, _INDEX_PASSED[name]
                                                                   .format(projects))]
    return checks


_INDEX_PASSED = {
    RECORDS: "all {} project records load, every path inside the index",
    PAGES: "every page of the {} projects is what the records render",
    FILES: "every recorded file is a regular file of the recorded size and sha256, with its "
           "sidecars",
    UNRECORDED: "no file in a served area that no record names",
}


def _trust_file(index: IndexView, name: str) -> bytes | None:
    """trust/<name> read as the index checks read trust files (every component without
    following a link, regular, at most TRUST_MAX_BYTES); None when it is absent;
    NotReadable why not otherwise."""
    from factory.index.records import TRUST_MAX_BYTES
    from factory.index.tree import NotReadable, read_regular

    try:
        return read_regular(index.root, f"trust/{name}", TRUST_MAX_BYTES)
    except NotReadable as exc:
        if str(exc) == "is missing":
            return None
        raise


_KEY_LIMIT = 1 << 16


def vex_check(index: IndexView, key: Path | None, pinned: bool = True) -> Check:
    """The OpenVEX feed the index serves, signed by the answers key ``key`` (factory.vex:
    the envelope signs exactly vex.json's bytes; the document is valid OpenVEX). No feed
    at all passes (there is one only once something was checked); half of one fails.
    ``pinned``: ``key`` is the auditor's, not the one the index itself serves."""
    from factory.index.tree import NotReadable
    from factory.vex import ENVELOPE_FILE, VEX_FILE, verify_vex

    try:
        data = _trust_file(index, VEX_FILE)
        envelope = _trust_file(index, ENVELOPE_FILE)
    except NotReadable as exc:
        return failed(VEX, f"the VEX feed (trust/) {exc}")
    if data is None and envelope is None:
        return passed(VEX, "no OpenVEX feed served (there is one once a version was checked)")
    if data is None or envelope is None:
        return failed(VEX, f"{VEX_FILE if data is None else ENVELOPE_FILE} is missing: the "
                      "feed is served unsigned or its signature alone")
    if key is None:
        return skipped(VEX, "no answers key to check the VEX feed with (pin keys/"
                       "answers.pub.pem)")
    try:
        pem = read_plain(key, _KEY_LIMIT, follow_links=True)
        if pem is None:
            return skipped(VEX, f"the answers key {key} is gone")
        document = verify_vex(data, json.loads(envelope), pem)
    except NotPlain as exc:
        return skipped(VEX, f"the answers key {key} cannot be read ({exc.why})")
    except VerificationError as exc:
        return failed(VEX, exc.message)
    except (ValueError, RecursionError):
        return failed(VEX, f"{ENVELOPE_FILE} is not a JSON DSSE envelope")
    count = len(document.get("statements", []))
    return passed(VEX, f"{count} OpenVEX statements, signed by the answers key {key}"
                  + ("" if pinned else " (served by the index itself, not pinned)"))
