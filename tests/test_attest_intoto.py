"""in-toto layout and links, checked with the stock in-toto-verify CLI."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from factory.attest import attest_wheel
from factory.attest.intoto import (
    LAYOUT_NAME,
    build_layout,
    intoto_dir_for,
    record_link,
    sign_layout,
    verify_intoto,
    write_intoto,
)
from factory.attest.keys import init_keys, load_public_key, load_signer, public_key_path
from factory.config import Settings, load_settings
from factory.errors import SigningError, VerificationError
from tests import factories
from tests.attest_fixtures import make_record

IN_TOTO_VERIFY = Path(sys.prefix) / "bin" / "in-toto-verify"


@dataclass
class Published:
    settings: Settings
    sdist: Path
    wheel: Path
    sbom: Path
    bundle: Path  # stands in for W.intoto.jsonl (the signing module writes it)
    metadata: Path  # W.in-toto/

    @property
    def owner_key(self) -> Path:
        return public_key_path(self.settings, "owner")


def _publish(base: Path) -> None:
    settings = load_settings(root=base / "project")
    init_keys(settings)
    sdist = factories.sdist(base / "state" / "sources" / "tinypkg")
    wheel = factories.wheel(base / "index" / "files", requires=("idna>=2",))
    att = attest_wheel(settings, make_record(wheel, sdist), wheel)
    bundle = wheel.with_name(wheel.name + ".intoto.jsonl")
    bundle.write_text("".join(json.dumps(s) + "\n" for s in att.statements))
    write_intoto(settings, sdist, wheel, [att.sbom_path, bundle], intoto_dir_for(wheel))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One published wheel per module; each test gets a copy (the metadata holds
    file names only, so a copied tree verifies like the original)."""
    base = tmp_path_factory.mktemp("published")
    _publish(base)
    return base


@pytest.fixture
def published(template: Path, tmp_path: Path) -> Published:
    base = tmp_path / "copy"
    shutil.copytree(template, base, symlinks=True)
    [wheel] = (base / "index" / "files").glob("*.whl")
    [sdist] = (base / "state" / "sources" / "tinypkg").glob("*.tar.gz")
    return Published(
        settings=load_settings(root=base / "project"),
        sdist=sdist,
        wheel=wheel,
        sbom=wheel.with_name(wheel.name + ".cdx.json"),
        bundle=wheel.with_name(wheel.name + ".intoto.jsonl"),
        metadata=intoto_dir_for(wheel),
    )


def stock_verify(p: Published, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """What an auditor types, in the wheel's directory."""
    cmd = [
        str(IN_TOTO_VERIFY),
        "--layout", str(p.metadata / LAYOUT_NAME),
        "--link-dir", str(p.metadata),
        "--verification-keys", str(p.owner_key),
    ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=cwd or p.wheel.parent, capture_output=True, text=True, timeout=120
    )


def assert_passes(p: Published) -> None:
    result = stock_verify(p)
    assert result.returncode == 0, result.stderr
    verify_intoto(p.metadata, p.wheel, p.owner_key)


def assert_fails(p: Published, why: str) -> None:
    result = stock_verify(p)
    assert result.returncode != 0
    assert why in result.stderr, result.stderr
    with pytest.raises(VerificationError, match="in-toto verification"):
        verify_intoto(p.metadata, p.wheel, p.owner_key)


def _payload(link: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(link.read_text())["payload"]))


def _link(p: Published, step: str) -> Path:
    [path] = p.metadata.glob(f"{step}.*.link")
    return path


# -- the happy path ---------------------------------------------------------------------
def test_stock_in_toto_verify_passes(published: Published) -> None:
    assert_passes(published)


def test_metadata_files_and_names(published: Published) -> None:
    s = published.settings
    names = sorted(p.name for p in published.metadata.iterdir())
    expected = [LAYOUT_NAME] + [
        f"{step}.{load_public_key(s, role).keyid[:8]}.link"
        for step, role in [("attest", "attestor"), ("build", "builder"), ("fetch", "fetcher")]
    ]
    assert names == sorted(expected)


def test_links_chain_sdist_hash_to_wheel_hash(published: Published) -> None:
    fetch, build, attest = (_payload(_link(published, s)) for s in ("fetch", "build", "attest"))
    sdist, wheel = published.sdist.name, published.wheel.name
    assert fetch["products"][sdist] == build["materials"][sdist]
    assert build["products"][wheel] == attest["materials"][wheel]
    assert set(attest["products"]) == {published.sbom.name, published.bundle.name}
    # file names only: no path of the control plane leaks into published metadata
    assert not any("/" in name for link in (fetch, build, attest) for name in link["products"])


def test_verification_in_a_crowded_index_directory(published: Published) -> None:
    factories.wheel(published.wheel.parent, version="0.9.0")  # a sibling file the layout ignores
    assert_passes(published)


def test_rewriting_replaces_the_metadata_directory(published: Published) -> None:
    before = set(published.metadata.iterdir())
    write_intoto(
        published.settings,
        published.sdist,
        published.wheel,
        [published.sbom, published.bundle],
        published.metadata,
    )
    assert {p.name for p in published.metadata.iterdir()} == {p.name for p in before}
    assert not [p for p in published.wheel.parent.iterdir() if p.name.startswith(".tmp-")]
    assert_passes(published)


# -- tampering ----------------------------------------------------------------------------
def test_tampered_wheel_fails(published: Published) -> None:
    with published.wheel.open("ab") as handle:
        handle.write(b"\0")
    assert_fails(published, "DISALLOW " + published.wheel.name)


