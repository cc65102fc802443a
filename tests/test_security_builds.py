"""Hostile builds (needs a Docker Engine): what a build that attacks its host cannot do.

Each sdist has an in-tree backend whose payload attacks: a fork bomb, a memory
blow-up, a flood of output, a hunt for the host's secrets, and calls to the
factory's own services on the host's loopback (the index and the signing
authority). Each build fails with its reason, or learns nothing; nothing is
placed in the wheels directory, so nothing can be published.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from factory.build.env import Kit
from factory.build.image import ImageRef
from factory.config import Settings
from factory.errors import BuildError
from factory.index import Index
from tests import factories
from tests.builders_fixtures import build_backend

pytestmark = pytest.mark.docker


def nothing_placed(settings: Settings) -> bool:
    wheels = settings.wheels_dir
    return not wheels.exists() or not [p for p in wheels.iterdir()]


def failed_build(settings: Settings, kit: Kit, image: ImageRef, name: str, payload: str) -> str:
    """The BuildError's message of building ``payload``, which must place no wheel."""
    with pytest.raises(BuildError) as caught:
        build_backend(settings, kit, image, name, payload)
    assert nothing_placed(settings)
    return caught.value.message


def test_a_fork_bomb_hits_the_pids_limit_and_fails_with_that_reason(
        tmp_path: Path, kit: Kit, image: ImageRef) -> None:
    settings = factories.settings(tmp_path, build_timeout=60, build_pids=64)
    payload = """
        import os, time
        children = 0
        while True:  # each child sleeps, so the only brake is the kernel's pids limit
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            children += 1
    """
    assert "limit of 64 processes" in failed_build(settings, kit, image, "forkbomb", payload)


def test_a_memory_blow_up_is_oom_killed_and_says_so(
        tmp_path: Path, kit: Kit, image: ImageRef) -> None:
    settings = factories.settings(tmp_path, build_timeout=60, build_memory="128m")
    payload = """
        hog = []
        while True:  # touch every page, so the memory is really used
            hog.append(b"x" * (16 << 20))
    """
    assert "out of memory (limit 128m)" in failed_build(settings, kit, image, "memhog", payload)


def test_a_flood_of_output_is_killed_at_the_output_limit(
        tmp_path: Path, kit: Kit, image: ImageRef, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = factories.settings(tmp_path, build_timeout=60, build_max_output=32 << 20)
    payload = """
        import os, time
        n = 0
        while True:  # many files, each under the per-file limit: only the total is too much
            with open(f"/out/junk-{n}", "wb") as f:
                f.write(os.urandom(4 << 20))
            n += 1
            time.sleep(0.02)
    """
    assert "over the limit of 33554432" in failed_build(settings, kit, image, "flood", payload)


def test_one_huge_file_is_stopped_by_the_kernel(
        tmp_path: Path, kit: Kit, image: ImageRef, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = factories.settings(tmp_path, build_timeout=60, build_max_output=8 << 20)
    payload = """
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of dying
        with open("/out/huge.bin", "wb") as f:
            for _ in range(64):
                f.write(b"\\0" * (1 << 20))
    """
    message = failed_build(settings, kit, image, "hugefile", payload)
    # The kernel refused the write at the limit (EFBIG); the watcher may also have seen
    # the total reach it first: either way the build failed with one of the two reasons.
    assert "File too large" in message or "over the limit" in message
    (log,) = settings.logs_dir.glob("hugefile-1.0-build-*.log")
    assert "File too large" in log.read_text()


HUNT = """
    import glob, json, os
    found = {}
    def look(label, text):
        if SECRET in text:
            found[label] = True
    look("environ", json.dumps(dict(os.environ)))
    for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
        try:
            look(path, open(path, "rb").read().decode("utf-8", "replace"))
        except OSError:
            pass
    for path in ("/proc/1/root/proc/1/environ", "/run/secrets", "/etc/environment"):
        try:
            look(path, open(path, "rb").read().decode("utf-8", "replace"))
        except OSError:
            pass
    global EXTRA_FILES
    pids = len(glob.glob("/proc/[0-9]*"))
    EXTRA_FILES = {"hunt.json": json.dumps({"found": found, "pids": pids}).encode()}
"""


def test_the_hosts_environment_is_invisible_to_a_build(
        tmp_path: Path, kit: Kit, image: ImageRef, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-" + os.urandom(8).hex()
    for name in ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "SIGSTORE_ID_TOKEN", "FACTORY_KEY_OWNER",
                 "PYPI_PASSWORD", "HTTPS_PROXY"):
        monkeypatch.setenv(name, secret)
    settings = factories.settings(tmp_path, build_timeout=60)
    record = build_backend(settings, kit, image, "hunter", HUNT, extra=f"\nSECRET = {secret!r}\n")
    with zipfile.ZipFile(settings.wheels_dir / record.wheel_filename) as zf:
        report = json.loads(zf.read("hunt.json"))
    assert report["found"] == {}
    assert report["pids"] < 10  # its own PID namespace: the host's processes are not there
    assert secret not in json.dumps(record.to_dict())


def test_the_index_and_the_signing_authority_on_the_host_are_unreachable(
        tmp_path: Path, kit: Kit, image: ImageRef) -> None:
    from factory.index.serve import create_app
    from factory.sign import init_authority
    from factory.sign._authority.server import serve
    from factory.sign._authority.service import Authority
    from tests.index_fixtures import RequestLog, running

    settings = factories.settings(tmp_path, build_timeout=60)
    init_authority(settings)
    app = RequestLog(create_app(Index.of(settings)))
    with running(app) as index_url, serve(Authority(settings.authority_dir)) as authority_url:
        ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in (index_url, authority_url)]
        payload = f"""
            import socket
            errors = []
            for port in {ports!r}:
                for host in ("127.0.0.1", "localhost", "172.17.0.1", "host.docker.internal"):
                    try:
                        socket.create_connection((host, port), timeout=3).close()
                    except OSError as exc:
                        errors.append(type(exc).__name__)
                    else:
                        raise SystemExit(f"reached {{host}}:{{port}}")
            raise RuntimeError(f"all {{len(errors)}} attempts refused")
        """
        with pytest.raises(BuildError) as caught:
            build_backend(settings, kit, image, "callhome", payload)
    assert "all 8 attempts refused" in caught.value.message
    assert app.seen == []
    assert nothing_placed(settings)
