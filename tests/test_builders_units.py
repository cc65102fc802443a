"""Builder pieces that need no engine: the engine error, environments, wheelhouses."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from factory.build import engine
from factory.build.docker import hardening
from factory.build.env import container_environment, make_wheelhouse, source_date_epoch
from factory.build.image import tag_for
from factory.errors import EngineError
from tests import factories
from tests.factories import EPOCH


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("host", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:{port}"])
def test_a_missing_engine_gives_a_clear_error_with_the_fix(
        monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("DOCKER_HOST", host.format(port=_closed_port()))
    with pytest.raises(EngineError) as caught:
        engine.connect()
    assert "no Docker Engine answers at" in caught.value.message
    assert host.split(":")[0] in caught.value.message
    assert "scripts/ensure-docker.sh" in caught.value.hint
    assert "Traceback" not in caught.value.diagnostics()


def test_the_build_environment_inherits_nothing_from_the_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid")
    env = container_environment(EPOCH)
    assert "GITHUB_TOKEN" not in env and "HTTPS_PROXY" not in env
    assert "ghp_secret" not in "".join(env.values())
    assert env["SOURCE_DATE_EPOCH"] == str(EPOCH)
    assert (env["LC_ALL"], env["TZ"], env["PYTHONHASHSEED"]) == ("C.UTF-8", "UTC", "0")


def test_source_date_epoch_is_the_newest_member_of_the_sdist(tmp_path: Path) -> None:
    sdist = factories.sdist(tmp_path, "demo", "1.0", bare=True, files={"a.py": "", "b.py": ""})
    assert source_date_epoch(sdist) == EPOCH


def test_the_container_is_hardened_from_settings(tmp_path: Path) -> None:
    options = hardening(factories.settings(tmp_path, build_memory="1g", build_pids=64,
                                         build_cpus=1.5))
    assert options["network_mode"] == "none"
    assert options["read_only"] is True and options["cap_drop"] == ["ALL"]
    assert options["security_opt"] == ["no-new-privileges"]
    assert (options["mem_limit"], options["pids_limit"], options["nano_cpus"]) == (
        "1g", 64, 1_500_000_000)
    assert not options["user"].startswith("0:")


def test_a_wheelhouse_holds_exactly_the_wheels_given(tmp_path: Path) -> None:
    a = factories.wheel(tmp_path, "flit_core", "3.12.0")
    b = factories.wheel(tmp_path, "packaging", "26.3")
    tools = make_wheelhouse(tmp_path / "house", [b, a])
    assert sorted(p.name for p in (tmp_path / "house").iterdir()) == [a.name, b.name]
    assert [(t.name, t.version) for t in tools] == [("flit-core", "3.12.0"),
                                                   ("packaging", "26.3")]


def test_two_versions_of_one_tool_never_share_an_environment(tmp_path: Path) -> None:
    a = factories.wheel(tmp_path, "setuptools", "84.2.1")
    b = factories.wheel(tmp_path, "setuptools", "84.0.0")
    with pytest.raises(ValueError, match="two wheels of setuptools"):
        make_wheelhouse(tmp_path / "house", [a, b])


def test_extra_system_packages_get_their_own_image_tag(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    assert tag_for(settings) == settings.builder_image
    assert tag_for(settings, ["gcc"]) == settings.builder_image  # already in the base
    derived = tag_for(settings, ["libffi-dev"])
    assert derived.startswith(settings.builder_image + "-")
    assert derived == tag_for(settings, ["libffi-dev", "libffi-dev"])
