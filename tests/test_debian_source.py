"""Debian source tarballs through the signed chain, against a hostile mirror on 127.0.0.1.

InRelease (the test's is taken as signed: gpgv is tested on unsigned input here and
on Debian's real InRelease in test_catalogue_debian) pins main/source/Sources.xz by
sha256 and size; the Sources stanza pins the orig tarball. Every lie is refused in
one line, and a tarball once fetched is used offline.
"""

from __future__ import annotations

import hashlib
import lzma
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from factory.build import debian, debian_source
from factory.build.debian_source import SourcePin, SourceUnavailable, fetch_orig
from factory.errors import FactoryError
from tests import factories
from tests.test_catalogue_debian import Mirror, trusted

PIN = SourcePin("patchelf", "0.18.0-1.4", "trixie")
TARBALL = b"the upstream release, as Debian carries it\n" * 10


def stanza(version: str = PIN.version, name: str = "patchelf_0.18.0.orig.tar.gz",
           directory: str = "pool/main/p/patchelf", sha: str | None = None,
           size: int | None = None) -> str:
    digest = sha or hashlib.sha256(TARBALL).hexdigest()
    return (f"Package: patchelf\nBinary: patchelf\nVersion: {version}\n"
            f"Directory: {directory}\nChecksums-Sha256:\n"
            f" {'1' * 64} 1866 patchelf_{version}.dsc\n"
            f" {digest} {size if size is not None else len(TARBALL)} {name}\n"
            f" {'2' * 64} 6416 patchelf_{version}.debian.tar.xz\n")


def publish(mirror: Mirror, sources: str | None = None, suite: str = "trixie",
            sources_size: int | None = None, tarball: bytes = TARBALL,
            path: str = "pool/main/p/patchelf/patchelf_0.18.0.orig.tar.gz") -> None:
    text = "Package: other\nVersion: 1\n\n" + (sources if sources is not None else stanza())
    packed = lzma.compress(text.encode(), format=lzma.FORMAT_XZ)
    base = "/debian/dists/trixie"
    mirror.files[f"{base}/main/source/Sources.xz"] = packed
    mirror.files[f"{base}/InRelease"] = (
        f"Origin: Debian\nSuite: stable\nCodename: {suite}\nSHA256:\n"
        f" {'0' * 64} 1 main/source/Sources\n"
        f" {hashlib.sha256(packed).hexdigest()} {sources_size or len(packed)} "
        "main/source/Sources.xz\n").encode()
    mirror.files[f"/debian/{path}"] = tarball


@pytest.fixture(scope="module")
def served() -> Iterator[Mirror]:
    """One server for the module (stopping one takes half a second)."""
    served = Mirror()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def mirror(served: Mirror, monkeypatch: pytest.MonkeyPatch) -> Mirror:
    served.files.clear()
    served.requests.clear()
    monkeypatch.setattr(debian, "MIRROR", served.url)
    monkeypatch.setenv(debian.SWITCH, "on")
    return served


