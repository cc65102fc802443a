"""Issue 17, item 4 and the pinning half of item 3: the catalogue's bugs fixed as classes.

1. sources are readable by the build user whatever modes the sdist gives its members
   (tar and zip; trees unpacked or patched before the fix, too);
2. an SBOM names every bom-ref once (merged, nothing dropped); provenance and in-toto
   list every material once;
3. every error of a build, an attestation or a publication is one line, bounded, and
   a build's names its log;
4. one wheel whose SBOM cannot be made is refused alone: the later ones publish;
5. a recipe's Debian packages are pinned (NAME=VERSION) and recorded, version exact,
   in the build record, the provenance and the SBOM (pkg:deb purls).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import stat
import subprocess
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from factory import ledger
from factory.admission.model import Allowance
from factory.attest import provenance as prov
from factory.attest import sbom as sbom_mod
from factory.attest.intoto import build_layout
from factory.attest.keys import init_keys
from factory.build import executor
from factory.build import image as images
from factory.build import job as builder
from factory.build.docker import ContainerRun
from factory.build.env import Kit
from factory.build.image import BUILD_UID, ImageRef
from factory.build.record import BuildRecord, InstalledTool, SystemPackage
from factory.config import Settings
from factory.errors import BuildError, EngineError, RecipeError, VerificationError, one_line
from factory.publish import release_all
from factory.recipes import parse_recipe
from factory.upstream import archive
from tests import factories
from tests.attest_fixtures import TOOLS, make_record
from tests.builders_fixtures import backend_sdist, inputs_for, unpack
from tests.security_fixtures import stage_build

# Wheels with duplicate members are made on purpose: zipfile's warning is expected.
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="the build user is another uid only "
                             "when the factory runs as root")
PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"

# What the container's front end does first (incontainer.copy_source), as the build
# user: read every file, enter every directory, copy the tree. Run with the tree as its
# working directory, so the test's own (private) parent directories do not matter, as
# they do not for a bind mount.
AS_BUILD_USER = """
import os, shutil, sys, tempfile
for top, dirs, files in os.walk(".", onerror=lambda e: sys.exit(f"cannot list: {e}")):
    for name in files:
        path = os.path.join(top, name)
        if not os.path.islink(path):
            open(path, "rb").read()
