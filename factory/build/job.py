"""Build one sdist into one wheel in a hardened container.

The control plane (this module, outside the container) prepares the inputs,
runs the container, checks what came out, and only then places the wheel and
its BuildRecord in the wheels directory. A failed, killed or inconsistent build
leaves no wheel behind; its log stays in the state directory.

Everything the build leaves in its output is hostile input: it is read through
factory.build.confined only (no links followed, nothing but regular files
opened, every read capped). What the record, and so the signed provenance, says
about the build comes from facts the host controls: the build system from the
host's own reading of pyproject.toml, the tools from the wheelhouse it mounted.
What only the build can tell (the backend's dynamic requirements, the repair
report) is validated, and recorded as reported by the build.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from factory._internal.atomic import sha256_file, write_bytes, write_json
from factory.build import debian, grafted, interpreters, missing, repair
from factory.build.confined import Confined, OutputRefused, Usage, measure
from factory.build.docker import (
    Bind,
    ContainerRun,
    hardening,
    max_output,
    owner_id,
    prepare_output,
    reap_orphans,
    run_container,
)
from factory.build.engine import connect, engine_info
from factory.build.env import (
    BUILD_PATH,
    MAX_REQUIREMENTS,
    MAX_STRING,
    BuildSystem,
    Kit,
    build_system,
    container_environment,
    expected_inventory,
    inventory_difference,
    make_wheelhouse,
    source_date_epoch,
)
from factory.build.image import ImageRef, image_packages, system_packages
from factory.build.interpreters import Interpreter
from factory.build.patchelf import MOUNT as PATCHELF_MOUNT
from factory.build.patchelf import Patchelf
from factory.build.record import BuildRecord, InstalledTool, SystemPackage
from factory.build.workdir import sweep, work_dir
from factory.config import Settings
from factory.errors import BuildError, one_line, printable
from factory.upstream.archive import normalise_modes
from factory.upstream.cache import Sdist

DRIVER = Path(__file__).with_name("incontainer.py")
EXIT_MISSING = 3
LOG_TAIL = 15  # lines of the log a failed build's error carries (``BuildFailed.tail``)
LOG_TAIL_LINE = 240  # characters kept of each such line
CAUSE_LIMIT = 200  # characters of the log's cause line quoted in a failed build's message
CAUSE_WINDOW = 40  # last lines of the log searched for that cause
MAX_INVENTORY = 4096  # distributions env.json may list
# What a wheel filename may hold (PEP 427 names; no spaces, separators or controls).
WHEEL_NAME = re.compile(r"[A-Za-z0-9_.+!-]{1,200}\.whl")
SIZE_HINT = "a wheel that large is suspect; raise build.max_output only if it is legitimate"


@dataclass(frozen=True)
class BuildInputs:
    """Everything one build consumes; the record is made from it."""

    name: str
    version: str
    sdist: Path
    source: Sdist
    tree: Path  # the unpacked (and patched) source tree
    tools: tuple[Path, ...]  # the build-tool wheels, exactly
    kit: Kit
    image: ImageRef
    recipe_name: str
    recipe_digest: str
    patches: tuple[dict[str, str], ...] = ()
    upstream_wheels: tuple[str, ...] = ()  # tool wheels a recipe allowed from upstream
    repair_tools: tuple[Path, ...] = ()  # auditwheel and its run-time deps, for native wheels
    repair_note: str = ""  # why there are no repair tools, when there are none
    system_packages: tuple[str, ...] = ()  # the recipe's Debian packages (names or pins)
    patchelf: Patchelf | None = None  # built by the factory, for the repair step
    # The CPython the driver runs (and so the wheel's tag), built by the factory and
    # mounted read-only at its prefix; None: the builder image's own python3 (3.11).
    interpreter: Interpreter | None = None
    # A component's build again for another interpreter after a native first wheel
    # (factory.build.variants): it must give a native wheel of its own interpreter.
    variant: bool = False

    @property
    def python_tag(self) -> str:
        """cp311, cp313: the interpreter and ABI tag a native wheel of this build carries."""
        return self.interpreter.tag if self.interpreter else interpreters.SYSTEM_TAG

    def describe_interpreter(self) -> dict[str, Any]:
        """What the record says of the interpreter the build ran."""
        return (self.interpreter.describe() if self.interpreter
                else interpreters.system_description(self.image))


@dataclass(frozen=True)
class Requires:
    """The build requirements: ``static``, ``backend`` and ``backend_path`` as the host
    read them from the source tree; ``dynamic`` and ``missing`` as the build reported
    them (untrusted: good for planning, recorded as reported)."""

    static: list[str]
    dynamic: list[str]
    missing: list[str]
    backend: str
    backend_path: list[str] | None = None


class BuildFailed(BuildError):
    """The build ran and failed. The message is one line: what failed, the cause (the
    log's last meaningful line, clipped and escaped) and the log's path; ``tail`` keeps
    the log's last lines for a caller that shows more (the log itself has them all)."""

    def __init__(self, message: str, hint: str | None = None, log: Path | None = None,
                 tail: str = "") -> None:
        super().__init__(message, hint)
        self.log, self.tail = log, tail

    def __reduce__(self) -> tuple[Any, ...]:  # an orchestrator may pickle it
        return type(self), (self.message, self.hint, self.log, self.tail)


class MissingRequirementsError(BuildError):
    """The backend asked for requirements the build environment does not hold."""

    def __init__(self, inputs: BuildInputs, requires: Requires) -> None:
        # Reported by the build: a few, each clipped (one may be 1000 characters long).
        shown = [one_line(r, 100) for r in requires.missing[:5]] + (
            [f"and {len(requires.missing) - 5} more"] if len(requires.missing) > 5 else [])
        super().__init__(
            f"{inputs.name} {inputs.version}: build requirements not in its environment: "
            f"{', '.join(shown)}",
            "the plan adds them when they are locked; run `factory plan` to see why not",
        )
        self.requires = requires


@dataclass
class _Run:
    inputs: BuildInputs
    invocation: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: str = field(default_factory=lambda: _now())
    tools: list[InstalledTool] = field(default_factory=list)
    repair_tools: list[InstalledTool] = field(default_factory=list)
    system: list[SystemPackage] = field(default_factory=list)
    patchelf: Patchelf | None = None  # mounted for the repair step


def build(settings: Settings, inputs: BuildInputs) -> BuildRecord:
    """Build the wheel; place it and its record in settings.wheels_dir, or raise."""
    run = _Run(inputs)
    # The exact Debian versions first: an image that does not meet a pin builds nothing.
    run.system = system_packages(inputs.image, inputs.system_packages)
    system = build_system(inputs.tree, _what(inputs))
    with _work(settings, f"build-{run.invocation[:12]}-") as work:
        result, environment = _execute(settings, run, work, system)
        log_name, log_sha = _save_log(settings, run, result)
        out = _output(settings, run, work, log_name)
        _check_run(settings, run, result, out, system, log_name)
        _check_inventory(run, out)
        wheel = _the_wheel(settings, run, out, work)
        requires = _requires(out, system)
        repaired = repair.outcome(settings, out.root, run.repair_tools, inputs.repair_note,
                                  _what(inputs), wheel=wheel.name,
                                  patchelf=run.patchelf)
        if repaired.get("action") == "repaired":
            libs = _grafted(settings, wheel, inputs.image)
            if libs:
                repaired["grafted"] = libs
        record = _record(settings, run, wheel, environment, requires, log_name, log_sha,
                         repaired, build_warnings(settings, inputs, result.log, wheel))
        place(settings, wheel, record)
        return record


def build_warnings(settings: Settings, inputs: BuildInputs, log: bytes, wheel: Path
                   ) -> list[str]:
    """What the user should know of a build that succeeded: what its log says it went
    without (an optional C extension that fell back to pure Python for want of a
    header), with the Debian package and the recipe line that bring it, and whether
    its wheel, tagged for a platform, holds no compiled code at all. Never raises."""
    try:  # each part on its own: a wheel that cannot be read keeps the log's warning
        no_code = not repair.is_pure(wheel.name) and holds_compiled_code(wheel) is False
    except Exception:  # noqa: BLE001 - a warning never fails the build it is about
        no_code = False
    try:
        found = missing.skipped_warning(settings, log, _what(inputs), inputs.recipe_name,
                                        inputs.system_packages, inputs.image.packages,
                                        no_code=no_code)
    except Exception:  # noqa: BLE001 - a warning never fails the build it is about
        return []
    return [found] if found else []


ELF_MAGIC = b"\x7fELF"
MAX_MEMBERS = 100_000  # files of a wheel looked at for compiled code


def holds_compiled_code(wheel: Path) -> bool | None:
    """Whether some file of ``wheel`` is an ELF object (an extension module, a library:
    what auditwheel looks for); None when that cannot be told. The host reads the copy
    it took, four bytes of each file, so a hostile wheel costs little."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            files = [i for i in zf.infolist() if not i.is_dir() and i.file_size >= 4]
            if len(files) > MAX_MEMBERS:
                return None
            for info in files:
                with zf.open(info) as member:
                    if member.read(4) == ELF_MAGIC:
                        return True
    except Exception:  # noqa: BLE001 - zlib.error, lzma.LZMAError, ... of a hostile member
        return None
    return False


def _grafted(settings: Settings, wheel: Path, image: ImageRef) -> list[dict[str, Any]]:
    """The libraries grafted into ``wheel``, mapped to the image's Debian packages by
    the suite's Contents lookup when it can be had (else by Debian's naming rule), each
    compared with the image's own file (``grafted.verify``: the name is the build's
    choice; a library that cannot be shown to be the image's stays inferred)."""
    libs = repair.grafted(wheel, image)
    if not libs:
        return libs
    try:
        found = debian.lookup(settings)
    except debian.LookupUnavailable:
        found = None
    if found is not None:
        try:
            libs = repair.grafted(wheel, image, found.providers)
        finally:
            found.close()
    try:
        return grafted.verify(wheel, image, libs, connect())
    except Exception as exc:  # noqa: BLE001 - never fails the build: stays inferred
        reason = one_line(f"not compared ({type(exc).__name__}: {exc})", 200)
        return [{**e, "not_verified": reason} if "package" in e else e for e in libs]


