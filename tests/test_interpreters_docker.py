"""markupsafe for CPython 3.11 and 3.13, end to end, on real containers.

The project is this repository's own recipes and lock; the locked sdists come from
PyPI once (pinned by sha256, kept in pytest's cache). CPython 3.13 is the tree the
factory built from Debian's verified source, kept once per machine
(FACTORY_INTERPRETERS_DIR, default ${XDG_CACHE_HOME:-~/.cache}/factory/interpreters,
as `make demo` keeps it); when it is not kept there it is built once (about 5 to 10
minutes), the Debian mirror asked for its tarball. 3.14 is left out: its tarball is
not on every mirror (this machine's answered 404).

The set (flask and markupsafe with every build tool) is built for both interpreters:
only markupsafe is native, so only it is built twice. Then published, verified, and
installed with pip and uv from the served index in a container of the builder image
with the 3.13 tree mounted (not this machine's Pythons); and the cp313 wheel rebuilt
bit for bit by `factory verify --rebuild`'s code.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from factory.build import debian, interpreters
from factory.build.engine import connect
from factory.build.env import KIT_TOOLS
from factory.build.executor import Outcome, run_plan
from factory.build.image import bootstrap_image
from factory.build.interpreters import Interpreter
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.index import Index
from factory.index.serve import create_app
from factory.lock import Lock, load_lock, save_lock
from factory.plan import make_plan
from factory.publish import release_all
from factory.verify import rebuild_and_compare, verify
from factory.verify.view import IndexView
from tests import factories
from tests.builders_fixtures import lock_entry, seed_sdists
from tests.index_fixtures import running

pytestmark = [pytest.mark.docker, pytest.mark.network, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
UV = REPO / ".venv" / "bin" / "uv"
VERSION = "3.0.4"  # markupsafe's, in this repository's lock
FLASK = ["flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker"]


def machine_interpreters() -> Path:
    """Where this machine keeps built interpreters (shared with `make demo`)."""
    given = os.environ.get("FACTORY_INTERPRETERS_DIR")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "factory" / "interpreters"


@pytest.fixture(scope="module")
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("interpreters")
    shutil.copytree(REPO / "recipes", root / "recipes")
    settings = factories.settings(root, build_interpreters=("3.11", "3.13"),
                                  interpreters_dir=str(machine_interpreters()))
    lock = load_lock(factories.settings(REPO, state_dir=root / "unused"))
    save_lock(settings, Lock(lock.components))
    cache = Path(request.config.cache.mkdir("factory-sdists"))  # type: ignore[union-attr]
    wanted = {*make_plan(settings, FLASK).nodes, *KIT_TOOLS}
    seed_sdists(settings, list(lock.components), wanted, cache)
    return settings


@pytest.fixture(scope="module")
def cp313(project: Settings) -> Interpreter:
    """The kept 3.13 tree (checked against its manifest), or built once and kept."""
    image = bootstrap_image(project, interpreters.BUILD_PACKAGES)
    pin = interpreters.PINS["3.13"]
    found = interpreters.usable(project, image, pin)
    if found is None:
        with pytest.MonkeyPatch.context() as switch:
            switch.setenv(debian.SWITCH, "on")
            found = interpreters.for_image(project, image, pin)
    return found


@pytest.fixture(scope="module")
def built(project: Settings, cp313: Interpreter) -> Outcome:
    return run_plan(project, make_plan(project, FLASK))


def _markupsafe(outcome: Outcome) -> dict[str, BuildRecord]:
    return {r.wheel_filename.split("-")[2]: r for r in outcome.records
            if r.component == "markupsafe"}


def test_markupsafe_is_built_for_each_interpreter_and_the_rest_once(
        project: Settings, cp313: Interpreter, built: Outcome) -> None:
    assert built.failed == {} and built.skipped == {}
    wheels = _markupsafe(built)
    assert sorted(wheels) == ["cp311", "cp313"]
    native = [r.wheel_filename for r in built.records if "-none-any" not in r.wheel_filename]
    assert sorted(native) == sorted(r.wheel_filename for r in wheels.values())
    assert len({r.wheel_filename for r in built.records}) == len(built.records)
    new = wheels["cp313"]
    assert new.wheel_filename.startswith(f"markupsafe-{VERSION}-cp313-cp313-manylinux")
    assert new.builder_settings["repair"]["action"] == "repaired"
    described = new.builder_settings["interpreter"]
    assert described["tree_sha256"] == cp313.tree_sha256 and described["version"] == "3.13.5"
    assert described["source"]["sha256"] == interpreters.PINS["3.13"].orig_sha256
    system = wheels["cp311"].builder_settings["interpreter"]
    assert system["tag"] == "cp311" and system["debian_package"].startswith("python3.11=")
    with zipfile.ZipFile(project.wheels_dir / new.wheel_filename) as archive:
        assert "markupsafe/_speedups.cpython-313-x86_64-linux-gnu.so" in archive.namelist()
    # both records stand side by side, each beside its own wheel
    for record in wheels.values():
        assert (project.wheels_dir / f"{record.wheel_filename}.build.json").is_file()
    # a second run builds nothing: each is up to date for its own interpreter
    again = run_plan(project, make_plan(project, FLASK))
    assert sorted(r.invocation_id for r in again.records) == \
        sorted(r.invocation_id for r in built.records)


@pytest.fixture(scope="module")
def published(project: Settings, built: Outcome) -> Settings:
    report = release_all(project, built.records)
    assert not report.refused, [r.line() for r in report.refused]
    return project


def test_both_wheels_are_published_and_verify(published: Settings, built: Outcome) -> None:
    files = {p.filename for p in IndexView(published.index_dir).by_version("markupsafe",
                                                                            VERSION)}
    assert files == {r.wheel_filename for r in _markupsafe(built).values()}
    report = verify(published, f"markupsafe=={VERSION}", check_advisories=False)
    assert report.ok, [c for a in report.artifacts for c in a.checks if not c.ok]
    assert len(report.artifacts) == 2


@pytest.fixture(scope="module")
def served(published: Settings) -> Iterator[str]:
    with running(create_app(Index.of(published))) as base:
        yield base


INSTALL = r"""set -eu
py=/opt/python/cp313-cp313/bin/python3.13
pip=$(ls /opt/python/cp313-cp313/lib/python3.13/ensurepip/_bundled/pip-*.whl)
$py "$pip/pip" install -q --disable-pip-version-check --no-cache-dir --target /tmp/pip \
    --index-url "$1/simple/" flask
