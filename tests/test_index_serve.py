"""The HTTP side: negotiation, redirects, 404s, integrity, headers, trust files."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from factory.config import Settings, load_settings
from factory.index import Index
from factory.index.serve import create_app
from factory.index.serve.protocol import negotiate
from tests.index_fixtures import publish_wheel, running

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {HTML}; q=0.1, text/html; q=0.01"
WHEEL = "demo_pkg-1.0-py3-none-any.whl"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings(root=tmp_path, index_url="http://index.test")
    publish_wheel(settings, tmp_path / "work", "Demo_Pkg", "1.0")
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[httpx.Client]:
    with running(create_app(Index.of(settings))) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("", "text/html"),
        (PIP_ACCEPT, JSON),
        (f"text/html, {JSON};q=0.5", "text/html"),
        (f"{HTML}, {JSON};q=0.9", HTML),
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html"),
        ("application/json", None),
        (f"{JSON};q=0", None),
    ],
)
def test_negotiation_follows_q_values(accept: str | None, expected: str | None):
    assert negotiate(accept) == expected


def test_project_page_in_each_serialization(client: httpx.Client):
    as_json = client.get("/simple/demo-pkg/", headers={"Accept": PIP_ACCEPT})
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == JSON
    assert as_json.json()["files"][0]["filename"] == WHEEL
    assert as_json.headers["vary"] == "Accept"
    as_html = client.get("/simple/demo-pkg/", headers={"Accept": "text/html"})
    assert as_html.headers["content-type"].startswith("text/html")
    assert f">{WHEEL}</a>" in as_html.text
    v1_html = client.get("/simple/demo-pkg/", headers={"Accept": HTML})
    assert v1_html.headers["content-type"] == HTML
    for query in (JSON, JSON.replace("+", "%2B")):
        override = client.get(f"/simple/demo-pkg/?format={query}", headers={"Accept": "text/html"})
        assert override.headers["content-type"] == JSON
    refused = client.get("/simple/demo-pkg/", headers={"Accept": "application/json"})
    assert refused.status_code == 406


def test_project_list(client: httpx.Client):
    listing = client.get("/simple/", headers={"Accept": JSON}).json()
    assert listing == {"meta": {"api-version": "1.4"}, "projects": [{"name": "Demo_Pkg"}]}
    assert 'href="demo-pkg/"' in client.get("/simple/").text


def test_non_normalized_names_redirect(client: httpx.Client):
    for name in ("Demo_Pkg", "demo.pkg", "DEMO-pkg"):
        response = client.get(f"/simple/{name}/?format={JSON}")
        assert response.status_code == 301
        assert response.headers["location"] == f"/simple/demo-pkg/?format={JSON}"
    assert client.get("/simple/demo-pkg").status_code in (301, 307, 308)
    assert client.get("/project/Demo_Pkg/").headers["location"] == "/project/demo-pkg/"


def test_unknown_or_typo_name_is_404_never_a_redirect(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.WARNING, logger="factory.index.serve"):
        response = client.get("/simple/demo-pgk/", headers={"Accept": PIP_ACCEPT})
    assert response.status_code == 404
    assert "location" not in response.headers
    assert "'demo-pgk'" in caplog.text
    assert client.get("/simple/Requests/").status_code == 404
    assert client.get("/project/nothing/").status_code == 404


def test_files_have_types_etags_and_immutable_caching(client: httpx.Client):
    wheel = client.get(f"/files/demo-pkg/{WHEEL}")
    assert wheel.status_code == 200
    assert wheel.headers["content-type"] == "application/octet-stream"
    assert "immutable" in wheel.headers["cache-control"]
    etag = wheel.headers["etag"]
    again = client.get(f"/files/demo-pkg/{WHEEL}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    metadata = client.get(f"/files/demo-pkg/{WHEEL}.metadata")
    assert (
        metadata.text.startswith("Metadata-Version")
        and "text/plain" in metadata.headers["content-type"]
    )
    sbom = client.get(f"/files/demo-pkg/{WHEEL}.cdx.json")
    assert sbom.headers["content-type"] == "application/vnd.cyclonedx+json"
    assert client.get(f"/files/demo-pkg/{WHEEL}.in-toto/").json()["files"] == [
        "build.abcdef12.link",
        "root.layout",
    ]
    assert client.get("/sources/demo-pkg/demo_pkg-1.0.tar.gz").status_code == 200


def test_pages_revalidate_with_etag(client: httpx.Client, settings: Settings):
    first = client.get("/simple/demo-pkg/", headers={"Accept": JSON})
    assert first.headers["cache-control"] == "no-cache"
    cached = client.get(
        "/simple/demo-pkg/", headers={"Accept": JSON, "If-None-Match": first.headers["etag"]}
    )
    assert cached.status_code == 304
    Index.of(settings).yank("demo-pkg", "1.0", "bad")
    changed = client.get(
        "/simple/demo-pkg/", headers={"Accept": JSON, "If-None-Match": first.headers["etag"]}
    )
    assert changed.status_code == 200 and changed.json()["files"][0]["yanked"] == "bad"


def test_unrecorded_files_are_not_served(client: httpx.Client, settings: Settings):
    stray = settings.index_dir / "files" / "demo-pkg" / "stray-1.0-py3-none-any.whl"
    stray.write_bytes(b"not published")
    assert client.get("/files/demo-pkg/stray-1.0-py3-none-any.whl").status_code == 404
    assert client.get("/files/demo-pkg/../../records/demo-pkg.json").status_code == 404
    assert client.get("/files/Demo_Pkg/" + WHEEL).status_code == 404


def test_tampered_file_is_refused_and_logged(
    client: httpx.Client, settings: Settings, caplog: pytest.LogCaptureFixture
):
    assert client.get(f"/files/demo-pkg/{WHEEL}").status_code == 200  # digest now cached
    path = settings.index_dir / "files" / "demo-pkg" / WHEEL
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with caplog.at_level(logging.ERROR, logger="factory.index.serve"):
        response = client.get(f"/files/demo-pkg/{WHEEL}")
    assert response.status_code == 500
    assert "REFUSED" in caplog.text and WHEEL in caplog.text
    path.unlink()
    assert client.get(f"/files/demo-pkg/{WHEEL}").status_code == 500


def test_integrity_api_serves_the_provenance(client: httpx.Client):
    response = client.get(f"/integrity/demo-pkg/1.0/{WHEEL}/provenance")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
    assert response.json()["version"] == 1
    assert client.get(f"/integrity/demo-pkg/2.0/{WHEEL}/provenance").status_code == 404
    assert client.get("/integrity/nope/1.0/x.whl/provenance").status_code == 404


def test_quarantined_project_offers_nothing(client: httpx.Client, settings: Settings):
    Index.of(settings).set_status("demo-pkg", "quarantined", "malware")
    page = client.get("/simple/demo-pkg/", headers={"Accept": JSON}).json()
    assert page["files"] == [] and page["project-status"]["status"] == "quarantined"
    assert client.get(f"/files/demo-pkg/{WHEEL}").status_code == 410


def test_trust_material_under_well_known(client: httpx.Client, settings: Settings, tmp_path: Path):
    root = tmp_path / "trusted_root.json"
    root.write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}')
    Index.of(settings).publish_trust({"trusted_root.json": root})
    listing = client.get("/.well-known/factory/").json()
    assert [f["name"] for f in listing["files"]] == ["trusted_root.json"]
    response = client.get("/.well-known/factory/trusted_root.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert client.get("/.well-known/factory/../records/demo-pkg.json").status_code == 404


def test_human_pages(client: httpx.Client):
    home = client.get("/")
    assert home.status_code == 200 and 'href="project/demo-pkg/"' in home.text
    page = client.get("/project/demo-pkg/").text
    for expected in (
        WHEEL,
        "https://factory.invalid/builders/docker",
        "SBOM (CycloneDX)",
        "demo_pkg-1.0.tar.gz",
        "How to verify",
        "factory-builder:bookworm",
    ):
        assert expected in page


def test_tampering_that_keeps_size_and_mtime_is_still_refused(
    client: httpx.Client, settings: Settings
):
    assert client.get(f"/files/demo-pkg/{WHEEL}.metadata").status_code == 200  # cached
    path = settings.index_dir / "files" / "demo-pkg" / (WHEEL + ".metadata")
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[0] ^= 0x20
    path.write_bytes(bytes(data))  # same inode and size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    assert client.get(f"/files/demo-pkg/{WHEEL}.metadata").status_code == 500


def test_verified_bytes_stay_within_their_budget_least_recently_used_first(tmp_path: Path):
    from factory.index.serve.files import VerifiedBytes

    cache = VerifiedBytes(budget=10)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    cache.put(a, (4, 1, 1, 1), b"aaaa")
    cache.put(b, (4, 1, 2, 1), b"bbbb")
    assert cache.get(a, (4, 1, 1, 1)) == b"aaaa"  # a is now the most recently used
    cache.put(c, (4, 1, 3, 1), b"cccc")  # 12 bytes > 10: b goes
    assert cache.get(b, (4, 1, 2, 1)) is None
    assert cache.get(a, (4, 1, 1, 1)) == b"aaaa" and cache.get(c, (4, 1, 3, 1)) == b"cccc"
    assert cache.get(a, (4, 1, 1, 2)) is None  # changed since (ctime): not served from memory