def _what(inputs: BuildInputs) -> str:
    return f"{inputs.name} {inputs.version}"


@contextlib.contextmanager
def _work(settings: Settings, prefix: str) -> Iterator[Path]:
    """A work directory owned by this process; first, the leftovers of killed builds go
    (their containers before their directories, which a live container could still fill)."""
    reap_orphans(connect())
    sweep(settings.builds_dir)
    with work_dir(settings.builds_dir, prefix, owner_id()) as work:
        yield work


def _output(settings: Settings, run: _Run, work: Path, log_name: str) -> Confined:
    return Confined(work / "out", _what(run.inputs), f" (log: {settings.logs_dir / log_name})")


def _execute(
    settings: Settings, run: _Run, work: Path, system: BuildSystem
) -> tuple[ContainerRun, dict[str, str]]:
    inputs = run.inputs
    run.tools = make_wheelhouse(work / "wheels", list(inputs.tools))
    prepare_output(work / "out")
    write_json(work / "system.json", system.to_json())
    (work / "system.json").chmod(0o644)
    shutil.copyfile(DRIVER, work / "driver.py")  # readable whatever the install's umask was
    (work / "driver.py").chmod(0o644)
    _readable(inputs)
    binds = [
        Bind(inputs.tree, "/source"),
        Bind(work / "wheels", "/wheels"),
        Bind(work / "out", "/out", read_only=False),
        Bind(work / "driver.py", "/kit/driver.py"),
        Bind(work / "system.json", "/kit/system.json"),
        *(Bind(part.root, f"/kit/lib/{part.name}") for part in inputs.kit.parts),
    ]
    if inputs.repair_tools and repair.mode(settings) == repair.TOOL:
        run.repair_tools = make_wheelhouse(work / "repair-wheels", list(inputs.repair_tools))
        binds.append(Bind(work / "repair-wheels", "/repair-wheels"))
        if inputs.patchelf is not None:
            run.patchelf = inputs.patchelf
            binds.append(Bind(inputs.patchelf.directory, PATCHELF_MOUNT))
    environment = container_environment(source_date_epoch(inputs.sdist))
    if inputs.source.url.startswith("git+"):
        # A git archive has no .git: tell setuptools-scm/hatch-vcs the locked version.
        environment["SETUPTOOLS_SCM_PRETEND_VERSION"] = inputs.version
    python = "python3"
    if inputs.interpreter is not None:  # a factory-built CPython, read-only at its prefix
        binds.append(Bind(inputs.interpreter.tree, inputs.interpreter.prefix))
        python = inputs.interpreter.executable
    command = [python, "-I", "-S", "/kit/driver.py"]
    labels = {"org.factory.component": f"{inputs.name}=={inputs.version}",
              "org.factory.invocation": run.invocation}
    result = run_container(
        settings, inputs.image.id, command, binds, environment, settings.build_timeout, labels
    )
    return result, environment