PYTHONPATH=/tmp/pip $py -c 'import flask, markupsafe._speedups as s; print("pip", s.__file__)'
/uv venv -q --python $py /tmp/uv
/uv pip install -q --no-cache --python /tmp/uv/bin/python --index-url "$1/simple/" flask
/tmp/uv/bin/python -c 'import flask, markupsafe._speedups as s; print("uv", s.__file__)'
"""


def test_pip_and_uv_install_flask_for_313_from_the_index(
        published: Settings, served: str, cp313: Interpreter) -> None:
    out = connect().containers.run(
        published.builder_image, ["sh", "-c", INSTALL, "install", served],
        network_mode="host", remove=True, user="1000:1000", environment={"HOME": "/tmp"},
        volumes={str(cp313.tree): {"bind": cp313.prefix, "mode": "ro"},
                 str(UV): {"bind": "/uv", "mode": "ro"}})
    lines = out.decode().split()
    assert lines[0] == "pip" and "_speedups.cpython-313-x86_64-linux-gnu.so" in lines[1]
    assert lines[2] == "uv" and "_speedups.cpython-313-x86_64-linux-gnu.so" in lines[3]


def test_verify_rebuild_reproduces_the_cp313_wheel(published: Settings, built: Outcome) -> None:
    wheel = _markupsafe(built)["cp313"].wheel_filename
    (result,) = rebuild_and_compare(published, wheel)  # with the recorded 3.13 tree
    assert result.filename == wheel and result.reproducible, result


NEWER = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "onlynew"
version = "1.0"
description = "A test package only 3.12 and later can have"
requires-python = ">=3.12"

[tool.setuptools]
packages = ["onlynew"]
"""


def test_a_version_3_11_cannot_build_is_built_first_with_313(
        project: Settings, cp313: Interpreter, tmp_path: Path) -> None:
    """A pure component whose sdist's Requires-Python excludes 3.11 is built once, by
    3.13: its wheel is the shared pure one, says its Requires-Python (so pip on 3.11
    passes it over), and the run says 3.11 did not build it, and why."""
    sdist = factories.sdist(tmp_path, "onlynew", "1.0", files={
        "pyproject.toml": NEWER,
        "PKG-INFO": "Metadata-Version: 2.4\nName: onlynew\nVersion: 1.0\n"
                    "License-Expression: MIT\nRequires-Python: >=3.12\n"})
    row = lock_entry(project, sdist, "runtime", "approved", ("setuptools>=61",))
    save_lock(project, Lock([*load_lock(project).components, row]))
    outcome = run_plan(project, make_plan(project, ["onlynew"]))
    assert outcome.failed == {}
    assert outcome.skipped == {
        "onlynew==1.0 [cp311]": "Requires-Python >=3.12 excludes CPython 3.11"}
    (record,) = [r for r in outcome.records if r.component == "onlynew"]
    assert record.wheel_filename == "onlynew-1.0-py3-none-any.whl"
    described = record.builder_settings["interpreter"]
    assert described["tag"] == "cp313" and described["tree_sha256"] == cp313.tree_sha256
    with zipfile.ZipFile(project.wheels_dir / record.wheel_filename) as archive:
        assert "Requires-Python: >=3.12" in archive.read(
            "onlynew-1.0.dist-info/METADATA").decode()
