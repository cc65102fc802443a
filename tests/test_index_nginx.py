"""The static tree behind plain nginx, with the configuration docs/nginx.md gives."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tuf.ngclient import Updater

from bench import servers
from factory.attest.keys import init_keys
from factory.config import load_settings
from factory.index import Index
from factory.sign._authority.static import write_static
from factory.sign.monitor import HttpSource, read_log
from factory.sign.tuf_repo import refresh
from tests.index_fixtures import publish_all
from tests.signing_fixtures import entry_timestamps, log_root, synthetic_log

REPO = Path(__file__).resolve().parents[1]
UV = REPO / ".venv" / "bin" / "uv"
JSON = "application/vnd.pypi.simple.v1+json"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        servers.nginx_binary() is None,
        reason="nginx is not installed (apt-get install nginx-light)",
    ),
]


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    root = tmp_path_factory.mktemp("nginx-index")
    settings = load_settings(root=root)
    published = publish_all(settings, root / "w")
    Index.of(settings).yank("alpha", "1.1", "broken")
    trusted = root / "trusted_root.json"
    trusted.write_text("{}")
    Index.of(settings).publish_trust({"trusted_root.json": trusted})
    _transparency_log(settings.index_dir / "log")
    init_keys(settings)
    refresh(settings, {"trusted_root.json": b'{"a": 1}\n'}, settings.index_dir / "tuf")
    (settings.index_dir / "tuf" / ".tmp-leftover").write_text("a refresh that stopped")
    with servers.nginx(settings.index_dir, root / "nginx", access_log=True) as running:
        yield running.url, published


LOG_KEY = ec.generate_private_key(ec.SECP256R1())


def _transparency_log(directory: Path) -> None:
    """A log of 300 entries as the embedded authority publishes it (full and partial tiles)."""
    bodies = [b"entry %d" % i for i in range(300)]
    write_static(directory, *synthetic_log(LOG_KEY, bodies), entry_timestamps(LOG_KEY))
    (directory / ".tmp-leftover").write_text("a publish that stopped half way")


def test_the_transparency_log_is_served_and_verifies(nginx):
    url, _ = nginx
    checkpoint = httpx.get(f"{url}/log/checkpoint")
    assert checkpoint.status_code == 200 and checkpoint.headers["cache-control"] == "no-cache"
    assert checkpoint.headers["content-type"].startswith("text/plain")
    tile = httpx.get(f"{url}/log/tile/entries/000")
    assert tile.headers["content-type"] == "application/octet-stream"
    assert "immutable" in tile.headers["cache-control"]
    assert httpx.get(f"{url}/log/.tmp-leftover").status_code == 404
    with httpx.Client(timeout=10) as client:
        assert read_log(HttpSource(url, client), log_root(LOG_KEY)).size == 300


def test_the_tuf_repository_is_served_to_a_tuf_client(nginx, tmp_path: Path):
    url, _ = nginx
    root = httpx.get(f"{url}/tuf/1.root.json")
    assert root.status_code == 200 and root.headers["cache-control"] == "no-cache"
    client = Updater(metadata_dir=str(tmp_path), metadata_base_url=f"{url}/tuf/",
                     target_base_url=f"{url}/tuf/targets/", target_dir=str(tmp_path),
                     bootstrap=root.content)
    client.refresh()
    info = client.get_targetinfo("trusted_root.json")
    assert info is not None
    assert Path(client.download_target(info)).read_bytes() == b'{"a": 1}\n'
    target = httpx.get(f"{url}/tuf/targets/{info.hashes['sha256']}.trusted_root.json")
    assert "immutable" in target.headers["cache-control"]
    for path in ("/tuf/", "/tuf/.tmp-leftover", "/tuf/2.root.json"):
        assert httpx.get(f"{url}{path}").status_code == 404, path


def test_negotiation_and_status_codes(nginx):
    url, _ = nginx
    pip_accept = f"{JSON}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
    as_json = httpx.get(f"{url}/simple/alpha/", headers={"Accept": pip_accept})
    assert as_json.headers["content-type"] == JSON and as_json.json()["name"] == "alpha"
    assert as_json.headers["vary"] == "Accept" and "etag" in as_json.headers
    as_html = httpx.get(f"{url}/simple/alpha/", headers={"Accept": "text/html"})
    assert as_html.headers["content-type"].startswith("text/html") and "<a " in as_html.text
    for fmt in (JSON, JSON.replace("+", "%2B")):
        forced = httpx.get(f"{url}/simple/alpha/?format={fmt}", headers={"Accept": "text/html"})
        assert forced.headers["content-type"] == JSON
    assert httpx.get(f"{url}/simple/", headers={"Accept": JSON}).json()["projects"]
    assert httpx.get(f"{url}/simple/alpah/").status_code == 404
    assert httpx.get(f"{url}/simple/alpha").status_code == 301
    assert httpx.get(f"{url}/records/alpha.json").status_code == 404
    assert httpx.get(f"{url}/.publish.lock").status_code == 404
    assert httpx.get(f"{url}/").status_code == 200
    assert httpx.get(f"{url}/project/alpha/").status_code == 200


def test_files_integrity_and_trust(nginx):
    url, _ = nginx
    wheel = httpx.get(f"{url}/files/alpha/alpha-1.0-py3-none-any.whl")
    assert wheel.status_code == 200 and "immutable" in wheel.headers["cache-control"]
    provenance = httpx.get(f"{url}/integrity/alpha/1.0/alpha-1.0-py3-none-any.whl/provenance")
    assert provenance.status_code == 200
    assert provenance.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
    trust = httpx.get(f"{url}/.well-known/factory/trusted_root.json")
    assert trust.status_code == 200 and trust.headers["content-type"] == "application/json"


@pytest.mark.skipif(not UV.is_file(), reason="uv is not installed (pip install uv==0.13.9)")
def test_uv_installs_through_nginx_with_hashes(nginx, tmp_path: Path):
    url, published = nginx
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["UV_NO_CONFIG"] = "1"
    subprocess.run([str(UV), "venv", "-q", str(tmp_path / "v")], check=True, env=env)
    req = tmp_path / "req.txt"
    req.write_text(
        "".join(
            f"{n}=={v} --hash=sha256:{published[n, v].sha256}\n"
            for n, v in [("alpha", "1.0"), ("beta", "2.0")]
        )
    )
    done = subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--no-cache",
            "--python",
            str(tmp_path / "v" / "bin" / "python"),
            "--index-url",
            f"{url}/simple/",
            "--require-hashes",
            "-r",
            str(req),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    plain = subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--no-cache",
            "--reinstall",
            "--python",
            str(tmp_path / "v" / "bin" / "python"),
            "--index-url",
            f"{url}/simple/",
            "alpha",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert plain.returncode == 0 and "alpha==1.0" in plain.stderr, plain.stderr