def _readable(inputs: BuildInputs) -> None:
    """The trees mounted into the container, readable by its user (another uid than the
    one that unpacked them): a tree unpacked before the factory fixed modes at unpacking,
    or patched since (``patch`` makes files under the umask), would fail its copy."""
    for tree in (inputs.tree, *(part.root for part in inputs.kit.parts)):
        try:
            normalise_modes(tree)
        except OSError as exc:
            raise BuildError(f"{_what(inputs)}: cannot make {tree} readable by the build "
                             f"user ({exc.strerror or type(exc).__name__})",
                             "check that the state directory is yours to change") from None


def _save_log(
    settings: Settings, run: _Run, result: ContainerRun
) -> tuple[str, str]:
    stem = f"{canonicalize_name(run.inputs.name)}-{run.inputs.version}"
    name = f"{stem}-build-{run.invocation}.log"
    path = settings.logs_dir / name
    write_bytes(path, result.log)
    return name, sha256_file(path)


def _tail(result: ContainerRun) -> str:
    """The last lines of the log, each clipped and marked as quoted, every control
    character escaped: they are the build's words, shown to an operator."""
    text = result.log[-LOG_TAIL * LOG_TAIL_LINE * 4:].decode("utf-8", "replace")
    lines = text.strip().splitlines()[-LOG_TAIL:]
    return "\n".join("  | " + printable(_clip(line), keep="") for line in lines)


