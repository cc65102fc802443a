"""Shared by the early-child in-toto tests: a published index to spoil, and a run of
``verify --all`` with and without the child's verdicts in one fresh interpreter."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from factory.verify.targets import resolve
from factory.verify.view import sidecar
from factory.verify.wholeindex import open_index
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)


@pytest.fixture(name="copy")
def copy_fixture(published_index: PublishedIndex,  # noqa: F811
                 tmp_path: Path) -> PublishedIndex:
    """A clone of the published index that a test may spoil."""
    return clone(published_index, tmp_path / "copy")


# A fresh interpreter, since a process with another thread (pytest's) never forks the
# child. ``prelude`` runs before the child is forked (``CHILD()`` is true in the child
# only, so a hook can play the attacker at an exact moment of the child's work),
# ``between`` after the child answered and before the workers read; ``owner`` names
# another owner key for both runs.
_RUN = """
import json, os, pickle, shutil, sys, time
from pathlib import Path
from factory.verify import early as child, verify
settings = pickle.loads(open(sys.argv[1], "rb").read())
prelude, between, owner = sys.argv[2], sys.argv[3], sys.argv[4] or None
PARENT = os.getpid()
CHILD = lambda: os.getpid() != PARENT
rows = lambda report: [[a.label, c.name, c.status, c.message] for a in report.artifacts
                       for c in a.checks if c.name == "in-toto"]
out = {}
exec(prelude)
started = child.start(settings, None)
assert started is not None
time.sleep(3)  # the parent's imports, as it were: the child gets through every wheel
facts = started.facts()
out["facts"] = {sha: [fact.passed, fact.message] for sha, fact in facts.in_toto.items()}
out["done"] = facts.in_toto_done
exec(between)
child.start = lambda *a, **k: started
extra = {"owner_key": Path(owner)} if owner else {}
with_child = verify(settings, everything=True, workers=1, **extra)
out["in_toto imported"] = "in_toto" in sys.modules
child.start = lambda *a, **k: None
alone = verify(settings, everything=True, workers=1, **extra)
out["with child"], out["alone"] = rows(with_child), rows(alone)
print(json.dumps(out))
"""


def run_with_and_without_child(settings: Any, tmp_path: Path, prelude: str = "",
                               between: str = "", owner: Path | None = None,
                               cwd: Path | None = None) -> dict[str, Any]:
    """The child's facts, and each wheel's in-toto rows with the child and alone."""
    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(settings))
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(state), textwrap.dedent(prelude),
         textwrap.dedent(between), str(owner or "")],
        capture_output=True, text=True, timeout=600, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def layout_dir(copy: PublishedIndex, name: str) -> Path:
    return sidecar(copy.wheel(name), "in-toto")


def item_of(copy: PublishedIndex, name: str) -> Any:
    index = open_index(copy.settings)
    return next(item for item in resolve(index, None, True, ()) if item.project == name)


def owner_key(copy: PublishedIndex) -> dict[str, Any]:
    from factory.attest.keys import OWNER_KEY, in_toto_key

    return in_toto_key((copy.settings.public_keys_dir / OWNER_KEY).read_bytes())
