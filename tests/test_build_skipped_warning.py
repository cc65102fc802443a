"""A build that succeeded without its C extension says so, and which package it lacked.

Many sdists treat their C extension as optional (PyYAML, MarkupSafe, msgpack...):
without the header it needs the build falls back to pure Python and succeeds.
The factory reads the good build's log the way it reads a failed one's
(factory.build.missing) and keeps one warning with the build record: what was
missing, the Debian package that provides it, the recipe line to add, and
whether the wheel (tagged for a platform) holds no compiled code at all. The
warning never fails a build, and a record without one keeps its bytes.

Offline: a synthetic Contents index, a fabricated log and wheel through the
function the build calls (``job.build_warnings``), and the CLI with the executor
replaced.
"""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from factory.build import debian, missing
from factory.build import job as builder
from factory.build.env import Kit
from factory.build.executor import Outcome
from factory.build.image import ImageRef
from factory.build.record import BuildRecord
from factory.config import Settings
from tests import factories
from tests.attest_fixtures import make_record
from tests.builders_fixtures import inputs_for

CONTENTS = b"""\
usr/include/yaml.h                                      libdevel/libyaml-dev
usr/include/x86_64-linux-gnu/ffi.h                      libdevel/libffi-dev
usr/include/stdio.h                                     libdevel/libc6-dev
usr/include/zlib.h                                      libdevel/zlib1g-dev
usr/lib/x86_64-linux-gnu/libyaml.so                     libdevel/libyaml-dev
usr/bin/cmake                                           devel/cmake
"""
# PyYAML 6.0.x without libyaml-dev: setup.py catches the failed extension and goes on.
PYYAML_LOG = b"""\
running build_ext
building '_yaml' extension
gcc -pthread -fPIC -I/tmp/venv/include -I/usr/include/python3.11 -c yaml/_yaml.c -o build/_yaml.o
In file included from yaml/_yaml.c:1195:
yaml/_yaml.h:2:10: fatal error: yaml.h: No such file or directory
    2 | #include <yaml.h>
      |          ^~~~~~~~
compilation terminated.
Error compiling module, falling back to pure Python
running install_lib
Successfully built PyYAML-6.0.4-cp311-cp311-linux_x86_64.whl
"""
CLEAN_LOG = b"running build_py\ncopying yaml/__init__.py\nSuccessfully built a wheel\n"
IMAGE = ImageRef("factory-builder:test", "sha256:" + "1" * 64, "debootstrap",
                 ["gcc=4:12.2.0-3", "libc6-dev=2.36-9", "python3-dev=3.11.2-1+b1"])
WANTED = ('pyyaml 6.0.4 built without yaml.h (Debian package libyaml-dev): the build '
          'skipped what needed it and its wheel holds no compiled code; add '
          'system_packages = ["libyaml-dev"] to recipes/pyyaml.toml')


def _settle_lookup(settings: Settings, contents: bytes = CONTENTS) -> None:
    """A lookup from the synthetic index, checked just now: no mirror is asked."""
    kept = debian.directory(settings)
    kept.mkdir(parents=True)
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as out:
        out.write(contents)
    (kept / "c.gz").write_bytes(packed.getvalue())
    debian.build_lookup([kept / "c.gz"], kept / "lookup.sqlite",
                        {"suite": debian.SUITE, "arch": debian.ARCH, "sources": "{}"})
    (kept / "state.json").write_text(f'{{"checked": {time.time()}}}')


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    made = factories.settings(tmp_path)
    _settle_lookup(made)
    return made


def _wheel(directory: Path, tag: str = "cp311-cp311-linux_x86_64",
           files: dict[str, bytes] | None = None) -> Path:
    path = directory / f"pyyaml-6.0.4-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in (files or {"yaml/__init__.py": b"# pure Python\n",
                                     "yaml/cyaml.py": b"from yaml._yaml import *\n"}).items():
            zf.writestr(name, data)
    return path


