"""Human pages in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest

from factory.config import load_settings
from factory.index import Index
from factory.index.serve import create_app
from tests.index_fixtures import publish_wheel, running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright==1.65.2)"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason="Chromium is not installed (apt-get install chromium chromium-driver)",
    ),
]
HEADER_RGB = (0x0B, 0x3D, 0x5C)


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG into rows (stdlib only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = 0
    channels = 3
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunk, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if chunk == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 4 if color == 6 else 3
        elif chunk == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):  # undo the PNG row filter
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line[j] for j in range(stride) if j % channels < 3))
        previous = line
    return width, height, rows


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("site")
    settings = load_settings(root=root)
    publish_wheel(settings, root / "w", "Alpha", "1.0")
    publish_wheel(settings, root / "w", "Alpha", "1.1")
    publish_wheel(settings, root / "w", "beta", "2.0", ["alpha>=1.0"])
    index = Index.of(settings)
    index.yank("alpha", "1.1", "broken on Python 3.13")
    index.record_advisories("alpha", "1.0", [])
    index.record_advisories("beta", "2.0", [{"id": "GHSA-xxxx", "summary": "bad input"}])
    with running(create_app(index)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_home_lists_projects_and_leads_to_project_pages(site: str, browser, tmp_path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    response = page.goto(site + "/")
    assert response is not None and response.status == 200
    rows = page.locator("#projects tbody tr")
    assert rows.count() == 2
    assert "1 affected file(s)" in rows.nth(1).inner_text()
    page.click("text=Alpha")
    assert page.url.endswith("/project/alpha/")
    assert page.inner_text("#project-name") == "Alpha"
    sections = page.locator("section.file")
    assert sections.count() == 2
    newest = sections.nth(0)
    assert "yanked: broken on Python 3.13" in newest.inner_text()
    oldest = sections.nth(1).inner_text()
    for text in (
        "SHA-256",
        "https://factory.invalid/builders/docker",
        "alpha-1.0.tar.gz",
        "upstream SHA-256",
        "none known",
        "factory-builder:bookworm",
    ):
        assert text in oldest
    sbom = sections.nth(1).locator("a.sidecar", has_text="SBOM")
    with page.expect_response(lambda r: r.url.endswith(".cdx.json")) as info:
        sbom.click()
    assert info.value.status == 200
    page.close()


def test_project_page_screenshot_shows_the_layout(site: str, browser, tmp_path: Path):
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.goto(site + "/project/alpha/")
    shot = tmp_path / "alpha.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height, rows = _png_pixels(shot.read_bytes())
    assert width == 1000 and height >= 700
    header = rows[5][30:33]  # a pixel inside the header bar
    assert all(abs(a - b) <= 3 for a, b in zip(header, HEADER_RGB, strict=True))
    yanked_box = page.locator("section.file.yanked").bounding_box()
    assert yanked_box is not None and yanked_box["height"] > 100
    y, x = int(yanked_box["y"]) + 8, int(yanked_box["x"]) + 8
    assert rows[y][x * 3 : x * 3 + 3] == bytes((0xFF, 0xF5, 0xF5))  # the yanked tint
    colours = {rows[r][c : c + 3] for r in range(0, height, 7) for c in range(0, width * 3, 21)}
    assert len(colours) > 20  # text was drawn, not a blank page
    page.close()
