"""A helper's attack on `factory export pylock` and `factory sbom TARGET` (commits e8816aa,
6dd9dc3): a requirements file, venv or lock from someone else.

Each test asserts the secure behaviour; those marked WAS A BREAK failed on the code as
reviewed and hold since the fixes that followed. Marker and hash cases run against a
small index made here with the names of the demo index the attack used (flit-core in
two versions, markupsafe 3.0.4 as two wheels); sbom cases against the released
alpha/beta index of tests.security_fixtures.
"""

from __future__ import annotations

import json
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import textwrap
import tomllib
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from packaging.markers import Marker

from factory._internal.atomic import write_shared
from factory.config import Settings
from factory.environment import read_pins
from factory.errors import FactoryError
from factory.export import MarkerConflictError, index_root, pylock_of
from factory.verify.view import IndexView
from tests import factories
from tests.test_environment_sbom_fixes import (
    _sbom,
    site_fixture,  # noqa: F401  (fixture "site")
)

REPO = Path(__file__).resolve().parents[1]
PUBLISHER = {"kind": "test"}
ALPHA = f"alpha-1.0.0-{factories.PURE}.whl"
# The index the marker and hash cases read (set by the `demo` fixture): the names the
# attack was made against on the demo index (flit-core in two versions, markupsafe
# 3.0.4 as two wheels, click 8.5.1), published here with fabricated sidecars.
DEMO = Path("/nonexistent")


@pytest.fixture(scope="module")
def _synthetic_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from factory.index import Index
    from tests.index_fixtures import make_sidecars

    work = tmp_path_factory.mktemp("attack-pylock")
    settings = factories.settings(work / "state")
    wheels = [("flit-core", "3.9.0", factories.PURE), ("flit-core", "3.10.1", factories.PURE),
              ("click", "8.5.1", factories.PURE), ("markupsafe", "3.0.4", factories.PURE),
              ("markupsafe", "3.0.4", "cp311-cp311-manylinux_2_17_x86_64")]
    for name, version, tag in wheels:
        wheel = factories.wheel(work / "dist" / tag, name, version, tag=tag)
        sdist = factories.sdist(work / "sdist", name, version)
        Index.of(settings).add(wheel, make_sidecars(work / "side" / tag, wheel, sdist),
                               sdist, {})
    return settings.index_dir


