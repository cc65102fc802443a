"""Native wheels repaired to manylinux in the build container, through the plan (real sdists).

The project is this repository's own lock and recipes, plus one tiny pure
component and a tiny C extension linking libffi (recipe: system_packages =
["libffi-dev"]); the locked sdists come from PyPI once (pinned by the lock's sha256,
kept in pytest's cache) and everything -- setuptools, auditwheel, pyelftools,
markupsafe, patchelf -- is built from source in network-less containers, as the
factory does. patchelf's source comes from Debian's mirror once (kept in pytest's
cache); markupsafe is repaired without it (the Debian switch is off, as in every
test), the extension with it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from factory.attest.sbom import build_sbom
from factory.build import debian, debian_source, patchelf
from factory.build.engine import connect
from factory.build.env import KIT_TOOLS
from factory.build.executor import build_one
from factory.build.record import BuildRecord, record_path_for
from factory.config import Settings
from factory.lock import Lock, load_lock, save_lock
from factory.plan import make_plan
from factory.publish import release
from factory.verify import rebuild_and_compare
from tests import factories
from tests.approval_fixtures import approve
from tests.builders_fixtures import backend_sdist, lock_entry, seed_sdists

pytestmark = [pytest.mark.docker, pytest.mark.network]

REPO = Path(__file__).resolve().parent.parent
# A C extension that calls libffi (so auditwheel must graft libffi.so.8 into it).
FFI_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <ffi.h>

static int add(int a, int b) { return a + b; }

static PyObject *call_add(PyObject *self, PyObject *args) {
    int a, b;
    if (!PyArg_ParseTuple(args, "ii", &a, &b)) return NULL;
    ffi_cif cif;
    ffi_type *types[2] = {&ffi_type_sint, &ffi_type_sint};
    void *values[2] = {&a, &b};
    ffi_arg result;
    if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 2, &ffi_type_sint, types) != FFI_OK)
        return PyErr_Format(PyExc_RuntimeError, "ffi_prep_cif failed");
    ffi_call(&cif, FFI_FN(add), &result, values);
    return PyLong_FromLong((long)(int)result);
}

static PyMethodDef methods[] = {{"call_add", call_add, METH_VARARGS, NULL}, {NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ffi", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ffi(void) { return PyModule_Create(&module); }
"""
FFI_SETUP = """from setuptools import Extension, setup
setup(ext_modules=[Extension("ffiext._ffi", ["ffiext/_ffi.c"], libraries=["ffi"])])
"""


@pytest.fixture(scope="module")
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("repair")
    shutil.copytree(REPO / "recipes", root / "recipes")
    settings = factories.settings(root)
    lock = load_lock(factories.settings(REPO, state_dir=root / "unused"))
    tiny = lock_entry(settings, backend_sdist(root / "sdists", "puretiny", ""), "runtime",
                  "approved", ())
    (root / "recipes" / "puretiny.toml").write_text('name = "puretiny"\nversions = ">=0"\n')
    ffi = lock_entry(settings, factories.sdist(
        root / "sdists", "ffiext", "1.0", build_requires=["setuptools>=77"], license=None,
        files={"setup.py": FFI_SETUP, "ffiext/_ffi.c": FFI_C}), "runtime", "approved",
        ("setuptools>=77",))
    (root / "recipes" / "ffiext.toml").write_text(
        'name = "ffiext"\nversions = ">=0"\nsystem_packages = ["libffi-dev"]\n')
    save_lock(settings, Lock([*lock.components, tiny, ffi]))
    cache = Path(request.config.cache.mkdir("factory-sdists"))  # type: ignore[union-attr]
    wanted = {*make_plan(settings, ["markupsafe", "puretiny", "ffiext"]).nodes, *KIT_TOOLS}
    seed_sdists(settings, list(lock.components), wanted, cache)
    return settings