copy = tempfile.mkdtemp()
shutil.copytree(".", os.path.join(copy, "src"), symlinks=True)
shutil.rmtree(copy)
"""


def build_user_reads(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-I", "-S", "-c", AS_BUILD_USER], cwd=tree,
                          user=BUILD_UID, group=BUILD_UID, extra_groups=[],
                          capture_output=True, text=True, timeout=60)


def _tar(path: Path, members: list[tuple[str, int, bytes | None]]) -> Path:
    """A tar.gz of (name, mode, data) members; data None makes a directory."""
    with tarfile.open(path, "w:gz") as tar:
        for name, mode, data in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _modes(tree: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(tree.lstat().st_mode)}
    for path in tree.rglob("*"):
        found[str(path.relative_to(tree))] = stat.S_IMODE(path.lstat().st_mode)
    return found


# -- 1. sources readable whatever their modes ---------------------------------------------------

LOCKED_OUT = [  # the issue's sdist and its relatives: nothing here is readable by uid 1000
    ("demo-1.0", 0o700, None),
    ("demo-1.0/PKG-INFO", 0o600, b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"),
    ("demo-1.0/pyproject.toml", 0o400, b"[build-system]\nrequires = []\n"),
    ("demo-1.0/secret.py", 0o000, b"X = 1\n"),
    ("demo-1.0/configure", 0o700, b"#!/bin/sh\n"),
    ("demo-1.0/closed", 0o000, None),
    ("demo-1.0/closed/inner", 0o700, None),
    ("demo-1.0/closed/inner/mod.c", 0o600, b"int x;\n"),
    ("demo-1.0/implicit/deep/file.h", 0o640, b"#define X 1\n"),  # no member for its dirs
    ("demo-1.0/sticky", 0o1777, None),
]


@AS_ROOT
def test_an_sdist_of_private_modes_unpacks_into_a_tree_the_build_user_can_copy(
        tmp_path: Path) -> None:
    sdist = _tar(tmp_path / "demo-1.0.tar.gz", LOCKED_OUT)
    tree = archive.extract(sdist, tmp_path / "tree")
    done = build_user_reads(tree)
    assert done.returncode == 0, done.stderr
    modes = _modes(tree)
    assert modes["configure"] == 0o755 and modes["secret.py"] == 0o644
    assert modes["closed"] == modes["sticky"] == modes["implicit/deep"] == 0o755
    assert set(modes.values()) <= {0o644, 0o755}


def test_modes_are_fixed_whatever_the_umask(tmp_path: Path) -> None:
    sdist = _tar(tmp_path / "demo-1.0.tar.gz", LOCKED_OUT)
    old = os.umask(0o077)
    try:
        tree = archive.extract(sdist, tmp_path / "tree")
    finally:
        os.umask(old)
    modes = _modes(tree)
    assert modes["implicit"] == modes["implicit/deep"] == 0o755  # made by tarfile, not named
    assert stat.S_IMODE((tmp_path / "tree").stat().st_mode) == 0o755


@AS_ROOT
def test_a_zip_sdist_keeps_exec_bits_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, mode in (("demo-1.0/PKG-INFO", 0o000), ("demo-1.0/run.sh", 0o4711),
                           ("demo-1.0/sub/a.py", 0o600)):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            zf.writestr(info, b"x\n")
        folder = zipfile.ZipInfo("demo-1.0/sub/")
        folder.external_attr = (stat.S_IFDIR | 0o700) << 16
        zf.writestr(folder, b"")
    tree = archive.extract(path, tmp_path / "tree")
    assert _modes(tree) == {".": 0o755, "PKG-INFO": 0o644, "run.sh": 0o755, "sub": 0o755,
                            "sub/a.py": 0o644}
    assert build_user_reads(tree).returncode == 0


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c/d", "c/e", "f/g/h"]),
                          st.integers(0, 0o7777)), max_size=8),
       st.lists(st.tuples(st.sampled_from(["c", "f", "f/g"]), st.integers(0, 0o7777)),
                max_size=3))
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
def test_any_mix_of_member_modes_leaves_0644_0755_only(
        tmp_path: Path, files: list[tuple[str, int]], dirs: list[tuple[str, int]]) -> None:
    """Files keep only 'executable or not'; directories are 0755 (a setuid/setgid
    directory loses those bits); setuid/setgid files are refused, as before."""
    work = Path(os.path.realpath(tmp_path)) / f"case-{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    members: list[tuple[str, int, bytes | None]] = [("p-1.0", 0o700, None)]
    members += [(f"p-1.0/{d}", mode, None) for d, mode in dict(dirs).items()]
    members += [(f"p-1.0/x/{f}", mode, b"data") for f, mode in dict(files).items()]
    sdist = _tar(work / "p-1.0.tar.gz", members)
    special = any(mode & 0o6000 for _, mode, data in members if data is not None)
    try:
        tree = archive.extract(sdist, work / "tree")
    except archive.UnsafeArchiveError:
        assert special
        return
    assert not special
    for rel, mode in _modes(tree).items():
        path = tree / rel
        if path.is_dir():
            assert mode == 0o755, rel
        else:
            original = dict(files)[rel.removeprefix("x/")]
            assert mode == (0o755 if original & 0o111 else 0o644), rel


def test_normalise_modes_never_follows_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("x")
    outside.chmod(0o600)
    tree = tmp_path / "tree"
    tree.mkdir(mode=0o700)
    (tree / "link").symlink_to(outside)
    (tree / "dirlink").symlink_to(tmp_path)
    archive.normalise_modes(tree)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert stat.S_IMODE(tree.stat().st_mode) == 0o755


# -- a build without an engine: the container is a stand-in that the test controls -------------

def _image(**changes: Any) -> ImageRef:
    return replace(ImageRef(tag="factory-builder:test", id="sha256:" + "ab" * 32,
                            origin="debootstrap"), **changes)


class FakeContainer:
    """Stands in for run_container: checks what the build user would see of the source
    mount, writes the outputs a front end writes, and exits as told."""

    def __init__(self, exit_code: int = 0, log: bytes = b"", env: list[Any] | None = None,
                 pids: bool = False) -> None:
        self.exit_code, self.log, self.env, self.pids = exit_code, log, env or [], pids
        self.source_readable: bool | None = None

    def __call__(self, settings: Settings, image_id: str, command: list[str], binds: list[Any],
                 environment: dict[str, str], timeout: float, labels: Any = None
                 ) -> ContainerRun:
        mounts = {b.target: b.source for b in binds}
        if os.geteuid() == 0:
            self.source_readable = build_user_reads(mounts["/source"]).returncode == 0
        assert stat.S_IMODE(mounts["/kit/driver.py"].stat().st_mode) == 0o644
        out = mounts["/out"]
        (out / "env.json").write_text(json.dumps(self.env))
        (out / "requires.json").write_text(json.dumps({"dynamic": [], "missing": []}))
        if self.exit_code == 0:
            (out / "repair.json").write_text(json.dumps({"action": "pure"}))
            (out / "demo-1.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
        return ContainerRun(self.exit_code, False, self.log, 0.1, pids_limit_hit=self.pids)


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builder, "connect", lambda: None)
    monkeypatch.setattr(builder, "reap_orphans", lambda client: [])
    monkeypatch.setattr(builder, "engine_info", lambda client: {"engine": "fake"})


def _old_tree(tmp_path: Path) -> tuple[Path, Path]:
    """An sdist with private modes, unpacked as the factory did before (tarfile's data
    filter alone): the kind of tree left in <state>/builds/trees by older versions."""
    sdist = backend_sdist(tmp_path / "sdists", "demo", "")
    private = tmp_path / "private.tar.gz"
    with tarfile.open(sdist) as src, tarfile.open(private, "w:gz") as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            info.mode = 0o600 if info.isfile() else 0o700
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    shutil.copyfile(private, sdist)
    tree = unpack(sdist, tmp_path / "trees")
    tree.chmod(0o700)
    return sdist, tree


@AS_ROOT
def test_an_old_cached_tree_is_made_readable_before_it_is_mounted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_engine: None) -> None:
    settings = factories.settings(tmp_path)
    sdist, tree = _old_tree(tmp_path)
    assert build_user_reads(tree).returncode != 0  # the issue: permission denied
    container = FakeContainer()
    monkeypatch.setattr(builder, "run_container", container)
    builder.build(settings, inputs_for(sdist, tree, Kit(()), _image()))
    assert container.source_readable is True


# -- 3. every error one line plus the log's path ------------------------------------------------

GCC_LOG = b"""[factory] install setuptools-80.9.0-py3-none-any.whl
running build_ext
building '_cffi_backend' extension
c/_cffi_backend.c:15:10: fatal error: ffi.h: No such file or directory
   15 | #include <ffi.h>
      |          ^~~~~~~