# What a line that states why a build failed looks like, strongest first: a compiler's
# fatal error (a missing header), then any error, exception or failure.
_CAUSES = (re.compile(r"fatal error\b", re.IGNORECASE),
           re.compile(r"error|exception|failed|denied|not found|no such|cannot|unable",
                      re.IGNORECASE))
_DRIVER_LINE = "[factory] "  # the front end's own chatter (incontainer.log)


def cause(log: bytes) -> str:
    """The log's last meaningful line, as one printable line of at most CAUSE_LIMIT
    characters: among its last CAUSE_WINDOW lines not written by the front end, the
    last compiler fatal error, else the last line naming an error or failure, else the
    last line; the front end's own last line when the build said nothing."""
    text = log[-CAUSE_WINDOW * LOG_TAIL_LINE * 4:].decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    own = [line for line in lines[-CAUSE_WINDOW:] if not line.startswith(_DRIVER_LINE)]
    found = next((line for pattern in _CAUSES for line in reversed(own) if pattern.search(line)),
                 own[-1] if own else (lines[-1] if lines else "the build printed nothing"))
    return one_line(found, CAUSE_LIMIT)


def _failed(what: str, result: ContainerRun, log: Path, why: str,
            hint: str | None = None) -> BuildFailed:
    return BuildFailed(f"{what}: {why}: {cause(result.log)} (log: {log})", hint, log=log,
                       tail=_tail(result))


def _clip(line: str) -> str:
    return line if len(line) <= LOG_TAIL_LINE else line[:LOG_TAIL_LINE] + " [...]"


def _check_run(settings: Settings, run: _Run, result: ContainerRun, out: Confined,
               system: BuildSystem, log_name: str) -> None:
    """Killed, refused output, missing requirements, failed: raise with the reason,
    in one line that ends with the log's path."""
    log = settings.logs_dir / log_name
    where = f" (log: {log})"
    _check_killed(settings, run, result, log)
    # The watcher polls; this catches what a burst between two polls got past it.
    usage = measure(out.root, max_output(settings))
    if usage.problem:
        raise _refused(f"{_what(run.inputs)}: build refused", usage, where)
    if result.exit_code == EXIT_MISSING:
        raise MissingRequirementsError(run.inputs, _requires(out, system))
    if result.exit_code != 0:
        # What the log says was missing (a header, a library, a tool), and the Debian
        # package that provides it, as the hint: factory.build.missing.
        inputs = run.inputs
        raise _failed(_what(inputs), result, log, f"build failed (exit {result.exit_code})",
                      missing.build_hint(settings, result.log, inputs.recipe_name,
                                         inputs.system_packages, inputs.image.packages))


def _refused(what: str, usage: Usage, where: str) -> OutputRefused:
    return OutputRefused(f"{what}: {usage.problem}{where}",
                         SIZE_HINT if usage.limit == "bytes" else None)


