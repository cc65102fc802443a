"""Hardened builds: what a hostile or broken sdist cannot do (needs a Docker Engine).

These sdists use an in-tree backend, so no build tools and no network are needed;
the builder image is made once per machine and found by its tag afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest

from factory.build.env import Kit
from factory.build.image import ImageRef
from factory.build.record import record_path_for
from factory.config import Settings
from factory.errors import BuildError
from tests import factories
from tests.builders_fixtures import build_backend, spy_containers

pytestmark = pytest.mark.docker


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = factories.settings(tmp_path, build_timeout=60)
    settings.private_keys_dir.mkdir(parents=True)
    (settings.private_keys_dir / "signing.pem.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    return settings


def _no_wheel(settings: Settings) -> None:
    assert not list(settings.wheels_dir.glob("*.whl")) if settings.wheels_dir.exists() else True


def test_a_build_that_connects_out_fails_and_leaves_no_wheel(
        settings: Settings, kit: Kit, image: ImageRef) -> None:
    payload = """
        import socket
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    """
    with pytest.raises(BuildError) as caught:
        build_backend(settings, kit, image, "phone-home", payload)
    assert "build failed" in caught.value.message
    # DNS fails first: there is no resolver and no interface but loopback.
    assert "gaierror" in caught.value.message or "unreachable" in caught.value.message
    _no_wheel(settings)
    assert list(settings.logs_dir.glob("phone-home-1.0-build-*.log"))


def test_a_build_cannot_reach_a_service_on_the_hosts_loopback(
        settings: Settings, kit: Kit, image: ImageRef) -> None:
    accepted: list[object] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    payload = f"""
        import socket
        errors = []
        for host in ("127.0.0.1", "172.17.0.1", "host.docker.internal"):
            try:
                socket.create_connection((host, {port}), timeout=3).close()
            except OSError as exc:
                errors.append(repr(exc))
            else:
                raise SystemExit("reached the host at " + host)
        raise RuntimeError("all refused: " + "; ".join(errors))
    """
    try:
        with pytest.raises(BuildError) as caught:
            build_backend(settings, kit, image, "loopback", payload)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert "all refused" in caught.value.message
    assert accepted == []
    _no_wheel(settings)


def test_an_endless_build_is_killed_at_its_limit(kit: Kit, image: ImageRef,
                                                 tmp_path: Path) -> None:
    settings = factories.settings(tmp_path, build_timeout=3)
    started = time.monotonic()
    with pytest.raises(BuildError) as caught:
        build_backend(settings, kit, image, "forever", "while True:\n    pass")
    assert "killed after the 3 s limit" in caught.value.message
    assert time.monotonic() - started < 30
    _no_wheel(settings)


def test_a_failed_build_leaves_no_wheel_but_keeps_its_log(
        settings: Settings, kit: Kit, image: ImageRef) -> None:
    with pytest.raises(BuildError) as caught:
        build_backend(settings, kit, image, "broken", "raise ValueError('broken on purpose')")
    assert "broken on purpose" in caught.value.message
    _no_wheel(settings)
    assert not list(settings.wheels_dir.glob("*.build.json")) if settings.wheels_dir.exists() \
        else True
    (log,) = settings.logs_dir.glob("broken-1.0-build-*.log")
    assert "broken on purpose" in log.read_text()


PROBE = """
    import json, os
    report = {}
    def attempt(label, action):
        try:
            action()
            report[label] = "allowed"
        except OSError as exc:
            report[label] = type(exc).__name__
    attempt("write_source", lambda: open("/source/owned", "w").write("x"))
    attempt("write_rootfs", lambda: open("/etc/owned", "w").write("x"))
    attempt("write_usr", lambda: open("/usr/lib/owned", "w").write("x"))
    attempt("write_wheels", lambda: open("/wheels/owned", "w").write("x"))
    attempt("write_kit", lambda: open("/kit/owned", "w").write("x"))
    attempt("read_keys", lambda: open(KEYS + "/signing.pem.key").read())
    attempt("raw_socket", lambda: __import__("socket").socket(
        __import__("socket").AF_INET, __import__("socket").SOCK_RAW, 1))
    report["uid"] = os.getuid()
    report["env"] = sorted(os.environ)
    report["interfaces"] = sorted(os.listdir("/sys/class/net"))
    global EXTRA_FILES
    EXTRA_FILES = {"report.json": json.dumps(report).encode()}
"""


def test_a_build_cannot_write_outside_its_output_or_read_host_keys(
        settings: Settings, kit: Kit, image: ImageRef, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = spy_containers(monkeypatch)
    monkeypatch.setenv("FACTORY_TOKEN", "secret-token-value")
    record = build_backend(settings, kit, image, "nosy", PROBE,
                    extra=f"\nKEYS = {str(settings.private_keys_dir)!r}\n")
    wheel = settings.wheels_dir / record.wheel_filename
    with zipfile.ZipFile(wheel) as zf:
        report = json.loads(zf.read("report.json"))
    for label in ("write_source", "write_rootfs", "write_usr", "write_wheels", "write_kit"):
        assert report[label] in ("OSError", "PermissionError"), (label, report)
    assert report["read_keys"] == "FileNotFoundError"
    assert report["raw_socket"] == "PermissionError"
    assert report["uid"] != 0
    assert report["interfaces"] == ["lo"]
    assert not [k for k in report["env"] if "TOKEN" in k or "KEY" in k or "SECRET" in k]

    # The same, as the engine sees the container.
    attrs = seen[-1].inspect
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"]
    assert host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0 and host["NanoCpus"] > 0
    assert attrs["Config"]["User"] not in ("", "0", "root", "0:0")
    env = attrs["Config"]["Env"]
    assert not [e for e in env if "secret-token-value" in e or e.startswith("FACTORY_")]
    writable = [m["Destination"] for m in attrs["Mounts"] if m["RW"]]
    assert writable == ["/out"]
    keys = str(settings.private_keys_dir)
    assert not [m for m in attrs["Mounts"] if m["Source"].startswith(keys)
                or keys.startswith(m["Source"])]
    assert record_path_for(wheel).is_file()
    assert record.network_mode == "none"