compilation terminated.
error: command '/usr/bin/gcc' failed with exit code 1
\x1b[31mTraceback (most recent call last):\x1b[0m
  File "/kit/lib/pyproject-hooks/_in_process.py", line 389, in <module>
subprocess.CalledProcessError: Command '['python', '_in_process.py']' returned 1.
""" + b"\n" * 5 + b"[factory] the build backend failed (exit 1)\n"


def _failed_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: bytes,
                  **fake: Any) -> BuildError:
    settings = factories.settings(tmp_path)
    sdist = backend_sdist(tmp_path / "sdists", "demo", "")
    tree = archive.extract(sdist, tmp_path / "tree")
    monkeypatch.setattr(builder, "run_container", FakeContainer(1, log, **fake))
    with pytest.raises(BuildError) as caught:
        builder.build(settings, inputs_for(sdist, tree, Kit(()), _image()))
    return caught.value


def _assert_one_line(message: str, limit: int) -> None:
    assert "\n" not in message and "\r" not in message
    assert all(c.isprintable() for c in message), message
    assert len(message) <= limit, len(message)


def test_a_failed_build_says_its_cause_and_log_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_engine: None) -> None:
    error = _failed_build(tmp_path, monkeypatch, GCC_LOG)
    _assert_one_line(error.message, 600)
    assert "demo 1.0: build failed (exit 1): " in error.message
    assert "fatal error: ffi.h: No such file or directory" in error.message
    [log] = factories.settings(tmp_path).logs_dir.glob("demo-1.0-build-*.log")
    assert error.message.endswith(f"(log: {log})")
    assert log.read_bytes() == GCC_LOG  # the whole log is kept there
    assert isinstance(error, builder.BuildFailed) and "compilation terminated." in error.tail
    _assert_one_line(error.diagnostics(), 800)
    again = pickle.loads(pickle.dumps(error))  # an orchestrator may carry it across
    assert (again.message, again.log, again.tail) == (error.message, error.log, error.tail)


def test_a_build_that_hit_the_pids_limit_says_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_engine: None) -> None:
    error = _failed_build(tmp_path, monkeypatch, b"fork: retry: Resource temporarily "
                          b"unavailable\n" * 50, pids=True)
    _assert_one_line(error.message, 600)
    assert "hit the limit of" in error.message and "(log: " in error.message


@given(st.binary(max_size=3000) | st.lists(st.text(max_size=400), max_size=60).map(
    lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")))
@hsettings(max_examples=150, deadline=None)
def test_the_cause_of_any_log_is_one_bounded_printable_line(log: bytes) -> None:
    cause = builder.cause(log)
    _assert_one_line(cause, builder.CAUSE_LIMIT)
    assert cause


def test_an_inventory_that_lies_at_length_is_refused_in_one_short_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_engine: None) -> None:
    settings = factories.settings(tmp_path)
    sdist = backend_sdist(tmp_path / "sdists", "demo", "")
    tree = archive.extract(sdist, tmp_path / "tree")
    env = [{"name": f"pkg{i}", "version": "1.0"} for i in range(4000)]
    monkeypatch.setattr(builder, "run_container", FakeContainer(0, b"", env))
    with pytest.raises(BuildError) as caught:
        builder.build(settings, inputs_for(sdist, tree, Kit(()), _image()))
    _assert_one_line(caught.value.message, 800)
    assert "and 3995 more" in caught.value.message


def test_missing_requirements_are_named_in_one_bounded_line(tmp_path: Path) -> None:
    sdist = backend_sdist(tmp_path / "sdists", "demo", "")
    inputs = inputs_for(sdist, tmp_path, Kit(()), _image())
    missing = [f"pkg{i}>=1" + ",!=2" * 200 for i in range(50)]
    error = builder.MissingRequirementsError(inputs, builder.Requires([], [], missing, "b"))
    _assert_one_line(error.message, 800)


def test_the_executors_summary_is_one_line_and_diagnostics_one_per_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = {f"pkg{i}==1.0": f"pkg{i} 1.0: build failed (exit 1)\n  | " + "y" * 5000
              + f" (log: /state/logs/pkg{i}.log)" for i in range(40)}
    monkeypatch.setattr(executor, "run_plan",
                        lambda *a, **k: executor.Outcome([], failed))
    with pytest.raises(BuildError) as caught:
        executor.execute(factories.settings(tmp_path), None, 1)  # type: ignore[arg-type]
    _assert_one_line(caught.value.message, 1600)
    assert caught.value.message.startswith("40 build(s) failed: pkg0==1.0: ")
    assert "(log: /state/logs/pkg0.log)" in caught.value.message  # the middle went
    assert "and 37 more" in caught.value.message
    lines = caught.value.diagnostics().splitlines()
    assert len(lines) == 41 and all(len(line) < 1200 for line in lines[1:])
    assert pickle.loads(pickle.dumps(caught.value)).message == caught.value.message


@given(st.text(max_size=3000), st.integers(20, 600))
@hsettings(max_examples=200, deadline=None)
def test_one_line_is_one_bounded_printable_line_that_keeps_its_end(text: str,
                                                                   limit: int) -> None:
    tail = " (log: /state/logs/x.log)"
    line = one_line(text + tail, limit)
    _assert_one_line(line, limit)
    if limit >= 3 * len(tail):
        assert line.endswith(tail.strip())


def test_a_failed_debootstrap_is_one_line_with_its_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = "".join(f"I: Retrieving package {i}\n" for i in range(500)) + \
        "E: Couldn't find these debs: libnope-dev\n"
    monkeypatch.setattr(images.shutil, "which", lambda name: "/usr/sbin/debootstrap")
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    monkeypatch.setattr(images.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, output, ""))
    settings = factories.settings(tmp_path)
    with pytest.raises(EngineError) as caught:
        images._debootstrap_image(settings, None, "factory-builder:x",  # type: ignore[arg-type]
                                 ["python3", "libnope-dev"])
    _assert_one_line(caught.value.message, 400)
    assert "E: Couldn't find these debs: libnope-dev" in caught.value.message
    [log] = (settings.state_dir / "builder").glob("debootstrap-*.log")
    assert caught.value.message.endswith(f"(log: {log})") and log.read_text() == output


def test_an_invalid_sbom_is_summarised_in_one_line(tmp_path: Path) -> None:
    wheel = factories.wheel(tmp_path / "w")
    record = make_record(wheel, factories.sdist(tmp_path / "s"))
    doc = sbom_mod.build_sbom(wheel, record)
    twin = {**doc["formulation"][0]["components"][0], "description": "d" * 8000}
    doc["formulation"][0]["components"] += [twin, twin]
    with pytest.raises(VerificationError) as caught:
        sbom_mod.validate(doc)
    _assert_one_line(caught.value.message, 300)
    assert ".formulation[0].components" in caught.value.message
    assert "non-unique" in caught.value.message and "builder-image" in caught.value.message


# -- 2. SBOM components unique; provenance and in-toto materials once ---------------------------

REPAIR = InstalledTool("packaging", "24.2", "packaging-24.2-py3-none-any.whl", "55" * 32)
AUDITWHEEL = InstalledTool("auditwheel", "6.1.0", "auditwheel-6.1.0-py3-none-any.whl", "66" * 32)


def _repaired(record: BuildRecord, build: list[InstalledTool],
              repair: list[InstalledTool]) -> BuildRecord:
    """The record of a build whose wheel was repaired: ``repair`` in the repair venv."""
    settings = {**record.builder_settings, "repair": {
        "tool": "auditwheel", "action": "repaired",
        "tools": [{"name": t.name, "version": t.version, "filename": t.filename,
                   "sha256": t.sha256} for t in repair]}}
    return replace(record, build_tools=[*build, *repair], builder_settings=settings)


def _refs(value: Any) -> list[str]:
    """Every bom-ref anywhere in an SBOM, as often as it appears."""
    if isinstance(value, dict):
        own = [value["bom-ref"]] if isinstance(value.get("bom-ref"), str) else []
        return own + [r for item in value.values() for r in _refs(item)]
    if isinstance(value, list):
        return [r for item in value for r in _refs(item)]
    return []


def _sbom_of(tmp_path: Path, record_change: Any = None, **wheel: Any) -> dict[str, Any]:
    built = factories.wheel(tmp_path / "w", **wheel)
    record = make_record(built, factories.sdist(tmp_path / "s"))
    if record_change is not None:
        record = record_change(record)
    return sbom_mod.build_sbom(built, record)


def test_a_build_tool_that_is_also_a_repair_tools_dependency_is_one_component(
        tmp_path: Path) -> None:
    """The issue's SBOM: packaging in the build venv and in auditwheel's venv."""
    doc = _sbom_of(tmp_path, lambda r: _repaired(r, [*TOOLS, REPAIR], [AUDITWHEEL, REPAIR]))
    refs = _refs(doc)
    assert len(refs) == len(set(refs))
    [entry] = [c for c in doc["formulation"][0]["components"]
               if c["bom-ref"] == f"build-tool:{REPAIR.filename}"]
    assert [p["value"] for p in entry["properties"]] == ["build", "repair"]
    inputs = [i["resource"]["ref"] for i in doc["formulation"][0]["workflows"][0]["inputs"]]
    assert len(inputs) == len(set(inputs)) and f"build-tool:{REPAIR.filename}" in inputs


def test_the_same_wheel_twice_in_the_record_is_one_component(tmp_path: Path) -> None:
    doc = _sbom_of(tmp_path, lambda r: replace(r, build_tools=[*TOOLS, *TOOLS]))
    tools = [c for c in doc["formulation"][0]["components"]
             if c["bom-ref"].startswith("build-tool:")]
    assert sorted(c["bom-ref"] for c in tools) == sorted(f"build-tool:{t.filename}"
                                                          for t in TOOLS)


def test_two_files_of_one_name_stay_two_components(tmp_path: Path) -> None:
    other = replace(REPAIR, sha256="77" * 32)  # the repair venv's copy came from elsewhere
    doc = _sbom_of(tmp_path, lambda r: _repaired(r, [*TOOLS, REPAIR], [other]))
    named = [c for c in doc["formulation"][0]["components"]
             if c["bom-ref"].startswith(f"build-tool:{REPAIR.filename}")]
    assert len(named) == 2 and len({c["bom-ref"] for c in named}) == 2


def test_a_library_the_wheel_holds_twice_is_one_component_with_both_digests(
        tmp_path: Path) -> None:
    lib = "tinypkg.libs/libfoo-1234abcd.so.1"
    built = factories.wheel(tmp_path / "w", libs=(lib,))
    with zipfile.ZipFile(built, "a") as zf:
        zf.writestr(lib, b"\x7fELF another copy")
    doc = sbom_mod.build_sbom(built, make_record(built, factories.sdist(tmp_path / "s")))
    refs = _refs(doc)
    assert not [r for r in refs if r.startswith("BomRef.")]  # no random reference
    [component] = [c for c in doc["components"] if c["bom-ref"] == f"bundled:{lib}"]
    assert len(component["hashes"]) == 2


def test_an_allowance_listed_twice_is_one_component(tmp_path: Path) -> None:
    built = factories.wheel(tmp_path / "w")
    record = make_record(built, factories.sdist(tmp_path / "s"))
    allowance = Allowance("allow_prebuilt", "data/*.so", "sdist", "data/x.so", "88" * 32,
                          "ELF object")
    doc = sbom_mod.build_sbom(built, record, (allowance, allowance))
    refs = _refs(doc)
    assert refs.count("allowance:sdist:data/x.so") == 1


def test_a_requirement_and_a_tool_of_one_name_are_two_components(tmp_path: Path) -> None:
    doc = _sbom_of(tmp_path, requires=("setuptools>=61",))
    refs = _refs(doc)
    assert "requirement:setuptools" in refs and f"build-tool:{TOOLS[0].filename}" in refs
    assert len(refs) == len(set(refs))


def test_unique_refs_merges_without_dropping_anything() -> None:
    doc = {"components": [
        {"bom-ref": "x", "name": "x", "hashes": [{"alg": "SHA-256", "content": "a"}]},
        {"bom-ref": "x", "name": "x", "version": "2", "hashes": [{"alg": "SHA-256",
                                                                 "content": "b"}]},
        {"bom-ref": "x", "name": "y"},
    ]}
    [merged] = sbom_mod.unique_refs(doc)["components"]
    assert merged["version"] == "2" and len(merged["hashes"]) == 2
    assert {"name": "artifact-factory:also-name", "value": '"y"'} in merged["properties"]
    with pytest.raises(BuildError, match="two things"):
        sbom_mod.unique_refs({"metadata": {"component": {"bom-ref": "x"}},
                              "components": [{"bom-ref": "x"}]})


TOOL_POOL = [*TOOLS, REPAIR, AUDITWHEEL, replace(REPAIR, sha256="77" * 32),
             InstalledTool("idna", "3.10", "idna-3.10-py3-none-any.whl", "99" * 32)]


@given(build=st.lists(st.sampled_from(TOOL_POOL), max_size=8),
       repair=st.lists(st.sampled_from(TOOL_POOL), max_size=4),
       requires=st.lists(st.sampled_from(["idna", "packaging", "setuptools", "Idna",
                                          "auditwheel; extra == 'x'"]), max_size=4),
       allowances=st.lists(st.sampled_from([
           Allowance("allow_pth", "true", "wheel", "a.pth", "aa" * 32, "start-up hook"),
           Allowance("allow_prebuilt", "x/*", "sdist", "x/y.so", "bb" * 32, "ELF")]),
           max_size=3))
@hsettings(max_examples=25, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_mix_of_tools_requirements_and_allowances_gives_a_valid_sbom_of_unique_refs(
        tmp_path_factory: pytest.TempPathFactory, build: list[InstalledTool],
        repair: list[InstalledTool], requires: list[str], allowances: list[Allowance]) -> None:
    base = tmp_path_factory.mktemp("mix")
    built = factories.wheel(base / "w", requires=tuple(requires),
                            libs=("tinypkg.libs/libz.so.1",))
    record = _repaired(make_record(built, factories.sdist(base / "s")), build, repair)
    doc = sbom_mod.build_sbom(built, record, tuple(allowances))  # validated inside
    refs = _refs(doc)
    assert len(refs) == len(set(refs))
    listed = {(c["purl"], c["hashes"][0]["content"]) for c in doc["formulation"][0]["components"]
              if c["bom-ref"].startswith("build-tool:")}
    assert listed == {(prov.pypi_purl(t.name, t.version, t.filename), t.sha256)
                      for t in [*build, *repair]}
    materials = prov.resolved_dependencies(record)
    keys = [(m["name"], json.dumps(m.get("digest"))) for m in materials]
    assert len(keys) == len(set(keys))


def test_provenance_lists_a_wheel_of_two_venvs_once_with_both(tmp_path: Path) -> None:
    built = factories.wheel(tmp_path / "w")
    record = _repaired(make_record(built, factories.sdist(tmp_path / "s")), [*TOOLS, REPAIR],
                       [AUDITWHEEL, REPAIR])
    tools = [d for d in prov.resolved_dependencies(record)
             if d["annotations"]["role"] == "build-tool"]
    assert [d["name"] for d in tools].count(REPAIR.filename) == 1
    [entry] = [d for d in tools if d["name"] == REPAIR.filename]
    assert entry["annotations"]["environments"] == ["build", "repair"]


def test_an_sdist_that_is_source_and_front_end_is_one_material(tmp_path: Path) -> None:
    """Building packaging itself: its sdist is the source and, unpacked, the front end."""
    built = factories.wheel(tmp_path / "w")
    record = make_record(built, factories.sdist(tmp_path / "s"))
    src = record.source
    kit = InstalledTool(src.name, src.version, src.filename, src.sha256)
    settings = {**record.builder_settings, "frontend": [{"name": src.name, "sdist": src.filename,
                                                         "sha256": src.sha256}]}
    record = replace(record, build_tools=[*TOOLS, kit], builder_settings=settings)
    deps = prov.resolved_dependencies(record)
    [entry] = [d for d in deps if d["name"] == src.filename]
    assert entry["annotations"]["role"] == "source"  # what verifiers look for
    assert entry["annotations"]["roles"] == ["build-tool", "source"]


def test_an_in_toto_layout_names_each_product_once(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    init_keys(settings)
    from datetime import UTC, datetime, timedelta

    layout = build_layout(settings, "s.tar.gz", "w.whl", ["w.cdx.json", "w.cdx.json", "b"],
                          datetime.now(UTC) + timedelta(days=1))
    attest = next(s for s in layout.steps if s.name == "attest")
    assert attest.expected_products == [["CREATE", "w.cdx.json"], ["CREATE", "b"],
                                        ["DISALLOW", "*"]]


# -- 4. one bad SBOM never stops the others -----------------------------------------------------

def test_the_issues_sbom_now_publishes_with_the_others(tmp_path: Path) -> None:
    project = factories.settings(tmp_path, project="project")
    twice = _repaired(stage_build(project, "alpha"), [*TOOLS, REPAIR], [AUDITWHEEL, REPAIR])
    twice.save(project.wheels_dir)
    later = stage_build(project, "bravo")
    report = release_all(project, [twice, later])
    assert report.refused == []
    assert sorted(p.project for p in report.published) == ["alpha", "bravo"]


def test_a_wheel_whose_sbom_fails_is_refused_alone_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A validation error (8 KB, many lines) and a library's own exception each refuse
    their wheel; the wheels after them are published."""
    project = factories.settings(tmp_path, project="project")
    records = [stage_build(project, name) for name in ("alpha", "bravo", "charlie", "delta")]
    real = sbom_mod.build_sbom

    def failing(wheel: Path, record: BuildRecord, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if record.component == "alpha":
            raise VerificationError("SBOM is not valid CycloneDX 1.6: " + "x\n" * 4000)
        if record.component == "bravo":
            raise ValueError("a model refused it:\n" + "y" * 8000)
        return real(wheel, record, *args, **kwargs)

    monkeypatch.setattr("factory.attest.wheel.build_sbom", failing)
    report = release_all(project, records)
    assert sorted(p.project for p in report.published) == ["charlie", "delta"]
    assert [r.component for r in report.refused] == ["alpha", "bravo"]
    for refusal in report.refused:
        _assert_one_line(refusal.line(), 600)
    assert "ValueError" in report.refused[1].reason
    rows = ledger.open_refusals(project)
    assert {key[0] for key in rows} == {"alpha", "bravo"}
    assert all("\n" not in row["reason"] for row in rows.values())


# -- 5. system packages pinned and recorded -----------------------------------------------------

@pytest.mark.parametrize("entry", ["libffi-dev", "libffi-dev=3.4.4-1", "g++=4:12.2.0-3",
                                   "libssl-dev=3.0.15-1~deb12u1", "python3.11-dev=3.11.2-6+b1"])
def test_a_recipe_may_name_or_pin_a_debian_package(tmp_path: Path, entry: str) -> None:
    path = factories.recipe(tmp_path, "demo", f'system_packages = ["{entry}"]\n')
    assert parse_recipe(path, path.parent).system_packages == (entry,)


@pytest.mark.parametrize("entry", ["LibFFI", "x", "libffi-dev=", "libffi-dev=abc",
                                   "-libffi", "libffi-dev,evil", "libffi-dev=1.0 evil",
                                   "libffi-dev>=3", "libffi dev", "libffi-dev=1;rm -rf /",
                                   "libffi-dev\\n", "libffi-dev=1=2", "a" * 200])
def test_anything_else_in_system_packages_is_a_recipe_error(tmp_path: Path, entry: str) -> None:
    path = factories.recipe(tmp_path, "demo", f'system_packages = ["{entry}"]\n')
    with pytest.raises(RecipeError, match="system_packages"):
        parse_recipe(path, path.parent)


HELD = ["gcc=4:12.2.0-3", "libffi-dev=3.4.4-1", "libffi8=3.4.4-1", "python3=3.11.2-1+b1"]
ARCHES = {"gcc": "amd64", "libffi-dev": "amd64", "libffi8": "amd64", "python3": "amd64"}


def test_the_image_serves_the_exact_versions_of_a_recipes_packages() -> None:
    ref = _image(packages=HELD, architectures=ARCHES)
    assert images.system_packages(ref, ["libffi-dev=3.4.4-1", "gcc"]) == [
        SystemPackage("gcc", "4:12.2.0-3", "amd64", "debian-12"),
        SystemPackage("libffi-dev", "3.4.4-1", "amd64", "debian-12")]
    with pytest.raises(EngineError, match="it holds libffi-dev=3.4.4-1"):
        images.system_packages(ref, ["libffi-dev=3.4.4-2"])
    with pytest.raises(EngineError, match="does not hold libnope"):
        images.system_packages(ref, ["libnope"])


class FakeClient:
    def __init__(self) -> None:
        self.imported: list[str] = []
        self.api = self
        self.images = self

    def get(self, tag: str) -> Any:
        if tag not in self.imported:
            from docker.errors import ImageNotFound
            raise ImageNotFound(tag)
        return type("Image", (), {"id": "sha256:" + "cd" * 32})()

    def import_image_from_file(self, path: str, repository: str, tag: str,
                               changes: Any) -> None:
        self.imported.append(f"{repository}:{tag}")


@pytest.fixture
def fake_debootstrap(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """debootstrap, dpkg and docker stand-ins: what debootstrap was asked to include."""
    seen: dict[str, Any] = {"client": FakeClient()}
    monkeypatch.setattr(images, "connect", lambda: seen["client"])
    monkeypatch.setattr(images.shutil, "which", lambda name: "/usr/sbin/" + name)
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    monkeypatch.setattr(images, "_run_debootstrap",
                        lambda rootfs, names, cache, *log: seen.setdefault("names", names))
    monkeypatch.setattr(images, "_add_build_user", lambda rootfs: None)
    monkeypatch.setattr(images, "_trim", lambda rootfs: None)
    monkeypatch.setattr(images, "_tar", lambda rootfs, tarball: None)
    listing = "".join(f"{p} {ARCHES[p.split('=')[0]]}\n" for p in HELD) + \
        "".join(f"{p}=1.0 amd64\n" for p in images.BASE_PACKAGES if p not in ARCHES)
    monkeypatch.setattr(images, "_dpkg_packages", lambda rootfs: images._parse_dpkg(listing))
    return seen


def test_a_pin_the_suite_meets_is_installed_and_recorded(
        tmp_path: Path, fake_debootstrap: dict[str, Any]) -> None:
    settings = factories.settings(tmp_path)
    ref = images.bootstrap_image(settings, ["libffi-dev=3.4.4-1"])
    assert "libffi-dev" in fake_debootstrap["names"]  # debootstrap takes names only
    assert not any("=" in n for n in fake_debootstrap["names"])
    assert "libffi-dev=3.4.4-1" in ref.packages and ref.architectures["libffi-dev"] == "amd64"
    recorded = json.loads(images.images_record(settings).read_text())[ref.tag]
    assert recorded["architectures"]["libffi-dev"] == "amd64"


def test_a_pin_the_suite_does_not_meet_makes_no_image(
        tmp_path: Path, fake_debootstrap: dict[str, Any]) -> None:
    settings = factories.settings(tmp_path)
    with pytest.raises(EngineError) as caught:
        images.bootstrap_image(settings, ["libffi-dev=3.4.4-2"])
    assert "libffi-dev=3.4.4-2 is pinned, but Debian bookworm" in caught.value.message
    assert "installed 3.4.4-1" in caught.value.message
    assert fake_debootstrap["client"].imported == []  # nothing tagged


def test_two_pins_of_one_package_are_refused(tmp_path: Path,
                                             fake_debootstrap: dict[str, Any]) -> None:
    with pytest.raises(EngineError, match="pinned twice"):
        images.bootstrap_image(factories.settings(tmp_path), ["libffi-dev=1", "libffi-dev=2"])


def test_an_image_holding_another_version_than_the_pin_is_not_reused() -> None:
    ref = _image(packages=HELD, architectures=ARCHES)
    assert images._holds(ref, ["libffi-dev=3.4.4-1", "gcc"])
    assert not images._holds(ref, ["libffi-dev=3.4.4-1+b1"])


@AS_ROOT
def test_a_build_records_its_system_packages_in_record_provenance_and_sbom(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_engine: None) -> None:
    settings = factories.settings(tmp_path)
    sdist = backend_sdist(tmp_path / "sdists", "demo", "")
    tree = archive.extract(sdist, tmp_path / "tree")
    monkeypatch.setattr(builder, "run_container", FakeContainer())
    inputs = replace(inputs_for(sdist, tree, Kit(()), _image(packages=HELD,
                                                             architectures=ARCHES)),
                     system_packages=("libffi-dev=3.4.4-1",))
    record = builder.build(settings, inputs)
    wanted = SystemPackage("libffi-dev", "3.4.4-1", "amd64", "debian-12")
    assert record.system_packages == [wanted]
    saved = BuildRecord.load(settings.wheels_dir / (record.wheel_filename + ".build.json"))
    assert saved.system_packages == [wanted]
    purl = "pkg:deb/debian/libffi-dev@3.4.4-1?arch=amd64&distro=debian-12"
    [dep] = [d for d in prov.resolved_dependencies(record)
             if d["annotations"]["role"] == "system-package"]
    assert dep["uri"] == purl and dep["name"] == "libffi-dev=3.4.4-1"
    packages = {c["purl"]: c for c in sbom_mod.system_components(record)}
    assert purl in packages  # beside the rest of the image's dpkg list
    asked = [c["purl"] for c in packages.values()
             if any(p["name"].endswith(":asked-by-recipe") for p in c["properties"])]
    assert asked == [purl]


def test_the_sbom_lists_system_packages_as_components_and_inputs(tmp_path: Path) -> None:
    packages = [SystemPackage("libffi-dev", "3.4.4-1", "amd64", "debian-12"),
                SystemPackage("g++", "4:12.2.0-3", "amd64", "debian-12")]
    doc = _sbom_of(tmp_path, lambda r: replace(r, system_packages=packages))
    found = {c["bom-ref"]: c for c in doc["formulation"][0]["components"]}
    assert found["system-package:libffi-dev"]["purl"] == (
        "pkg:deb/debian/libffi-dev@3.4.4-1?arch=amd64&distro=debian-12")
    assert found["system-package:g++"]["version"] == "4:12.2.0-3"
    inputs = [i["resource"]["ref"] for i in doc["formulation"][0]["workflows"][0]["inputs"]]
    assert "system-package:libffi-dev" in inputs


def test_a_record_without_system_packages_still_loads(tmp_path: Path) -> None:
    built = factories.wheel(tmp_path / "w")
    data = make_record(built, factories.sdist(tmp_path / "s")).to_dict()
    del data["system_packages"]  # written by an older factory
    assert BuildRecord.from_dict(data).system_packages == []


# -- the real thing, once -----------------------------------------------------------------------

@pytest.mark.docker
@AS_ROOT
def test_a_private_mode_sdist_builds_in_the_real_container(
        tmp_path: Path, image: ImageRef, kit: Kit) -> None:
    settings = factories.settings(tmp_path)
    sdist, tree = _old_tree(tmp_path)
    record = builder.build(settings, inputs_for(sdist, tree, kit, image))
    assert record.wheel_filename == "demo-1.0-py3-none-any.whl"