def test_replaced_wheel_fails(published: Published) -> None:
    other = factories.wheel(published.wheel.parent / "other", requires=("evil>=1",))
    shutil.copy(other, published.wheel)
    assert_fails(published, "DISALLOW " + published.wheel.name)


def test_tampered_sbom_fails(published: Published) -> None:
    published.sbom.write_text(published.sbom.read_text().replace("idna", "idnа"))
    assert_fails(published, "DISALLOW " + published.sbom.name)


def test_tampered_signed_bundle_fails(published: Published) -> None:
    with published.bundle.open("a") as handle:
        handle.write("{}\n")
    assert_fails(published, "DISALLOW " + published.bundle.name)


def test_missing_sbom_fails(published: Published) -> None:
    published.sbom.unlink()
    assert_fails(published, "REQUIRE " + published.sbom.name)


def test_tampered_link_fails(published: Published) -> None:
    link = _link(published, "build")
    envelope = json.loads(link.read_text())
    payload = _payload(link)
    payload["products"][published.wheel.name]["sha256"] = "0" * 64
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    link.write_text(json.dumps(envelope))
    assert_fails(published, "Step 'build' requires at least '1' links validly signed")


def test_missing_link_fails(published: Published) -> None:
    _link(published, "fetch").unlink()
    assert_fails(published, "Step 'fetch' requires '1' link metadata file(s), found '0'")


def test_layout_signed_by_another_key_fails(published: Published, tmp_path: Path) -> None:
    other = load_settings(root=tmp_path / "other")
    init_keys(other)
    shutil.copy(public_key_path(other, "owner"), published.owner_key)
    assert_fails(published, "SignatureVerificationError")


def test_link_signed_by_the_wrong_role_fails(published: Published) -> None:
    # the builder signs an attest link: not a functionary of that step
    s = published.settings
    _link(published, "attest").unlink()
    record_link(
        "attest",
        load_signer(s, "builder"),
        [published.wheel],
        [published.sbom, published.bundle],
        published.metadata,
    )
    assert_fails(published, "Step 'attest' requires '1' link metadata file(s), found '0'")


def test_build_from_another_sdist_breaks_the_chain(published: Published, tmp_path: Path) -> None:
    # the builder's material is not what the fetcher fetched
    s = published.settings
    swapped = factories.sdist(tmp_path / "swapped")
    swapped.write_bytes(swapped.read_bytes() + b"\0")
    _link(published, "build").unlink()
    signer = load_signer(s, "builder")
    record_link("build", signer, [swapped], [published.wheel], published.metadata)
    assert_fails(published, f"'DISALLOW *' matched the following artifacts: ['{swapped.name}']")


def test_expired_layout_fails(published: Published) -> None:
    s = published.settings
    layout = build_layout(
        s,
        published.sdist.name,
        published.wheel.name,
        [published.sbom.name, published.bundle.name],
        datetime.now(UTC) - timedelta(days=1),
    )
    sign_layout(layout, load_signer(s, "owner"), published.metadata / LAYOUT_NAME)
    assert_fails(published, "Layout expired")


@pytest.mark.slow
def test_wheel_built_by_pypa_build_verifies(tmp_path: Path) -> None:
    """End to end on a wheel made by a real PEP 517 build, not by the fixtures."""
    project = tmp_path / "src" / "realpkg-2.0"
    (project / "realpkg").mkdir(parents=True)
    (project / "realpkg" / "__init__.py").write_text("ANSWER = 42\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "realpkg"\nversion = "2.0"\nlicense = {text = "MIT"}\n'
        'dependencies = ["packaging>=23", "rich; extra == \'fancy\'"]\n'
        '[project.optional-dependencies]\nfancy = ["rich"]\n'
    )
    out = tmp_path / "index"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=project,
        check=True,
        capture_output=True,
    )
    [wheel] = out.glob("realpkg-2.0-*.whl")
    sdist = tmp_path / "sources" / "realpkg-2.0.tar.gz"
    sdist.parent.mkdir()
    shutil.make_archive(str(sdist).removesuffix(".tar.gz"), "gztar", project.parent)
    settings = load_settings(root=tmp_path / "project")
    init_keys(settings)
    att = attest_wheel(settings, make_record(wheel, sdist), wheel)
    root = att.sbom_statement["predicate"]["metadata"]["component"]
    assert root["licenses"] == [{"license": {"id": "MIT"}}]
    refs = {c["bom-ref"]: c["scope"] for c in att.sbom_statement["predicate"]["components"]}
    assert refs == {"requirement:packaging": "required", "requirement:rich": "optional"}
    write_intoto(settings, sdist, wheel, [att.sbom_path], intoto_dir_for(wheel))
    owner = public_key_path(settings, "owner")
    cmd = [
        str(IN_TOTO_VERIFY),
        "--layout", str(intoto_dir_for(wheel) / LAYOUT_NAME),
        "--link-dir", str(intoto_dir_for(wheel)),
        "--verification-keys", str(owner),
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_link_that_would_miss_a_file_is_refused(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path / "project")
    init_keys(settings)
    hidden = factories.sdist(tmp_path / "cache.links")  # in-toto's default excludes match this
    out = tmp_path / "links"
    out.mkdir()
    with pytest.raises(SigningError, match="expected"):
        record_link("fetch", load_signer(settings, "fetcher"), [], [hidden], out)
    assert list(out.iterdir()) == []
