"""flows.server.own_server: a test or benchmark that starts its own embedded Prefect server
talks to it alone, and leaves the server stopped and the environment as it found it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import flows.server
from tests import factories


def test_the_scope_isolates_stops_and_restores(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    settings = factories.settings(tmp_path)
    stopped: list[Path] = []
    monkeypatch.setattr(flows.server, "stop_server", lambda s: stopped.append(s.state_dir))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")  # another server's
    monkeypatch.setenv("PREFECT_HOME", "/elsewhere")
    monkeypatch.delenv("FACTORY_ROOT", raising=False)
    monkeypatch.delenv("PREFECT_LOGGING_LEVEL", raising=False)
    with pytest.raises(RuntimeError), flows.server.own_server(settings, also=("FACTORY_ROOT",)):
        assert "PREFECT_API_URL" not in os.environ
        assert os.environ["PREFECT_HOME"] == str(flows.server.server_home(settings))
        flows.server.configure_environment(settings)  # as ensure_server does
        os.environ["PREFECT_API_URL"] = "http://127.0.0.1:2/api"  # as ensure_server does
        os.environ["FACTORY_ROOT"] = str(tmp_path)
        raise RuntimeError("the test body failed")
    assert stopped == [settings.state_dir]
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:1/api"
    assert os.environ["PREFECT_HOME"] == "/elsewhere"
    assert "FACTORY_ROOT" not in os.environ and "PREFECT_LOGGING_LEVEL" not in os.environ