def test_the_tarball_comes_through_the_signed_chain_and_is_then_used_offline(
        mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = factories.settings(tmp_path)
    publish(mirror)
    found = fetch_orig(settings, PIN, verify=trusted)
    assert found.path.read_bytes() == TARBALL and found.upstream_version == "0.18.0"
    assert found.sha256 == hashlib.sha256(TARBALL).hexdigest()
    assert found.path == debian_source.directory(settings) / found.sha256 / found.filename
    assert mirror.paths() == ["InRelease", "Sources.xz", "patchelf_0.18.0.orig.tar.gz"]
    monkeypatch.setenv(debian.SWITCH, "off")  # offline: the kept tarball, nothing asked
    assert fetch_orig(settings, PIN, verify=trusted) == found
    assert len(mirror.requests) == 3
    found.path.write_bytes(b"changed on disk")  # a kept file that is not its digest: not used
    with pytest.raises(SourceUnavailable, match="not kept and asking the Debian mirror is off"):
        fetch_orig(settings, PIN, verify=trusted)


@pytest.mark.parametrize(("change", "why"), [
    (dict(tarball=b"other bytes" + TARBALL[11:]), "sha256"),  # not the bytes Sources names
    (dict(tarball=TARBALL + b"more"), "size|bytes|sha256"),
    (dict(suite="sid"), "InRelease is for 'sid', not trixie"),
    (dict(sources_size=1 << 30), "more than the"),  # an oversized index is not fetched
    (dict(sources=stanza(size=1 << 30)), "more than the"),
    (dict(sources=stanza(version="0.17.0-1")), "has no source package patchelf 0.18.0-1.4"),
    (dict(sources=stanza(name="../../../../etc/passwd")), "names the file '../../../../etc"),
    (dict(sources=stanza(name="patchelf_0.18.0.orig.tar.gz/../../x.orig.tar.gz")),
     "names the file"),
    (dict(sources=stanza(directory="pool/main/p/../../../tmp")), "names the directory"),
    (dict(sources=stanza(directory="pool/main/p/other")), "names the directory"),
    (dict(sources=stanza().replace("patchelf_0.18.0-1.4.debian.tar.xz",
                                   "patchelf_0.18.0.orig.tar.xz")), "names 2 orig tarballs"),
])
def test_a_mirror_that_lies_is_refused_in_one_line(
        mirror: Mirror, tmp_path: Path, change: dict[str, object], why: str) -> None:
    publish(mirror, **change)  # type: ignore[arg-type]
    settings = factories.settings(tmp_path)
    with pytest.raises(FactoryError, match=why) as caught:
        fetch_orig(settings, PIN, verify=trusted)
    assert "\n" not in caught.value.message
    kept = debian_source.directory(settings)
    assert not list(kept.glob("*/*.orig.tar.*")), "nothing unverified is kept"


def test_an_unsigned_or_forged_inrelease_is_refused(mirror: Mirror, tmp_path: Path) -> None:
    publish(mirror)

    def forged(signed: bytes) -> bytes:
        raise debian.LookupUnavailable("the mirror's InRelease has no good signature from "
                                       "the Debian archive keyring")

    with pytest.raises(SourceUnavailable, match="no good signature"):
        fetch_orig(factories.settings(tmp_path), PIN, verify=forged)
    if shutil.which("gpgv") is None or not debian.KEYRING.is_file():
        pytest.skip("gpgv or the Debian archive keyring is not installed")
    with pytest.raises(SourceUnavailable, match="signature"):  # gpgv itself, unsigned text
        fetch_orig(factories.settings(tmp_path), PIN)
    assert mirror.paths()[-1] == "InRelease"  # nothing further was asked


def test_the_pin_is_checked_and_names_its_upstream_version() -> None:
    assert SourcePin("python3.13", "3.13.5-2", "trixie").upstream_version == "3.13.5"
    assert SourcePin("x", "1:2.0~rc1-3", "sid").upstream_version == "2.0~rc1"
    assert SourcePin("patchelf", "0.18.0", "trixie").upstream_version == "0.18.0"
    for bad in (SourcePin("../x", "1", "trixie"), SourcePin("x", "1/../2", "trixie"),
                SourcePin("x", "1", "trixie/../../x")):
        with pytest.raises(SourceUnavailable, match="is not a Debian source package"):
            bad.check()


def test_an_index_that_inflates_past_its_bound_is_refused(
        mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(mirror, sources=stanza() + "X-Padding: " + "0" * 4000 + "\n")
    monkeypatch.setattr(debian_source, "MAX_SOURCES_INFLATED", 2000)
    with pytest.raises(SourceUnavailable, match="decompresses to more than 2000 bytes"):
        fetch_orig(factories.settings(tmp_path), PIN, verify=trusted)
    monkeypatch.setattr(debian_source, "MAX_SOURCES_INFLATED", 1 << 20)
    monkeypatch.setattr(debian_source, "MAX_STANZA", 1000)
    with pytest.raises(SourceUnavailable, match="stanza of patchelf is over 1000 bytes"):
        fetch_orig(factories.settings(tmp_path), PIN, verify=trusted)
