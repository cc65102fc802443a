"""CPython interpreters from Debian's verified source: the pin table, upstream's .asc in the
signed stanza, the OpenPGP check against a pinned key, and the kept tree's manifest.

Nothing here compiles CPython (that is `make bench`'s interpreter figure): the container
run is replaced by one that lays out a small prefix, so what is tested is the host's side
(placement, manifest, the re-hash on use, the rebuild of a changed tree).
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factory.build import debian, debian_source, interpreters
from factory.build.debian_source import SourcePin, SourceTarball, SourceUnavailable
from factory.build.docker import ContainerRun
from factory.build.image import ImageRef
from factory.build.interpreters import PINS, InterpreterPin, ReleaseKey, SignatureRefused
from factory.config import load_settings
from factory.errors import BuildError, ConfigError, FactoryError
from tests import factories
from tests.test_catalogue_debian import Mirror, trusted

TARBALL = b"CPython's release tarball, as Debian carries it\n" * 8
ASC = b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"
PIN313 = SourcePin("python3.13", "3.13.5-2+deb13u5", "trixie")


# -- the pin table ------------------------------------------------------------------

def _v4_fingerprint(packets: bytes) -> str:
    """The fingerprint of the first (primary) public-key packet (RFC 4880, 12.2)."""
    tag = packets[0]
    assert tag & 0x80, "not an OpenPGP packet"
    if tag & 0x40:  # new format
        first = packets[1]
        if first < 192:
            length, start = first, 2
        elif first < 224:
            length, start = ((first - 192) << 8) + packets[2] + 192, 3
        else:
            length, start = int.from_bytes(packets[2:6], "big"), 6
    else:  # old format
        kind = tag & 0x03
        size = {0: 1, 1: 2, 2: 4}[kind]
        length, start = int.from_bytes(packets[1:1 + size], "big"), 1 + size
    body = packets[start:start + length]
    assert body[0] == 4, "not a v4 key"
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()


def test_the_pins_are_debian_source_packages_with_a_pinned_tarball_and_key() -> None:
    assert set(PINS) == {"3.13", "3.14"}
    for version, pin in PINS.items():
        pin.source.check()
        assert pin.version == version and pin.source.package == f"python{version}"
        assert pin.source.upstream_version.startswith(f"{version}.")
        assert len(pin.orig_sha256) == 64 and int(pin.orig_sha256, 16) >= 0
        assert pin.prefix == f"/opt/python/{pin.tag}-{pin.tag}"
    assert PINS["3.13"].tag == "cp313" and PINS["3.14"].tag == "cp314"
    key = PINS["3.13"].key
    assert key is not None and PINS["3.14"].key is None  # 3.14: Sigstore only upstream
    # The shipped file is the key the pin names (its primary key's v4 fingerprint).
    assert _v4_fingerprint(interpreters.dearmor(key.path.read_bytes())) == key.fingerprint
    assert (interpreters.DATA / "README.md").read_text().count(key.fingerprint) >= 1


def test_the_configured_set_selects_pins_and_refuses_unknown_versions(tmp_path: Path) -> None:
    assert interpreters.select(factories.settings(tmp_path)) == []  # the image's 3.11
    chosen = interpreters.select(factories.settings(
        tmp_path, build_interpreters=("3.11", "3.14", "3.13")))
    assert [p.version for p in chosen] == ["3.14", "3.13"]
    with pytest.raises(ConfigError, match="no source pin for"):
        interpreters.select(factories.settings(tmp_path, build_interpreters=("3.12",)))
    (tmp_path / "factory.toml").write_text('[build]\ninterpreters = ["3.11", "3.13"]\n')
    assert load_settings(tmp_path).build_interpreters == ("3.11", "3.13")
    for bad in ('"3.13"', '["3.13; rm"]', "[]", '["../3.13"]'):
        (tmp_path / "factory.toml").write_text(f"[build]\ninterpreters = {bad}\n")
        if bad == '"3.13"':  # a comma-separated string is accepted, as from the environment
            assert load_settings(tmp_path).build_interpreters == ("3.13",)
            continue
        with pytest.raises(ConfigError, match="not a list of"):
            load_settings(tmp_path)


def test_interpreters_are_kept_where_interpreters_dir_says(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pin = interpreters.PINS["3.13"]
    default = load_settings(tmp_path)
    assert interpreters.directory(default, pin, "a" * 64, "sha256:" + "b" * 64).parent == (
        default.state_dir / "builder" / "interpreters")
    (tmp_path / "factory.toml").write_text('[build]\ninterpreters_dir = "shared/pythons"\n')
    assert load_settings(tmp_path).interpreters_home == tmp_path / "shared" / "pythons"
    monkeypatch.setenv("FACTORY_INTERPRETERS_DIR", str(tmp_path / "cache"))
    kept = interpreters.directory(load_settings(tmp_path), pin, "a" * 64, "sha256:" + "b" * 64)
    assert kept.parent == tmp_path / "cache" and kept.name.startswith("cp313-aaaa")


def test_the_flags_digest_names_how_it_is_built() -> None:
    assert len(interpreters.flags_sha256()) == 64
    assert "--disable-shared" in interpreters.CONFIGURE
    assert not any("lto" in f or "optimizations" in f for f in interpreters.CONFIGURE)


# -- upstream's .asc in the signed stanza ---------------------------------------------

def stanza(asc: str | None = "python3.13_3.13.5.orig.tar.xz.asc",
           asc_body: bytes = ASC, extra: str = "") -> str:
    lines = [f" {'1' * 64} 4298 python3.13_3.13.5-2+deb13u5.dsc",
             f" {hashlib.sha256(TARBALL).hexdigest()} {len(TARBALL)} "
             "python3.13_3.13.5.orig.tar.xz"]
    if asc is not None:
        lines.append(f" {hashlib.sha256(asc_body).hexdigest()} {len(asc_body)} {asc}")
    lines.append(f" {'2' * 64} 299640 python3.13_3.13.5-2+deb13u5.debian.tar.xz")
    return (f"Package: python3.13\nVersion: {PIN313.version}\n"
            "Directory: pool/main/p/python3.13\nChecksums-Sha256:\n"
            + "\n".join(lines) + "\n" + extra)


def test_the_signature_is_the_one_the_stanza_lists_beside_the_tarball() -> None:
    index = stanza().encode()
    assert debian_source.find_orig(index, PIN313)[1] == "python3.13_3.13.5.orig.tar.xz"
    folder, name, sha, size = debian_source.find_signature(
        index, PIN313, "python3.13_3.13.5.orig.tar.xz") or ("", "", "", 0)
    assert (folder, name, size) == ("pool/main/p/python3.13",
                                    "python3.13_3.13.5.orig.tar.xz.asc", len(ASC))
    assert sha == hashlib.sha256(ASC).hexdigest()
    assert debian_source.find_signature(stanza(asc=None).encode(), PIN313,
                                        "python3.13_3.13.5.orig.tar.xz") is None
    # another file's .asc is not this tarball's signature
    other = stanza(asc="python3.13_3.13.4.orig.tar.xz.asc").encode()
    assert debian_source.find_signature(other, PIN313, "python3.13_3.13.5.orig.tar.xz") is None
    with pytest.raises(SourceUnavailable, match="lists python3.13_3.13.5.orig.tar.xz.asc 2"):
        debian_source.find_signature(_twice(), PIN313, "python3.13_3.13.5.orig.tar.xz")
    with pytest.raises(SourceUnavailable, match="more than the"):
        debian_source.find_signature(stanza(asc_body=b"x" * (1 << 20)).encode(), PIN313,
                                     "python3.13_3.13.5.orig.tar.xz")
    with pytest.raises(SourceUnavailable, match="names the file"):
        debian_source.find_signature(stanza(asc="../../x.asc").encode(), PIN313,
                                     "python3.13_3.13.5.orig.tar.xz")


def _twice() -> bytes:
    text = stanza()
    line = f" {hashlib.sha256(b'other').hexdigest()} 5 python3.13_3.13.5.orig.tar.xz.asc\n"
    return (text + line).encode()


@pytest.fixture(scope="module")
def served() -> Iterator[Mirror]:
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


def publish(mirror: Mirror, sources: str, asc: bytes = ASC) -> None:
    packed = lzma.compress(("Package: other\nVersion: 1\n\n" + sources).encode(),
                           format=lzma.FORMAT_XZ)
    base = "/debian/dists/trixie"
    mirror.files[f"{base}/main/source/Sources.xz"] = packed
    mirror.files[f"{base}/InRelease"] = (
        f"Origin: Debian\nCodename: trixie\nSHA256:\n {hashlib.sha256(packed).hexdigest()} "
        f"{len(packed)} main/source/Sources.xz\n").encode()
    pool = "/debian/pool/main/p/python3.13"
    mirror.files[f"{pool}/python3.13_3.13.5.orig.tar.xz"] = TARBALL
    mirror.files[f"{pool}/python3.13_3.13.5.orig.tar.xz.asc"] = asc


def test_the_signature_comes_through_the_signed_chain_and_is_kept(
        mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = factories.settings(tmp_path)
    publish(mirror, stanza())
    plain = debian_source.fetch_orig(settings, PIN313, verify=trusted)
    assert plain.signature is None and "python3.13_3.13.5.orig.tar.xz.asc" not in str(
        mirror.paths())
    # a former fetch that did not look for the signature is not enough: asked again
    found = debian_source.fetch_orig(settings, PIN313, verify=trusted, signature=True)
    assert found.signature is not None and found.signature.read_bytes() == ASC
    assert found == plain and found.describe() == plain.describe()  # the record: unchanged
    monkeypatch.setenv(debian.SWITCH, "off")  # offline: both kept
    again = debian_source.fetch_orig(settings, PIN313, verify=trusted, signature=True)
    assert again.signature == found.signature
    assert debian_source.fetch_orig(settings, PIN313, verify=trusted).signature is None
    found.signature.write_bytes(b"changed")  # a kept signature not its digest: not used
    assert debian_source.kept_orig(settings, PIN313, signature=True) is None
    assert debian_source.kept_orig(settings, PIN313) is not None


def test_a_signature_the_stanza_does_not_name_is_refused(
        mirror: Mirror, tmp_path: Path) -> None:
    publish(mirror, stanza(), asc=b"a signature swapped on the mirror\n")
    with pytest.raises(FactoryError, match="sha256|size|bytes"):
        debian_source.fetch_orig(factories.settings(tmp_path), PIN313, verify=trusted,
                                 signature=True)
    assert not list(debian_source.directory(factories.settings(tmp_path)).glob("*/*.asc"))


# -- the OpenPGP check ----------------------------------------------------------------

@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A throwaway OpenPGP key (gpg, no passphrase) and a file it signed."""
    if shutil.which("gpg") is None or shutil.which("gpgv") is None:
        pytest.skip("gpg or gpgv is not installed")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}

    def gpg(*args: str) -> bytes:
        return subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback",
                               "--passphrase", "", *args], env=env, check=True,
                              capture_output=True, timeout=60).stdout

    keys = {}
    for who in ("release", "other"):
        gpg("--quick-gen-key", f"{who} <{who}@example.invalid>", "ed25519", "sign", "never")
        listed = gpg("--with-colons", "--list-keys", f"{who}@example.invalid").decode()
        keys[who] = next(line.split(":")[9] for line in listed.splitlines()
                         if line.startswith("fpr:"))
    data = tmp_path_factory.mktemp("data")
    tarball = data / "python3.13_3.13.5.orig.tar.xz"
    tarball.write_bytes(TARBALL)
    for who, fingerprint in keys.items():
        (data / f"{fingerprint}.asc").write_bytes(gpg("--armor", "--export", fingerprint))
        gpg("--armor", "--local-user", fingerprint, "--output",
            str(data / f"by-{who}.asc"), "--detach-sign", str(tarball))
    return {"keys": keys, "data": data, "tarball": tarball}