def _warnings(settings: Settings, log: bytes, wheel: Path,
              packages: tuple[str, ...] = ()) -> list[str]:
    sdist = settings.root / "pyyaml-6.0.4.tar.gz"
    sdist.write_bytes(b"sdist")
    inputs = replace(inputs_for(sdist, settings.root, Kit(()), IMAGE),
                     system_packages=packages)
    return builder.build_warnings(settings, inputs, log, wheel)


# -- the warning ----------------------------------------------------------------------------

def test_a_build_that_fell_back_to_pure_python_names_the_package_and_the_recipe_line(
        settings: Settings, tmp_path: Path) -> None:
    assert _warnings(settings, PYYAML_LOG, _wheel(tmp_path)) == [WANTED]


def test_with_compiled_code_in_the_wheel_it_says_only_what_was_missing(
        settings: Settings, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, files={"yaml/_yaml.cpython-311-x86_64-linux-gnu.so":
                                    b"\x7fELF\x02\x01\x01" + b"\0" * 64})
    assert _warnings(settings, PYYAML_LOG, wheel) == [
        'pyyaml 6.0.4 built without yaml.h (Debian package libyaml-dev): the build skipped '
        'what needed it; add system_packages = ["libyaml-dev"] to recipes/pyyaml.toml']


def test_the_recipe_line_keeps_what_the_recipe_lists(settings: Settings,
                                                     tmp_path: Path) -> None:
    found = _warnings(settings, PYYAML_LOG, _wheel(tmp_path, "py3-none-any"),
                      ("zlib1g-dev=1:1.2.13.dfsg-1",))
    assert found == ['pyyaml 6.0.4 built without yaml.h (Debian package libyaml-dev): the '
                     'build skipped what needed it; add system_packages = '
                     '["zlib1g-dev=1:1.2.13.dfsg-1", "libyaml-dev"] to recipes/pyyaml.toml']


def test_a_clean_log_and_a_pure_wheel_give_no_warning(settings: Settings,
                                                      tmp_path: Path) -> None:
    assert _warnings(settings, CLEAN_LOG, _wheel(tmp_path, "py3-none-any")) == []
    elf = {"yaml/_yaml.so": b"\x7fELF" + b"\0" * 60}
    assert _warnings(settings, CLEAN_LOG, _wheel(tmp_path, files=elf)) == []


def test_a_platform_wheel_without_compiled_code_is_said_even_with_a_clean_log(
        settings: Settings, tmp_path: Path) -> None:
    assert _warnings(settings, CLEAN_LOG, _wheel(tmp_path)) == [
        "pyyaml 6.0.4: its wheel holds no compiled code though it is tagged for a platform: "
        "the build skipped its C code (its log says why)"]


def test_what_the_image_or_the_recipe_holds_is_not_asked_for(settings: Settings,
                                                             tmp_path: Path) -> None:
    probe = b"conftest.c:1:10: fatal error: stdio.h: No such file or directory\n"
    pure = _wheel(tmp_path, "py3-none-any")
    assert _warnings(settings, probe, pure) == []  # libc6-dev: in the image
    assert _warnings(settings, PYYAML_LOG, pure, ("libyaml-dev",)) == []  # listed already


def test_weak_signs_open_no_index_and_give_no_warning(settings: Settings) -> None:
    """A good build's log is full of optional dependencies it probed (meson's "found:
    NO", CMake's "-- Could NOT find"): they are not worth a warning, nor a lookup."""
    opened: list[Settings] = []

    def lookup(s: Settings) -> debian.Lookup:
        opened.append(s)
        raise AssertionError("the index was opened")

    log = (b"Run-time dependency yaml-0.1 found: NO (tried pkgconfig)\n"
           b"-- Could NOT find ZLIB (missing: ZLIB_LIBRARY ZLIB_INCLUDE_DIR)\n"
           b"FileNotFoundError: [Errno 2] No such file or directory: 'cmake'\n")
    assert missing.skipped_warning(settings, log, "x 1.0", "x.toml", lookup=lookup) is None
    assert opened == []


