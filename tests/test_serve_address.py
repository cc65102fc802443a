"""`factory serve` on another address than the pages name (index.url) says so: the
pages' links and stock commands would lead elsewhere (a helper's new-user pass served on
--port 8741 and copied commands naming 8700)."""

from __future__ import annotations

import pytest

from factory.cli.index import _url_differs


@pytest.mark.parametrize("url, host, port", [
    ("http://127.0.0.1:8700", "127.0.0.1", 8700),
    ("http://localhost:8700/", "127.0.0.1", 8700),
    ("http://example.org", "example.org", 80),
    ("https://index.example.org", "127.0.0.1", 8700),  # behind a proxy: its own address
])
def test_the_address_the_pages_name_is_not_warned_about(url: str, host: str,
                                                         port: int) -> None:
    assert _url_differs(url, host, port) is None


@pytest.mark.parametrize("url, host, port", [
    ("http://127.0.0.1:8700", "127.0.0.1", 8741),
    ("http://127.0.0.1:8700", "0.0.0.0", 8700),
    ("http://10.0.0.5:8700", "127.0.0.1", 8700),
])
def test_another_address_is_warned_about_with_the_fix(url: str, host: str, port: int) -> None:
    warning = _url_differs(url, host, port)
    assert warning is not None and url in warning and f"http://{host}:{port}" in warning
    assert "FACTORY_INDEX_URL" in warning and "factory index rebuild" in warning
