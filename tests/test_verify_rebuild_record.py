"""`factory verify --rebuild` reads the build record published beside a wheel: hostile.

The index tree is the attacker's (docs/threat-model.md, section 6). A W.build.json
in a shape this factory's builder does not write gave a KeyError, TypeError or
AttributeError traceback; a name in it (a patch's path, a kit part's name or sdist,
a tool wheel's file name, the component) was joined under recipes/patches,
index/sources, wheels/ or files/ as it was, so "../../x" or "/abs/path" made the
rebuild hash, and use, a file of the host's. Now each is one VerificationError line
naming the file and the field, before any input is read and before the engine is
asked for the builder image (these tests run without Docker: asking it fails them).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from factory.build import job
from factory.errors import BuildError, VerificationError
from factory.upstream.cache import cache_path
from factory.verify import reproduce
from factory.verify.reproduce import rebuild_and_compare
from tests import factories
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)

HINT = "trusted copy of the index"
TOOL = "tool-1.0-py3-none-any.whl"
PATCH = b"""--- /dev/null
+++ b/ADDED.txt
@@ -0,0 +1 @@
+added by the recorded patch
"""


class EngineAsked(Exception):
    """The rebuild went as far as the builder image: every check came too late."""


class Reached(Exception):
    """The rebuild got to the builder with these inputs (a good record), and these files
    (read while the scratch directory was there)."""

    def __init__(self, inputs: job.BuildInputs) -> None:
        super().__init__("reached the builder")
        self.inputs = inputs
        self.sdist_sha256 = _sha(inputs.sdist.read_bytes())
        self.tool_bytes = [tool.read_bytes() for tool in inputs.tools]
        # the build container's user reads the tools through hard links: not 0600
        self.tools_readable = all(tool.stat().st_mode & 0o004 for tool in inputs.tools)
        self.added = (inputs.tree / "ADDED.txt").read_text()


@dataclass
class Case:
    copy: PublishedIndex
    record: Path  # alpha's W.build.json in the index
    good: dict[str, Any]  # a record whose every input is where a rebuild looks
    outside: Path  # a directory outside every root a rebuild looks in

    def write(self, data: object) -> None:
        self.record.write_text(json.dumps(data))

    def rebuild(self) -> None:
        rebuild_and_compare(self.copy.settings, "alpha==1.0")

    def refused(self, *words: str) -> VerificationError:
        with pytest.raises(VerificationError) as caught:
            self.rebuild()
        line = caught.value.diagnostics()
        assert "\n" not in line and all(w in line for w in words), line
        assert "Traceback" not in line
        return caught.value


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plant(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return _sha(data)


@pytest.fixture
def case(published_index: PublishedIndex, tmp_path: Path,  # noqa: F811
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Case]:
    copy = clone(published_index, tmp_path / "copy")
    settings = copy.settings
    record = copy.wheel("alpha").with_name(copy.wheel("alpha").name + ".build.json")
    data = json.loads(record.read_text())
    # Inputs of every kind a rebuild finds: a tool wheel, a patch, a front-end kit sdist.
    tool_sha = _plant(settings.wheels_dir / TOOL, b"a tool wheel")
    patch_sha = _plant(settings.recipes_dir / "patches" / "alpha" / "add.patch", PATCH)
    kit = factories.sdist(tmp_path / "kit", "kitlib", "1.0")
    kit_sha = _sha(kit.read_bytes())
    _plant(cache_path(settings, kit_sha, kit.name), kit.read_bytes())
    data["build_tools"] = [{"name": "tool", "version": "1.0", "filename": TOOL,
                            "sha256": tool_sha}]
    data["patches"] = [{"path": "add.patch", "sha256": patch_sha}]
    data["builder_settings"] = {
        "frontend": [{"name": "kitlib", "version": "1.0", "sdist": kit.name, "sha256": kit_sha,
                      "used_as": "source tree on sys.path of the front end"}],
        "repair": {"tool": "none", "action": "disabled", "tools": []},
        "upstream_wheels": [],
    }

    def engine() -> Any:
        raise EngineAsked("the engine was asked for the builder image")

    def build(settings: object, inputs: job.BuildInputs) -> Any:
        raise Reached(inputs)

    monkeypatch.setattr(reproduce, "connect", engine)
    monkeypatch.setattr(job, "build", build)
    outside = tmp_path / "outside"
    outside.mkdir()
    yield Case(copy, record, data, outside)


def _engine_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    class Images:
        def get(self, image_id: str) -> None:
            return None

    class Client:
        images = Images()

    monkeypatch.setattr(reproduce, "connect", Client)


# -- a good record is rebuilt as before -----------------------------------------------------------

def test_a_good_record_reaches_the_builder_with_its_checked_inputs(
        case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    case.write(case.good)
    _engine_answers(monkeypatch)
    with pytest.raises(Reached) as reached:
        case.rebuild()
    inputs = reached.value.inputs
    assert reached.value.sdist_sha256 == case.good["source"]["sha256"]
    assert [p.name for p in inputs.tools] == [TOOL]
    assert reached.value.tool_bytes == [b"a tool wheel"] and reached.value.tools_readable
    assert reached.value.added == "added by the recorded patch\n"
    assert [(p.name, p.filename) for p in inputs.kit.parts] == [
        ("kitlib", case.good["builder_settings"]["frontend"][0]["sdist"])]
    assert inputs.patches == ({"path": "add.patch",
                               "sha256": case.good["patches"][0]["sha256"]},)
    assert inputs.image.id == case.good["builder_image_id"]


def test_an_input_missing_is_still_not_available(case: Case) -> None:
    (case.copy.settings.wheels_dir / TOOL).unlink()
    case.write(case.good)
    with pytest.raises(BuildError, match=f"recorded input {TOOL} .* is not available"):
        case.rebuild()


# -- malformed shapes: one line naming the file and the field -----------------------------------

Edit = Callable[[dict[str, Any]], object]


def _set(path: str, value: object) -> Edit:
    """An edit setting the field at dotted ``path`` (list items by index) to ``value``."""
    def edit(data: dict[str, Any]) -> object:
        *parents, last = path.split(".")
        holder: Any = data
        for key in parents:
            holder = holder[int(key)] if isinstance(holder, list) else holder[key]
        if isinstance(holder, list):
            holder[int(last)] = value
        else:
            holder[last] = value
        return data
    return edit


def _drop(path: str) -> Edit:
    def edit(data: dict[str, Any]) -> object:
        *parents, last = path.split(".")
        holder: Any = data
        for key in parents:
            holder = holder[int(key)] if isinstance(holder, list) else holder[key]
        del holder[last]
        return data
    return edit


MALFORMED: list[tuple[str, Edit, str]] = [
    ("a list, not an object", lambda d: [d], "the record is not an object"),
    ("no source", _drop("source"), "no field source"),
    ("source a list", _set("source", ["x"]), "source is not an object"),
    ("source without its digest", _drop("source.sha256"), "no field source.sha256"),
    ("source with a stray field", _set("source.evil", 1), "unknown field source.'evil'"),
    ("source digest not hex", _set("source.sha256", "../" * 10), "source sha256"),
    ("source file name a number", _set("source.filename", 5), "source file name"),
    ("source size text", _set("source.size", "big"), "source.size"),
    ("build_tools an object", _set("build_tools", {"a": 1}), "build_tools is not a list"),
    ("a build tool a text", _set("build_tools.0", "tool"), "build_tools[0] is not an object"),
    ("a build tool without its file", _drop("build_tools.0.filename"),
     "no field build_tools[0].filename"),
    ("a build tool name a list", _set("build_tools.0.name", []), "build_tools[0].name"),
    ("a build tool not a wheel", _set("build_tools.0.filename", "tool.txt"),
     "build_tools[0] file name"),
    ("builder_settings a list", _set("builder_settings", []), "builder_settings is not"),
    ("builder_settings null", _set("builder_settings", None), "builder_settings is not"),
    ("frontend a text", _set("builder_settings.frontend", "build 1.2"),
     "builder_settings.frontend is not a list"),
    ("a kit part without its sdist", _drop("builder_settings.frontend.0.sdist"),
     "builder_settings.frontend[0] file name"),
    ("a kit part a list", _set("builder_settings.frontend.0", []),
     "builder_settings.frontend[0] is not an object"),
    ("repair a list", _set("builder_settings.repair", ["auditwheel"]),
     "builder_settings.repair is not an object"),
    ("repair tool unknown", _set("builder_settings.repair.tool", "rm -rf"),
     "builder_settings.repair.tool"),
    ("repair tools an object", _set("builder_settings.repair.tools", {"x": 1}),
     "builder_settings.repair.tools is not a list"),
    ("a repair tool without its file", _set("builder_settings.repair.tools", [{"sha256": "0"}]),
     "builder_settings.repair.tools[0] file name"),
    ("patchelf_build a text", _set("builder_settings.repair.patchelf_build", "x"),
     "patchelf_build"),
    ("upstream_wheels a text", _set("builder_settings.upstream_wheels", "pip"),
     "upstream_wheels"),
    ("interpreter a list", _set("builder_settings.interpreter", ["3.13"]), "interpreter"),
    ("image origin a number", _set("builder_settings.image_origin", 3), "image_origin"),
    ("patches an object", _set("patches", {"path": "x"}), "patches is not a list"),
    ("a patch a text", _set("patches.0", "add.patch"), "patches[0] is not an object"),
    ("a patch without its path", _drop("patches.0.path"), "patches[0].path"),
    ("a patch digest a number", _set("patches.0.sha256", 7), "patches[0]"),
    ("component not a name", _set("component", "../alpha"), "component"),
    ("builder image id a list", _set("builder_image_id", []), "builder_image_id"),
    ("warnings a text", _set("warnings", "x"), "warnings"),
    ("a stray field", _set("evil", 1), "unknown field 'evil'"),
    ("two wheels of one project", lambda d: {**d, "build_tools": [
        *d["build_tools"], {**d["build_tools"][0], "filename": "tool-2.0-py3-none-any.whl",
                            "sha256": "0" * 64}]}, "name two wheels of tool"),
    ("one kit library twice", lambda d: _set("builder_settings.frontend", [
        *d["builder_settings"]["frontend"], *d["builder_settings"]["frontend"]])(d),
     "names one library twice"),
    ("system packages an object", _set("system_packages", {}), "system_packages"),
]


@pytest.mark.parametrize(("edit", "field"), [(e, f) for _, e, f in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])
def test_a_malformed_record_is_one_line_naming_the_field(case: Case, edit: Edit,
                                                         field: str) -> None:
    case.write(edit(case.good))
    error = case.refused(case.record.name, field)
    assert HINT in error.hint


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000],
                         ids=["not JSON", "not UTF-8", "nested past the recursion limit"])
def test_a_record_that_is_not_json_is_one_line(case: Case, raw: bytes) -> None:
    case.record.write_bytes(raw)
    case.refused(case.record.name, "is not UTF-8 JSON")


# -- names that would leave their directory ------------------------------------------------------

def _escape_patch(case: Case, path: str) -> None:
    """The record's patch at ``path``, with the digest of what that path names as the old
    code joined it (so it would have been found, and applied)."""
    target = case.copy.settings.recipes_dir / "patches" / path
    data = case.good
    data["patches"] = [{"path": path, "sha256": _plant(target, PATCH)}]
    case.write(data)


def test_a_patch_path_up_and_out_is_refused(case: Case) -> None:
    _escape_patch(case, "../../host.patch")
    case.refused("patches[0].path", "'../../host.patch'")


def test_an_absolute_patch_path_is_refused(case: Case) -> None:
    _escape_patch(case, str(case.outside / "host.patch"))
    case.refused("patches[0].path", "not a relative path")


def test_a_kit_part_name_up_and_out_is_refused(case: Case) -> None:
    data = case.good
    part = data["builder_settings"]["frontend"][0]
    cached = cache_path(case.copy.settings, part["sha256"], part["sdist"])
    target = case.copy.index_dir / "sources" / "../../outside" / part["sdist"]
    _plant(target, cached.read_bytes())
    cached.unlink()  # the old code went on to index/sources/<name>/<sdist>
    part["name"] = "../../outside"
    case.write(data)
    case.refused("builder_settings.frontend[0].name", "not a plain file name")


def test_a_kit_sdist_name_with_a_slash_is_refused(case: Case) -> None:
    data = case.good
    data["builder_settings"]["frontend"][0]["sdist"] = "../../x.tar.gz"
    case.write(data)
    case.refused("builder_settings.frontend[0] file name", "not a plain file name")


def test_a_tool_file_name_with_a_slash_is_refused(case: Case) -> None:
    name = f"../../outside/{TOOL}"
    data = case.good
    data["build_tools"][0]["filename"] = name
    data["build_tools"][0]["sha256"] = _plant(case.copy.settings.wheels_dir / name, b"host")
    case.write(data)
    case.refused("build_tools[0] file name", "not a plain file name")


def test_a_repair_tool_file_name_with_a_slash_is_refused(case: Case) -> None:
    data = case.good
    name = f"../{TOOL}"
    data["builder_settings"]["repair"] = {
        "tool": "auditwheel", "action": "repaired",
        "tools": [{"filename": name,
                   "sha256": _plant(case.copy.settings.wheels_dir / name, b"host")}]}
    case.write(data)
    case.refused("builder_settings.repair.tools[0] file name", "not a plain file name")


def test_a_source_file_name_up_and_out_is_refused(case: Case) -> None:
    data = case.good
    data["source"]["filename"] = "../../../outside.tar.gz"
    case.write(data)
    case.refused("source file name", "not a plain file name")


def test_a_component_up_and_out_is_refused(case: Case) -> None:
    data = case.good
    data["component"] = "../outside"
    case.write(data)
    case.refused("component", "not a project name")


# -- links out of a root, and files that are not regular ----------------------------------------

def test_an_index_sdist_linked_out_of_the_index_is_refused(case: Case) -> None:
    """The index's sources/<component>/<sdist>, a link to a host file with the recorded
    digest (the cache holds no copy): the old code hashed it and rebuilt from it."""
    settings, data = case.copy.settings, case.good
    cached = cache_path(settings, data["source"]["sha256"], data["source"]["filename"])
    host = case.outside / data["source"]["filename"]
    host.write_bytes(cached.read_bytes())
    cached.unlink()
    served = case.copy.index_dir / "sources" / "alpha" / data["source"]["filename"]
    served.parent.mkdir(parents=True, exist_ok=True)
    served.unlink(missing_ok=True)
    served.symlink_to(host)
    case.write(data)
    error = case.refused("leads outside", "through a link")
    assert HINT in error.hint


def test_a_tool_wheel_linked_out_of_the_wheels_directory_is_refused(case: Case) -> None:
    wheel = case.copy.settings.wheels_dir / TOOL
    host = case.outside / TOOL
    host.write_bytes(wheel.read_bytes())
    wheel.unlink()
    wheel.symlink_to(host)
    case.write(case.good)
    case.refused(f"recorded input {TOOL}", "leads outside")


def test_a_patch_directory_linked_out_is_refused(case: Case) -> None:
    patches = case.copy.settings.recipes_dir / "patches" / "alpha"
    (patches / "add.patch").rename(case.outside / "add.patch")
    patches.rmdir()
    patches.symlink_to(case.outside, target_is_directory=True)
    case.write(case.good)
    case.refused("recorded input add.patch", "leads outside")


class _Blocked(Exception):
    pass


def test_a_fifo_where_a_tool_wheel_is_is_not_opened(case: Case) -> None:
    """A FIFO is never opened (open() of one blocks until a writer comes): the input is
    not available, and says why."""
    wheel = case.copy.settings.wheels_dir / TOOL
    wheel.unlink()
    os.mkfifo(wheel)
    case.write(case.good)

    def expired(*_: Any) -> None:
        raise _Blocked("blocked opening a FIFO")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    try:
        with pytest.raises(BuildError, match="not available .*not a regular file"):
            case.rebuild()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_the_cli_says_one_line_and_exits_as_verify_does(case: Case) -> None:
    """What an operator sees: no traceback, the file and the field, the hint."""
    data = case.good
    data["builder_settings"]["repair"] = ["auditwheel"]
    case.write(data)
    done = factories.cli(case.copy.settings, "verify", "--rebuild", "alpha==1.0",
                         "--index", str(case.copy.index_dir))
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "builder_settings.repair is not an object" in lines[0] and HINT in lines[0]
