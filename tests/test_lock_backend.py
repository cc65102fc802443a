"""Upstream's backend at lock time (factory.lock.backend): upstream's pure wheel names
the backend version that generated it; the lock pins that version for the build when
the sdist's [build-system].requires and policy allow it, and says why when not.

The local upstream serves demo 1.0.0's sdist and a pure wheel whose WHEEL says
``Generator: setuptools (80.0.0)``; setuptools 80.0.0 and 81.0.0 are approved.
"""

from __future__ import annotations

import io
import tomllib
import zipfile
from pathlib import Path

import pytest
import tomli_w

from factory.config import Settings, load_settings
from factory.errors import LockError
from factory.lock import load_lock, lock_stage
from factory.lock.backend import (
    LOCKED_BEFORE,
    MAX_GENERATOR,
    MAX_WHEEL_FILE,
    backend_of,
    read_generator,
    wheel_generator,
)
from factory.lock.model import Lock
from factory.plan import make_plan
from tests import factories
from tests.local_upstream import LocalUpstream

WHEEL = "demo-1.0.0.dist-info/WHEEL"


def wheel_text(generator: str) -> bytes:
    return (f"Wheel-Version: 1.0\nGenerator: {generator}\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n").encode()


def demo_with_wheel(project: Settings, upstream: LocalUpstream, generator: str = "setuptools "
                    "(80.0.0)", setuptools: str = "", build_requires: list[str] | None = None,
                    ) -> None:
    for version in ("80.0.0", "81.0.0"):
        upstream.add("setuptools", version, build_requires=[], backend="x")
    factories.recipe(project.root, "setuptools", f'kind = "build-tool"\n{setuptools}')
    upstream.add("demo", "1.0.0", build_requires=build_requires)
    upstream.add_file("demo", factories.wheel(upstream.directory / "files", "demo", "1.0.0",
                                              files={"demo/__init__.py": b"X = 1\n",
                                                     WHEEL: wheel_text(generator)}))
    factories.recipe(project.root, "demo")


# -- reading upstream's WHEEL --------------------------------------------------------------

def test_generator_line_is_read_with_care() -> None:
    assert read_generator(wheel_text("hatchling 1.27.0")) == "hatchling 1.27.0"
    assert read_generator(b"Wheel-Version: 1.0\nTag: py3-none-any\n") is None
    first = read_generator(b"Generator: flit 3.9.0\nGenerator: hatchling 1.0\n")
    assert first == "flit 3.9.0"  # the first only
    hostile = read_generator(b"Generator: flit 3.9.0\x1b[2J\x00" + b"A" * 10_000 + b"\n")
    assert hostile is not None and hostile.isprintable() and len(hostile) <= MAX_GENERATOR
    # past the bound nothing is read: a Generator line after it is not seen
    assert read_generator(b"X" * MAX_WHEEL_FILE + b"\nGenerator: flit 3.9.0\n") is None
    assert read_generator(b"\xff\xfeGenerator: flit 3.9.0") is None  # not a header line


@pytest.mark.parametrize(("generator", "expected"), [
    ("hatchling 1.27.0", ("hatchling", "1.27.0")),
    ("flit 3.12.0", ("flit-core", "3.12.0")),
    ("poetry-core 2.5.0", ("poetry-core", "2.5.0")),
    ("setuptools (80.9.0)", ("setuptools", "80.9.0")),
    ("bdist_wheel (0.43.0)", ("wheel", "0.43.0")),
    ("pdm-backend (2.4.3)", ("pdm-backend", "2.4.3")),
])
def test_generators_map_to_backends(generator: str, expected: tuple[str, str]) -> None:
    assert backend_of(generator) == expected


@pytest.mark.parametrize(("generator", "why"), [
    ("maturin (1.7.0)", "native-extension backend"),
    ("my-backend 1.0", "unknown generator"),
    ("hatchling 1.0; rm -rf /", "unknown generator"),
    ("flit 3.x", "no PEP 440 version"),
    ("hatchling 1..0", "no PEP 440 version"),
])
def test_other_generators_pin_nothing(generator: str, why: str) -> None:
    found = backend_of(generator)
    assert isinstance(found, str) and why in found


