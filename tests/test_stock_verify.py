"""An auditor with stock tools and only what the index serves over HTTP.

The released index (attested, signed by the embedded authority, in-toto, published)
runs under ``create_app``; everything the checks use is fetched from it into an
empty directory: the commands each project page prints (curl, the stock
``sigstore --trust-config ... verify identity`` and ``in-toto-verify``) are run as
printed, and the PEP 740 provenance is verified with the pypi-attestations
library and sigstore's Verifier fed the served trusted root.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pypi_attestations import Attestation, Distribution
from sigstore.models import ClientTrustConfig, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity

from factory.config import Settings
from factory.index import Index
from factory.index.serve import create_app
from factory.sign.trust import public_trust_config
from tests.index_fixtures import running
from tests.security_fixtures import released_copy

ALPHA = "alpha-1.0.0-py3-none-any.whl"
BIN = Path(sys.executable).parent  # the venv's sigstore and in-toto-verify


@pytest.fixture
def served(released_base: Path, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    settings = released_copy(released_base, tmp_path)
    with running(create_app(Index.of(settings))) as url:
        yield settings, url


def _commands(settings: Settings, url: str, filename: str) -> str:
    """The stock commands the project page prints for ``filename``, as the page says them
    (its public URL is the settings' index_url: here the test server's)."""
    page = httpx.get(f"{url}/project/alpha/").text
    section = page.split(f'id="{filename}"', 1)[1]
    found = re.search(r'<pre class="stock-verify">(.*?)</pre>', section, re.S)
    assert found, "no stock commands on the project page"
    return html.unescape(found.group(1)).replace(settings.index_url.rstrip("/"), url)


def _sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(cwd)}  # nothing but stock tools
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def _only(script: str, tool: str) -> str:
    """The command of ``script`` that runs ``tool`` (with its continuation lines)."""
    return re.search(rf"^{tool} .*?(?<!\\)$", script, re.S | re.M).group(0)  # type: ignore[union-attr]


def test_the_page_commands_verify_with_stock_tools_and_fail_on_a_tampered_wheel(
        served: tuple[Settings, str], tmp_path: Path) -> None:
    settings, url = served
    script = _commands(settings, url, ALPHA)
    assert "sigstore --trust-config" in script and "in-toto-verify" in script
    work = tmp_path / "auditor"
    work.mkdir()
    result = _sh(script, work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {ALPHA}" in result.stdout + result.stderr
    # (in-toto-verify is silent when it passes: `bash -e` ran it last, exit 0)
    # Only served files were used: the trust config holds public material only.
    public_trust_config(work / "factory-trust-config.json",
                        settings.public_keys_dir / "trusted_root.json")

    wheel = work / ALPHA
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    tampered = _sh(_only(script, "sigstore"), work)
    assert tampered.returncode != 0
    assert "FAIL" in tampered.stderr
    assert _sh(_only(script, "in-toto-verify"), work).returncode != 0


def test_the_served_trust_config_is_the_published_root_and_public(
        served: tuple[Settings, str]) -> None:
    settings, url = served
    listing = httpx.get(f"{url}/.well-known/factory/").json()
    assert "trust_config.json" in {f["name"] for f in listing["files"]}
    config = httpx.get(f"{url}/.well-known/factory/trust_config.json")
    root = httpx.get(f"{url}/.well-known/factory/trusted_root.json")
    assert config.status_code == root.status_code == 200
    assert b"PRIVATE" not in config.content
    parsed = ClientTrustConfig.from_json(config.text)
    assert json.loads(config.text)["trustedRoot"] == root.json()
    assert parsed.signing_config is not None


def test_pep740_provenance_verifies_with_pypi_attestations_and_served_root(
        served: tuple[Settings, str], tmp_path: Path) -> None:
    settings, url = served
    with httpx.Client(base_url=url) as client:
        wheel = tmp_path / ALPHA
        wheel.write_bytes(client.get(f"/files/alpha/{ALPHA}").content)
        provenance = client.get(f"/integrity/alpha/1.0.0/{ALPHA}/provenance").json()
        root = tmp_path / "trusted_root.json"
        root.write_bytes(client.get("/.well-known/factory/trusted_root.json").content)
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(root)))
    identity = Identity(identity=settings.identity, issuer=settings.issuer)
    dist = Distribution.from_file(wheel)
    seen = 0
    for group in provenance["attestation_bundles"]:
        assert group["publisher"]["claims"]["identity"] == settings.identity
        for raw in group["attestations"]:
            attestation = Attestation.model_validate(raw)
            _, payload = verifier.verify_dsse(attestation.to_bundle(), identity)
            subjects = json.loads(payload)["subject"]
            assert {"name": dist.name, "digest": {"sha256": dist.digest}} in subjects
            seen += 1
    assert seen >= 2  # publish and SLSA provenance at least

    forged = Distribution(name=dist.name, digest="0" * 64)
    raw = provenance["attestation_bundles"][0]["attestations"][0]
    _, payload = verifier.verify_dsse(Attestation.model_validate(raw).to_bundle(), identity)
    assert {"name": forged.name, "digest": {"sha256": forged.digest}} \
        not in json.loads(payload)["subject"]

