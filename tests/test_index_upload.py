"""`upload` mirrors published wheels to a real pypiserver on 127.0.0.1.

pypiserver runs from its own venv (never the factory's): FACTORY_PYPISERVER may
name its `pypi-server` executable; otherwise the venv is made once under
~/.cache/factory-tests/ with pip (skipped, with the reason, if that fails).
"""

from __future__ import annotations

import os
import subprocess
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from factory.config import load_settings
from factory.index import Index
from factory.index.upload import UploadError, upload
from tests.index_fixtures import free_port, publish_wheel

pytestmark = pytest.mark.slow
PYPISERVER = "pypiserver[passlib]==2.4.2"
TOOLS = Path.home() / ".cache" / "factory-tests" / "pypiserver-2.4.2"


def _pypiserver() -> Path:
    given = os.environ.get("FACTORY_PYPISERVER")
    if given:
        return Path(given)
    exe = TOOLS / "bin" / "pypi-server"
    if exe.is_file():
        return exe
    venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
    env = {k: v for k, v in os.environ.items() if k != "PIP_REQUIRE_VIRTUALENV"}
    done = subprocess.run(
        [str(TOOLS / "bin" / "python"), "-m", "pip", "install", "-q", PYPISERVER],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if done.returncode != 0 or not exe.is_file():
        pytest.skip(f"cannot install {PYPISERVER}: {done.stderr.strip()[-300:]}")
    return exe


@pytest.fixture(scope="module")
def pypiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    exe = _pypiserver()
    root = tmp_path_factory.mktemp("pypiserver")
    packages = root / "packages"
    packages.mkdir()
    htpasswd = root / "htpasswd"
    subprocess.run(
        [
            str(exe.parent / "python"),
            "-c",
            "import sys; from passlib.apache import HtpasswdFile as H;"
            " h = H(sys.argv[1], new=True); h.set_password('factory', 's3cret'); h.save()",
            str(htpasswd),
        ],
        check=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            str(exe),
            "run",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-a",
            "update",
            "-P",
            str(htpasswd),
            str(packages),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/simple/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("pypiserver did not start")
                time.sleep(0.2)
        yield url, packages
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_upload_mirrors_live_wheels_and_resumes(pypiserver, tmp_path: Path):
    url, packages = pypiserver
    settings = load_settings(root=tmp_path)
    publish_wheel(settings, tmp_path / "w", "mirror-me", "1.0")
    publish_wheel(settings, tmp_path / "w", "mirror-me", "1.1")
    publish_wheel(settings, tmp_path / "w", "other", "0.1")
    Index.of(settings).yank("mirror-me", "1.1", "bad")
    plan = upload(Index.of(settings), url + "/", "factory", "s3cret")
    uploaded = sorted(plan.uploaded)
    assert uploaded == ["mirror_me-1.0-py3-none-any.whl", "other-0.1-py3-none-any.whl"]
    assert plan.skipped == ["mirror_me-1.1-py3-none-any.whl: yanked"]
    assert sorted(p.name for p in packages.iterdir()) == uploaded
    served = packages / "mirror_me-1.0-py3-none-any.whl"
    published = settings.index_dir / "files" / "mirror-me" / "mirror_me-1.0-py3-none-any.whl"
    assert served.read_bytes() == published.read_bytes()
    listing = httpx.get(url + "/simple/mirror-me/").text
    assert "mirror_me-1.0-py3-none-any.whl" in listing
    again = upload(Index.of(settings), url + "/", "factory", "s3cret")  # a rerun resumes
    assert again.uploaded == [] and sorted(again.present) == uploaded


def test_upload_with_a_wrong_password_fails_clearly(pypiserver, tmp_path: Path):
    url, _ = pypiserver
    settings = load_settings(root=tmp_path)
    publish_wheel(settings, tmp_path / "w", "secretive", "1.0")
    with pytest.raises(UploadError, match=r"refused secretive-1.0-py3-none-any.whl \(HTTP 403\)"):
        upload(Index.of(settings), url + "/", "factory", "wrong")


def test_upload_refuses_a_damaged_index(tmp_path: Path):
    settings = load_settings(root=tmp_path)
    publish_wheel(settings, tmp_path / "w", "damaged", "1.0")
    wheel = settings.index_dir / "files" / "damaged" / "damaged-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    with pytest.raises(UploadError, match="does not match its published sha256"):
        upload(Index.of(settings), "http://127.0.0.1:9/", "u", "p")


def test_upload_reports_a_conflicting_copy_in_the_registry(pypiserver, tmp_path: Path):
    url, packages = pypiserver
    settings = load_settings(root=tmp_path)
    publish_wheel(settings, tmp_path / "w", "conflicted", "1.0")
    (packages / "conflicted-1.0-py3-none-any.whl").write_bytes(b"other bytes")
    with pytest.raises(UploadError, match="already holds conflicted-1.0"):
        upload(Index.of(settings), url + "/", "factory", "s3cret")