def test_wheel_generator_reads_only_the_projects_own_wheel_file(tmp_path: Path) -> None:
    huge = factories.wheel(tmp_path / "a", "demo", "1.0.0", files={
        "demo/__init__.py": b"",
        "other-1.0.dist-info/WHEEL": wheel_text("hatchling 9.9"),  # another project's
        WHEEL: b"Wheel-Version: 1.0\n" + b" " * (8 << 20) + b"\nGenerator: flit 3.9.0\n"})
    assert wheel_generator(huge, "demo", "1.0.0") is None  # the bound stops the read
    good = factories.wheel(tmp_path / "b", "demo", "1.0.0", files={
        "demo/__init__.py": b"", WHEEL: wheel_text("flit 3.9.0")})
    assert wheel_generator(good, "demo", "1.0.0") == "flit 3.9.0"
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip")
    assert wheel_generator(junk, "demo", "1.0.0") is None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("demo/__init__.py", b"")
    (tmp_path / "none.whl").write_bytes(buffer.getvalue())
    assert wheel_generator(tmp_path / "none.whl", "demo", "1.0.0") is None


# -- the lock ----------------------------------------------------------------------------

def test_lock_pins_upstreams_backend_and_the_plan_builds_with_it(
        project: Settings, upstream: LocalUpstream) -> None:
    demo_with_wheel(project, upstream)
    lock, _ = lock_stage(project)
    demo = lock.primary("demo")
    assert demo is not None and demo.backend is not None
    assert demo.backend.pin == "setuptools==80.0.0"
    assert demo.backend.reason == "upstream's wheel was generated by setuptools (80.0.0)"
    assert [c.version for c in lock.components if c.key == "setuptools"] == ["80.0.0", "81.0.0"]
    first = project.lock_path.read_bytes()
    assert 'pin = "setuptools==80.0.0"' in first.decode()
    # the same inputs lock to the same bytes, and the row reads back as written
    lock_stage(project)
    assert project.lock_path.read_bytes() == first
    assert load_lock(project).primary("demo") == demo
    plan = make_plan(project, ["demo"])
    assert plan.nodes["demo==1.0.0"].env == ["setuptools==80.0.0"]


def test_policy_refusal_keeps_the_default_and_says_why(
        project: Settings, upstream: LocalUpstream) -> None:
    demo_with_wheel(project, upstream, setuptools='versions = ">=81"\n')
    lock, _ = lock_stage(project)
    demo = lock.primary("demo")
    assert demo is not None and demo.backend is not None and demo.backend.pin is None
    assert "policy refused setuptools 80.0.0 (outside range >=81)" in demo.backend.reason
    assert [c.version for c in lock.components if c.key == "setuptools"] == ["81.0.0"]
    assert make_plan(project, ["demo"]).nodes["demo==1.0.0"].env == ["setuptools==81.0.0"]


def test_a_version_outside_build_system_requires_is_not_pinned(
        project: Settings, upstream: LocalUpstream) -> None:
    demo_with_wheel(project, upstream, build_requires=["setuptools>=81"])
    demo = lock_stage(project)[0].primary("demo")
    assert demo is not None and demo.backend is not None and demo.backend.pin is None
    assert "does not satisfy the sdist's [build-system] requires (setuptools>=81)" \
        in demo.backend.reason


