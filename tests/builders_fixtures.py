"""Fixtures for builder tests: tiny generated sdists, a front-end kit, the image.

The builder image is made once per machine (debootstrap, ~70 s) and reused by
its tag afterwards. Offline tests use sdists with an in-tree backend (no build
tools needed) and a kit copied from the test venv's pyproject_hooks/packaging
(the same pure-Python files their sdists hold). Network tests download pinned,
hashed sdists from PyPI once into pytest's cache directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import textwrap
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from factory._internal.atomic import sha256_file
from factory.build import job as builder
from factory.build.docker import ContainerRun
from factory.build.env import Kit, KitPart, import_root
from factory.build.image import ImageRef
from factory.build.job import BuildInputs
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.lock import LockedComponent
from factory.upstream.cache import Sdist, cache_path
from tests import factories
from tests.local_upstream import LocalUpstream

# An in-tree PEP 517 backend: writes a minimal wheel after running PAYLOAD.
BACKEND = '''
import base64, hashlib, os, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def _payload():
{payload}

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _payload()
    name = "{name}-{version}-py3-none-any.whl"
    info = "{name}-{version}.dist-info"
    files = {{
        "{name}/__init__.py": b"VALUE = 1\\n",
        info + "/METADATA": b"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n",
        info + "/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\n"
                         b"Tag: py3-none-any\\n",
    }}
    extra = globals().get("EXTRA_FILES", {{}})
    files.update(extra)
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, data in sorted(files.items()):
            zf.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{{path}},sha256={{digest.decode()}},{{len(data)}}")
        record.append(info + "/RECORD,,")
        zf.writestr(zipfile.ZipInfo(info + "/RECORD", (2020, 1, 1, 0, 0, 0)),
                    "\\n".join(record) + "\\n")
    return name
'''

PYPROJECT = """[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""


def backend_sdist(directory: Path, name: str, payload: str, extra: str = "",
                  files: Mapping[str, str] | None = None) -> Path:
    """``name-1.0.tar.gz`` (the name as given) whose in-tree backend runs ``payload``
    (Python source) before writing its wheel; ``files`` replace members of it."""
    body = textwrap.indent(textwrap.dedent(payload).strip() or "pass", "    ")
    backend = BACKEND.format(name=name, version="1.0", payload=body) + extra
    return factories.sdist(directory, name, "1.0", bare=True, dist=name, files={
        "pyproject.toml": PYPROJECT, "backend.py": backend,
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", **(files or {})})


def module_sdist(directory: Path, module: ModuleType, name: str) -> Path:
    """An sdist of a pure-Python package of the test venv (a front-end kit's source);
    it says what it is in PKG-INFO, which fetch checks against the lock."""
    package = Path(str(module.__file__)).parent
    version = str(getattr(module, "__version__", "0"))
    files = {f"{module.__name__}/{p.relative_to(package)}": p.read_bytes()
             for p in sorted(package.rglob("*.py")) if "__pycache__" not in p.parts}
    files["PKG-INFO"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    return factories.sdist(directory, name, version, files=files, bare=True, dist=name)


def build_backend(settings: Settings, kit: Kit, image: ImageRef, name: str, payload: str,
                  extra: str = "", files: Mapping[str, str] | None = None,
                  tools: tuple[Path, ...] = ()) -> BuildRecord:
    """Build ``backend_sdist(name, payload, extra, files)`` in the real build container."""
    sdist = backend_sdist(settings.root / "sdists", name, payload, extra, files)
    tree = unpack(sdist, settings.root / "trees" / name)
    return builder.build(settings, inputs_for(sdist, tree, kit, image, tools))


def spy_containers(monkeypatch: pytest.MonkeyPatch) -> list[ContainerRun]:
    """Every ContainerRun the builder gets from now on, in order (the containers run as
    they would; the test reads what they left: log, inspect data)."""
    seen: list[ContainerRun] = []
    real = builder.run_container

    def spy(*args: Any, **kwargs: Any) -> ContainerRun:
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(builder, "run_container", spy)
    return seen


def unpack(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as tar:
        tar.extractall(into, filter="data")
    (root,) = list(into.iterdir())
    return root


def inputs_for(sdist: Path, tree: Path, kit: Kit, image: ImageRef,
               tools: tuple[Path, ...] = ()) -> BuildInputs:
    name, _, version = sdist.name.removesuffix(".tar.gz").rpartition("-")
    ref = Sdist(name, version, sdist.name, f"file://{sdist}", sha256_file(sdist),
                sdist.stat().st_size)
    return BuildInputs(name=name, version=version, sdist=sdist, source=ref, tree=tree,
                       tools=tools, kit=kit, image=image, recipe_name=f"{name}.toml",
                       recipe_digest="sha256:" + "0" * 64)


def host_kit(directory: Path) -> Kit:
    """The front-end kit from the test venv's own pure-Python copies (offline tests)."""
    import packaging
    import pyproject_hooks

    parts = []
    for module, name in ((pyproject_hooks, "pyproject-hooks"), (packaging, "packaging")):
        root = directory / name
        shutil.copytree(Path(str(module.__file__)).parent, root / module.__name__,
                        ignore=shutil.ignore_patterns("__pycache__"))
        version = getattr(module, "__version__", "0")
        parts.append(KitPart(name, version, f"{module.__name__} (test venv)", "0" * 64, root))
    return Kit(tuple(parts))


# -- pinned upstream sdists for network tests ---------------------------------------

_FILES = "https://files.pythonhosted.org/packages/"
PINNED = {
    "flit-core": (_FILES + "69/59/b6fc2188dfc7ea4f936cd12b49d707f66a1cb7a1d2c16172963534db741b/"
                  "flit_core-3.12.0.tar.gz",
                  "18f63100d6f94385c6ed57a72073443e1a71a4acb4339491615d0f16d6ff01b2"),
    "setuptools": (_FILES + "70/b3/c19426f783614d625699a4b247faf628ea9ab1db228674491767b417f9e1/"
                   "setuptools-84.2.1.tar.gz",
                   "3ff8b3b5492a0aa66960f4419365a86b84e013070d4313e4d4a6894f5d64d6bc"),
    "markupsafe": (_FILES + "38/9b/e422a865e1d5d57d0e509b4e0bf1c1a70a7f6382c29a5aa428df994c8bc8/"
                   "markupsafe-3.0.4.tar.gz",
                   "2e9ad7dd851bf45fab9f75cbff4cb493fee9979e8d8c7c9c3ee119022518edd6"),
    "pyproject-hooks": (_FILES + "6d/5d/f2ddeef4a855a102aaae5e97826a0260007522ab504421b75addfdb1"
                        "517c/pyproject_hooks-1.3.3.tar.gz",
                        "defda19b854fa0d3bd4f76ea4ddcba8abd7dcfcdd585a6690ade050744fc5f43"),
    "packaging": (_FILES + "7d/fa/3944b40b07da9ce895c0e6303a5ab7d53da063554f534556b134a54d6093/"
                  "packaging-26.3.tar.gz",
                  "94edc256424af38762eb31306eed28beb9f0efc50a8837492c9d6fd6004aed79"),
    "installer": (_FILES + "56/d3/2fab33d15004d41ae8e7b5d3e310510f7f34a7e1dd032a3e60d8b38d8fba/"
                  "installer-1.1.0.tar.gz",
                  "5adc0c01ce62d809989e246987cd68944fe5df8af562d0358f65b2ab15cb5de7"),
}


def download(cache: Path, url: str, sha256: str) -> Path:
    """A PyPI file by URL, verified by sha256, cached across test sessions."""
    target = cache / url.rsplit("/", 1)[-1]
    if not target.is_file() or sha256_file(target) != sha256:
        data = urllib.request.urlopen(url, timeout=60).read()  # noqa: S310 (pinned https URL)
        if hashlib.sha256(data).hexdigest() != sha256:
            pytest.fail(f"{url}: sha256 mismatch")
        # Whole or absent: another pytest-xdist worker may read the cache meanwhile.
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(target)
    return target


# The pure build tools an end-to-end test locks and builds from their real sdists (the
# pinned ones above), with what their recipes must allow: the sdists ship prebuilt files
# (packaging: ELF test fixtures; installer: Windows launchers it copies into its wheel),
# which the admission gate signs only when allowed.
FLIT_TOOLS = ("flit-core", "pyproject-hooks", "packaging", "installer")
TOOL_ALLOWANCES = {
    "packaging": 'allow_prebuilt = ["tests/manylinux/*", "tests/musllinux/*"]\n',
    "installer": 'allow_prebuilt = ["src/installer/_scripts/*.exe"]\n'}
FLIT = ["flit_core>=3.4,<5"]


def serve_flit_tools(upstream: LocalUpstream, root: Path, cache: Path) -> None:
    """The pinned sdists of FLIT_TOOLS on ``upstream`` (a tests.local_upstream server),
    and the project at ``root`` approving them as build tools."""
    for name in FLIT_TOOLS:
        url, sha = PINNED[name]
        upstream.add_file(name, download(cache, url, sha))
        factories.recipe(root, name, 'kind = "build-tool"\n' + TOOL_ALLOWANCES.get(name, ""))


def seed_sdists(settings: Settings, components: list[LockedComponent], wanted: set[str],
                cache: Path) -> None:
    """The locked sdists of ``wanted`` (plan node ids or keys) in the project's source
    cache, downloaded once per machine into ``cache`` (pytest's), verified by sha256."""
    for comp in components:
        if comp.key in wanted or f"{comp.key}=={comp.version}" in wanted:
            got = download(cache, comp.sdist.url, comp.sdist.sha256)
            target = cache_path(settings, comp.sdist.sha256, comp.sdist.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(got, target)


def kit_from_sdists(sdists: dict[str, Path], into: Path) -> Kit:
    """The honest kit: the locked front-end sdists, unpacked."""
    parts = []
    for name, sdist in sdists.items():
        tree = unpack(sdist, into / name)
        version = sdist.name.removesuffix(".tar.gz").rpartition("-")[2]
        parts.append(KitPart(name, version, sdist.name, sha256_file(sdist), import_root(tree)))
    return Kit(tuple(parts))


def lock_entry(settings: Settings, sdist: Path, kind: str, reason: str,
               requires: tuple[str, ...]) -> LockedComponent:
    """A lock entry for ``sdist``, which is put in the source cache (no download)."""
    name, _, version = sdist.name.removesuffix(".tar.gz").rpartition("-")
    digest = sha256_file(sdist)
    cached = cache_path(settings, digest, sdist.name)
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sdist, cached)
    pin = Sdist(name, version, sdist.name, f"https://files.invalid/{sdist.name}", digest,
                sdist.stat().st_size)
    return factories.locked(name, version, requires, kind=kind, reason=reason, sdist=pin,
                            recipe_digest="sha256:" + "0" * 64)
