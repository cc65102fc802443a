"""Attack pass on the warnings of a build that succeeded (f6b956b, d3114a4).

After a good build, ``job.build_warnings`` reads the build log (``missing.skipped_warning``)
and the wheel (``job.holds_compiled_code``), keeps one-line warnings in the build record
(``BuildRecord.warnings``), and ``factory build`` / ``--json`` / the rebuild flow show them.
The log and the wheel are the sdist's (hostile); the record may be a remote worker's;
the terminal is the operator's (threat model sections 4 and 16).

Broke on d3114a4 (fixed in this pass) are marked BROKE; the rest held.

| class  | case                                                                  | result |
|--------|-----------------------------------------------------------------------|--------|
| log    | eight optional dependencies probed ("found: NO") before the real      | BROKE  |
|        | "fatal error: yaml.h": the weak signs filled MAX_ITEMS, no warning     |        |
| log    | the header is provided by two packages and the recipe lists the other | BROKE  |
|        | (libcurl4-openssl-dev): it said add the conflicting gnutls flavour     |        |
| log    | ... or the image holds the other provider: likewise                    | BROKE  |
| log    | the same for a failed build's hint (missing.hint): "add                | BROKE  |
|        | ["libcurl4-openssl-dev", "libcurl4-gnutls-dev"]", which apt refuses   |        |
| log    | 1e6 "fatal error" lines (56 MB): lines examined bounded by MAX_SCAN    | held   |
| log    | one 100 MB line without a newline: one clipped line examined           | held   |
| log    | OSC 8 hyperlink, NUL, invalid UTF-8, bidi, absolute and ``..`` header  | held   |
|        | paths, a package-like line: no package named, or the right one       |        |
| wheel  | a member whose deflate stream is corrupt (zlib.error): raised out of  | BROKE  |
|        | holds_compiled_code and the log's warning was lost with it            |        |
| wheel  | a corrupt lzma / bzip2 member: None (their errors were caught)        | held   |
| wheel  | more members than MAX_MEMBERS: not one member opened, None            | held   |
| wheel  | a 64 MiB zip bomb member: 4 bytes read of each member                 | held   |
| wheel  | symlink / device members (external attrs), ELF magic in a .txt        | held   |
| wheel  | encrypted member, unknown compression, not a zip                      | held   |
| record | warnings with ESC, CSI (C1 0x9b), bidi, CR, U+2028, NUL accepted at   | BROKE  |
|        | load; ``factory build --json`` (Rich re-dumps with ensure_ascii=False) |        |
|        | sent U+202E and 0x9b raw to the terminal                               |        |
| record | an empty warning accepted (printed as a bare "warning:")              | BROKE  |
| record | 10,000 warnings, 1 MB text, non-strings, null, a dict: refused;       | held   |
|        | a worker's record reaches the publisher as a one-line refusal          |        |
| record | a forged warning in a record on disk (factory publish, verify          | BROKE  |
|        | --rebuild, the executor) raised a bare ValueError: a traceback        |        |
| record | a worker's record for pyyaml warning about numpy: listed in the flow | BROKE  |
|        | summary and by factory build (no component shown) as numpy's           |        |
| record | an old record without the field loads (verify reads with from_dict)   | held   |
| flow   | a warning with ```, a link, an <img>, CR: stays in its code block     | held   |
| flow   | the summary carried a record's warnings raw to `factory rebuild        | BROKE  |
|        | --json` (Rich, ensure_ascii=False): now escaped (summary_warnings)     |        |

The log of a finished build is the bytes the executor captured (``result.log``), not
the saved file: a log replaced by a symlink, FIFO or directory after the build is never
read by this path. The wheel read is the host's copy (``_the_wheel``), the one hashed
into the record and placed: no second copy to swap.
"""

from __future__ import annotations

import json
import stat
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from factory.build import job as builder
from factory.build import missing
from factory.build.env import Kit
from factory.build.record import BuildRecord
from factory.config import Settings
from tests import factories
from tests.builders_fixtures import inputs_for
from tests.test_build_skipped_warning import (
    CONTENTS,
    IMAGE,
    PYYAML_LOG,
    WANTED,
    _cli_build,
    _record,
    _settle_lookup,
    _warnings,
    _wheel,
)

CURL = (b"usr/include/x86_64-linux-gnu/curl/curl.h    "
        b"libdevel/libcurl4-openssl-dev,libdevel/libcurl4-gnutls-dev\n")
