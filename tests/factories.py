"""Test data, made one way: wheels, sdists, tar archives, recipes, lock entries, Settings.

Plain functions with no pytest in them, imported by conftest, the *_fixtures
modules and the tests alike (pypa/installer's one ``mock_wheel`` is the model).
Archives are deterministic (fixed timestamps, sorted sdist members), so two calls
with the same arguments give the same bytes. Hostile archives start from these
and are then damaged, or are written member by member with ``tar``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from factory.config import Settings
from factory.lock import LockedComponent
from factory.upstream.cache import Sdist

DATE_TIME = (2024, 1, 1, 0, 0, 0)  # of every zip member
EPOCH = 1_700_000_000  # the mtime of every sdist member: SOURCE_DATE_EPOCH of a build
PURE = "py3-none-any"


def dist_name(name: str) -> str:
    """``name`` as wheel and sdist file names spell it (PEP 427/625: runs of -_. become _,
    lower case)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def record_hash(data: bytes) -> str:
    """``data``'s hash as RECORD spells it: sha256=, urlsafe base64, no padding."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def record_row(member: str, data: bytes) -> str:
    """A RECORD line for ``member`` holding ``data``: its path, hash and size."""
    return f"{member},{record_hash(data)},{len(data)}"


# -- wheels ------------------------------------------------------------------------------------

def wheel_bytes(name: str = "tinypkg", version: str = "1.0.0", *,
                files: Mapping[str, bytes] | None = None, requires: Sequence[str] = (),
                requires_python: str | None = None, license: str | None = "MIT",
                metadata: Sequence[str] = (), tags: Sequence[str] = (PURE,),
                meta_name: str | None = None, meta_version: str | None = None,
                libs: Sequence[str] = (), symlinks: Mapping[str, str] | None = None,
                record: bool = True, record_rows: Sequence[str] = ()) -> bytes:
    """A well-formed pure wheel written by hand: ``files`` (default: the package's
    ``__init__.py``), METADATA and WHEEL (unless ``files`` has its own), a fake shared
    object per ``libs`` path, symbolic links, and a RECORD that matches them all.

    The hostile knobs: ``meta_name``/``meta_version`` make METADATA say something else
    than the file names, ``record=False`` leaves RECORD out, ``record_rows`` adds rows."""
    dist = dist_name(name)
    dist_info = f"{dist}-{version}.dist-info"
    content = dict(files if files is not None else {f"{dist}/__init__.py": b"VALUE = 1\n"})
    meta = ["Metadata-Version: 2.4", f"Name: {meta_name or name}",
            f"Version: {meta_version or version}"]
    if license:
        meta.append(f"License-Expression: {license}")
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {r}" for r in requires]
    meta += list(metadata)
    content.setdefault(f"{dist_info}/METADATA", ("\n".join(meta) + "\n\n").encode())
    content.setdefault(f"{dist_info}/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        + "".join(f"Tag: {t}\n" for t in tags)).encode())
    for lib in libs:
        content[lib] = b"\x7fELF fake shared object " + lib.encode()
    links = {member: target.encode() for member, target in (symlinks or {}).items()}
    if record:
        rows = [record_row(n, d) for n, d in {**content, **links}.items() if not n.endswith("/")]
        rows += [*record_rows, f"{dist_info}/RECORD,,"]
        content[f"{dist_info}/RECORD"] = ("\n".join(rows) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in content.items():
            archive.writestr(zipfile.ZipInfo(member, DATE_TIME), data)
        for member, data in links.items():
            info = zipfile.ZipInfo(member, DATE_TIME)
            info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def wheel(directory: Path, name: str = "tinypkg", version: str = "1.0.0", *,
          tag: str = PURE, filename: str | None = None, **options: object) -> Path:
    """``wheel_bytes(...)`` written to ``directory/<dist_name>-<version>-<tag>.whl`` (or
    to ``filename``, which may say another name or tag than the wheel does)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (filename or f"{dist_name(name)}-{version}-{tag}.whl")
    path.write_bytes(wheel_bytes(name, version, tags=(tag,), **options))  # type: ignore[arg-type]
    return path


# -- sdists and tar archives -------------------------------------------------------------------

def sdist(directory: Path, name: str = "tinypkg", version: str = "1.0.0", *,
          files: Mapping[str, str | bytes | None] | None = None, bare: bool = False,
          requires: Sequence[str] = (), build_requires: Sequence[str] | None = None,
          backend: str = "setuptools.build_meta", license: str | None = "MIT",
          pkg_info_name: str | None = None, pkg_info_version: str | None = None,
          dist: str | None = None) -> Path:
    """``directory/<dist>-<version>.tar.gz``: by default a small but real, buildable
    setuptools project (PKG-INFO, pyproject.toml, the package) with ``files`` added or
    replacing its members (None removes one); ``bare=True``: ``files`` only.

    ``requires`` are its Requires-Dist, ``build_requires`` its build-system requires
    (default setuptools>=61); ``pkg_info_name``/``pkg_info_version`` make PKG-INFO say
    something else. ``dist`` is the name in the file and root directory names (default
    ``dist_name(name)``; a builder test passes the name as it is)."""
    dist = dist_name(name) if dist is None else dist
    members = {} if bare else _project(name, version, requires, build_requires, backend,
                                       license, pkg_info_name, pkg_info_version, dist)
    members.update(files or {})
    path = directory / f"{dist}-{version}.tar.gz"
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for rel, data in sorted(members.items()):
        if data is not None:
            info = tar_member(f"{dist}-{version}/{rel}")
            info.mtime = EPOCH
            entries.append((info, data.encode() if isinstance(data, str) else data))
    return tar(path, entries)