@pytest.fixture
def _with_index(_synthetic_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(globals(), "DEMO", _synthetic_index)


demo = pytest.mark.usefixtures("_with_index")


def _export(tmp_path: Path, text: str, base: str = "http://h:1") -> list[dict[str, Any]]:
    target = tmp_path / "requirements.txt"
    target.write_text(text, encoding="utf-8")
    exported = pylock_of(target, IndexView(DEMO), base, PUBLISHER)
    return tomllib.loads(exported.text)["packages"]


def _active(packages: list[dict[str, Any]], environment: dict[str, str]) -> list[dict[str, Any]]:
    return [p for p in packages
            if "marker" not in p or Marker(p["marker"]).evaluate(environment)]


def _in_child(code: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh Python at the repository root; TimeoutExpired is the failure."""
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.communicate()
        pytest.fail(f"no answer within {timeout} s")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


# == export pylock: two versions of one name, markers that hold together ======================
@demo
@pytest.mark.parametrize(("first", "second", "where", "both_hold"), [
    # WAS A BREAK (by PEP 508's reading: "fall back to Python's string comparison", as
    # packaging <= 21 does, the one pip 23.2 in .venv vendors): string order between two
    # literals; the candidates are only the literals, "", "\x7fother". packaging >= 22
    # and uv call a string "<"/">" false, so for them this pair is exclusive.
    # Fixed: an order of a text variable is refused as undecidable (export._unsettled).
    ("sys_platform > 'l'", "sys_platform < 'm'", {"sys_platform": "linux"},
     "l" < "linux" < "m"),
    ("platform_version > '#1'", "platform_version < '#2'",
     {"platform_version": "#1 SMP PREEMPT_DYNAMIC Thu Jan 1"},
     "#1" < "#1 SMP PREEMPT_DYNAMIC Thu Jan 1" < "#2"),
    # WAS A BREAK (any reading): a pre-release between two pre-release bounds (3.13.0b1
    # was a real Python); the candidates held no pre-release but the literals. Fixed:
    # each bound's pre/post/dev neighbours are tried (export._neighbours: 3.13.0a2).
    ("python_full_version > '3.13.0a1'", "python_full_version < '3.13.0rc1'",
     {"python_full_version": "3.13.0b1"},
     Marker("python_full_version > '3.13.0a1' and python_full_version < '3.13.0rc1'")
     .evaluate({"python_full_version": "3.13.0b1"})),
], ids=["string-order-platform", "string-order-version", "pre-release"])
def test_two_versions_whose_markers_hold_together_are_refused(
        tmp_path: Path, first: str, second: str, where: dict[str, str], both_hold: bool) -> None:
    assert both_hold
    with pytest.raises(MarkerConflictError):
        packages = _export(tmp_path, f"flit-core==3.9.0 ; {first}\n"
                                     f"flit-core==3.10.1 ; {second}\n")
        pytest.fail(f"two entries, both active where {where}: "
                    + ", ".join(f"{p['version']} ({p['marker']})" for p in packages))


@demo
@pytest.mark.parametrize(("first", "second"), [
    ("python_version < '3.11'", "python_version >= '3.11'"),
    ("python_version <= '3.11'", "python_version >= '3.11'"),  # conflict
    ("os_name == 'nt'", "os_name != 'nt'"),
    ("python_version == '3.1.*'", "python_version >= '3.1.5' and python_version < '3.2'"),
    ("python_version > '3.10'", "python_version < '3.10.1'"),  # conflict
    ("python_version ~= '3.1.0'", "python_version == '3.2'"),
    ("python_version < '3.12'", "python_full_version >= '3.12'"),  # correlated: refused
    ("extra == 'x'", "os_name == 'nt'"),  # undecidable: refused
    ("python_version in '3.8 3.9'", "python_version >= '3.10'"),  # undecidable: refused
    ("os_name == 'x\" or os_name != \"x'", "os_name != 'zz'"),  # quotes kept on str()
])
def test_held_marker_pairs(tmp_path: Path, first: str, second: str) -> None:
    """HELD: every pair the search settles is settled right (or refused)."""
    text = f"flit-core==3.9.0 ; {first}\nflit-core==3.10.1 ; {second}\n"
    try:
        packages = _export(tmp_path, text)
    except MarkerConflictError:
        return
    for env in ({"python_version": v, "python_full_version": f"{v}.0", "os_name": o}
                for v in ("3.0", "3.1", "3.1.5", "3.10", "3.11", "3.12", "3.13")
                for o in ("nt", "posix", "x", "zz")):
        assert len(_active(packages, env)) <= 1, env


# == export pylock: a line's --hash belongs to its marker =======================================
@demo
def test_each_lines_hash_holds_under_its_own_marker(tmp_path: Path) -> None:
    """WAS A BREAK: lines of one version are merged (markers or-ed, wheels unioned), so
    under os_name == "posix" the entry also offers the wheel only the "nt" line allowed.
    Fixed: one entry per version and allowed wheels, the overlap check run over them."""
    first, second = sorted(IndexView(DEMO).by_version("markupsafe", "3.0.4"),
                           key=lambda p: p.filename)
    packages = _export(tmp_path,
                       f"markupsafe==3.0.4 ; os_name == 'nt' --hash=sha256:{first.entry.sha256}\n"
                       f"markupsafe==3.0.4 ; os_name == 'posix' "
                       f"--hash=sha256:{second.entry.sha256}\n")
    for os_name, allowed in (("nt", first.entry.sha256), ("posix", second.entry.sha256)):
        offered = {w["hashes"]["sha256"] for p in _active(packages, {"os_name": os_name})
                   for w in p["wheels"]}
        assert offered == {allowed}, (os_name, offered)


@demo
def test_hash_spellings(tmp_path: Path) -> None:
    """HELD: upper case and duplicates accepted; short, empty, md5-only refused."""
    [wheel] = IndexView(DEMO).by_version("click", "8.5.1")
    digest = wheel.entry.sha256
    [package] = _export(tmp_path, f"click==8.5.1 --hash=SHA256:{digest.upper()} "
                                  f"--hash sha256:{digest}\n")
    assert [w["hashes"]["sha256"] for w in package["wheels"]] == [digest]
    for bad in (f"sha256:{digest[:10]}", "sha256:", "md5:abcd", f"sha256:{digest}0"):
        with pytest.raises(FactoryError):
            _export(tmp_path, f"click==8.5.1 --hash={bad}\n")


# == hostile text: one line, no traceback ==========================================================
@pytest.mark.parametrize("text", [
    # WAS A BREAK: RecursionError from packaging's marker parser. Fixed: a line nested
    # more than 50 deep (or over 64 KiB) is a bad line before parsing; RecursionError too
    "alpha==1.0.0 ; " + "(" * 2000 + "os_name == 'nt'" + ")" * 2000 + "\n",
    # WAS A BREAK: a backslash ending a --hash value joins the next pin for
    # requirement_options only (InvalidRequirement). Fixed: both read pip's logical lines
    # (environment.logical_lines), and a --hash value must be ALGORITHM:HEXDIGEST
    "alpha==1.0.0 --hash=sha256:abc\\\nbeta==1.0.0\n",
])
def test_hostile_requirements_give_one_line_errors(tmp_path: Path, text: str) -> None:
    target = tmp_path / "requirements.txt"
    target.write_text(text, encoding="utf-8")
    index = IndexView(tmp_path / "no-index")
    for read in (lambda: read_pins(target),
                 lambda: pylock_of(target, index, "http://h", PUBLISHER)):
        try:
            read()
        except FactoryError as exc:
            assert "\n" not in exc.diagnostics()


@pytest.mark.parametrize("text", [
    "\ufeffalpha==1.0.0\n", "alpha==1.0.0\x00\n", "alpha==1.0.0 \\", "-r other.txt\n",
    "-e .\n", "alpha @ https://x/alpha.whl\n", "--index-url http://evil/simple\nalpha==1.0.0\n",
    "alpha==1.0.0\r\nbeta==1.0.0 \\\r\n",
])
def test_held_hostile_lines_are_refused_in_one_line(tmp_path: Path, text: str) -> None:
    target = tmp_path / "requirements.txt"
    target.write_text(text, encoding="utf-8", newline="")
    with pytest.raises(FactoryError) as caught:
        read_pins(target)
    assert "\n" not in caught.value.diagnostics()


@demo
def test_pip_compile_continued_lines_are_read(tmp_path: Path) -> None:
    """WAS A BREAK (function, fails closed): the commit reads lines continued with a
    backslash (pip-compile --generate-hashes), but read_pins reads physical lines and
    refuses the `--hash` continuation lines and the pin ending in a backslash. Fixed:
    read_pins and the export read one parse of pip's logical lines (requirement_lines)."""
    [wheel] = IndexView(DEMO).by_version("click", "8.5.1")
    packages = _export(tmp_path, "click==8.5.1 ; os_name == 'posix' \\\n"
                                 f"    --hash=sha256:{wheel.entry.sha256}\n")
    assert [(p["name"], p.get("marker")) for p in packages] == [("click", 'os_name == "posix"')]


# == bounded time ==================================================================================
@demo
@pytest.mark.parametrize("text", [
    # WAS A BREAK: one pair, 8000 literals: 8000 environments x 16000 comparisons (~1 MB
    # file). Fixed: a line over 64 KiB is refused; a marker over 64 comparisons, a pair
    # over 20 000 environments and an export over 250 000 comparisons are undecidable
    "flit-core==3.9.0 ; " + " or ".join(f"sys_platform == 'p{i}'" for i in range(8000))
    + "\nflit-core==3.10.1 ; " + " and ".join(f"sys_platform != 'p{i}'" for i in range(8000))
    + "\n",
    # WAS A BREAK: 1200 spellings of one version (3.9, 3.9.0, …): 720 000 pairs. Fixed:
    # entries group versions by Version(), a pin's version is at most 64 characters
    "".join(f"flit-core==3.9{'.0' * i} ; os_name == 'v{i}'\n" for i in range(1200)),
    # WAS A BREAK: a 12 kB version literal: 18 000 candidates of up to 24 kB each, ~45 s,
    # 135 MB. Fixed: a version literal over 64 characters or 32 parts is undecidable
    "flit-core==3.9.0 ; python_version == '" + ".".join(["3"] * 6000) + "'\n"
    "flit-core==3.10.1 ; python_version == '3.1'\n",
], ids=["or-chain", "spellings", "long-version"])
def test_marker_analysis_is_bounded_in_time(tmp_path: Path, text: str) -> None:
    target = tmp_path / "requirements.txt"
    target.write_text(text)
    assert target.stat().st_size < 4 << 20
    done = _in_child(f"""
        from pathlib import Path
        from factory.errors import FactoryError
        from factory.export import pylock_of
        from factory.verify.view import IndexView
        try:
            pylock_of(Path({str(target)!r}), IndexView(Path({str(DEMO)!r})), "http://h", {{}})
        except FactoryError:
            pass
        """, timeout=8)
    assert done.returncode == 0, done.stderr[-500:]


# == --index-url ===================================================================================
@pytest.mark.parametrize("given", [
    "http://simple",  # WAS A BREAK: "/simple" at the end of the host name
    "http://simple/",
    "http://h/?q=/simple",  # WAS A BREAK: a query
    "http://h/#/simple",  # WAS A BREAK: a fragment
    "http://h/simple?x=1",  # WAS A BREAK: files under the query
    "http://h/simple/../x",  # WAS A BREAK: dot segments
])
def test_index_url_never_leads_off_the_index(given: str) -> None:
    """Fixed: index_root reads the URL with urlsplit, drops /simple from its path only,
    and refuses a query, fragment, . or .. segment or no host (IndexUrlError, exit 2)."""
    from urllib.parse import urlsplit

    try:
        root = index_root(given)
    except FactoryError:
        return
    wheel = urlsplit(f"{root}/files/alpha/{ALPHA}")
    assert wheel.netloc == urlsplit(given).netloc, root
    assert not wheel.query and not wheel.fragment, root
    assert wheel.path.endswith(f"/files/alpha/{ALPHA}") and "/../" not in wheel.path, root


@pytest.mark.parametrize("given", ["http://h:1", "http://h:1/", "http://h:1/simple",
                                   "http://h:1/simple/", " http://h:1/simple/ "])
def test_held_index_url_spellings(given: str) -> None:
    assert index_root(given) == "http://h:1"


# == write_shared ==================================================================================
def test_write_shared_never_follows_a_planted_link(tmp_path: Path) -> None:
    """HELD: a link at the output path is replaced, its target untouched; a FIFO too."""
    victim = tmp_path / "victim"
    victim.write_text("secret")
    victim.chmod(0o600)
    out = tmp_path / "pylock.toml"
    out.symlink_to(victim)
    write_shared(out, b"doc")
    assert victim.read_text() == "secret" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert not out.is_symlink() and out.read_bytes() == b"doc"
    dangling = tmp_path / "dangling.toml"
    dangling.symlink_to(tmp_path / "elsewhere")
    write_shared(dangling, b"doc")
    assert not (tmp_path / "elsewhere").exists()
    fifo = tmp_path / "fifo.toml"  # no reader: an error or a file, never a hang
    os.mkfifo(fifo)
    try:
        write_shared(fifo, b"doc")
    except OSError:
        assert stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.mark.parametrize(("umask", "old", "new"), [
    (0o077, None, 0o600), (0o022, None, 0o644), (0o022, 0o600, 0o600), (0o000, 0o640, 0o640),
    (0o000, 0o444, 0o444),
])
def test_write_shared_modes(tmp_path: Path, umask: int, old: int | None, new: int) -> None:
    """HELD: the umask's mode for a new file, an existing one's mode never widened."""
    out = tmp_path / "pylock.toml"
    if old is not None:
        out.write_text("old")
        out.chmod(old)
    previous = os.umask(umask)
    try:
        write_shared(out, b"doc")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == new
    assert [p.name for p in tmp_path.iterdir()] == ["pylock.toml"]


# == sbom and export against the released index ====================================================
def _imported(target: Path) -> str:
    """alpha.VALUE as the venv's own python imports it (what would run)."""
    return subprocess.run([str(target / "bin" / "python"), "-c",
                           "import alpha; print(alpha.VALUE)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _sbom_of(site: Settings, monkeypatch: pytest.MonkeyPatch, target: Path,
             tmp_path: Path) -> tuple[Result, bool]:
    """`factory sbom VENV -o FILE`: the run, and whether the document vouches for alpha."""
    out = tmp_path / "env.cdx.json"
    done = _sbom(site, monkeypatch, str(target), "-o", str(out))
    return done, _vouched(out)


def _venv(tmp_path: Path, wheel: Path) -> tuple[Path, Path]:
    """A venv made without pip, ``wheel`` unzipped into its site-packages."""
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    site_packages = next(target.glob("lib/python*/site-packages"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site_packages)
    return target, site_packages


def _vouched(out: Path) -> bool:
    [alpha] = [c for c in json.loads(out.read_text())["components"] if c["name"] == "alpha"]
    return "hashes" in alpha


def test_export_directory_output_is_refused_up_front(site: Settings, tmp_path: Path) -> None:
    """WAS A BREAK: sbom refuses -o DIR up front; export pylock reads everything, then
    fails on its temporary file and blames the state directory. Fixed: export_pylock
    checks --output with sbom's _output before anything is read."""
    folder = tmp_path / "out"
    folder.mkdir()
    done = factories.cli(site, "export", "pylock", "-o", str(folder), timeout=60,
                         FACTORY_STATE_DIR=str(site.state_dir))
    assert done.returncode == 2, done.stderr
    assert "is a directory" in done.stderr and "state directory" not in done.stderr


def test_sbom_checks_the_site_packages_python_imports_from(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WAS A BREAK: find_distributions kept the first dist-info of a name==version (sorted
    site directories): a pristine copy in a decoy lib/python3.0/site-packages was checked
    while the interpreter imports a tampered alpha from its own site-packages. Fixed:
    every dist-info is checked; a name installed twice, or outside pyvenv.cfg's
    lib/pythonX.Y/site-packages, is not the factory's."""
    target, site_packages = _venv(tmp_path, site.index_dir / "files" / "alpha" / ALPHA)
    decoy = target / "lib" / "python3.0" / "site-packages"
    shutil.copytree(site_packages, decoy)
    (site_packages / "alpha" / "__init__.py").write_text("VALUE = 'not the factory'\n")
    assert _imported(target) == "not the factory"
    done, vouched = _sbom_of(site, monkeypatch, target, tmp_path)
    assert done.exit_code == 1 and not vouched, done.output


def test_sbom_does_not_vouch_for_planted_byte_code(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WAS A BREAK: any __pycache__/*.pyc was taken as the installer's and never read; an
    unchecked-hash .pyc runs instead of the wheel's verified source. Fixed: each .pyc
    beside a checked source (listed or not) must be a compile of it by its PEP 552 header."""
    target, site_packages = _venv(tmp_path, site.index_dir / "files" / "alpha" / ALPHA)
    evil = tmp_path / "evil.py"
    evil.write_text("VALUE = 'not the factory'\n")
    tag = sys.implementation.cache_tag
    py_compile.compile(str(evil), str(site_packages / "alpha" / "__pycache__"
                                      / f"__init__.{tag}.pyc"),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    assert _imported(target) == "not the factory"
    done, vouched = _sbom_of(site, monkeypatch, target, tmp_path)
    assert done.exit_code == 1 and not vouched, done.output


@pytest.mark.parametrize("record", [
    b"alpha/__init__.py,sha256=x,1\n\x00\n",  # HELD (Python 3.11's csv reads a NUL)
    b"alpha/x.py,\"" + b"a" * 200_000 + b"\",1\n",  # WAS A BREAK: a field over csv's limit
], ids=["nul", "long-field"])
def test_a_hostile_installed_record_is_one_line(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record: bytes) -> None:
    """WAS A BREAK: csv.Error from compare() (parse_record) was not caught: a traceback.
    Fixed: parse_record raises RecordError, which compare reports as one problem."""
    target, site_packages = _venv(tmp_path, site.index_dir / "files" / "alpha" / ALPHA)
    (site_packages / "alpha-1.0.0.dist-info" / "RECORD").write_bytes(record)
    out = tmp_path / "env.cdx.json"
    done = _sbom(site, monkeypatch, str(target), "-o", str(out))
    assert done.exit_code == 1 and not isinstance(done.exception, (RuntimeError, ValueError)) \
        and type(done.exception).__module__ != "_csv", repr(done.exception)
    assert not _vouched(out)


def test_sbom_deep_marker_is_one_line(site: Settings, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """WAS A BREAK (same root as the export's): sbom of a requirements file with a deeply
    nested marker ends in a RecursionError."""
    target = tmp_path / "requirements.txt"
    target.write_text("alpha==1.0.0 ; " + "(" * 2000 + "os_name == 'nt'" + ")" * 2000 + "\n")
    done = _sbom(site, monkeypatch, str(target), "-o", str(tmp_path / "env.cdx.json"))
    assert isinstance(done.exception, FactoryError), repr(done.exception)


def test_sbom_marks_a_requirement_whose_hashes_allow_another_file(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WAS A BREAK: a line with the served sha256 and one the index does not serve (an
    installer may take that file, from anywhere) kept the factory's digest and links in
    the document, unmarked; only stderr and the exit status said so. Fixed: _component
    lists any match with a problem as not-served, without digest or links."""
    [served] = [p for p in IndexView(site.index_dir).all() if p.filename == ALPHA]
    target = tmp_path / "requirements.txt"
    target.write_text(f"alpha==1.0.0 --hash=sha256:{served.entry.sha256} "
                      f"--hash=sha256:{'0' * 64}\n")
    out = tmp_path / "env.cdx.json"
    done = _sbom(site, monkeypatch, str(target), "-o", str(out))
    assert done.exit_code == 1, done.output
    [alpha] = [c for c in json.loads(out.read_text())["components"] if c["name"] == "alpha"]
    assert "hashes" not in alpha or any(p["name"] == "artifact-factory:not-served"
                                        for p in alpha["properties"]), alpha


def test_sbom_index_url_may_name_the_simple_page(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WAS A BREAK: export pylock takes --index-url .../simple/ (index_root); sbom, with the
    same option, linked every wheel at .../simple/files/..., a page the index does not
    serve. Fixed: environment_sbom calls index_root on the base URL."""
    target = tmp_path / "requirements.txt"
    target.write_text("alpha==1.0.0\n")
    out = tmp_path / "env.cdx.json"
    done = _sbom(site, monkeypatch, str(target), "--index-url", "http://h:1/simple/",
                 "-o", str(out))
    assert done.exit_code == 0, done.output
    [alpha] = [c for c in json.loads(out.read_text())["components"] if c["name"] == "alpha"]
    urls = [r["url"] for r in alpha["externalReferences"]]
    assert urls and all(u.startswith("http://h:1/files/alpha/") for u in urls), urls


@pytest.mark.parametrize("mode", ["timestamp", "checked-hash"])
def test_stale_byte_code_python_would_not_run_is_no_failure(
        site: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """No false alarm: byte code whose header does not match its source (a venv copied
    without its mtimes, a source hash of another text) is never run (python compiles the
    source again), so the wheel's files still vouch for it."""
    target, site_packages = _venv(tmp_path, site.index_dir / "files" / "alpha" / ALPHA)
    source = site_packages / "alpha" / "__init__.py"
    other = tmp_path / "other.py"
    other.write_text("VALUE = 'stale'\n")
    invalidation = (py_compile.PycInvalidationMode.TIMESTAMP if mode == "timestamp"
                    else py_compile.PycInvalidationMode.CHECKED_HASH)
    py_compile.compile(str(other), str(site_packages / "alpha" / "__pycache__"
                                       / f"__init__.{sys.implementation.cache_tag}.pyc"),
                       invalidation_mode=invalidation)
    os.utime(source, (1_000_000_000, 1_000_000_000))  # not the mtime the pyc records
    assert _imported(target) != "stale"  # python ran the source, not that byte code
    done, vouched = _sbom_of(site, monkeypatch, target, tmp_path)
    assert done.exit_code == 0 and vouched, done.output
