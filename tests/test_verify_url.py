"""`factory verify --index URL`: the index fetched over HTTP, then the same checks.

The auditor here is a fresh project with no keys of its own: the trusted root and
owner key come from the served /.well-known/factory/, everything else from the
Simple API and the files it lists.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from factory._internal.atomic import sha256_file
from factory.config import Settings
from factory.index import Index
from factory.index.records import Layout
from factory.index.serve import create_app
from factory.index.validation import load_record, save_record
from factory.verify import verify
from factory.verify.model import FAIL, PASS, SKIP
from factory.verify.remote import Limits, RemoteIndex
from tests import factories
from tests.index_fixtures import running
from tests.security_fixtures import released_copy

ALPHA = "alpha-1.0.0-py3-none-any.whl"


@pytest.fixture
def site(released_base: Path, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    settings = released_copy(released_base, tmp_path)
    with running(create_app(Index.of(settings))) as url:
        yield settings, url


@pytest.fixture
def auditor(tmp_path: Path) -> Settings:
    return factories.settings(tmp_path / "auditor")  # no keys, no index, no lock


def test_a_wheel_verifies_by_url_with_only_served_material(
        site: tuple[Settings, str], auditor: Settings) -> None:
    settings, url = site
    report = verify(auditor, "alpha==1.0.0", index_dir=url, check_advisories=False,
                    identity=settings.identity, issuer=settings.issuer)
    assert report.ok, [c for a in report.artifacts for c in a.failures()]
    [artifact] = report.artifacts
    statuses = {c.name: c.status for c in artifact.checks}
    for name in ("digest", "metadata", "signature", "provenance", "sbom", "pep740", "in-toto"):
        assert statuses[name] == PASS, (name, artifact.checks)
    assert report.trust.index == url
    assert report.trust.trusted_root.endswith("trust/trusted_root.json")  # the served one


def test_all_by_url_verifies_every_wheel_and_says_the_index_checks_were_skipped(
        site: tuple[Settings, str], auditor: Settings) -> None:
    settings, url = site
    report = verify(auditor, everything=True, index_dir=url + "/", check_advisories=False,
                    identity=settings.identity, issuer=settings.issuer, workers=1)
    assert sorted(str(a.filename) for a in report.artifacts) == [
        ALPHA, "beta-1.0.0-py3-none-any.whl"]
    assert all(a.ok for a in report.artifacts)
    assert report.index and {c.status for c in report.index} == {SKIP}


def test_a_wheel_changed_with_its_record_fails_by_url(
        site: tuple[Settings, str], auditor: Settings) -> None:
    settings, url = site
    wheel = Layout(settings.index_dir).files("alpha") / ALPHA
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    layout = Layout(settings.index_dir)  # the record vouches for it: serve sends it
    record = load_record(layout, "alpha")
    assert record is not None
    record.files[0].sha256, record.files[0].size = sha256_file(wheel), wheel.stat().st_size
    save_record(layout, record)
    report = verify(auditor, "alpha==1.0.0", index_dir=url, check_advisories=False,
                    identity=settings.identity, issuer=settings.issuer)
    [artifact] = report.artifacts
    assert not report.ok
    assert artifact.check("signature").status == FAIL  # type: ignore[union-attr]


def test_a_file_the_server_refuses_fails_by_url(
        site: tuple[Settings, str], auditor: Settings) -> None:
    settings, url = site
    wheel = Layout(settings.index_dir).files("alpha") / ALPHA
    wheel.write_bytes(wheel.read_bytes() + b"\0")  # serve refuses it (500)
    report = verify(auditor, "alpha==1.0.0", index_dir=url, check_advisories=False,
                    identity=settings.identity, issuer=settings.issuer)
    assert not report.ok
    assert "HTTP 500" in report.artifacts[0].checks[0].message


def _hostile() -> Starlette:
    async def simple(request):  # type: ignore[no-untyped-def]
        return RedirectResponse("http://elsewhere.invalid/simple/", status_code=302)

    async def big(request):  # type: ignore[no-untyped-def]
        return Response(b"{" + b" " * (1 << 20) + b"}", media_type="application/json")

    return Starlette(routes=[Route("/simple/", simple), Route("/simple/big/", big)])


def test_redirects_off_the_index_and_oversized_pages_are_refused(tmp_path: Path) -> None:
    with running(_hostile()) as url:
        remote = RemoteIndex(url, tmp_path, Limits(page=64 << 10))
        try:
            with pytest.raises(Exception, match="redirects off the index"):
                remote.projects()
            assert remote.record("big") is None
            assert "more than 65536" in remote.corrupt["big"]
        finally:
            remote.close()


def test_the_cli_takes_an_index_url(site: tuple[Settings, str], auditor: Settings) -> None:
    from rich.console import Console

    from factory.cli.verify import run

    settings, url = site
    console = Console(record=True, width=200)
    code = run(auditor, "alpha==1.0.0", console=console, index_dir=url,
               check_advisories=False, identity=settings.identity, issuer=settings.issuer)
    assert code in (0, 3), console.export_text()  # 3: a check was skipped (advisories)
    assert "1/1 artifacts passed" in console.export_text()
    assert httpx.get(f"{url}/.well-known/factory/trust_config.json").status_code == 200


def test_the_simple_api_url_is_taken_as_the_index(site: tuple[Settings, str],
                                                   auditor: Settings) -> None:
    """`--index URL/simple/` (what pip's --index-url takes) verifies as the index's base
    URL does; it failed a single target as "publishes no file" (a helper's new-user
    pass), while --all said "not an index"."""
    settings, url = site
    for given in (url + "/simple/", url + "/simple"):
        report = verify(auditor, "alpha==1.0.0", index_dir=given, check_advisories=False,
                        identity=settings.identity, issuer=settings.issuer)
        assert report.ok, [c for a in report.artifacts for c in a.failures()]
        assert report.trust.index == url


def test_an_index_that_cannot_be_read_is_a_usage_error(auditor: Settings,
                                                       tmp_path: Path) -> None:
    """Nothing about an artifact is known when the index cannot be reached or is not a
    factory index: exit 2 with the cause, not exit 1 ("a check failed")."""
    from factory.verify.remote import RemoteIndexError

    with pytest.raises(RemoteIndexError, match="cannot be read") as refused:
        verify(auditor, "alpha==1.0.0", index_dir="http://127.0.0.1:9/",
               check_advisories=False)
    assert refused.value.exit_code == 2
    app = Starlette(routes=[Route("/{path:path}", lambda request: Response("no", 404))])
    with running(app) as url, pytest.raises(RemoteIndexError, match="not a factory index"):
        verify(auditor, "alpha==1.0.0", index_dir=url, check_advisories=False)


def test_a_trusted_root_that_is_not_one_is_refused_in_one_line(
        site: tuple[Settings, str], auditor: Settings) -> None:
    """A PEM key given as --trusted-root: pydantic's error ran to several lines."""
    from factory.verify.trust import TrustError

    settings, url = site
    with pytest.raises(TrustError) as refused:
        verify(auditor, "alpha==1.0.0", index_dir=url, check_advisories=False,
               trusted_root=settings.public_keys_dir / "owner.pub.pem")
    assert "\n" not in refused.value.message and "cannot load the trusted root" in \
        refused.value.message and refused.value.exit_code == 2


def test_an_auditor_without_a_state_gets_no_state_made(site: tuple[Settings, str],
                                                       tmp_path: Path) -> None:
    """Verifying by URL from a directory of one's own made ./.factory/advisories there
    (the advisory cache); it now goes to the user's cache when there is no state."""
    from factory.verify.run import _advisories_cache

    settings, url = site
    auditor = factories.settings(tmp_path / "auditor")
    state = auditor.state_dir
    if state.exists():
        __import__("shutil").rmtree(state)
    assert _advisories_cache(auditor) is None
    report = verify(auditor, "alpha==1.0.0", index_dir=url, check_advisories=False,
                    identity=settings.identity, issuer=settings.issuer)
    assert report.ok and not state.exists()
    state.mkdir(parents=True)
    assert _advisories_cache(auditor) == state / "advisories"


def test_a_refused_index_url_never_shows_its_password(auditor: Settings) -> None:
    """verify and export share one reading of an index URL (factory.export.index_root);
    what it refuses is said without the user:password@ it was given with."""
    from factory.export import IndexUrlError

    with pytest.raises(IndexUrlError) as refused:
        verify(auditor, "alpha==1.0.0", index_dir="http://me:s3cret@127.0.0.1:9/simple/?x=1",
               check_advisories=False)
    assert "s3cret" not in refused.value.message and "--index" in refused.value.message
    assert refused.value.exit_code == 2
