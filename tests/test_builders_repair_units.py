"""The host's half of wheel repair (no engine): the setting, the report, up-to-date checks."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from factory.attest import provenance
from factory.build import patchelf, repair
from factory.build.debian_source import SourcePin
from factory.build.image import ImageRef
from factory.build.incontainer import is_pure, patcher
from factory.build.patchelf import Patchelf
from factory.build.record import BuildRecord, InstalledTool
from factory.config import load_settings
from factory.errors import BuildError
from factory.plan import REPAIR_NOT_LOCKED
from factory.upstream.cache import Sdist
from factory.verify import reproduce
from tests import factories

AUDITWHEEL = InstalledTool("auditwheel", "6.8.2", "auditwheel-6.8.2-py3-none-any.whl", "a" * 64)
NATIVE = "markupsafe-3.0.4-cp311-cp311-manylinux_2_17_x86_64.whl"


def _report(out: Path, **done: Any) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "repair.json").write_text(json.dumps(done))
    return out


def _record(wheel: str, entry: dict[str, Any] | None) -> BuildRecord:
    settings = {"repair": entry} if entry is not None else {}
    return BuildRecord("i", "markupsafe", "3.0.4", wheel, "0" * 64,
                       Sdist("markupsafe", "3.0.4", "m.tar.gz", "u", "1" * 64, 1), "r", "d",
                       "img", "id", settings, [AUDITWHEEL], "t0", "t1", "log", "2" * 64)


def test_the_setting_comes_from_factory_toml(tmp_path: Path) -> None:
    (tmp_path / "factory.toml").write_text('[build]\nrepair = "none"\n')
    assert repair.mode(load_settings(tmp_path)) == "none"
    assert repair.mode(factories.settings(tmp_path)) == "auditwheel"  # the default


def test_pure_and_native_tags() -> None:
    assert is_pure("six-1.16.0-py2.py3-none-any.whl") and repair.is_pure("a-1-py3-none-any.whl")
    assert not is_pure("markupsafe-3.0.4-cp311-cp311-linux_x86_64.whl")
    assert not repair.is_pure(NATIVE)


def test_debian_bookworms_patchelf_is_too_old_for_grafting() -> None:
    assert patcher("patchelf 0.14.3") == "none"
    assert patcher("patchelf 0.18.0") == "patchelf"
    assert patcher(None) == "none"


def test_a_repair_report_becomes_the_record_entry(tmp_path: Path) -> None:
    out = _report(tmp_path, action="repaired", policy="manylinux_2_17_x86_64",
                  env=[{"name": "auditwheel", "version": "6.8.2"}], patchelf="patchelf 0.14.3",
                  patcher="none", original={"filename": "m-linux_x86_64.whl", "sha256": "f"})
    entry = repair.outcome(factories.settings(tmp_path), out, [AUDITWHEEL], "", "m 1")
    assert entry["action"] == "repaired" and entry["policy"] == "manylinux_2_17_x86_64"
    assert entry["tools"][0]["sha256"] == "a" * 64
    assert entry["original_wheel"]["filename"] == "m-linux_x86_64.whl"


def test_a_repair_venv_holding_more_than_its_wheels_is_refused(tmp_path: Path) -> None:
    out = _report(tmp_path, action="repaired", env=[{"name": "auditwheel", "version": "6.8.2"},
                                                     {"name": "evil", "version": "1"}])
    with pytest.raises(BuildError, match="repair environment held"):
        repair.outcome(factories.settings(tmp_path), out, [AUDITWHEEL], "", "m 1")


def test_why_a_native_wheel_was_not_repaired_is_recorded(tmp_path: Path) -> None:
    out = _report(tmp_path, action="unavailable")
    entry = repair.outcome(factories.settings(tmp_path), out, [], REPAIR_NOT_LOCKED, "m 1")
    assert entry["action"] == "unavailable" and "not locked" in entry["reason"]
    off = factories.settings(tmp_path, build_repair="none")
    assert repair.outcome(off, out, [], "", "m 1")["action"] == "disabled"


def test_a_record_is_up_to_date_only_with_the_same_repair(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    repaired = _record(NATIVE, {"tool": "auditwheel", "action": "repaired",
                                "tools": [{"sha256": "a" * 64}]})
    assert repair.up_to_date(repaired, settings, ["a" * 64])
    assert not repair.up_to_date(repaired, settings, ["b" * 64])  # auditwheel changed
    assert not repair.up_to_date(repaired, factories.settings(tmp_path, build_repair="none"), [])
    unrepaired = _record("m-1-cp311-cp311-linux_x86_64.whl", None)  # made before repair existed
    assert not repair.up_to_date(unrepaired, settings, ["a" * 64])
    pure = _record("m-1-py3-none-any.whl", {"tool": "auditwheel", "action": "pure"})
    assert repair.up_to_date(pure, settings, ["b" * 64])


def test_a_wheel_in_both_venvs_stays_a_build_tool() -> None:
    packaging = InstalledTool("packaging", "26.3", "packaging-26.3-py3-none-any.whl", "p" * 64)
    record = _record(NATIVE, {"tool": "auditwheel", "action": "repaired",
                              "tools": [{"sha256": "a" * 64}, {"sha256": "p" * 64}]})
    record.build_tools[:] = [packaging, AUDITWHEEL, packaging]
    assert repair.build_env_shas(record) == ["p" * 64]


def _patchelf(tmp_path: Path) -> Patchelf:
    return Patchelf(tmp_path, "0.18.0", "e" * 64, {"package": "patchelf", "version": "0.18.0-1.4",
                                                   "suite": "trixie", "sha256": "c" * 64},
                    "sha256:" + "d" * 64)


def test_the_patchelf_the_host_built_is_recorded_by_the_host(tmp_path: Path) -> None:
    out = _report(tmp_path / "out", action="repaired", policy="manylinux_2_27_x86_64",
                  env=[{"name": "auditwheel", "version": "6.8.2"}], patchelf="patchelf 0.18.0",
                  patcher="patchelf")
    settings = factories.settings(tmp_path)
    entry = repair.outcome(settings, out, [AUDITWHEEL], "", "m 1", patchelf=_patchelf(tmp_path))
    assert entry["patchelf_build"]["sha256"] == "e" * 64
    assert entry["patchelf_build"]["source"]["sha256"] == "c" * 64
    assert "patchelf_build" not in entry["reported_by_build"]
    _report(tmp_path / "out", action="repaired", patchelf="patchelf 0.14.3",
            env=[{"name": "auditwheel", "version": "6.8.2"}])  # the build says another ran
    with pytest.raises(BuildError, match="host mounted patchelf 0.18.0"):
        repair.outcome(settings, out, [AUDITWHEEL], "", "m 1", patchelf=_patchelf(tmp_path))


def test_a_wheel_repaired_without_the_built_patchelf_is_repaired_again(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    before = _record(NATIVE, {"tool": "auditwheel", "action": "repaired",
                              "tools": [{"sha256": "a" * 64}]})
    assert repair.up_to_date(before, settings, ["a" * 64])  # none to be had: kept
    assert not repair.up_to_date(before, settings, ["a" * 64], "e" * 64)
    after = _record(NATIVE, {"tool": "auditwheel", "action": "repaired",
                             "tools": [{"sha256": "a" * 64}],
                             "patchelf_build": {"sha256": "e" * 64}})
    assert repair.up_to_date(after, settings, ["a" * 64], "e" * 64)
    assert not repair.up_to_date(after, settings, ["a" * 64], "f" * 64)


def test_grafted_libraries_are_named_by_the_image_package_they_came_from(
        tmp_path: Path) -> None:
    wheel = tmp_path / "ext-1.0-cp311-cp311-manylinux_2_27_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("ext/_c.cpython-311-x86_64-linux-gnu.so", b"extension")
        zf.writestr("ext.libs/libffi-983e72b7.so.8.1.2", b"ffi")
        zf.writestr("ext.libs/libyaml-0-0a1b2c3d.so.2.0.9", b"yaml")
        zf.writestr("ext.libs/libodd-12345678.so.1", b"not in the image")
    image = ImageRef("img", "sha256:" + "d" * 64, "debootstrap",
                     ["libffi8=3.4.4-1", "libyaml-0-2=0.2.5-1", "libc6=2.36-9"],
                     {"libffi8": "amd64", "libyaml-0-2": "amd64"})
    found = {e["path"]: e for e in repair.grafted(wheel, image)}
    assert list(found) == ["ext.libs/libffi-983e72b7.so.8.1.2",
                           "ext.libs/libodd-12345678.so.1",
                           "ext.libs/libyaml-0-0a1b2c3d.so.2.0.9"]
    ffi = found["ext.libs/libffi-983e72b7.so.8.1.2"]
    assert ffi["library"] == "libffi.so.8.1.2" and ffi["package"] == "libffi8"
    assert ffi["purl"] == "pkg:deb/debian/libffi8@3.4.4-1?arch=amd64&distro=debian-12"
    assert ffi["sha256"] == hashlib.sha256(b"ffi").hexdigest()
    assert found["ext.libs/libyaml-0-0a1b2c3d.so.2.0.9"]["package"] == "libyaml-0-2"
    assert "package" not in found["ext.libs/libodd-12345678.so.1"]  # named, not guessed
    # The Contents index, when it knows, wins; only a package the image holds is named.
    by_contents = repair.grafted(wheel, image, lambda kind, name: ["libc6", "libffi-other"])
    assert {e["path"]: e.get("package") for e in by_contents}[
        "ext.libs/libffi-983e72b7.so.8.1.2"] == "libc6"


BUILT = {"version": "0.18.0", "sha256": "e" * 64, "mounted_at": "/kit/patchelf",
         "source": {"package": "patchelf", "version": "0.18.0-1.4", "suite": "trixie",
                    "filename": "patchelf_0.18.0.orig.tar.gz", "sha256": "c" * 64}}


def test_the_provenance_names_the_patchelf_and_its_debian_source() -> None:
    record = _record(NATIVE, {"tool": "auditwheel", "action": "repaired",
                              "tools": [{"sha256": "a" * 64}], "patchelf_build": BUILT})
    found = {d["annotations"]["role"]: d for d in provenance.resolved_dependencies(record)}
    source = found["repair-tool-source"]
    assert source["uri"] == "pkg:deb/debian/patchelf@0.18.0-1.4?arch=source"
    assert source["digest"] == {"sha256": "c" * 64}
    assert found["repair-tool"]["digest"] == {"sha256": "e" * 64}
    plain = _record(NATIVE, {"tool": "auditwheel", "action": "repaired", "tools": []})
    assert provenance.repair_dependencies(plain) == []


def test_a_rebuild_uses_the_recorded_patchelf_or_says_why_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = ImageRef("img", "sha256:" + "d" * 64, "debootstrap")
    settings = factories.settings(tmp_path)
    asked: list[tuple[str, str, str]] = []

    def built(settings: object, image: ImageRef, pin: SourcePin) -> Patchelf:
        asked.append((pin.package, pin.version, pin.suite))
        return replace(_patchelf(tmp_path), source={**BUILT["source"]})  # type: ignore[arg-type]

    monkeypatch.setattr(patchelf, "for_image", built)
    assert reproduce._patchelf(settings, image, {"patchelf_build": BUILT}) is not None
    assert asked == [("patchelf", "0.18.0-1.4", "trixie")]
    assert reproduce._patchelf(settings, image, {"action": "repaired"}) is None
    other = {**BUILT, "sha256": "f" * 64}
    with pytest.raises(BuildError, match="is not the one recorded"):
        reproduce._patchelf(settings, image, {"patchelf_build": other})