def _project(name: str, version: str, requires: Sequence[str],
             build_requires: Sequence[str] | None, backend: str, license: str | None,
             pkg_info_name: str | None, pkg_info_version: str | None,
             dist: str) -> dict[str, str | bytes | None]:
    pkg_info = ["Metadata-Version: 2.4", f"Name: {pkg_info_name or name}",
                f"Version: {pkg_info_version or version}"]
    if license:
        pkg_info.append(f"License-Expression: {license}")
    pkg_info += [f"Requires-Dist: {r}" for r in requires]
    build = list(build_requires) if build_requires is not None else ["setuptools>=61"]
    pyproject = textwrap.dedent(f"""\
        [build-system]
        requires = {json.dumps(build)}
        build-backend = "{backend}"

        [project]
        name = "{name}"
        version = "{version}"
        description = "A test package"
        dependencies = [{", ".join(json.dumps(r) for r in requires)}]
        requires-python = ">=3.8"

        [tool.setuptools]
        packages = ["{dist}"]
        """)
    return {"PKG-INFO": "\n".join(pkg_info) + "\n", "pyproject.toml": pyproject,
            f"{dist}/__init__.py": f'__version__ = "{version}"\n'}


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644,
               **pax: str) -> tarfile.TarInfo:
    """One tar header: a regular file unless ``kind`` says otherwise; ``pax`` headers
    (path, linkpath, mtime...) override what the header says."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    if pax:
        info.pax_headers = dict(pax)
    return info


def tar(path: Path, members: Iterable[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz",
        fmt: int = tarfile.PAX_FORMAT) -> Path:
    """Write ``members`` in the order given (names may repeat); a regular file's size is
    its data's, other kinds carry no data."""
    with tarfile.open(path, mode, format=fmt) as archive:  # type: ignore[call-overload]
        for info, data in members:
            if info.isreg():
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


# -- a project: Settings, recipes, lock entries --------------------------------------------------

def settings(base: Path, project: str | None = None, **overrides: object) -> Settings:
    """Settings with no factory.toml and no FACTORY_* variables: the project at ``base``,
    or at ``base/<project>`` (made if missing) so that nothing under the project root is
    state, private keys included; the state in ``base/state`` unless ``state_dir`` says
    otherwise; any other field in ``overrides``. ``advisories`` given as a Path is a local
    advisory database, made empty if missing (offline: no advisories)."""
    root = base / project if project else base
    root.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {"state_dir": base / "state", **overrides}
    advisories = values.get("advisories")
    if isinstance(advisories, Path):
        advisories.mkdir(parents=True, exist_ok=True)
        values["advisories"] = str(advisories)
    return Settings(root=root, **values)  # type: ignore[arg-type]


def recipe(root: Path, name: str, body: str = "") -> Path:
    """``root/recipes/<name>.toml`` approving ``name`` (every version unless ``body``
    says ``versions``), with ``body`` after it."""
    path = root / "recipes" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f'name = "{name}"\n'
    if "versions" not in body:
        text += 'versions = ">=0"\n'
    path.write_text(text + body)
    return path


def locked(name: str, version: str, build: Sequence[str] = (), run: Sequence[str] = (), *,
           reason: str = "approved", kind: str = "build-tool", sdist: Sdist | None = None,
           recipe_digest: str = "sha256:" + "b" * 64) -> LockedComponent:
    """A recipes.lock entry: ``build`` are its build requirements, ``run`` its
    Requires-Dist; its sdist a stand-in pin of ``name`` ``version`` unless ``sdist``
    is given."""
    pin = sdist or Sdist(name, version, f"{name}-{version}.tar.gz",
                         f"https://files.invalid/{name}-{version}.tar.gz", "a" * 64, 1)
    return LockedComponent(kind=kind, reason=reason, recipe_digest=recipe_digest, sdist=pin,
                           build_requires=tuple(build), requires_dist=tuple(run))


# -- the CLI as an operator runs it ---------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def cli(where: Settings | Path, *args: str, timeout: float = 180,
        **env: str) -> subprocess.CompletedProcess[str]:
    """`factory ARGS` in a fresh process, in the project ``where`` (its root, as cwd and
    FACTORY_ROOT), with ``env`` added; a hang raises TimeoutExpired (a failure, not a
    stuck suite)."""
    root = where.root if isinstance(where, Settings) else where
    return subprocess.run(
        [sys.executable, "-m", "factory.cli", *args], cwd=root, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "FACTORY_ROOT": str(root), **env},
        timeout=timeout)