def _check_killed(settings: Settings, run: _Run, result: ContainerRun, log: Path) -> None:
    inputs = run.inputs
    what = _what(inputs)
    where = f" (log: {log})"
    if result.output_refused is not None:
        raise _refused(f"{what}: build killed", result.output_refused, where)
    if result.oom_killed:
        raise BuildError(
            f"{what}: build killed: out of memory (limit {settings.build_memory}){where}",
            "raise build.memory in factory.toml if the build legitimately needs more",
        )
    if result.pids_limit_hit and result.exit_code != 0:
        raise _failed(
            what, result, log,
            f"build failed: it hit the limit of {settings.build_pids} processes "
            f"(exit {result.exit_code})",
            "raise build.pids in factory.toml only if the build legitimately needs more",
        )
    if result.timed_out:
        raise BuildError(
            f"{inputs.name} {inputs.version}: build killed after the {settings.build_timeout} s "
            f"limit{where}",
            "raise build.timeout in factory.toml if the build is legitimately slow",
        )


def _requires(out: Confined, system: BuildSystem) -> Requires:
    """The host's build system, plus what the backend asked for (reported by the build)."""
    data = out.read_json("requires.json")
    if not isinstance(data, dict):
        raise out.refuse("the build front end reported no requirements (requires.json "
                         "missing or not an object)")
    return Requires(
        static=list(system.requires),
        dynamic=_reported_requirements(out, data.get("dynamic")),
        missing=_reported_requirements(out, data.get("missing")),
        backend=system.backend,
        backend_path=list(system.backend_path) if system.backend_path is not None else None,
    )


def _reported_requirements(out: Confined, value: object) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_REQUIREMENTS or not all(
            isinstance(v, str) and len(v) <= MAX_STRING for v in value):
        raise out.refuse(f"requires.json does not hold lists of at most {MAX_REQUIREMENTS} "
                         "requirement strings")
    environment = {k: str(v) for k, v in default_environment().items()}
    for text in value:
        try:
            requirement = Requirement(text)
            if printable(text, keep="") != text:
                raise InvalidRequirement("control characters")
            if requirement.marker is not None:  # the plan evaluates it, and must be able to
                requirement.marker.evaluate({**environment, "extra": ""})
        except (InvalidRequirement, ValueError, KeyError):
            raise out.refuse(f"requires.json holds an invalid requirement {text!r}") from None
    return list(value)


def _inventory(out: Confined) -> set[tuple[str, str]]:
    held = out.read_json("env.json")
    if not isinstance(held, list) or len(held) > MAX_INVENTORY or not all(
            isinstance(d, dict) and isinstance(d.get("name"), str)
            and isinstance(d.get("version"), str) for d in held):
        raise out.refuse("env.json is not a list of {name, version} entries")
    try:
        return {(canonicalize_name(d["name"]), str(Version(d["version"]))) for d in held}
    except InvalidVersion:
        raise out.refuse("env.json holds an invalid version") from None


def _check_inventory(run: _Run, out: Confined) -> None:
    """The venv must have held exactly the wheels we mounted, nothing more.

    env.json is the build's own report, so this is a check only: what the record
    lists as installed is the wheelhouse the host made (``run.tools``).
    """
    actual = _inventory(out)
    expected = {(n, str(Version(v))) for n, v in expected_inventory(run.tools)}
    if actual != expected:
        raise BuildError(
            f"{run.inputs.name} {run.inputs.version}: the build environment held other than "
            f"exactly the wheels mounted ({inventory_difference(actual, expected)})",
            "the builder image leaks packages into venvs; rebuild it with "
            "`factory builder bootstrap`",
        )


def _the_wheel(settings: Settings, run: _Run, out: Confined, work: Path) -> Path:
    """The one wheel in the output, copied (bounded, links not followed) to a
    directory only the host can write; every later step reads that copy."""
    wheels = [n for n in out.names() if n.endswith(".whl")]
    inputs = run.inputs
    if len(wheels) != 1:
        shown = [*wheels[:5], *(["..."] if len(wheels) > 5 else [])]
        raise out.refuse(f"expected one wheel in its output, got {len(wheels)}: {shown!r}")
    filename = wheels[0]
    try:
        if not WHEEL_NAME.fullmatch(filename):
            raise InvalidWheelFilename(filename)
        name, version, _, _ = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        raise out.refuse(f"{filename!r} is not a valid wheel filename") from None
    if name != canonicalize_name(inputs.name) or version != Version(inputs.version):
        raise BuildError(
            f"{inputs.name} {inputs.version}: the backend produced {filename}, "
            "which names another project or version",
            "the sdist's metadata disagrees with the lock; check the recipe's source",
        )
    _check_tags(inputs, filename)
    held = work / "result"
    held.mkdir(mode=0o700)
    out.copy(filename, held / filename, max_output(settings))
    return held / filename


