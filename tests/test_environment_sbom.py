"""SBOMs for scanners, the OpenVEX feed and pylock.toml (issue 20, items 2 and 5).

Against one really released index (alpha and beta 1.0.0, signed): `factory sbom` of a
requirements file, a lock and a venv; the signed OpenVEX feed; `factory export
pylock` checked by `factory verify`. A scanner-style match of an SBOM's purls
against the OSV snapshot; the npm CycloneDX library validating every SBOM; uv and
pip installing from the exported pylock.toml against the served index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from dataclasses import replace
from pathlib import Path

import pytest
from packageurl import PackageURL

from factory.attest.environment import environment_sbom
from factory.attest.sbom import build_sbom, sbom_bytes, validate
from factory.config import Settings
from factory.environment import TargetError, match, read_pins, requirements_pins
from factory.export import ExportError, pylock, pylock_data
from factory.index import Index
from factory.sign.pep740 import factory_publisher
from factory.upstream.advisories import AdvisoryDatabase
from factory.verify.targets import file_items
from factory.verify.view import IndexView
from factory.vex import ENVELOPE_FILE, VEX_FILE, publish_vex, verify_vex, vex_bytes, vex_document
from tests import factories
from tests.attest_fixtures import make_record
from tests.security_fixtures import released_copy

REPO = Path(__file__).resolve().parents[1]
OSV = REPO.parent / "shared" / "advisory-database"
URL = "http://index.example:8700"


@pytest.fixture
def site(released_base: Path, tmp_path: Path) -> Settings:
    return released_copy(released_base, tmp_path)


def _requirements(tmp_path: Path, text: str = "alpha==1.0.0\nbeta==1.0.0\n") -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _env_sbom(site: Settings, target: Path) -> dict:
    _, pins = read_pins(target)
    return environment_sbom(match(IndexView(site.index_dir), pins), URL, target.name)


# -- reading a target ---------------------------------------------------------------------
def test_every_bad_requirements_line_is_named_once() -> None:
    text = "alpha==1.0\n# a comment\nbeta>=1\n-e .\nhttps://x.invalid/a.whl\ngamma==1.*\n"
    with pytest.raises(TargetError) as caught:
        requirements_pins(text, "req.txt")
    message = caught.value.message
    assert "4 line(s)" in message
    for number in (3, 4, 5, 6):
        assert f"req.txt:{number}:" in message
    assert "req.txt:1" not in message


def test_pins_with_hashes_and_markers_are_read() -> None:
    pins = requirements_pins("Alpha==1.0 --hash=sha256:ab ; python_version>'3'\n", "r")
    assert [(p.name, p.version, p.origin) for p in pins] == [("alpha", "1.0", "r:1")]


def test_a_huge_or_odd_target_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"a==1\n" * (1 << 20))
    with pytest.raises(TargetError, match="at most"):
        read_pins(big)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(TargetError, match="not a regular file"):
        read_pins(tmp_path / "fifo")


# -- factory sbom -------------------------------------------------------------------------
def test_environment_sbom_lists_served_wheels_with_hashes_and_provenance(
        site: Settings, tmp_path: Path) -> None:
    document = _env_sbom(site, _requirements(tmp_path))
    served = {p.filename: p for p in IndexView(site.index_dir).all()}
    components = document["components"]
    assert {c["name"] for c in components} == {"alpha", "beta"}
    for component in components:
        purl = PackageURL.from_string(component["purl"])
        filename = purl.qualifiers["file_name"]  # type: ignore[index]
        assert purl.version == "1.0.0"
        assert component["hashes"] == [{"alg": "SHA-256",
                                        "content": served[filename].entry.sha256}]
        links = {r["type"]: r["url"] for r in component["externalReferences"]}
        wheel = f"{URL}/files/{purl.name}/{filename}"
        assert links == {"distribution": wheel, "attestation": f"{wheel}.provenance",
                         "bom": f"{wheel}.cdx.json", "build-meta": f"{wheel}.build.json"}
    validate(document)
    again = _env_sbom(site, _requirements(tmp_path))
    assert sbom_bytes(again) == sbom_bytes(document)  # reproducible bytes


def test_a_pin_the_index_does_not_serve_is_listed_and_marked(site: Settings,
                                                              tmp_path: Path) -> None:
    target = _requirements(tmp_path, "alpha==1.0.0\nnothere==2.0\n")
    _, pins = read_pins(target)
    found = match(IndexView(site.index_dir), pins)
    assert [m.problem is None for m in found] == [True, False]
    document = environment_sbom(found, URL, target.name)
    [missing] = [c for c in document["components"] if c["name"] == "nothere"]
    assert missing["purl"] == "pkg:pypi/nothere@2.0"
    assert any(p["name"] == "artifact-factory:not-served" for p in missing["properties"])


def test_lock_and_venv_targets(site: Settings, tmp_path: Path) -> None:
    lock = tmp_path / "recipes.lock"
    lock.write_text(site.lock_path.read_text(encoding="utf-8"), encoding="utf-8")
    kind, pins = read_pins(lock)
    assert kind == "lock" and {p.name for p in pins} >= {"alpha", "beta"}
    site_packages = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    info = site_packages / "alpha-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: alpha\nVersion: 1.0.0\n")
    (info / "RECORD").write_text("")
    kind, pins = read_pins(tmp_path / "venv")
    assert kind == "venv" and [(p.name, p.version) for p in pins] == [("alpha", "1.0.0")]
    [found] = match(IndexView(site.index_dir), pins)
    assert len(found.files) == 1 and found.problem is None


def test_cli_sbom_writes_the_document(site: Settings, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from factory.cli import app
    from factory.cli._app import _State

    monkeypatch.setattr(_State, "settings", site)
    out = tmp_path / "env.cdx.json"
    done = CliRunner().invoke(app, ["sbom", str(_requirements(tmp_path)), "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert {c["name"] for c in json.loads(out.read_text())["components"]} == {"alpha", "beta"}
    bad = CliRunner().invoke(app, ["sbom", str(_requirements(tmp_path, "alpha>=1\n"))])
    assert isinstance(bad.exception, TargetError) and bad.exception.exit_code == 2
    assert "requirements.txt:1" in bad.exception.message


# -- a scanner's view: purls against the OSV snapshot ------------------------------------
def _osv_matches(document: dict) -> set[tuple[str, str, str]]:
    """What a scanner finds: each versioned pkg:pypi purl in the SBOM (components and
    formulation) looked up in the OSV snapshot."""
    db = AdvisoryDatabase(OSV)
    purls = [c.get("purl") for c in document.get("components", [])]
    purls.append(document["metadata"]["component"].get("purl"))
    found = set()
    for text in filter(None, purls):
        purl = PackageURL.from_string(text)
        if purl.type == "pypi" and purl.version:
            found |= {(purl.name, purl.version, a.id)
                      for a in db.affecting(purl.name, purl.version)}
    return found


@pytest.mark.skipif(not OSV.is_dir(), reason="no OSV snapshot at ../shared/advisory-database")
def test_scanner_finds_the_advisories_of_the_sbom_purls(tmp_path: Path) -> None:
    wheel = factories.wheel(tmp_path / "wheels", "requests", "2.19.0",
                            requires=("urllib3<1.24,>=1.21.1", "idna<2.8,>=2.5"))
    record = make_record(wheel, factories.sdist(tmp_path / "sources", "requests", "2.19.0"))
    pins = {"urllib3": "1.23", "idna": "2.7"}
    document = build_sbom(wheel, record,
                          pins=lambda name, spec: pins.get(name) if spec.contains(
                              pins.get(name, "0")) else None)
    found = _osv_matches(document)
    assert ("requests", "2.19.0", "PYSEC-2018-28") in found  # the wheel itself
    assert any(name == "urllib3" and version == "1.23" for name, version, _ in found)
    unversioned = build_sbom(wheel, record)  # what a scanner got before: nothing to match
    assert not any(n == "urllib3" for n, _, _ in _osv_matches(unversioned))


# -- the OpenVEX feed -----------------------------------------------------------------------
def test_vex_says_affected_fixed_and_not_affected(site: Settings) -> None:
    index = Index.of(site)
    index.record_advisories("alpha", "1.0.0", [{"id": "PYSEC-0000-1", "summary": "bad",
                                                "aliases": ["CVE-0000-1"], "fixed": "1.1"}],
                            "2026-01-02T00:00:00Z")
    index.yank("alpha", "1.0.0", "advisory PYSEC-0000-1")
    index.record_advisories("beta", "1.0.0", [], "2026-01-03T00:00:00Z")
    records = [r for p in index.projects() if (r := index.record(p)) is not None]
    document = vex_document(records, None, URL)
    [statement] = document["statements"]
    assert statement["status"] == "affected"
    assert statement["products"][0]["@id"] == "pkg:pypi/alpha@1.0.0"
    assert "yanked" in statement["action_statement"] and "1.1" in statement["action_statement"]
    assert statement["vulnerability"]["aliases"] == ["CVE-0000-1"]
    assert vex_bytes(document) == vex_bytes(vex_document(records, None, URL))


def test_vex_from_the_database_covers_versions_not_affected(tmp_path: Path,
                                                             site: Settings) -> None:
    osv = tmp_path / "osv" / "beta"
    osv.mkdir(parents=True)
    (osv / "PYSEC-0000-2.json").write_text(json.dumps({
        "id": "PYSEC-0000-2", "summary": "old beta", "affected": [{
            "package": {"ecosystem": "PyPI", "name": "beta"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                        {"fixed": "0.9"}]}]}]}))
    index = Index.of(site)
    index.record_advisories("beta", "1.0.0", [], "2026-01-03T00:00:00Z")
    records = [r for p in index.projects() if (r := index.record(p)) is not None]
    document = vex_document(records, AdvisoryDatabase(tmp_path / "osv"), URL)
    [statement] = document["statements"]
    assert statement["status"] == "fixed"
    assert statement["products"][0]["@id"] == "pkg:pypi/beta@1.0.0"


def test_vex_feed_is_signed_served_and_verifies(site: Settings) -> None:
    index = Index.of(site)
    index.record_advisories("alpha", "1.0.0", [{"id": "PYSEC-0000-1", "fixed": ""}],
                            "2026-01-02T00:00:00Z")
    assert publish_vex(site, index, None)
    trust = site.index_dir / "trust"
    data = (trust / VEX_FILE).read_bytes()
    envelope = json.loads((trust / ENVELOPE_FILE).read_text())
    pem = (trust / "answers.pub.pem").read_bytes()
    assert verify_vex(data, envelope, pem)["statements"][0]["status"] == "affected"
    from factory.errors import VerificationError

    with pytest.raises(VerificationError, match="another"):
        verify_vex(data.replace(b"affected", b"fixed"), envelope, pem)


# -- pylock.toml (PEP 751) -------------------------------------------------------------------
def _pylock(site: Settings, tmp_path: Path, base: str = URL) -> Path:
    _, pins = read_pins(_requirements(tmp_path))
    path = tmp_path / "pylock.toml"
    path.write_text(pylock(match(IndexView(site.index_dir), pins), base,
                           factory_publisher(site)), encoding="utf-8")
    return path


def test_pylock_names_wheels_hashes_and_the_factory_identity(site: Settings,
                                                              tmp_path: Path) -> None:
    data = tomllib.loads(_pylock(site, tmp_path).read_text())
    assert data["lock-version"] == "1.0"
    served = {p.filename: p.entry.sha256 for p in IndexView(site.index_dir).all()}
    for package in data["packages"]:
        assert package["attestation-identities"] == [factory_publisher(site)]
        for wheel in package["wheels"]:
            assert wheel["hashes"] == {"sha256": served[wheel["name"]]}
            assert wheel["url"] == f"{URL}/files/{package['name']}/{wheel['name']}"


def test_pylock_refuses_a_pin_nobody_serves(site: Settings, tmp_path: Path) -> None:
    _, pins = read_pins(_requirements(tmp_path, "nothere==1.0\n"))
    with pytest.raises(ExportError, match="nothere"):
        pylock_data(match(IndexView(site.index_dir), pins), URL, factory_publisher(site))


def test_verify_pylock_checks_hashes_and_identities(site: Settings, tmp_path: Path) -> None:
    path = _pylock(site, tmp_path)
    view = IndexView(site.index_dir)
    assert all(item.problem is None for item in file_items(view, path))
    data = tomllib.loads(path.read_text())
    data["packages"][0]["attestation-identities"] = [
        {"kind": "GitHub", "repository": "someone/else", "workflow": "release.yml"}]
    import tomli_w

    path.write_text(tomli_w.dumps(data))
    problems = [item.problem for item in file_items(view, path) if item.problem]
    assert len(problems) == len(data["packages"][0]["wheels"])
    assert "attestation-identities" in problems[0]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1")
    return env


@pytest.mark.slow
def test_uv_installs_from_the_exported_pylock(site: Settings, tmp_path: Path) -> None:
    from tests.pipeline_fixtures import serve_index

    uv = REPO / ".venv" / "bin" / "uv"
    if not uv.is_file():
        pytest.skip("uv is not in the venv")
    env = _clean_env()
    subprocess.run([str(uv), "venv", "--no-config", "-q", str(tmp_path / "venv")], check=True,
                   env=env)
    with serve_index(site) as base:
        lock = _pylock(site, tmp_path, base)
        done = subprocess.run([str(uv), "pip", "install", "--no-config", "--no-cache",
                               "--python", str(tmp_path / "venv" / "bin" / "python"),
                               "-r", str(lock)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([str(uv), "pip", "list", "--no-config", "--format", "json",
                             "--python", str(tmp_path / "venv" / "bin" / "python")],
                            capture_output=True, text=True, env=env, check=True)
    assert {p["name"]: p["version"] for p in json.loads(listed.stdout)} == {
        "alpha": "1.0.0", "beta": "1.0.0"}


PIP_WITH_PYLOCK = "pip==26.1"  # the first pip that reads -r pylock.toml (experimental)


@pytest.mark.network
@pytest.mark.slow
def test_pip_installs_from_the_exported_pylock(site: Settings, tmp_path: Path) -> None:
    from tests.pipeline_fixtures import serve_index

    env = _clean_env()
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    upgraded = subprocess.run([python, "-m", "pip", "install", "-q", PIP_WITH_PYLOCK],
                              capture_output=True, text=True, env=env)
    if upgraded.returncode != 0:
        pytest.skip(f"cannot install {PIP_WITH_PYLOCK}: {upgraded.stderr[-300:]}")
    with serve_index(site) as base:
        lock = _pylock(site, tmp_path, base)
        done = subprocess.run([python, "-m", "pip", "install", "--no-deps", "-r", str(lock)],
                              capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([python, "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, env=env, check=True)
    installed = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    assert installed["alpha"] == "1.0.0" and installed["beta"] == "1.0.0"


# -- a second validator: the npm CycloneDX library ------------------------------------------
NPM_LIBRARY = "@cyclonedx/cyclonedx-library@9"
_NODE_VALIDATE = """
const fs = require('fs');
const CDX = require('@cyclonedx/cyclonedx-library');
(async () => {
  const validator = new CDX.Validation.JsonStrictValidator(CDX.Spec.Version.v1dot6);
  let bad = 0;
  for (const file of process.argv.slice(2)) {
    const errors = await validator.validate(fs.readFileSync(file, 'utf8'));
    if (errors !== null) { bad++; console.log(file + ': ' + JSON.stringify(errors).slice(0, 500)); }
  }
  process.exit(bad ? 1 : 0);
})().catch(e => { console.log(String(e)); process.exit(3); });
"""


@pytest.fixture(scope="session")
def npm_validator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The npm CycloneDX library and the JSON schema validator it uses, in a cache dir."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    home = tmp_path_factory.mktemp("npm")
    done = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix",
                           str(home), NPM_LIBRARY, "ajv@8", "ajv-formats@3",
                           "ajv-formats-draft2019@1"], capture_output=True, text=True,
                          env={**os.environ, "npm_config_cache": str(home / "cache")})
    if done.returncode != 0:
        pytest.skip(f"npm install failed: {done.stderr[-300:]}")
    script = home / "validate.js"
    script.write_text(_NODE_VALIDATE)
    return script


@pytest.mark.network
def test_npm_cyclonedx_library_accepts_every_sbom(npm_validator: Path, site: Settings,
                                                  tmp_path: Path) -> None:
    files = sorted((site.index_dir / "files").glob("*/*.cdx.json"))
    assert files
    environment = tmp_path / "environment.cdx.json"
    environment.write_bytes(sbom_bytes(_env_sbom(site, _requirements(tmp_path))))
    wheel = factories.wheel(tmp_path / "wheels", requires=("idna<4",),
                            metadata=("Author-email: A <a@example.org>",))
    record = replace(make_record(wheel, factories.sdist(tmp_path / "sources")),
                     image_packages=[], system_packages=[])
    rich = tmp_path / "rich.cdx.json"
    rich.write_bytes(sbom_bytes(build_sbom(wheel, record, pins=lambda n, s: "3.10")))
    node = shutil.which("node") or "node"
    done = subprocess.run([node, str(npm_validator), *map(str, [*files, environment, rich])],
                          capture_output=True, text=True, cwd=npm_validator.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.cdx.json"
    broken.write_text(json.dumps({**json.loads(environment.read_text()), "version": "one"}))
    refused = subprocess.run([node, str(npm_validator), str(broken)], capture_output=True,
                             text=True, cwd=npm_validator.parent)
    assert refused.returncode == 1, refused.stdout + refused.stderr


assert sys.version_info >= (3, 11)