@pytest.fixture(scope="module")
def markupsafe(project: Settings) -> BuildRecord:
    return build_one(project, "markupsafe")


def test_markupsafe_is_repaired_to_a_manylinux_tag(project: Settings,
                                                   markupsafe: BuildRecord) -> None:
    repair = markupsafe.builder_settings["repair"]
    assert repair["action"] == "repaired", repair
    assert repair["policy"].startswith("manylinux_") and repair["policy"].endswith("_x86_64")
    assert repair["policy"] in markupsafe.wheel_filename
    # e.g. markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
    assert markupsafe.wheel_filename.startswith("markupsafe-3.0.4-cp311-cp311-manylinux")
    assert repair["original_wheel"]["filename"] == "markupsafe-3.0.4-cp311-cp311-linux_x86_64.whl"
    assert repair["patchelf"] and [t["name"] for t in repair["tools"]] == \
        ["auditwheel", "packaging", "pyelftools"]
    tools = {t.name: t for t in markupsafe.build_tools}
    assert tools["auditwheel"].version == "6.8.2" and "pyelftools" in tools
    wheel = project.wheels_dir / markupsafe.wheel_filename
    with zipfile.ZipFile(wheel) as zf:
        assert "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so" in zf.namelist()
        assert f"Tag: cp311-cp311-{repair['policy']}" in \
            zf.read("markupsafe-3.0.4.dist-info/WHEEL").decode()
    assert not list(project.wheels_dir.glob("*linux_x86_64.whl"))