CURL_LOG = b"probe.c:1:10: fatal error: curl/curl.h: No such file or directory\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    made = factories.settings(tmp_path / "project")
    _settle_lookup(made, CONTENTS + CURL)
    return made


# -- the log --------------------------------------------------------------------------------

def test_optional_dependencies_probed_first_do_not_hide_the_missing_header(
        settings: Settings, tmp_path: Path) -> None:
    """meson prints 'found: NO' for every optional dependency it probes, well before the
    compiler runs: such weak signs are left out before the limit counts, not after."""
    probed = b"".join(b"Run-time dependency opt%d found: NO (tried pkgconfig)\n" % i
                      for i in range(12))
    assert _warnings(settings, probed + PYYAML_LOG, _wheel(tmp_path)) == [WANTED]


def test_a_header_another_provider_of_which_the_recipe_lists_is_not_asked_for_again(
        settings: Settings, tmp_path: Path) -> None:
    """libcurl4-openssl-dev and libcurl4-gnutls-dev both ship curl/curl.h and conflict:
    a recipe that lists one must not be told to add the other."""
    pure = _wheel(tmp_path, "py3-none-any")
    assert _warnings(settings, CURL_LOG, pure) == [
        "pyyaml 6.0.4 built without curl/curl.h (Debian package libcurl4-gnutls-dev; also "
        "in libcurl4-openssl-dev): the build skipped what needed it; add system_packages = "
        '["libcurl4-gnutls-dev"] to recipes/pyyaml.toml']
    assert _warnings(settings, CURL_LOG, pure, ("libcurl4-openssl-dev",)) == []
    assert _warnings(settings, CURL_LOG, pure, ("libcurl4-openssl-dev=7.88.1-10",)) == []


def test_a_header_another_provider_of_which_the_image_holds_is_not_asked_for(
        settings: Settings, tmp_path: Path) -> None:
    sdist = settings.root / "pyyaml-6.0.4.tar.gz"
    sdist.write_bytes(b"sdist")
    image = replace(IMAGE, packages=[*IMAGE.packages, "libcurl4-openssl-dev=7.88.1-10"])
    inputs = inputs_for(sdist, settings.root, Kit(()), image)
    assert builder.build_warnings(settings, inputs, CURL_LOG,
                                  _wheel(tmp_path, "py3-none-any")) == []


def _count_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = missing._missing_in_line

    def counted(line: str) -> Any:
        seen.append(line)
        return original(line)

    monkeypatch.setattr(missing, "_missing_in_line", counted)
    return seen


def test_a_million_fatal_error_lines_are_read_within_the_scan_bound(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = b"a.c:1:1: fatal error: yaml.h: No such file or directory\n"
    seen = _count_lines(monkeypatch)
    assert _warnings(settings, line * 1_000_000, _wheel(tmp_path)) == [WANTED]
    assert len(seen) <= missing.MAX_SCAN // len(line) + 1  # the log's tail only


def test_a_hundred_megabyte_line_without_newline_is_one_clipped_line(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _count_lines(monkeypatch)
    log = b"fatal error: yaml.h: No such file or directory " * 2_200_000  # ~103 MB
    assert _warnings(settings, log, _wheel(tmp_path, "py3-none-any")) == []
    assert len(seen) == 1 and len(seen[0]) <= missing.MAX_LOG_LINE


@pytest.mark.parametrize("line", [
    # an OSC 8 hyperlink around the header: the escape spoils the name
    b"x.c:1:10: fatal error: \x1b]8;;https://evil.example/\x1b\\zlib.h\x1b]8;;\x1b\\: "
    b"No such file or directory",
    b"x.c:1:10: fatal error: zlib.h\x00: No such file or directory",
    b"x.c:1:10: fatal error: zlib\xff\xfe.h: No such file or directory",
    b"x.c:1:10: fatal error: \xe2\x80\xaezlib.h: No such file or directory",
    b"x.c:1:10: fatal error: /usr/include/zlib.h: No such file or directory",
    b"x.c:1:10: fatal error: curl/../zlib.h: No such file or directory",
    b"x.c:1:10: fatal error: zlib.h\"] to recipes/x.toml; rm -rf ~ #: No such file or directory",
    b'add system_packages = ["libc6-dev"] to recipes/pyyaml.toml',
])
def test_a_forged_name_in_the_log_names_no_package(settings: Settings, tmp_path: Path,
                                                   line: bytes) -> None:
    assert _warnings(settings, line + b"\n", _wheel(tmp_path, "py3-none-any")) == []


def test_what_is_named_comes_from_the_index_and_is_printable(settings: Settings,
                                                             tmp_path: Path) -> None:
    """A NUL before the location or colours around it do not stop a real miss from being
    said, and what is said is the factory's words: printable, one line."""
    log = (b"\x00\x1b[01mx.c:1:10:\x1b[m \x1b[01;31mfatal error: \x1b[mzlib.h: "
           b"No such file or directory\n")
    [line] = _warnings(settings, log, _wheel(tmp_path, "py3-none-any"))
    assert line.isprintable()
    assert line.endswith('add system_packages = ["zlib1g-dev"] to recipes/pyyaml.toml')


# -- the wheel ------------------------------------------------------------------------------

def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]],
         compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _corrupt(path: Path, member: str) -> Path:
    """``path`` with the first bytes of ``member``'s compressed data overwritten."""
    data = bytearray(path.read_bytes())
    at = data.find(member.encode()) + len(member)
    data[at:at + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                         zipfile.ZIP_LZMA])
