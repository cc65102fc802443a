"""factory verify --rebuild: rebuild a published wheel from its recorded inputs (Docker).

A tiny sdist with an in-tree backend is built in the hardened container,
released (attested, signed, published), then rebuilt from what its build
record names: the same wheel, bit for bit. A backend that writes random bytes
is caught, and the differing file is named.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from factory._internal.atomic import sha256_file
from factory.build import job as builder
from factory.build.image import ImageRef, bootstrap_image
from factory.config import Settings
from factory.publish import release
from factory.upstream.cache import cache_path
from factory.verify import rebuild_and_compare, verify
from tests import factories
from tests.approval_fixtures import approve
from tests.builders_fixtures import backend_sdist, inputs_for, kit_from_sdists, module_sdist

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> ImageRef:
    return bootstrap_image(factories.settings(tmp_path_factory.mktemp("image")))


def _cached(settings: Settings, sdist: Path) -> Path:
    target = cache_path(settings, sha256_file(sdist), sdist.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sdist, target)
    return target


def _publish(tmp_path: Path, image: ImageRef, name: str, extra: str = "") -> Settings:
    import packaging
    import pyproject_hooks

    settings = factories.settings(tmp_path, project="project", build_timeout=120,
                                  advisories=tmp_path / "advisories")
    kit_sdists = {
        "pyproject-hooks": _cached(settings, module_sdist(tmp_path / "k", pyproject_hooks,
                                                          "pyproject_hooks")),
        "packaging": _cached(settings, module_sdist(tmp_path / "k", packaging, "packaging")),
    }
    kit = kit_from_sdists(kit_sdists, tmp_path / "kit")
    sdist = _cached(settings, backend_sdist(tmp_path / "sdists", name, "pass", extra))
    tree = tmp_path / "tree"
    with tarfile.open(sdist) as tar:
        tar.extractall(tree, filter="data")
    record = builder.build(settings, inputs_for(sdist, next(tree.iterdir()), kit, image))
    release(settings, [approve(settings, record)])
    return settings


def test_rebuild_reproduces_the_published_wheel(tmp_path: Path, image: ImageRef) -> None:
    settings = _publish(tmp_path, image, "repro")
    assert verify(settings, "repro==1.0").ok
    (result,) = rebuild_and_compare(settings, "repro==1.0")
    assert result.reproducible, result
    assert result.rebuilt_sha256 == result.recorded_sha256
    assert "bit for bit" in result.message


def test_rebuild_names_what_is_not_reproducible(tmp_path: Path, image: ImageRef) -> None:
    extra = "import os\nEXTRA_FILES = {'noisy/noise.bin': os.urandom(16)}\n"
    settings = _publish(tmp_path, image, "noisy", extra)
    (result,) = rebuild_and_compare(settings, "noisy==1.0")
    assert not result.reproducible
    assert "noisy/noise.bin: different bytes" in result.differences
