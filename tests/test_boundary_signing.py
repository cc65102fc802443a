"""Host -> index tree: what gets signed, and one bad wheel never stops the rest.

The admission gate (factory.admission) stands between a finished build and the
signer: a wheel is attested, signed and published only when it is what was
approved (the lock's current pin, one name and version everywhere, approved
requirements, members pip would install, no prebuilt artifact passed off as a
build). A refused wheel is recorded and skipped; every other wheel publishes.

Builds are staged by hand (no Docker): an sdist in the source cache, a wheel and
its build record in the wheels directory, a recipe and a recipes.lock entry.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet

import flows.rebuild as flow_module
from factory import ledger
from factory._internal.atomic import sha256_file
from factory.admission import Limits, admit_sdist
from factory.admission.model import AdmissionError
from factory.admission.prebuilt import scan_sdist
from factory.admission.wheel import read_wheel, startup_hooks
from factory.build.record import BuildRecord
from factory.config import Settings, load_settings
from factory.errors import RecipeError
from factory.index import Index
from factory.index.records import Layout
from factory.index.validation import load_record
from factory.lock import load_lock, save_lock
from factory.publish import RefusedError, refused_wheels, release, release_all
from factory.recipes import Recipe, parse_recipe
from factory.upstream.cache import cache_path
from tests import factories
from tests.approval_fixtures import approve
from tests.security_fixtures import gate, refused, stage_build

# Wheels with duplicate members are made on purpose: zipfile's warning is expected.
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56 + b"prebuilt object code"


# -- staged builds (tests.security_fixtures.stage_build) through the gate ---------------------
def statements(settings: Settings, record: BuildRecord) -> dict[str, dict[str, object]]:
    """predicateType -> predicate of the published, signed statements of a wheel."""
    path = (Layout(settings.index_dir).files(record.component)
            / (record.wheel_filename + ".intoto.jsonl"))
    found = {}
    for line in path.read_text().splitlines():
        payload = json.loads(base64.b64decode(json.loads(line)["dsseEnvelope"]["payload"]))
        found[payload["predicateType"]] = payload["predicate"]
    return found


def served(settings: Settings, project: str) -> list[str]:
    record = load_record(Layout(settings.index_dir), project)
    return [f.filename for f in record.files] if record else []


@pytest.fixture
def project(tmp_path: Path) -> Settings:
    return factories.settings(tmp_path, project="project")


# -- item 6: one bad wheel never stops the rest -----------------------------------------------
NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf")


def test_a_wheel_whose_metadata_says_requests_is_refused_and_the_six_others_publish(
        project: Settings) -> None:
    records = [stage_build(project, n, meta_name="requests" if n == "charlie" else None)
               for n in NAMES]
    with pytest.raises(RefusedError) as caught:
        release(project, records)
    error = caught.value
    assert error.message == "1 wheel(s) refused, 6 published"
    lines = error.diagnostics().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: 1 wheel(s) refused, 6 published")
    assert lines[1].startswith("  refused charlie-1.0.0-py3-none-any.whl: ")
    assert "METADATA names project 'requests'" in lines[1]
    assert "left unchanged" not in error.diagnostics()
    for name in NAMES:
        assert served(project, name) == ([] if name == "charlie"
                                         else [f"{name}-1.0.0-py3-none-any.whl"])
    assert served(project, "requests") == []
    (decision,) = [d for d in ledger.decisions(project, "charlie") if d["action"] == "refused"]
    assert "METADATA names project 'requests'" in decision["reason"]
    assert [r["component"] for r in refused_wheels(project)] == ["charlie"]

    # the rerun: nothing new is signed or published, the same refusal, no new ledger row
    pages = {p: p.read_bytes() for p in sorted(project.index_dir.rglob("*")) if p.is_file()}
    report = release_all(project, records)
    assert report.published == [] and [r.component for r in report.refused] == ["charlie"]
    assert {p: p.read_bytes() for p in sorted(project.index_dir.rglob("*"))
            if p.is_file()} == pages
    assert len([d for d in ledger.decisions(project, "charlie") if d["action"] == "refused"]) == 1


def test_an_index_refusal_is_one_wheel_too(project: Settings) -> None:
    """A PublishError from the index (a quarantined project) refuses only that wheel."""
    release(project, [stage_build(project, "alpha")])
    Index.of(project).set_status("alpha", "quarantined", "under review")
    later = stage_build(project, "alpha", "1.1.0")
    others = [stage_build(project, "bravo"), stage_build(project, "charlie")]
    report = release_all(project, [later, *others])
    assert [r.filename for r in report.refused] == [later.wheel_filename]
    assert "quarantined" in report.refused[0].reason
    assert sorted(p.project for p in report.published) == ["bravo", "charlie"]


def test_a_refused_version_stays_listed_when_another_version_publishes(
        project: Settings) -> None:
    bad = stage_build(project, "alpha", requires=["not-approved"])
    release_all(project, [bad])
    assert [r["version"] for r in refused_wheels(project)] == ["1.0.0"]
    good = stage_build(project, "alpha", "1.0.1")
    release(project, [good])
    assert [r["version"] for r in refused_wheels(project)] == ["1.0.0"]  # 1.0.0 still refused
    assert served(project, "alpha") == [good.wheel_filename]


def test_the_publish_command_prints_one_line_per_refused_wheel_and_exits_non_zero(
        tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "factory.toml").write_text('[factory]\nstate_dir = "state"\n')
    project = load_settings(root)
    stage_build(project, "alpha")
    stage_build(project, "bravo", files={"../escape.py": b"x = 1\n"})
    stage_build(project, "charlie", requires=["evil-package"])
    env = {**os.environ, "FACTORY_ROOT": str(root)}
    result = subprocess.run([sys.executable, "-m", "factory.cli", "publish"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "published alpha-1.0.0-py3-none-any.whl" in result.stdout
    assert "1 published" in result.stdout
    # no advisory source is reachable here: publish says so in one warning line of its own
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning: ")]
    assert all("advisories NOT CHECKED" in w for w in warnings) and len(warnings) <= 1
    lines = [ln for ln in result.stderr.strip().splitlines() if not ln.startswith("warning: ")]
    assert lines[0].startswith("error: 2 wheel(s) refused, 1 published (hint: ")
    assert lines[1].startswith("  refused bravo-1.0.0-py3-none-any.whl: ") and "'..'" in lines[1]
    assert lines[2].startswith("  refused charlie-1.0.0-py3-none-any.whl: ")
    assert "evil-package" in lines[2] and len(lines) == 3
    assert "Traceback" not in result.stderr


# -- item 5.1: the approved pin and one name, one version ------------------------------------
def test_an_sdist_whose_pkg_info_names_another_project_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha", sdist={"pkg_info_name": "requests"})
    refused(project, record, "PKG-INFO names project 'requests'", "approved alpha")


def test_an_sdist_whose_pkg_info_names_another_version_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha", sdist={"pkg_info_version": "9.9"})
    refused(project, record, "PKG-INFO says version '9.9'")


def test_a_pkg_info_with_two_names_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha", sdist={"pkg_info_name": "alpha\nName: requests"})
    refused(project, record, "PKG-INFO has a duplicate or invalid Name")


@pytest.mark.parametrize(("field", "value", "words"), [
    ("meta_name", "Requests", "METADATA names project 'Requests'"),
    ("meta_version", "1.0.1", "METADATA says version '1.0.1'"),
    ("filename", "other-1.0.0-py3-none-any.whl", "file name names project 'other'"),
])
def test_a_wheel_that_claims_another_name_or_version_is_refused(
        project: Settings, field: str, value: str, words: str) -> None:
    record = stage_build(project, "alpha", **{field: value})  # type: ignore[arg-type]
    refused(project, record, words)


def test_pep440_equal_versions_and_canonical_names_agree(project: Settings) -> None:
    record = stage_build(project, "alpha", meta_name="ALPHA", meta_version="1.0")
    assert gate(project, record) == ()


def test_a_stale_record_whose_source_the_lock_no_longer_pins_is_never_signed(
        project: Settings) -> None:
    """Upstream changed the bytes and the lock moved: the old wheel is not signed for it."""
    record = stage_build(project, "alpha")
    lock = load_lock(project)
    (entry,) = lock.components
    moved = dataclasses.replace(entry.sdist, sha256="ab" * 32)
    lock.components = [dataclasses.replace(entry, sdist=moved)]
    save_lock(project, lock)
    refused(project, record, "but the lock now pins alpha-1.0.0.tar.gz (sha256 abababab")
    report = release_all(project, [record])
    assert report.published == [] and served(project, "alpha") == []


def test_a_component_or_version_not_in_the_lock_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha")
    unlocked = dataclasses.replace(record, version="2.0")
    refused(project, unlocked, "alpha 2.0 is not in recipes.lock")
    project.lock_path.unlink()
    refused(project, record, "nothing is approved")


def test_a_recipe_changed_since_the_lock_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha")
    recipe = project.recipes_dir / "alpha.toml"
    recipe.write_text(recipe.read_text() + "allow_pth = true\n")
    refused(project, record, "alpha.toml changed since it was locked")


def test_a_cached_sdist_that_no_longer_hashes_to_the_pin_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha")
    cache_path(project, record.source.sha256, record.source.filename).write_bytes(b"other")
    refused(project, record, "not the locked")


# -- item 5.2: requirements ---------------------------------------------------------------------
def test_an_injected_requires_dist_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha", requires=["evil-package>=1"])
    refused(project, record, "requires evil-package>=1", "not an approved component")


def test_a_requirement_no_locked_version_satisfies_is_refused(project: Settings) -> None:
    stage_build(project, "bravo")
    record = stage_build(project, "alpha", requires=["bravo>=2"])
    refused(project, record, "requires bravo>=2, which no locked version satisfies")


def test_approved_requirements_pass(project: Settings) -> None:
    stage_build(project, "bravo")
    record = stage_build(project, "alpha", requires=["Bravo>=1.0", "bravo; extra == 'x'"])
    assert gate(project, record) == ()


def test_an_extra_requirement_injected_by_the_build_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha", requires=['evil; extra == "speed"'])
    refused(project, record, "neither approved nor declared by its sdist's metadata")


def test_an_extra_requirement_the_sdist_declares_is_allowed(project: Settings) -> None:
    declared = ['Babel >= 2.7 ; extra == "i18n"', "tomli>=1; python_version < '3.11'"]
    record = stage_build(project, "alpha", sdist={"requires": declared}, requires=[
        'babel>=2.7; extra == "i18n"', 'tomli>=1; python_version < "3.11"'])
    assert gate(project, record) == ()


def test_a_declared_extra_with_another_specifier_is_still_injected(project: Settings) -> None:
    record = stage_build(project, "alpha", sdist={"requires": ['babel>=2.7; extra == "i18n"']},
                         requires=['babel>=0.1; extra == "i18n"'])
    refused(project, record, "babel>=0.1")


OLD_SETUPTOOLS = {"alpha.egg-info/requires.txt":  # its PKG-INFO lists no Requires-Dist
                  "\n[:python_version < \"3.5\"]\ntyping\n\n[dev]\ndocopt>=0.6\n"}


def test_what_an_old_sdists_egg_info_declares_is_declared(project: Settings) -> None:
    """setuptools before 2017 wrote requirements to egg-info/requires.txt only: those are
    the sdist's declaration (10 of the catalogue's 14 refusals were such wheels)."""
    record = stage_build(project, "alpha", sdist={"files": OLD_SETUPTOOLS}, requires=[
        'docopt>=0.6; extra == "dev"', 'typing; python_version < "3.5"'])
    assert gate(project, record) == ()


def test_an_old_sdist_still_refuses_what_its_egg_info_does_not_declare(
        project: Settings) -> None:
    record = stage_build(project, "alpha", sdist={"files": OLD_SETUPTOOLS},
                         requires=['evil; extra == "dev"'])
    refused(project, record, "evil", "neither approved nor declared")


def test_pkg_info_requires_dist_wins_over_egg_info(project: Settings) -> None:
    files = {"alpha.egg-info/requires.txt": "[dev]\nevil\n"}
    record = stage_build(project, "alpha", sdist={"files": files, "requires": ["six"]},
                         requires=['evil; extra == "dev"'])
    refused(project, record, "evil")


@pytest.mark.parametrize("line", [
    "bravo @ https://evil.example/bravo-1.0.tar.gz",
    'bravo; extra == "x" or python_version >= "3"',  # applies with no extra: must be locked
    "not a requirement !!",
])
def test_url_unlocked_and_invalid_requirements_are_refused(project: Settings,
                                                            line: str) -> None:
    record = stage_build(project, "alpha", requires=[line])
    refused(project, record)


# -- item 5.3: members ----------------------------------------------------------------------------
@pytest.mark.parametrize(("member", "words"), [
    ("../escape.py", "'..'"),
    ("alpha/../../escape.py", "'..'"),
    ("/etc/cron.d/escape", "absolute path"),
    ("C:/Windows/escape.py", "drive letter"),
    ("alpha\\..\\escape.py", "backslash"),
    ("alpha//x.py", "empty path component"),
    ("./alpha/x.py", "'.'"),
    ("alpha/\x1b[2Jx.py", "control"),
])
def test_members_pip_would_not_install_are_refused(project: Settings, member: str,
                                                   words: str) -> None:
    record = stage_build(project, "alpha", files={"alpha/__init__.py": b"", member: b"x = 1\n"})
    refused(project, record, words)


def test_a_symlink_member_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha", symlinks={"alpha/passwd": "/etc/passwd"})
    refused(project, record, "symbolic link")


@pytest.mark.parametrize("duplicate", ["alpha/__init__.py", "ALPHA/__init__.py",
                                       "alpha/__init__.py/x"])
def test_duplicate_and_colliding_members_are_refused(project: Settings, duplicate: str) -> None:
    record = stage_build(project, "alpha")
    wheel = project.wheels_dir / record.wheel_filename
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr(duplicate, b"shadow = 1\n")
    record = dataclasses.replace(record, wheel_sha256=sha256_file(wheel))
    refused(project, record)


@pytest.mark.parametrize("member", [
    "evil.pth", "alpha/nested.PTH", "alpha-1.0.0.data/purelib/evil.pth",
    "alpha-1.0.0.data/platlib/evil.pth", "alpha-1.0.0.data/data/lib/python3.11/site-packages/x.pth",
    "sitecustomize.py", "usercustomize/__init__.py", "alpha-1.0.0.data/purelib/sitecustomize.py",
    "alpha-1.0.0.data/data/lib/python3.11/site-packages/sitecustomize.pyc",
])
def test_startup_hooks_are_refused_unless_the_recipe_allows_them(project: Settings,
                                                                 member: str) -> None:
    record = stage_build(project, "alpha", files={"alpha/__init__.py": b"", member: b"import os\n"})
    refused(project, record, "start-up hook", "allow_pth = true")


def test_an_allowed_pth_is_signed_and_recorded_in_provenance_and_sbom(project: Settings) -> None:
    record = stage_build(project, "alpha", recipe="allow_pth = true\n",
                         files={"alpha/__init__.py": b"", "alpha.pth": b"import alpha\n"})
    release(project, [record])
    predicates = statements(project, record)
    digest = hashlib.sha256(b"import alpha\n").hexdigest()
    byproducts = predicates["https://slsa.dev/provenance/v1"]["runDetails"]["byproducts"]  # type: ignore[index]
    allowed = [b for b in byproducts if b["annotations"]["role"] == "allowance"]
    assert allowed == [{"name": "wheel:alpha.pth", "digest": {"sha256": digest},
                        "annotations": {"role": "allowance", "rule": "allow_pth",
                                        "allowedBy": "true", "location": "wheel",
                                        "what": "start-up hook (.pth)"}}]
    sbom = predicates["https://cyclonedx.org/bom"]
    files = [c for c in sbom["formulation"][0]["components"] if c["type"] == "file"]  # type: ignore[index]
    assert [(c["name"], c["hashes"][0]["content"]) for c in files] == [("alpha.pth", digest)]


@pytest.mark.parametrize("damage", ["unlisted", "bad-hash", "listed-but-missing", "md5"])
def test_a_record_that_disagrees_with_the_archive_is_refused(project: Settings,
                                                             damage: str) -> None:
    record = stage_build(project, "alpha")
    wheel = project.wheels_dir / record.wheel_filename
    with zipfile.ZipFile(wheel) as archive:
        content = {i.filename: archive.read(i) for i in archive.infolist()}
    name = "alpha-1.0.0.dist-info/RECORD"
    rows = content[name].decode()
    if damage == "unlisted":
        content["alpha/extra.py"] = b"x = 1\n"
    elif damage == "bad-hash":
        content["alpha/__init__.py"] = b"VALUE = 2\n"
    elif damage == "listed-but-missing":
        rows += factories.record_row("alpha/ghost.py", b"") + "\n"
    else:
        rows = rows.replace("alpha/__init__.py,sha256=", "alpha/__init__.py,md5=")
    content[name] = rows.encode()
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in content.items():
            archive.writestr(member, data)
    refused(project, dataclasses.replace(record, wheel_sha256=sha256_file(wheel)), "RECORD")


def test_a_wheel_without_record_is_refused(project: Settings) -> None:
    refused(project, stage_build(project, "alpha", record=False), "RECORD")


# -- item 5.4: prebuilt artifacts -------------------------------------------------------------
def test_an_sdist_that_ships_a_shared_object_is_refused(project: Settings) -> None:
    record = stage_build(project, "alpha", sdist={"files": {"src/_speed.so": ELF}},
                         files={"alpha/__init__.py": b"", "alpha/_speed.so": ELF})
    refused(project, record, "ships prebuilt src/_speed.so (ELF object)",
            'allow_prebuilt = ["src/_speed.so"]')


def test_a_binary_is_found_by_its_magic_bytes_not_only_its_name(project: Settings) -> None:
    record = stage_build(project, "alpha", sdist={"files": {"data/readme.txt": ELF}})
    refused(project, record, "data/readme.txt (ELF object)")


def test_an_allowed_prebuilt_copy_is_signed_and_recorded(project: Settings) -> None:
    record = stage_build(project, "alpha", recipe='allow_prebuilt = ["src/*.so"]\n',
                         sdist={"files": {"src/_speed.so": ELF}},
                         files={"alpha/__init__.py": b"", "alpha/_speed.so": ELF})
    release(project, [record])
    digest = hashlib.sha256(ELF).hexdigest()
    byproducts = statements(project, record)["https://slsa.dev/provenance/v1"][
        "runDetails"]["byproducts"]  # type: ignore[index]
    allowed = {(b["name"], b["digest"]["sha256"], b["annotations"]["allowedBy"],
                b["annotations"]["what"])
               for b in byproducts if b["annotations"]["role"] == "allowance"}
    assert allowed == {("sdist:src/_speed.so", digest, "src/*.so", "ELF object"),
                       ("wheel:alpha/_speed.so", digest, "src/*.so",
                        "copy of prebuilt sdist file src/_speed.so")}
    sbom = statements(project, record)["https://cyclonedx.org/bom"]
    names = {c["name"] for c in sbom["formulation"][0]["components"]  # type: ignore[index]
             if c["type"] == "file"}
    assert names == {"src/_speed.so", "alpha/_speed.so"}


def test_a_binary_compiled_in_the_build_needs_no_allowance(project: Settings) -> None:
    record = stage_build(project, "alpha", files={"alpha/__init__.py": b"", "alpha/_speed.so": ELF})
    assert gate(project, record) == ()


def test_a_wheel_the_sdist_ships_and_the_backend_copies_is_a_build_failure(
        project: Settings, tmp_path: Path) -> None:
    shipped = factories.wheel(tmp_path / "shipped", "alpha")
    record = stage_build(project, "alpha", recipe='allow_prebuilt = ["dist/*"]\n',
                         sdist={"files": {f"dist/{shipped.name}": shipped.read_bytes()}})
    assert sha256_file(project.wheels_dir / record.wheel_filename) == sha256_file(shipped)
    refused(project, record, "the built wheel is the wheel the sdist ships",
            "returned a prebuilt artifact")  # whatever the recipe allows
    (project.recipes_dir / "alpha.toml").write_text('name = "alpha"\nversions = "==1.0.0"\n')
    refused(project, approve(project, record), "ships prebuilt dist/alpha-1.0.0")


def test_a_repackaged_shipped_wheel_is_refused_whatever_its_metadata(
        project: Settings, tmp_path: Path) -> None:
    payload = {"alpha/__init__.py": b"from ._impl import *\n", "alpha/_impl.py": b"X = 42\n"}
    shipped = factories.wheel(tmp_path / "shipped", "alpha", files=payload, requires=["x"])
    record = stage_build(project, "alpha", recipe='allow_prebuilt = ["tests/*"]\n', files=payload,
                         sdist={"files": {"tests/fixture.whl": shipped.read_bytes()}})
    refused(project, record, "is the wheel the sdist ships as tests/fixture.whl")


def test_a_file_extracted_from_a_shipped_archive_needs_the_allowance_and_is_recorded(
        project: Settings) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("blob/engine.bin", b"opaque engine 42")
    record = stage_build(project, "alpha", recipe='allow_prebuilt = ["vendor/*.zip"]\n',
                         sdist={"files": {"vendor/engine.zip": inner.getvalue()}},
                         files={"alpha/__init__.py": b"", "alpha/engine.bin": b"opaque engine 42"})
    (_sdist, copy) = gate(project, record)
    assert copy.path == "alpha/engine.bin"  # type: ignore[attr-defined]
    assert copy.what == "extracted from prebuilt sdist archive vendor/engine.zip"  # type: ignore[attr-defined]


def test_a_tar_in_the_sdist_holding_a_binary_is_prebuilt(project: Settings) -> None:
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        info = tarfile.TarInfo("lib/libx.so")
        info.size = len(ELF)
        tar.addfile(info, io.BytesIO(ELF))
    record = stage_build(project, "alpha",
                         sdist={"files": {"third_party/x.tar.gz": inner.getvalue()}})
    refused(project, record, "third_party/x.tar.gz (tar archive holding prebuilt 'lib/libx.so')")


def test_the_sdist_scan_can_run_before_a_build(project: Settings, tmp_path: Path) -> None:
    sdist = factories.sdist(tmp_path, "alpha", files={"src/_speed.so": ELF})
    recipe = RECIPE
    with pytest.raises(AdmissionError, match="ships prebuilt src/_speed.so"):
        admit_sdist(sdist, recipe)
    allowed = admit_sdist(sdist, dataclasses.replace(recipe, allow_prebuilt=("src/*",)))
    assert [(a.location, a.path) for a in allowed] == [("sdist", "src/_speed.so")]


def test_an_archive_bomb_in_the_sdist_is_refused_not_read(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        for i in range(50):
            tar.addfile(tarfile.TarInfo(f"empty/{i}"), io.BytesIO(b""))
    sdist = factories.sdist(tmp_path, "alpha", files={"data.tar.gz": inner.getvalue()})
    with pytest.raises(AdmissionError, match="more than the gate inspects"):
        scan_sdist(sdist, Limits(max_members=20))


# -- recipes: the new keys are strict too ----------------------------------------------------
@pytest.mark.parametrize(("body", "words"), [
    ("allow_pth = 1\n", "field 'allow_pth': expected bool"),
    ('allow_prebuilt = "x.so"\n', "field 'allow_prebuilt': expected list"),
    ('allow_prebuilt = ["*"]\n', "would allow every file"),
    ('allow_prebuilt = ["../x.so"]\n', "not a relative path glob"),
    ('allow_prebuilt = ["/abs/x.so"]\n', "not a relative path glob"),
    ("allow_pht = true\n", "unknown key"),
])
def test_allowance_keys_are_parsed_strictly(tmp_path: Path, body: str, words: str) -> None:
    path = tmp_path / "recipes" / "alpha.toml"
    path.parent.mkdir()
    path.write_text(f'name = "alpha"\nversions = ">=1"\n{body}')
    with pytest.raises(RecipeError, match=words):
        parse_recipe(path, path.parent)


# -- property: wheel members -----------------------------------------------------------------
SEGMENTS = st.sampled_from(["alpha", "x.py", "..", ".", "", "a\\b", "C:", "évian", "x.pth",
                            "sitecustomize.py", "ALPHA", "lib", "\u202eyp.txt", "data",
                            "alpha-1.0.0.data", "purelib", "alpha-1.0.0.dist-info"])
NAMES_ = st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join) | st.text(max_size=12)
KINDS = st.sampled_from(["file", "file", "file", "dir", "symlink", "fifo"])
MEMBERS = st.lists(st.tuples(st.sampled_from(["", "", "/"]), NAMES_, KINDS), max_size=6)

RECIPE = Recipe(name="alpha", versions=SpecifierSet(">=0"), path=Path("alpha.toml"),
                digest="sha256:0")


def _oracle_ok(name: str, mode: int) -> bool:
    """Independent of the gate: what pip (or an installer on any OS) would refuse."""
    parts = name.rstrip("/").split("/")
    kind = stat.S_IFMT(mode)  # 0: no type recorded, a regular file to every installer
    return not (name.startswith("/") or "\\" in name or ".." in parts
                or (len(name) > 1 and name[1] == ":") or name.lower().endswith(".pth")
                or kind not in (0, stat.S_IFREG, stat.S_IFDIR))


def _property_wheel(path: Path, members: list[tuple[str, str, str]]) -> None:
    dist_info = "alpha-1.0.0.dist-info"
    content: list[tuple[zipfile.ZipInfo, bytes]] = []
    for prefix, name, kind in members:
        full = prefix + name + ("/" if kind == "dir" and not name.endswith("/") else "")
        info = zipfile.ZipInfo(full, (2024, 1, 1, 0, 0, 0))
        info.create_system = 3
        mode = {"file": stat.S_IFREG | 0o644, "dir": stat.S_IFDIR | 0o755,
                "symlink": stat.S_IFLNK | 0o777, "fifo": stat.S_IFIFO | 0o644}[kind]
        info.external_attr = mode << 16
        content.append((info, b"" if kind == "dir" else b"data " + full.encode("utf-8", "replace")))
    meta = b"Metadata-Version: 2.4\nName: alpha\nVersion: 1.0.0\n\n"
    wheel_file = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    for name, data in ((f"{dist_info}/METADATA", meta), (f"{dist_info}/WHEEL", wheel_file)):
        content.append((zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data))
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    for info, data in content:
        if not info.filename.endswith("/"):
            writer.writerow([info.filename, factories.record_hash(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    content.append((zipfile.ZipInfo(f"{dist_info}/RECORD", (2024, 1, 1, 0, 0, 0)),
                    rows.getvalue().encode()))
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in content:
            archive.writestr(info, data)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(members=MEMBERS)
def test_the_gate_never_accepts_a_member_pip_would_refuse(tmp_path: Path,
                                                          members: list[tuple[str, str, str]]
                                                          ) -> None:
    wheel = tmp_path / "alpha-1.0.0-py3-none-any.whl"
    try:
        _property_wheel(wheel, members)
    except (UnicodeEncodeError, ValueError):
        return  # a name zipfile itself cannot write
    try:
        contents = read_wheel(wheel)
        startup_hooks(contents, RECIPE)
    except AdmissionError as exc:
        assert "\n" not in exc.message
        return
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            assert _oracle_ok(info.filename, info.external_attr >> 16), info.filename
            root = tmp_path / "site"
            target = (root / info.filename).resolve()
            assert target == root.resolve() or root.resolve() in target.parents
        names = [i.filename.rstrip("/") for i in archive.infolist()]
        assert len(set(names)) == len(names)


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=2000), flip=st.integers(min_value=0, max_value=2000),
       byte=st.integers(min_value=0, max_value=255))
def test_a_damaged_wheel_is_refused_never_a_crash(tmp_path: Path, cut: int, flip: int,
                                                  byte: int) -> None:
    good = factories.wheel(tmp_path / "good", "alpha",
                      files={"alpha/__init__.py": b"VALUE = 1\n" * 50})
    data = bytearray(good.read_bytes())
    data[flip % len(data)] = byte
    damaged = tmp_path / "alpha-1.0.0-py3-none-any.whl"
    damaged.write_bytes(bytes(data[:len(data) - cut % len(data)]))
    with contextlib.suppress(AdmissionError):  # a damage that leaves a valid wheel passes
        read_wheel(damaged)


# -- the rebuild flow's publish step -----------------------------------------------------------
def test_the_rebuild_flow_publishes_the_others_and_fails_naming_the_refused_wheel(
        tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow's build stages are stubbed (no Docker): it is handed finished builds."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "factory.toml").write_text('[factory]\nstate_dir = "state"\n')
    monkeypatch.setenv("FACTORY_ROOT", str(root))
    project = load_settings(root)
    records = [stage_build(project, n, meta_name="requests" if n == "bravo" else None)
               for n in ("alpha", "bravo", "charlie")]
    monkeypatch.setattr(flow_module, "fetch_and_plan",
                        lambda *_: (SimpleNamespace(order=[], nodes={}), {}))
    monkeypatch.setattr(flow_module, "run_plan",
                        lambda *_, **__: SimpleNamespace(records=records, failed={}, skipped={}))
    with pytest.raises(RefusedError) as caught:
        flow_module.rebuild()
    assert caught.value.message == "1 wheel(s) refused, 2 published"
    assert [r.filename for r in caught.value.report.refused] == [records[1].wheel_filename]
    assert served(project, "alpha") and served(project, "charlie") and not served(project, "bravo")


ARCHIVE_BYTES = st.sampled_from([b"PK\x03\x04junk", b"PK\x05\x06" + b"\x00" * 18,
                                 b"\x1f\x8b\x08junk", ELF[:3], b"", b"MZ" + b"\x00" * 62],
                                ) | st.binary(max_size=64)
SDIST_NAMES = st.sampled_from(["a.zip", "b.tar.gz", "c.whl", "d.tgz", "e.so", "f.txt", "g.tar"])


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(members=st.lists(st.tuples(SDIST_NAMES, ARCHIVE_BYTES, st.booleans()), max_size=4))
def test_attacker_files_in_the_sdist_never_crash_the_scan(
        tmp_path: Path, members: list[tuple[str, bytes, bool]]) -> None:
    """Truncated or fake archives, nested real ones: a refusal or a scan, never a crash."""
    content: dict[str, bytes] = {}
    for i, (name, data, nest) in enumerate(members):
        if nest:  # a real archive holding the bytes, then maybe cut short
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr(f"inner/{name}", data)
            data = buffer.getvalue()[: len(buffer.getvalue()) - len(data) % 7]
        content[f"{i}/{name}"] = data
    sdist = factories.sdist(tmp_path / str(len(list(tmp_path.iterdir()))), "alpha", files=content)
    try:
        scan = scan_sdist(sdist)
    except AdmissionError as exc:
        assert "\n" not in exc.message
        return
    assert set(scan.prebuilt) <= set(scan.files)
