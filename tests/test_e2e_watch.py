"""End to end, on a local upstream: publish, patch release, advisory, all hands-off;
then a request for a project nobody approved yet, approved and installable.

X.Y.Z is built from source, signed, published and installed. Then X.Y.(Z+1)
appears upstream: one watch cycle later pip -U picks it up. Then an advisory
hits that version: the fixed one is built and published, the hit one yanked.
Then a developer asks the index's policy API for `extra`, which nobody approved;
the platform team approves the request (`factory requests approve`), which adds,
builds and publishes it, and pip installs it. (One test: the build tools are built
once for both stories.) Real Prefect server, real containers, real pip. Build tools
are the real flit_core, pyproject-hooks, packaging and installer sdists (pinned,
hashed). The site repairs no wheels ([build] repair = "none": all are pure), so
`factory add` needs no auditwheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from factory.config import Settings, load_settings
from factory.index import Index
from factory.index.serve import create_app
from factory.lock import lock_stage
from tests import factories
from tests.builders_fixtures import FLIT, serve_flit_tools
from tests.factories import cli
from tests.index_fixtures import running
from tests.local_upstream import LocalUpstream

pytestmark = [pytest.mark.docker, pytest.mark.network, pytest.mark.slow]



@pytest.fixture
def factory_project(tmp_path: Path, upstream: LocalUpstream, request: pytest.FixtureRequest,
                    monkeypatch: pytest.MonkeyPatch) -> Settings:
    root = tmp_path / "project"
    serve_flit_tools(upstream, root, Path(request.config.cache.mkdir("pinned-sdists")))
    factories.recipe(root, "demo", 'versions = ">=1,<2"\ntrack = "minor"\nlicenses = ["MIT"]\n')
    (root / "factory.toml").write_text(
        f'[factory]\nupstream = "{upstream.url}"\nstate_dir = "state"\n'
        f'advisories = "{tmp_path / "advisories"}"\n[build]\nrepair = "none"\n')
    (tmp_path / "advisories").mkdir()
    monkeypatch.setenv("FACTORY_ROOT", str(root))
    return load_settings(root)


def add_demo(upstream: LocalUpstream, version: str) -> None:
    upstream.add("demo", version, build_requires=FLIT, backend="flit_core.buildapi",
                 files={"README.md": b"demo\n"})


@pytest.fixture
def index_url(factory_project: Settings) -> Iterator[str]:
    with running(create_app(Index.of(factory_project), settings=factory_project)) as base:
        yield base + "/simple/"


def pip(venv: Path, *args: str) -> str:
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--isolated",
                             "--disable-pip-version-check", "--no-cache-dir", *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def installed(venv: Path, name: str = "demo") -> str:
    out = pip(venv, "list", "--format", "json")
    return next(p["version"] for p in json.loads(out) if p["name"] == name)


def test_patch_release_and_advisory_flow_through_without_a_human(
        prefect_api: str, factory_project: Settings, upstream: LocalUpstream, index_url: str,
        tmp_path: Path) -> None:
    from flows.rebuild import rebuild
    from flows.watch import watch

    settings = factory_project
    add_demo(upstream, "1.0.0")
    lock_stage(settings)
    summary = rebuild()
    assert summary["failed"] == 0 and summary["published"] == 5  # demo + 4 build tools

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip(venv, "install", "--index-url", index_url, "demo")
    assert installed(venv) == "1.0.0"

    add_demo(upstream, "1.0.1")
    result = watch()
    assert result["rebuild"] == ["demo"] and result["rebuilt"]["published"] == 1
    pip(venv, "install", "-U", "--index-url", index_url, "demo")
    assert installed(venv) == "1.0.1"

    add_demo(upstream, "1.0.2")
    (tmp_path / "advisories" / "DEMO-1.json").write_text(json.dumps({
        "id": "DEMO-2026-1", "summary": "demo leaks secrets",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"},
                      "ranges": [{"type": "ECOSYSTEM",
                                  "events": [{"introduced": "1.0.1"}, {"fixed": "1.0.2"}]}]}]}))
    result = watch()
    assert "demo==1.0.1: advisory DEMO-2026-1" in result["yanked"]
    assert result["rebuild"] == ["demo"]
    pip(venv, "install", "-U", "--index-url", index_url, "demo")
    assert installed(venv) == "1.0.2"

    page = httpx.get(index_url + "demo/",
                     headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
    yanked = {f["filename"]: f["yanked"] for f in page["files"]}
    assert yanked["demo-1.0.1-py3-none-any.whl"] == "advisory DEMO-2026-1"
    assert yanked["demo-1.0.2-py3-none-any.whl"] is False

    quiet = watch()  # nothing new: nothing moves, nothing is rebuilt
    assert quiet["moved"] == [] and quiet["rebuilt"] is None
    assert os.environ["PREFECT_API_URL"] == prefect_api

    # A developer asks for a project nobody approved; the platform team approves it.
    upstream.add("extra", "0.1.0", build_requires=FLIT, backend="flit_core.buildapi",
                 files={"README.md": b"extra\n"})
    api = index_url.removesuffix("/simple/") + "/api/v1/requests"
    started = time.monotonic()
    asked = httpx.post(api, json={"requirement": "extra", "reason": "e2e"}).json()["answer"]
    assert asked["queued"] and asked["request"]["state"] == "pending"
    token = asked["request"]["token"]
    approved = cli(settings, "requests", "approve", token, "--json", timeout=600)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    polled = httpx.get(f"{api}/{token}").json()["answer"]
    assert (polled["state"], polled["version"]) == ("installable", "0.1.0"), polled
    pip(venv, "install", "--index-url", index_url, "extra")
    assert installed(venv, "extra") == "0.1.0"
    print(f"request to installable: {time.monotonic() - started:.1f} s")  # make bench: 12
