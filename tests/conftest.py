"""Shared fixtures: a project root with recipes, a local upstream index (with hooks a
test may add), a released index, and the builder image and kit of the Docker tests."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from factory.config import Settings, load_settings
from tests import factories
from tests.local_upstream import Hook, LocalUpstream, serving

if TYPE_CHECKING:
    from factory.build.env import Kit
    from factory.build.image import ImageRef

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# A failed build asks the Debian mirror which package provides what it missed; unit
# tests must not reach it (the tests of that lookup turn it on where they need it).
os.environ.setdefault("FACTORY_DEBIAN_LOOKUP", "off")


@pytest.fixture
def hooks() -> dict[str, Hook]:
    """Paths where `upstream` answers as the test says (tests.local_upstream.reply...)."""
    return {}


@pytest.fixture
def upstream(tmp_path: Path, hooks: dict[str, Hook]) -> Iterator[LocalUpstream]:
    with serving(tmp_path / "upstream", hooks) as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, upstream: LocalUpstream) -> Settings:
    """A project root in tmp_path pointed at the local upstream, no advisories."""
    root = tmp_path / "project"
    (root / "recipes").mkdir(parents=True)
    (root / "factory.toml").write_text(
        f'[factory]\nupstream = "{upstream.url}"\nstate_dir = "state"\n'
        f'advisories = "{tmp_path / "advisories"}"\n'
        '[http]\nretries = 2\n')
    (tmp_path / "advisories").mkdir()
    return load_settings(root)


@pytest.fixture(scope="module")
def released_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project (in ``<it>/project``) with alpha and beta released for real, once per module:
    a test tampers with a copy (tests.security_fixtures.released_copy)."""
    from tests.security_fixtures import released

    return released(tmp_path_factory.mktemp("released"))


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> ImageRef:
    """The builder image (made once per machine, then found by its tag): Docker tests.

    Under pytest-xdist each worker asks; a lock beside the workers' temp roots makes the
    second wait for the first's debootstrap and then find the image by its tag."""
    from factory.build.image import bootstrap_image

    with _across_workers(tmp_path_factory, "builder-image"):
        return bootstrap_image(factories.settings(tmp_path_factory.mktemp("image")))


@contextlib.contextmanager
def _across_workers(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[None]:
    """Held by one pytest-xdist worker at a time (and harmless without xdist)."""
    shared = tmp_path_factory.getbasetemp().parent
    with (shared / f"{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    """The front-end kit from the test venv's own pure-Python copies (offline builds)."""
    from tests.builders_fixtures import host_kit

    return host_kit(tmp_path_factory.mktemp("kit"))


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded Prefect server for the whole session, stopped at its end."""
    from flows.server import ensure_server, own_server

    settings = factories.settings(tmp_path_factory.mktemp("prefect"))
    with own_server(settings):
        url = ensure_server(settings)
        # prefect reads its settings once, when first imported: a test module that
        # imported it at collection would otherwise start a temporary server per flow.
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files that hold slow tests run first (order kept otherwise): under pytest-xdist's
    ``--dist loadfile --no-loadscope-reorder`` (the Makefile's; xdist would otherwise
    order files by their number of tests) the longest files then start early, rather
    than leaving one worker alone with them at the end while the other has nothing left."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def pytest_sessionfinish() -> None:
    """Stop any temporary Prefect server this process started. Prefect's process-wide
    events worker starts one (a uvicorn subprocess) when it is first asked to send an
    event while no PREFECT_API_URL is set -- after a test's server was gone -- and stops
    it only at exit, which an xdist worker leaves through os._exit: the server outlived
    the suite."""
    import sys

    module = sys.modules.get("prefect.server.api.server")
    for server in list(getattr(getattr(module, "SubprocessASGIServer", None),
                               "_instances", {}).values()):
        server.stop()