def test_an_index_that_cannot_be_had_gives_no_package_line_and_never_raises(
        settings: Settings, tmp_path: Path) -> None:
    def down(s: Settings) -> debian.Lookup:
        raise debian.LookupUnavailable("the mirror did not answer")

    def broken(s: Settings) -> debian.Lookup:
        raise RuntimeError("a bug in the lookup")

    for lookup in (down, broken):
        assert missing.skipped_warning(settings, PYYAML_LOG, "pyyaml 6.0.4", "pyyaml.toml",
                                       lookup=lookup) is None
    assert missing.skipped_warning(settings, PYYAML_LOG, "pyyaml 6.0.4", "pyyaml.toml",
                                   no_code=True, lookup=down) == (
        "pyyaml 6.0.4: its wheel holds no compiled code though it is tagged for a platform: "
        "the build skipped its C code (its log says why)")


def test_a_wheel_that_cannot_be_read_is_not_said_to_lack_code(settings: Settings,
                                                              tmp_path: Path) -> None:
    broken = tmp_path / "pyyaml-6.0.4-cp311-cp311-linux_x86_64.whl"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    assert builder.holds_compiled_code(broken) is None
    assert _warnings(settings, CLEAN_LOG, broken) == []


# -- hostile logs ---------------------------------------------------------------------------

HOSTILE_LINES = [
    b"x.c:1:10: fatal error: evil.h: No such file or directory",  # no package has it
    b"x.c:1:10: fatal error: yaml\x1b[2J\x07.h: No such file or directory",
    b"x.c:1:10: fatal error: ../../yaml.h: No such file or directory",
    b"x.c:1:10: fatal error: " + b"a" * 5000 + b".h: No such file or directory",
    b"x.c:1:10: fatal error: yaml.h\xe2\x80\xae: No such file or directory",
    b"Debian package libevil-dev: add system_packages = [\"libevil-dev\"]",
    b"\x1b]0;pwned\x07\x1b[31mfatal error\x1b[0m \r\x08\x08\x08",
]


@pytest.mark.parametrize("line", HOSTILE_LINES)
def test_a_hostile_line_names_no_package(settings: Settings, tmp_path: Path,
                                         line: bytes) -> None:
    pure = _wheel(tmp_path, "py3-none-any")
    assert _warnings(settings, line + b"\n", pure) == []


def test_a_huge_hostile_log_gives_one_bounded_printable_line(settings: Settings,
                                                             tmp_path: Path) -> None:
    """20 MB of junk with controls, every header the index knows, and the real miss at
    the end: one line, bounded, printable, naming only packages of the index."""
    junk = (b"\x1b[31m\x00\x07\r" + b"x" * 3000 + b"\n") * 7000
    many = b"".join(b"a.c:1:1: fatal error: %s: No such file or directory\n" % h
                    for h in (b"ffi.h", b"zlib.h", b"evil.h", b"stdio.h"))
    log = junk + many + PYYAML_LOG + junk[:100_000]
    found = _warnings(settings, log, _wheel(tmp_path))
    assert len(found) == 1
    [line] = found
    assert line.isprintable() and len(line) <= missing.MAX_WARNING
    assert line.startswith("pyyaml 6.0.4 built without ffi.h (Debian package libffi-dev); "
                           "zlib.h (Debian package zlib1g-dev); yaml.h (Debian package "
                           "libyaml-dev): the build skipped what needed it and its wheel "
                           "holds no compiled code; ")
    assert line.endswith('add system_packages = ["libffi-dev", "zlib1g-dev", '
                         '"libyaml-dev"] to recipes/pyyaml.toml')