def test_a_backend_the_fetch_gate_refuses_is_not_pinned(
        project: Settings, upstream: LocalUpstream) -> None:
    """setuptools 79.0.0 (what upstream's wheel names) ships a prebuilt archive its
    recipe does not allow: the fetch stage would refuse it, so the lock keeps the
    default and says why."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.txt", b"x")
    upstream.add("setuptools", "79.0.0", build_requires=[], backend="x",
                 files={"tests/data/pkg.zip": buffer.getvalue()})
    demo_with_wheel(project, upstream, generator="setuptools (79.0.0)")
    demo = lock_stage(project)[0].primary("demo")
    assert demo is not None and demo.backend is not None and demo.backend.pin is None
    assert "the fetch stage refuses setuptools 79.0.0" in demo.backend.reason
    assert "prebuilt" in demo.backend.reason


def test_a_version_locked_before_keeps_its_build_environment(
        project: Settings, upstream: LocalUpstream) -> None:
    """A pin locked (and maybe published) before upstream's wheel was read keeps its
    build environment: a rebuild would make other bytes under a published name."""
    for version in ("80.0.0", "81.0.0"):
        upstream.add("setuptools", version, build_requires=[], backend="x")
    factories.recipe(project.root, "setuptools", 'kind = "build-tool"\n')
    upstream.add("demo", "1.0.0")
    factories.recipe(project.root, "demo")
    demo = lock_stage(project)[0].primary("demo")
    assert demo is not None and demo.backend is None  # no upstream wheel then
    upstream.add_file("demo", factories.wheel(upstream.directory / "files", "demo", "1.0.0",
                                              files={"demo/__init__.py": b"X = 1\n",
                                                     WHEEL: wheel_text("setuptools (80.0.0)")}))
    for _ in range(2):  # and stays so
        demo = lock_stage(project)[0].primary("demo")
        assert demo is not None and demo.backend is not None and demo.backend.pin is None
        assert demo.backend.reason == LOCKED_BEFORE and demo.backend.wheel is not None


def test_unknown_generator_and_setting_off(project: Settings, upstream: LocalUpstream) -> None:
    demo_with_wheel(project, upstream, generator="mybackend 2.0")
    demo = lock_stage(project)[0].primary("demo")
    assert demo is not None and demo.backend is not None and demo.backend.pin is None
    assert demo.backend.reason.startswith("unknown generator 'mybackend 2.0'")
    config = project.root / "factory.toml"
    config.write_text(config.read_text() + "[equivalence]\nmatch_upstream_backend = false\n")
    off = load_settings(project.root)
    assert off.match_upstream_backend is False
    demo = lock_stage(off)[0].primary("demo")
    assert demo is not None and demo.backend is not None and demo.backend.pin is None
    assert demo.backend.reason == "not matched: [equivalence] match_upstream_backend is off"
    assert demo.backend.wheel is not None  # still compared after the build
    assert demo.backend.wheel["filename"] == "demo-1.0.0-py3-none-any.whl"


@pytest.mark.parametrize("table", [
    {"reason": "x", "pin": "demo==1.0.0"},  # itself
    {"reason": "x", "pin": "setuptools>=1"},  # not exact
    {"reason": "x", "pin": "setuptools==1.0; os_name == 'nt'"},
    {"reason": "x", "evil": "y"},
    {"reason": "x" * 600},
    {"reason": "x", "generator": "a\x1b[2J"},
    {"pin": "setuptools==80.0.0"},
    {"reason": "x", "wheel": {"filename": "other-1.0.0-py3-none-any.whl", "url": "https://x/a",
                              "sha256": "0" * 64, "size": 1}},
    {"reason": "x", "wheel": {"filename": "demo-1.0.0-py3-none-any.whl", "url": "file:///etc",
                              "sha256": "0" * 64, "size": 1}},
    {"reason": "x", "wheel": {"filename": "demo-1.0.0-py3-none-any.whl", "url": "https://x/a",
                              "sha256": "0" * 64, "size": -1}},
    "setuptools==80.0.0",
])
def test_a_tampered_backend_row_is_refused(project: Settings, upstream: LocalUpstream,
                                           table: object) -> None:
    demo_with_wheel(project, upstream)
    lock_stage(project)
    data = tomllib.loads(project.lock_path.read_text())
    row = next(r for r in data["component"] if r["name"] == "demo")
    row["upstream_backend"] = table
    with pytest.raises(LockError, match="upstream_backend"):
        Lock.from_toml(tomli_w.dumps(data))