def _check_tags(inputs: BuildInputs, filename: str) -> None:
    """A wheel bound to an interpreter's ABI must be the build's interpreter's: a cp311
    wheel from a cp313 build (a driver that ran another python, say) is refused. Pure,
    abi3 and ``none`` wheels fit every interpreter; a variant build exists only for
    native wheels, so it must give one of its own (a component's first build with a
    factory-built interpreter, one whose Requires-Python excludes 3.11, may give any)."""
    wanted = inputs.python_tag
    wrong = wrong_tags(filename, wanted, built=inputs.interpreter is not None
                       and inputs.variant)
    if wrong:
        raise BuildError(
            f"{_what(inputs)}: the build for {wanted} produced {filename}, whose tags "
            f"({', '.join(wrong[:3])}) are not {wanted}-{wanted}",
            "the build ran another interpreter than the one mounted; report it")


def wrong_tags(filename: str, wanted: str, *, built: bool) -> list[str]:
    """The tags of ``filename`` a build for ``wanted`` (cp313) could not have given: one
    bound to another interpreter's ABI; for a factory-built interpreter (``built``), every
    tag when none is bound (such a build exists only for a native wheel). Empty: fine. The
    host's check of its own builds and the publisher's of a worker's result."""
    tags = parse_wheel_filename(filename)[3]
    bound = [t for t in tags if t.abi not in ("none", "abi3")]
    wrong = sorted(str(t) for t in bound if (t.interpreter, t.abi) != (wanted, wanted))
    if not wrong and built and not bound:
        return sorted(map(str, tags))
    return wrong


def _record(
    settings: Settings,
    run: _Run,
    wheel: Path,
    environment: dict[str, str],
    requires: Requires,
    log_name: str,
    log_sha: str,
    repaired: dict[str, Any],
    warnings: list[str] | None = None,
) -> BuildRecord:
    inputs = run.inputs
    frontend = [p.as_tool() for p in inputs.kit.parts]
    # The repair tools are inputs only when they ran (a pure wheel never meets them).
    repair_tools = run.repair_tools if repaired["action"] in repair.INSTALLED else []
    return BuildRecord(
        invocation_id=run.invocation,
        component=canonicalize_name(inputs.name),
        version=inputs.version,
        wheel_filename=wheel.name,
        wheel_sha256=sha256_file(wheel),
        source=inputs.source,
        recipe_name=inputs.recipe_name,
        recipe_digest=inputs.recipe_digest,
        builder_image=inputs.image.tag,
        builder_image_id=inputs.image.id,
        builder_settings={**_builder_settings(settings, inputs, environment, requires),
                          "repair": repaired},
        build_tools=[*run.tools, *repair_tools, *frontend],
        started_on=run.started,
        finished_on=_now(),
        log_filename=log_name,
        log_sha256=log_sha,
        network_mode="none",
        patches=[dict(p) for p in inputs.patches],
        system_packages=list(run.system),
        image_packages=image_packages(inputs.image),
        warnings=list(warnings or []),
    )


def _builder_settings(
    settings: Settings, inputs: BuildInputs, environment: dict[str, str], requires: Requires
) -> dict[str, Any]:
    """Host facts, except ``build_requires.dynamic``, which ``origin`` says the build reported."""
    options = {k: v for k, v in hardening(settings).items() if k != "tmpfs"}
    options["ulimits"] = [dict(u) for u in options.get("ulimits", [])]  # plain JSON
    return {
        "backend": "docker",
        "engine": engine_info(connect()),
        "container": options,
        "tmpfs": ["/tmp", "/build"],
        "timeout_seconds": settings.build_timeout,
        "environment": environment,
        "build_path": BUILD_PATH,
        "build_backend": requires.backend,
        "backend_path": requires.backend_path,
        "build_requires": {"static": requires.static, "dynamic": requires.dynamic,
                           "origin": {"static": "pyproject.toml of the source (read by the host)",
                                      "dynamic": "reported by the build (untrusted)"}},
        "frontend": inputs.kit.describe(),
        "upstream_wheels": list(inputs.upstream_wheels),
        "image_origin": inputs.image.origin,
        "interpreter": inputs.describe_interpreter(),
    }


def place(settings: Settings, wheel: Path, record: BuildRecord) -> None:
    """Record first, then the wheel by rename: a visible wheel always has its record."""
    target_dir = settings.wheels_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    record.save(target_dir)
    staging = Path(tempfile.mkstemp(prefix=".tmp-", suffix=".whl", dir=target_dir)[1])
    try:
        shutil.copyfile(wheel, staging)
        staging.chmod(0o644)
        staging.replace(target_dir / wheel.name)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