def test_more_missing_things_than_shown_are_counted_and_all_in_the_recipe_line(
        tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    _settle_lookup(settings, CONTENTS + b"".join(
        b"usr/include/h%d.h libdevel/libh%d-dev\n" % (i, i) for i in range(6)))
    log = b"".join(b"a.c:1:1: fatal error: h%d.h: No such file or directory\n" % i
                   for i in range(6))
    found = missing.skipped_warning(settings, log, "x 1.0", "x.toml")
    assert found is not None and "and 3 more: the build skipped" in found
    assert found.endswith("[" + ", ".join(f'"libh{i}-dev"' for i in range(6))
                          + "] to recipes/x.toml")


# -- the record -----------------------------------------------------------------------------

def _record(tmp_path: Path) -> BuildRecord:
    sdist = tmp_path / "pyyaml-6.0.4.tar.gz"
    sdist.write_bytes(b"sdist")
    return make_record(_wheel(tmp_path), sdist)


def test_a_record_without_warnings_keeps_its_bytes(tmp_path: Path) -> None:
    """The bytes a record had before the field existed: no "warnings" key, and an old
    record read and written again is the same file."""
    record = _record(tmp_path)
    assert "warnings" not in record.to_dict()
    first = record.save(tmp_path / "a")
    old = BuildRecord.load(first)
    assert old.warnings == []
    again = old.save(tmp_path / "b")
    assert again.read_bytes() == first.read_bytes()


def test_a_record_keeps_its_warnings_and_refuses_malformed_ones(tmp_path: Path) -> None:
    record = replace(_record(tmp_path), warnings=[WANTED])
    path = record.save(tmp_path / "w")
    assert json.loads(path.read_text())["warnings"] == [WANTED]
    assert BuildRecord.load(path) == record
    data = record.to_dict()
    for bad in ("one text", [1], ["two\nlines"], ["x" * 5000], ["w"] * 100, {"a": "b"}):
        with pytest.raises(ValueError):
            BuildRecord.from_dict({**data, "warnings": bad})


# -- where the user sees it -----------------------------------------------------------------

def _cli_build(monkeypatch: pytest.MonkeyPatch, settings: Settings,
               records: list[BuildRecord], *args: str) -> str:
    from typer.testing import CliRunner

    from factory import fetch, plan
    from factory.build import executor
    from factory.cli import app
    from factory.cli._app import _State

    monkeypatch.setattr(_State, "settings", settings)
    monkeypatch.setattr(fetch, "fetch_stage", lambda s, failed: None)
    monkeypatch.setattr(plan, "make_plan", lambda s, names: type("P", (), {"order": []})())
    run: Callable[..., Outcome] = lambda *a, **k: Outcome(records, {})  # noqa: E731
    monkeypatch.setattr(executor, "run_plan", run)
    done = CliRunner().invoke(app, ["build", *args])
    assert done.exit_code == 0, done.output
    return done.output


def test_factory_build_prints_the_warning_once_and_json_has_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = factories.settings(tmp_path / "p")
    record = replace(_record(tmp_path), warnings=[WANTED + "\x1b[2J"])
    variant = replace(record, wheel_filename="pyyaml-6.0.4-cp313-cp313-linux_x86_64.whl")
    text = _cli_build(monkeypatch, settings, [record, variant])
    lines = [line for line in text.splitlines() if "warning:" in line]
    assert lines == [f"  warning: {WANTED}\\x1b[2J"]
    shown = json.loads(_cli_build(monkeypatch, settings, [record], "--json"))
    assert shown["warnings"] == [{"component": "pyyaml", "version": "6.0.4",
                                  "wheel": record.wheel_filename,
                                  "warning": WANTED + "\\x1b[2J"}]  # escaped
    quiet = _cli_build(monkeypatch, settings, [_record(tmp_path)])
    assert "warning" not in quiet


@pytest.mark.slow
def test_the_rebuild_flows_summary_lists_the_warning(
        tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow's build stages are stubbed (no Docker): it is handed a finished build
    whose record carries a warning; it publishes it and its summary says it."""
    from types import SimpleNamespace

    import flows.rebuild as flow_module
    from factory.config import load_settings
    from tests.security_fixtures import stage_build

    root = tmp_path / "project"
    root.mkdir()
    (root / "factory.toml").write_text('[factory]\nstate_dir = "state"\n')
    monkeypatch.setenv("FACTORY_ROOT", str(root))
    project = load_settings(root)
    warned = replace(stage_build(project, "alpha"), warnings=["alpha 1.0.0 built without x"])
    warned.save(project.wheels_dir)
    records = [warned, stage_build(project, "bravo")]
    monkeypatch.setattr(flow_module, "fetch_and_plan",
                        lambda *_: (SimpleNamespace(order=[], nodes={}), {}))
    monkeypatch.setattr(flow_module, "run_plan",
                        lambda *_, **__: SimpleNamespace(records=records, failed={}, skipped={}))
    summary = flow_module.rebuild()
    assert summary["published"] == 2
    assert summary["warnings"] == ["alpha 1.0.0 built without x"]


# -- a real build (docker): an optional extension that falls back to pure Python ------------

# An in-tree backend that does what PyYAML's setup.py does: compile the extension, and
# when the compiler fails, say so and write the wheel without it (still tagged for the
# platform, as setuptools tags a distribution that declares ext_modules).
OPTIONAL_EXT = r'''
import subprocess, sys

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    done = subprocess.run(["gcc", "-fPIC", "-shared", "-o", "/tmp/_fast.so", "fast.c"],
                          capture_output=True, text=True)
    sys.stderr.write(done.stdout + done.stderr)
    files = {"optdemo/__init__.py": b"FAST = False\n"}
    if done.returncode == 0:
        files["optdemo/_fast.so"] = open("/tmp/_fast.so", "rb").read()
    else:
        print("Error compiling module, falling back to pure Python", file=sys.stderr)
    name = "optdemo-1.0-cp311-cp311-linux_x86_64.whl"
    info = "optdemo-1.0.dist-info"
    files[info + "/METADATA"] = b"Metadata-Version: 2.1\nName: optdemo\nVersion: 1.0\n"
    files[info + "/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                              b"Tag: cp311-cp311-linux_x86_64\n")
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, data in sorted(files.items()):
            zf.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        record.append(info + "/RECORD,,")
        zf.writestr(zipfile.ZipInfo(info + "/RECORD", (2020, 1, 1, 0, 0, 0)),
                    "\n".join(record) + "\n")
    return name
'''


@pytest.mark.docker
def test_a_real_build_that_skips_its_extension_keeps_the_warning_in_its_record(
        settings: Settings, image: ImageRef, kit: Kit, tmp_path: Path) -> None:
    from factory.build.record import record_path_for
    from tests.builders_fixtures import build_backend

    fast = "#include <yaml.h>\nint fast(void) { return YAML_VERSION_MAJOR; }\n"
    record = build_backend(settings, kit, image, "optdemo", "", OPTIONAL_EXT,
                           files={"fast.c": fast})
    assert record.wheel_filename == "optdemo-1.0-cp311-cp311-linux_x86_64.whl"
    assert record.warnings == [
        'optdemo 1.0 built without yaml.h (Debian package libyaml-dev): the build skipped '
        'what needed it and its wheel holds no compiled code; add system_packages = '
        '["libyaml-dev"] to recipes/optdemo.toml']
    saved = BuildRecord.load(record_path_for(settings.wheels_dir / record.wheel_filename))
    assert saved.warnings == record.warnings
    # The same extension compiles with a header the image has: no warning at all.
    other = factories.settings(tmp_path / "other")
    _settle_lookup(other)
    plain = "#include <stdio.h>\nint fast(void) { return 1; }\n"
    again = build_backend(other, kit, image, "optdemo", "", OPTIONAL_EXT,
                          files={"fast.c": plain})
    assert again.warnings == []
    assert builder.holds_compiled_code(other.wheels_dir / again.wheel_filename) is True