def test_upstream_signature_is_checked_against_the_pinned_key_alone(
        signer: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data: Path = signer["data"]
    monkeypatch.setattr(interpreters, "DATA", data)
    key = ReleaseKey(signer["keys"]["release"], "release", 0)
    tarball: Path = signer["tarball"]
    assert interpreters.verify_detached(tarball, data / "by-release.asc", key)[:2] == "20"
    with pytest.raises(SignatureRefused, match="does not check against"):  # another key
        interpreters.verify_detached(tarball, data / "by-other.asc", key)
    changed = tmp_path / tarball.name
    changed.write_bytes(TARBALL + b"one more line\n")
    with pytest.raises(SignatureRefused, match="BADSIG"):
        interpreters.verify_detached(changed, data / "by-release.asc", key)
    junk = tmp_path / "junk.asc"
    junk.write_bytes(ASC)
    with pytest.raises(SignatureRefused):
        interpreters.verify_detached(tarball, junk, key)
    # What a record says: through check_signature, from a fetched tarball.
    pin = InterpreterPin("3.13", PIN313, hashlib.sha256(TARBALL).hexdigest(), key)
    fetched = SourceTarball(tarball, tarball.name, pin.orig_sha256, len(TARBALL), "python3.13",
                            PIN313.version, "trixie", "3.13.5", data / "by-release.asc")
    said = interpreters.check_signature(fetched, pin)
    assert said["kind"] == "openpgp" and said["fingerprint"] == key.fingerprint
    unsigned = SourceTarball(tarball, tarball.name, pin.orig_sha256, len(TARBALL),
                             "python3.13", PIN313.version, "trixie", "3.13.5", None)
    with pytest.raises(SignatureRefused, match="lists no upstream signature"):
        interpreters.check_signature(unsigned, pin)
    nokey = InterpreterPin("3.14", SourcePin("python3.14", "3.14.8-1", "forky"),
                           pin.orig_sha256, None)
    assert interpreters.check_signature(unsigned, nokey)["kind"] == "none"
    with pytest.raises(SignatureRefused, match="no key is pinned"):
        interpreters.check_signature(fetched, nokey)


FPR = "7169605F62C751356D054A26A821E680E5FA6305"


def status(word: str, made: int = 1749663954, fpr: str = FPR) -> bytes:
    return (f"[GNUPG:] NEWSIG\n[GNUPG:] {word} A821E680E5FA6305 Thomas\n"
            f"[GNUPG:] VALIDSIG {fpr} 2025-06-11 {made} 0 4 0 1 10 00 {fpr}\n").encode()


def test_gpgv_status_is_judged_strictly() -> None:
    key = ReleaseKey(FPR, "tw", 1782998657)
    assert interpreters.signature_date(status("GOODSIG"), 0, key, "t") == "2025-06-11"
    # the key expired since: a signature made before its expiry stands, one after does not
    assert interpreters.signature_date(status("EXPKEYSIG"), 0, key, "t") == "2025-06-11"
    with pytest.raises(SignatureRefused, match="after"):
        interpreters.signature_date(status("EXPKEYSIG", made=1782998700), 0, key, "t")
    with pytest.raises(SignatureRefused, match="after"):
        interpreters.signature_date(status("EXPKEYSIG"), 0, ReleaseKey(FPR, "tw", 0), "t")
    for word in ("BADSIG", "REVKEYSIG", "EXPSIG", "ERRSIG"):
        with pytest.raises(SignatureRefused, match=word):
            interpreters.signature_date(status(word), 0, key, "t")
    with pytest.raises(SignatureRefused, match="not by the pinned"):
        interpreters.signature_date(status("GOODSIG", fpr="A" * 40), 0, key, "t")
    with pytest.raises(SignatureRefused):
        interpreters.signature_date(status("GOODSIG"), 2, key, "t")
    with pytest.raises(SignatureRefused):
        interpreters.signature_date(b"[GNUPG:] GOODSIG x\n", 0, key, "t")  # no VALIDSIG


def test_dearmor_refuses_what_is_not_armor() -> None:
    assert interpreters.dearmor(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAEC\n=abcd\n"
                                b"-----END PGP PUBLIC KEY BLOCK-----\n") == b"\x00\x01\x02"
    for bad in (b"AAEC", b"-----BEGIN PGP X-----\n\n!!!!\n-----END PGP X-----\n"):
        with pytest.raises(ValueError):
            interpreters.dearmor(bad)


# -- the kept tree ----------------------------------------------------------------------

IMAGE = ImageRef("factory-builder:bookworm-x", "sha256:" + "ab" * 32, "debootstrap")


class FakeBuild:
    """Stands in for run_container: lays out a small prefix the way `make install` does."""

    def __init__(self, layout: str = "good") -> None:
        self.runs = 0
        self.layout = layout

    def __call__(self, settings: Any, image: str, command: list[str], binds: list[Any],
                 environment: dict[str, str], timeout: float,
                 labels: dict[str, str] | None = None) -> ContainerRun:
        self.runs += 1
        assert "--disable-shared" in command and environment["SOURCE_DATE_EPOCH"] == "0"
        out: Path = binds[1].source
        root = out / "layout"
        (root / "bin").mkdir(parents=True)
        (root / "lib/python3.13/lib-dynload").mkdir(parents=True)
        (root / "bin/python3.13").write_bytes(b"\x7fELF the interpreter")
        (root / "bin/python3.13").chmod(0o4775)  # a set-id bit the host must clear
        (root / "bin/python3").symlink_to("python3.13")
        (root / "lib/python3.13/os.py").write_text("# os\n")
        (root / "lib/python3.13/lib-dynload/_ssl.so").write_bytes(b"\x7fELF ssl")
        if self.layout == "escape":
            (root / "lib/python3.13/evil").symlink_to("../../../../../etc")
        if self.layout == "fifo":
            os.mkfifo(root / "lib/python3.13/pipe")
        with tarfile.open(out / "tree.tar", "w") as archive:
            archive.add(root, ".")
            if self.layout == "dotdot":
                info = tarfile.TarInfo("../../../../etc/cron.d/evil")
                archive.addfile(info, io.BytesIO(b""))
        shutil.rmtree(root)
        (out / "version").write_text("3.13.5\n")
        return ContainerRun(0, False, b"built\n", 1.0)


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    tarball = tmp_path / "python3.13_3.13.5.orig.tar.xz"
    tarball.write_bytes(TARBALL)
    pin = InterpreterPin("3.13", PIN313, hashlib.sha256(TARBALL).hexdigest(), None)
    source = SourceTarball(tarball, tarball.name, pin.orig_sha256, len(TARBALL),
                           "python3.13", PIN313.version, "trixie", "3.13.5", None)
    signature = interpreters.check_signature(source, pin)
    monkeypatch.setattr(interpreters, "fetch_source", lambda s, p: (source, signature))
    monkeypatch.setattr(debian_source, "kept_orig", lambda s, p, signature=False: source)
    fake = FakeBuild()
    monkeypatch.setattr(interpreters, "run_container", fake)
    return {"settings": factories.settings(tmp_path), "pin": pin, "fake": fake}


def test_a_kept_tree_with_a_link_out_or_a_special_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/python3").symlink_to("/usr/bin/python3")
    with pytest.raises(BuildError, match="link leaving it"):
        interpreters.manifest(tmp_path)
    (tmp_path / "bin/python3").unlink()
    os.mkfifo(tmp_path / "bin/pipe")
    with pytest.raises(BuildError, match="special file"):
        interpreters.manifest(tmp_path)


def test_the_tree_is_built_once_kept_with_a_manifest_and_checked_on_use(
        built: dict[str, Any]) -> None:
    settings, pin, fake = built["settings"], built["pin"], built["fake"]
    first = interpreters.for_image(settings, IMAGE, pin)
    assert first.fresh and fake.runs == 1 and first.version == "3.13.5"
    assert first.tree == interpreters.directory(settings, pin, pin.orig_sha256,
                                                IMAGE.id) / "tree"
    assert (first.tree / "bin/python3.13").stat().st_mode & 0o7777 == 0o755  # set-id cleared
    listed = interpreters.manifest(first.tree)
    assert ["bin/python3", "l", "python3.13"] in listed
    assert interpreters.tree_sha256(listed) == first.tree_sha256
    again = interpreters.for_image(settings, IMAGE, pin)
    assert not again.fresh and fake.runs == 1 and again.tree_sha256 == first.tree_sha256
    assert interpreters.kept(settings, IMAGE, pin) == again
    described = again.describe()
    assert described["source"]["sha256"] == pin.orig_sha256 and "tree" not in described
    # another image: its own tree
    other = ImageRef("x", "sha256:" + "cd" * 32, "debootstrap")
    assert interpreters.kept(settings, other, pin) is None


@pytest.mark.parametrize("change", ["content", "mode", "added", "removed", "link"])
def test_a_changed_tree_is_refused_and_built_again(built: dict[str, Any], change: str) -> None:
    settings, pin, fake = built["settings"], built["pin"], built["fake"]
    tree = interpreters.for_image(settings, IMAGE, pin).tree
    target = tree / "lib/python3.13/os.py"
    if change == "content":
        target.write_text("# os, changed\n")
    elif change == "mode":
        target.chmod(0o666)
    elif change == "added":
        (tree / "lib/python3.13/sitecustomize.py").write_text("import evil\n")
    elif change == "removed":
        target.unlink()
    else:
        (tree / "bin/python3").unlink()
        (tree / "bin/python3").symlink_to("/usr/bin/python3")
    assert interpreters.kept(settings, IMAGE, pin) is None
    rebuilt = interpreters.for_image(settings, IMAGE, pin)
    assert rebuilt.fresh and fake.runs == 2
    assert (rebuilt.tree / "lib/python3.13/os.py").read_text() == "# os\n"
    assert not (rebuilt.tree / "lib/python3.13/sitecustomize.py").exists()


@pytest.mark.parametrize(("layout", "why"), [("escape", "tar is refused.*outside"),
                                             ("fifo", "tar is refused.*special"),
                                             ("dotdot", "tar is refused.*climbs out")])
def test_a_tree_with_a_link_out_or_a_special_file_is_refused(
        built: dict[str, Any], layout: str, why: str) -> None:
    built["fake"].layout = layout
    settings, pin = built["settings"], built["pin"]
    with pytest.raises(BuildError, match=why):
        interpreters.for_image(settings, IMAGE, pin)
    parent = interpreters.directory(settings, pin, pin.orig_sha256, IMAGE.id).parent
    assert not any(parent.iterdir()), "nothing refused is kept"


def test_an_image_without_the_build_headers_is_refused(built: dict[str, Any]) -> None:
    bare = ImageRef("factory-builder:bookworm", "sha256:" + "ef" * 32, "debootstrap",
                    packages=["gcc=12.2.0-14", "python3=3.11.2-1+b1"])
    with pytest.raises(BuildError, match="lacks what CPython's build needs: make"):
        interpreters.for_image(built["settings"], bare, built["pin"])
    assert built["fake"].runs == 0


# -- the command ----------------------------------------------------------------------

def test_builder_bootstrap_interpreters_prints_each_and_fails_on_one_it_cannot_have(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from factory.cli import app
    from factory.cli import build as build_cli

    settings = factories.settings(tmp_path, build_repair="none",
                                  build_interpreters=("3.11", "3.13", "3.14"))
    monkeypatch.setattr(build_cli, "settings", lambda: settings)
    monkeypatch.setattr("factory.build.image.bootstrap_image", lambda s, extra=(): IMAGE)
    source = {"filename": "python3.13_3.13.5.orig.tar.xz", "sha256": "9" * 64,
              "package": "python3.13", "version": PIN313.version, "suite": "trixie"}

    def for_image(s: Any, image: ImageRef, pin: InterpreterPin) -> interpreters.Interpreter:
        if pin.version == "3.14":
            raise SourceUnavailable("https://deb.debian.org/debian/pool/main/p/python3.14/"
                                    "python3.14_3.14.8.orig.tar.xz answered HTTP 404")
        return interpreters.Interpreter(
            "3.13.5", pin.tag, pin.prefix, tmp_path, "8" * 64, source,
            {"kind": "openpgp", "fingerprint": FPR, "signer": "tw", "signed": "2025-06-11"},
            image.id, "7" * 64, 480.0, fresh=True)

    monkeypatch.setattr(interpreters, "for_image", for_image)
    done = CliRunner().invoke(app, ["builder", "bootstrap", "--interpreters"])
    assert done.exit_code == 1
    assert ("CPython 3.13.5  /opt/python/cp313-cp313  tree sha256:" + "8" * 64) in done.output
    assert f"sha256:{'9' * 64}; OpenPGP {FPR} (2025-06-11); built in 480 s" in done.output
    assert "error: CPython 3.14: https://deb.debian.org" in done.output
    done = CliRunner().invoke(app, ["builder", "bootstrap", "--interpreters", "--json"])
    data = json.loads(done.stdout)
    assert data["interpreters"][0]["tree_sha256"] == "8" * 64
    assert data["interpreters"][0]["source"]["sha256"] == "9" * 64
    assert list(data["interpreter_errors"]) == ["3.14"]