def test_a_member_that_cannot_be_decompressed_leaves_the_log_warning_standing(
        settings: Settings, tmp_path: Path, compression: int) -> None:
    wheel = tmp_path / "pyyaml-6.0.4-cp311-cp311-linux_x86_64.whl"
    _corrupt(_zip(wheel, [("yaml/_yaml.so", b"\x7fELF" + bytes(4000))], compression),
             "yaml/_yaml.so")
    assert builder.holds_compiled_code(wheel) is None
    assert _warnings(settings, PYYAML_LOG, wheel) == [
        'pyyaml 6.0.4 built without yaml.h (Debian package libyaml-dev): the build skipped '
        'what needed it; add system_packages = ["libyaml-dev"] to recipes/pyyaml.toml']


def test_more_members_than_the_bound_open_none(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builder, "MAX_MEMBERS", 10)
    wheel = _zip(tmp_path / "x-1.0-cp311-cp311-linux_x86_64.whl",
                 [(f"x/m{i}.py", b"pass\n") for i in range(11)])
    opened: list[object] = []
    original = zipfile.ZipFile.open

    def counted(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> Any:
        opened.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counted)
    assert builder.holds_compiled_code(wheel) is None
    assert opened == []


def test_a_zip_bomb_member_is_read_four_bytes_deep(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _zip(tmp_path / "x-1.0-cp311-cp311-linux_x86_64.whl",
                 [("x/bomb.dat", bytes(64 << 20)), ("x/_x.so", b"\x7fELF" + bytes(60))],
                 zipfile.ZIP_DEFLATED)
    assert wheel.stat().st_size < 1 << 20
    read: list[int] = []
    original = zipfile.ZipExtFile.read

    def counted(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        data = original(self, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counted)
    assert builder.holds_compiled_code(wheel) is True
    assert read == [4, 4]


def _special(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def test_links_devices_and_elf_in_a_text_file_are_read_as_bytes(tmp_path: Path) -> None:
    """A symlink member's bytes are its target; nothing is followed or opened on disk.
    ELF magic in any file counts (fine either way: the point is a bounded read)."""
    link = _zip(tmp_path / "a-1.0-cp311-cp311-linux_x86_64.whl", [
        (_special("a/lib.so", stat.S_IFLNK | 0o777), b"/etc/shadow"),
        (_special("a/dev", stat.S_IFCHR | 0o666), b"\0\0\0\0"),
        (_special("a/fifo", stat.S_IFIFO | 0o666), b"fifo")])
    assert builder.holds_compiled_code(link) is False
    text = _zip(tmp_path / "b-1.0-cp311-cp311-linux_x86_64.whl",
                [("b/readme.txt", b"\x7fELF is a format")])
    assert builder.holds_compiled_code(text) is True


def test_encrypted_unknown_compression_and_not_a_zip_are_not_told(tmp_path: Path) -> None:
    encrypted = _zip(tmp_path / "a-1.0-cp311-cp311-linux_x86_64.whl",
                     [("a/_a.so", b"\x7fELF" + bytes(60))])
    data = bytearray(encrypted.read_bytes())
    data[6] |= 1  # general purpose flag bit 0, local header
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 1  # and in the central directory
    encrypted.write_bytes(bytes(data))
    assert builder.holds_compiled_code(encrypted) is None
    unknown = _zip(tmp_path / "b-1.0-cp311-cp311-linux_x86_64.whl",
                   [("b/_b.so", b"\x7fELF" + bytes(60))])
    data = bytearray(unknown.read_bytes())
    data[8:10] = (99).to_bytes(2, "little")
    central = data.find(b"PK\x01\x02")
    data[central + 10:central + 12] = (99).to_bytes(2, "little")
    unknown.write_bytes(bytes(data))
    assert builder.holds_compiled_code(unknown) is None
    bogus = tmp_path / "c-1.0-cp311-cp311-linux_x86_64.whl"
    bogus.write_bytes(b"\x7fELF" + bytes(100))
    assert builder.holds_compiled_code(bogus) is None
    assert builder.holds_compiled_code(tmp_path / "missing.whl") is None


# -- the record (a worker's, or one on disk) ------------------------------------------------

@pytest.mark.parametrize("bad", [
    WANTED + "\x1b[2J", WANTED + "\x9b2J", "pyyaml \u202eevil", "a\rb", "a\u2028b",
    "a\u0085b", "a\x00b", "a\x08b", "", " ",
])
def test_a_record_with_a_warning_a_terminal_acts_on_is_refused_at_load(
        tmp_path: Path, bad: str) -> None:
    data = _record(tmp_path).to_dict()
    with pytest.raises(ValueError, match="warnings"):
        BuildRecord.from_dict({**data, "warnings": [bad]})


@pytest.mark.parametrize("bad", [
    ["w"] * 10_000, ["x" * 1_000_000], [None], [["nested"]], [{"a": "b"}], None, "text",
    {"warning": "x"}, 7,
])
def test_a_record_with_warnings_out_of_shape_is_refused_at_load(tmp_path: Path,
                                                                bad: object) -> None:
    data = _record(tmp_path).to_dict()
    with pytest.raises(ValueError, match="warnings"):
        BuildRecord.from_dict({**data, "warnings": bad})


@pytest.mark.parametrize("other", [
    'numpy 2.0 built without cblas.h (Debian package libopenblas-dev): the build skipped '
    'what needed it; add system_packages = ["libopenblas-dev"] to recipes/numpy.toml',
    "pyyaml 6.0.45 built without yaml.h", "pyyaml6.0.4 built without yaml.h",
    "6.0.4 pyyaml built without yaml.h", "pyyaml 6.0.4",
])
def test_a_warning_about_another_build_is_refused_at_load(tmp_path: Path,
                                                          other: str) -> None:
    """The CLI and the flow's summary list warnings without their record's name: a
    worker's record for pyyaml 6.0.4 may only warn about pyyaml 6.0.4."""
    data = _record(tmp_path).to_dict()
    with pytest.raises(ValueError, match="another build"):
        BuildRecord.from_dict({**data, "warnings": [WANTED, other]})
    for own in (WANTED, "PyYAML 6.0.4: its wheel holds no compiled code"):
        assert BuildRecord.from_dict({**data, "warnings": [own]}).warnings == [own]


def test_a_workers_record_with_hostile_warnings_is_a_one_line_refusal(
        tmp_path: Path) -> None:
    """ticket.collect reads a worker's record with from_dict and turns its ValueError into
    a one-line TicketRefused: the refusal quotes no raw control."""
    from factory.errors import one_line

    data = _record(tmp_path).to_dict()
    with pytest.raises(ValueError) as refused:
        BuildRecord.from_dict({**data, "warnings": ["\x1b]0;pwned\x07\u202e" * 100]})
    why = one_line(str(refused.value), 200)
    assert why.isprintable() and "pwned" not in why


def test_an_old_record_without_warnings_still_loads(tmp_path: Path) -> None:
    data = _record(tmp_path).to_dict()
    assert "warnings" not in data
    assert BuildRecord.from_dict(json.loads(json.dumps(data))).warnings == []
    assert BuildRecord.from_dict({**data, "warnings": []}).warnings == []


def test_factory_build_json_sends_no_raw_control_to_the_terminal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record made in memory (never loaded) with a hostile warning: Rich's print_json
    re-dumps with ensure_ascii=False, so U+202E and C1 CSI (0x9b) went out raw."""
    settings = factories.settings(tmp_path / "p")
    hostile = WANTED + "\u202e\x9b2J\x1b[2J\u2028"
    record = replace(_record(tmp_path), warnings=[hostile])
    shown = _cli_build(monkeypatch, settings, [record], "--json")
    assert all(line.isprintable() for line in shown.splitlines()), repr(shown)
    [entry] = json.loads(shown)["warnings"]
    assert entry["warning"].startswith(WANTED) and entry["warning"].isprintable()
    text = _cli_build(monkeypatch, settings, [record])
    assert all(line.isprintable() for line in text.splitlines())


# -- the rebuild flow's summary -------------------------------------------------------------

def test_the_flow_summary_keeps_a_warning_inside_its_code_block(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.rebuild as flow_module

    made: list[str] = []
    monkeypatch.setattr(flow_module, "create_markdown_artifact",
                        lambda key, markdown: made.append(markdown))
    monkeypatch.setattr(flow_module, "create_table_artifact", lambda **_: None)
    hostile = ["x 1.0 built without ```\n[click](https://evil.example) <img src=x "
               "onerror=alert(1)>", "y\r```\r# Heading\r<script>1</script>",
               "~~~ ```` ` [a]: https://evil.example"]
    counts = dict.fromkeys(("built", "unchanged", "failed", "published", "refused",
                            "seconds"), 0)
    flow_module._artifacts([], {**counts, "warnings": hostile}, [])
    [markdown] = made
    section = markdown.split("## Warnings\n\n", 1)[1]
    lines = section.split("\n")
    fence = lines[0]
    assert set(fence) == {"`"} and len(fence) > 4
    # the block closes only at its last line: nothing after the opening reads as a fence
    assert [i for i, line in enumerate(lines) if line.lstrip().startswith("`" * 3)] == [
        0, len(lines) - 1]
    assert "\r" not in section and all(line.isprintable() for line in lines)


def test_the_flow_summary_warnings_are_printable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary is returned to ``factory rebuild``, whose --json prints it with Rich
    (ensure_ascii=False): its warnings are made printable in the flow."""
    from types import SimpleNamespace

    import flows.rebuild as flow_module

    records: Any = [SimpleNamespace(warnings=["a\u202eb", "c"]),
                    SimpleNamespace(warnings=["c", "d\x9b"])]
    assert flow_module.summary_warnings(records) == ["a\\u202eb", "c", "d\\x9b"]


def test_a_failed_builds_hint_asks_for_no_conflicting_provider_either(
        settings: Settings) -> None:
    """The same lookup for a build that failed (missing.build_hint): the recipe lists
    libcurl4-openssl-dev, the build still says curl/curl.h is missing; the hint must
    not ask for libcurl4-gnutls-dev beside it (the two conflict: apt would refuse)."""
    found = missing.build_hint(settings, CURL_LOG, "x.toml", ["libcurl4-openssl-dev"])
    assert found is not None and "gnutls-dev\"" not in found
    assert "add system_packages" not in found
    alone = missing.build_hint(settings, CURL_LOG, "x.toml")
    assert alone is not None and alone.endswith(
        'add system_packages = ["libcurl4-gnutls-dev"] to recipes/x.toml')


def test_a_malformed_record_on_disk_is_one_line_for_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`factory publish` (and verify --rebuild, the executor) load records with from_dict:
    a forged warning is a FactoryError (one line, no traceback) that is still the
    ValueError ticket.collect refuses a worker's record by."""
    from typer.testing import CliRunner

    from factory.build.record import RECORD_SUFFIX
    from factory.cli import app
    from factory.cli._app import _State
    from factory.errors import FactoryError

    settings = factories.settings(tmp_path / "p")
    monkeypatch.setattr(_State, "settings", settings)
    data = _record(tmp_path).to_dict()
    settings.wheels_dir.mkdir(parents=True, exist_ok=True)
    (settings.wheels_dir / ("x" + RECORD_SUFFIX)).write_text(
        json.dumps({**data, "warnings": ["\x1b]0;pwned\x07"]}))
    done = CliRunner().invoke(app, ["publish"])
    assert isinstance(done.exception, FactoryError) and isinstance(done.exception, ValueError)
    assert "\n" not in done.exception.reason() and "pwned" not in done.exception.reason()