def test_the_repaired_wheel_installs_and_imports_in_a_fresh_venv(
        project: Settings, markupsafe: BuildRecord, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    wheel = project.wheels_dir / markupsafe.wheel_filename
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    str(wheel)], check=True)
    out = subprocess.run([python, "-c", "from markupsafe import _speedups, escape; "
                          "print(escape('<a>'), _speedups.__name__)"],
                         check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["&lt;a&gt;", "markupsafe._speedups"]


def test_a_second_build_of_markupsafe_is_byte_identical(
        project: Settings, markupsafe: BuildRecord) -> None:
    wheel = project.wheels_dir / markupsafe.wheel_filename
    first = wheel.read_bytes()
    record_path_for(wheel).unlink()
    wheel.unlink()
    again = build_one(project, "markupsafe")  # the tools are up to date: one container
    assert again.invocation_id != markupsafe.invocation_id
    assert again.wheel_filename == markupsafe.wheel_filename
    assert (project.wheels_dir / again.wheel_filename).read_bytes() == first


def test_a_pure_wheel_is_not_touched(project: Settings, markupsafe: BuildRecord) -> None:
    record = build_one(project, "puretiny")
    assert record.wheel_filename == "puretiny-1.0-py3-none-any.whl"
    assert record.builder_settings["repair"]["action"] == "pure"
    assert "auditwheel" not in [t.name for t in record.build_tools]


@pytest.fixture(scope="module")
def ffiext(request: pytest.FixtureRequest, project: Settings) -> BuildRecord:
    """The C extension, repaired with the patchelf built from Debian's source: its
    tarball fetched from the mirror once (kept in pytest's cache), built once here."""
    cache = Path(request.config.cache.mkdir("factory-patchelf"))  # type: ignore[union-attr]
    # The verified tarball, and patchelf as built per image (checked by digest when used).
    kept = {"debian-source": debian_source.directory(project),
            "built": project.state_dir / "builder" / "patchelf"}
    for name, where in kept.items():
        if (cache / name).is_dir():
            shutil.copytree(cache / name, where, dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as switch:
        switch.setenv(debian.SWITCH, "on")
        debian_source.fetch_orig(project, patchelf.PIN)  # when kept: asks nothing
    record = build_one(project, "ffiext")  # the mirror is off again: the build asks nothing
    for name, where in kept.items():
        shutil.copytree(where, cache / name, dirs_exist_ok=True)
    return record


def test_an_extension_linking_libffi_is_published_manylinux_with_libffi_grafted(
        project: Settings, ffiext: BuildRecord, tmp_path: Path) -> None:
    repair = ffiext.builder_settings["repair"]
    assert repair["action"] == "repaired", repair
    assert repair["patcher"] == "patchelf" and repair["patchelf"] == "patchelf 0.18.0"
    built = repair["patchelf_build"]  # host-known: what the host built and mounted
    assert built["version"] == "0.18.0" and built["source"]["sha256"] == (
        "1451d01ee3a21100340aed867d0b799f46f0b1749680028d38c3f5d0128fb8a7")
    assert built["source"]["suite"] == "trixie" and "patchelf_build" not in \
        repair["reported_by_build"]
    assert ffiext.wheel_filename.startswith("ffiext-1.0-cp311-cp311-manylinux")
    [graft] = repair["grafted"]
    assert graft["path"].startswith("ffiext.libs/libffi-") and graft["library"].startswith(
        "libffi.so.8")
    assert graft["package"] == "libffi8" and graft["purl"].startswith("pkg:deb/debian/libffi8@")
    # The host compared it with the image's own libffi (not only its name): verified.
    assert "verified" in graft, graft.get("not_verified")
    assert graft["verified"]["image_file"].endswith("/" + graft["library"]), graft
    wheel = project.wheels_dir / ffiext.wheel_filename
    with zipfile.ZipFile(wheel) as zf:
        assert graft["path"] in zf.namelist()
    # It installs and imports where the image's libffi is gone (removed after pip ran).
    # (pip --target: the image's pip, no venv to make, which takes 25 s on a busy machine)
    script = ("python3 -m pip install -q --no-index --no-deps --target /tmp/site "
              f"/w/{wheel.name} && rm -f /usr/lib/x86_64-linux-gnu/libffi.so* && "
              "PYTHONPATH=/tmp/site python3 -c "
              "'import ffiext._ffi as f; print(f.call_add(2, 3))' && "
              "! ls /usr/lib/x86_64-linux-gnu/libffi.so* 2>/dev/null")
    out = connect().containers.run(
        project.builder_image, ["sh", "-c", script], network_mode="none", remove=True,
        user="0", volumes={str(project.wheels_dir): {"bind": "/w", "mode": "ro"}})
    assert out.split() == [b"5"]
    # The SBOM names the grafted library: its Debian package and the grafted file's digest.
    document = build_sbom(wheel, ffiext)
    [component] = [c for c in document["components"] if c.get("bom-ref", "").startswith(
        "bundled:ffiext.libs/")]
    assert component["purl"] == graft["purl"] and component["version"] == graft["version"]
    assert component["hashes"] == [{"alg": "SHA-256", "content": graft["sha256"]}]
    [identity] = component["evidence"]["identity"]
    assert identity["confidence"] == 1 and identity["concludedValue"] == graft["purl"]


def test_the_grafted_wheel_rebuilds_bit_for_bit(project: Settings, ffiext: BuildRecord) -> None:
    wheel = project.wheels_dir / ffiext.wheel_filename
    first = wheel.read_bytes()
    record_path_for(wheel).unlink()
    wheel.unlink()
    again = build_one(project, "ffiext")  # the same patchelf, kept by digest: not rebuilt
    assert again.builder_settings["repair"]["patchelf_build"] == \
        ffiext.builder_settings["repair"]["patchelf_build"]
    assert (project.wheels_dir / again.wheel_filename).read_bytes() == first


def test_verify_rebuild_reproduces_the_published_grafted_wheel(
        project: Settings, ffiext: BuildRecord) -> None:
    wheel = project.wheels_dir / ffiext.wheel_filename
    record = BuildRecord.load(record_path_for(wheel))
    release(project, [approve(project, record)])
    (result,) = rebuild_and_compare(project, "ffiext==1.0")  # the recorded patchelf, kept
    assert result.reproducible, result
