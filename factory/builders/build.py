"""Build one sdist into one wheel in a hardened container (or probe its requirements).

The control plane (this module, outside the container) prepares the inputs,
runs the container, checks what came out, and only then places the wheel and
its BuildRecord in the wheels directory. A failed, killed or inconsistent build
leaves no wheel behind; its log stays in the state directory.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from factory.atomic import sha256_file, write_bytes
from factory.builders import repair
from factory.builders.docker import (
    Bind,
    ContainerRun,
    hardening,
    max_output,
    prepare_output,
    run_container,
)
from factory.builders.engine import connect, engine_info
from factory.builders.env import (
    BUILD_PATH,
    Kit,
    container_environment,
    expected_inventory,
    make_wheelhouse,
    source_date_epoch,
)
from factory.builders.image import ImageRef
from factory.builders.record import BuildRecord, InstalledTool, SourceRef
from factory.config import Settings
from factory.errors import BuildError

DRIVER = Path(__file__).with_name("incontainer.py")
EXIT_MISSING = 3
LOG_TAIL = 15


@dataclass(frozen=True)
class BuildInputs:
    """Everything one build consumes; the record is made from it."""

    name: str
    version: str
    sdist: Path
    source: SourceRef
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


@dataclass(frozen=True)
class Requires:
    """The build requirements a backend reported, and those the environment lacks."""

    static: list[str]
    dynamic: list[str]
    missing: list[str]
    backend: str
    backend_path: list[str] | None = None


class MissingRequirementsError(BuildError):
    """The backend asked for requirements the build environment does not hold."""

    def __init__(self, inputs: BuildInputs, requires: Requires) -> None:
        super().__init__(
            f"{inputs.name} {inputs.version}: build requirements not in its environment: "
            f"{', '.join(requires.missing)}",
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


def probe(settings: Settings, inputs: BuildInputs) -> Requires:
    """Run get_requires_for_build_wheel in a network-less container."""
    run = _Run(inputs)
    work = Path(tempfile.mkdtemp(prefix="probe-", dir=_builds(settings)))
    try:
        result, _ = _execute(settings, run, work, "probe")
        log_name, _ = _save_log(settings, run, result, "probe")
        _check_exit(settings, run, result, work, log_name)
        return _requires(work / "out")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build(settings: Settings, inputs: BuildInputs) -> BuildRecord:
    """Build the wheel; place it and its record in settings.wheels_dir, or raise."""
    run = _Run(inputs)
    work = Path(tempfile.mkdtemp(prefix=f"build-{run.invocation[:12]}-", dir=_builds(settings)))
    try:
        result, environment = _execute(settings, run, work, "build")
        log_name, log_sha = _save_log(settings, run, result)
        _check_exit(settings, run, result, work, log_name)
        out = work / "out"
        _check_output_size(settings, run, out, log_name)
        _check_inventory(run, out)
        wheel = _the_wheel(run, out, log_name)
        requires = _requires(out)
        repaired = repair.outcome(settings, out, run.repair_tools, inputs.repair_note,
                                  f"{inputs.name} {inputs.version}")
        record = _record(settings, run, wheel, environment, requires, log_name, log_sha,
                         repaired)
        _place(settings, wheel, record)
        return record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _builds(settings: Settings) -> Path:
    settings.builds_dir.mkdir(parents=True, exist_ok=True)
    return settings.builds_dir


def _execute(
    settings: Settings, run: _Run, work: Path, mode: str
) -> tuple[ContainerRun, dict[str, str]]:
    inputs = run.inputs
    run.tools = make_wheelhouse(work / "wheels", list(inputs.tools))
    prepare_output(work / "out")
    binds = [
        Bind(inputs.tree, "/source"),
        Bind(work / "wheels", "/wheels"),
        Bind(work / "out", "/out", read_only=False),
        Bind(DRIVER, "/kit/driver.py"),
        *(Bind(part.root, f"/kit/lib/{part.name}") for part in inputs.kit.parts),
    ]
    if mode == "build" and inputs.repair_tools and repair.mode(settings) == repair.TOOL:
        run.repair_tools = make_wheelhouse(work / "repair-wheels", list(inputs.repair_tools))
        binds.append(Bind(work / "repair-wheels", "/repair-wheels"))
    environment = container_environment(source_date_epoch(inputs.sdist))
    if inputs.source.url.startswith("git+"):
        # A git archive has no .git: tell setuptools-scm/hatch-vcs the locked version.
        environment["SETUPTOOLS_SCM_PRETEND_VERSION"] = inputs.version
    command = ["python3", "-I", "-S", "/kit/driver.py", mode]
    labels = {"org.factory.component": f"{inputs.name}=={inputs.version}",
              "org.factory.invocation": run.invocation}
    result = run_container(
        settings, inputs.image.id, command, binds, environment, settings.build_timeout, labels
    )
    return result, environment


def _save_log(
    settings: Settings, run: _Run, result: ContainerRun, mode: str = "build"
) -> tuple[str, str]:
    stem = f"{canonicalize_name(run.inputs.name)}-{run.inputs.version}"
    name = f"{stem}-{mode}-{run.invocation}.log"
    path = settings.logs_dir / name
    write_bytes(path, result.log)
    return name, sha256_file(path)


def _tail(result: ContainerRun) -> str:
    lines = result.log.decode("utf-8", "replace").strip().splitlines()
    return "\n".join(lines[-LOG_TAIL:])


def _check_exit(
    settings: Settings, run: _Run, result: ContainerRun, work: Path, log_name: str = ""
) -> None:
    inputs = run.inputs
    where = f" (log: {settings.logs_dir / log_name})" if log_name else ""
    what = f"{inputs.name} {inputs.version}"
    if result.output_exceeded is not None:
        raise BuildError(
            f"{what}: build killed: it wrote {result.output_exceeded} bytes of output, over the "
            f"limit of {max_output(settings)}{where}",
            "a wheel that large is suspect; raise build.max_output only if it is legitimate",
        )
    if result.oom_killed:
        raise BuildError(
            f"{what}: build killed: out of memory (limit {settings.build_memory}){where}",
            "raise build.memory in factory.toml if the build legitimately needs more",
        )
    if result.pids_limit_hit and result.exit_code != 0:
        raise BuildError(
            f"{what}: build failed: it hit the limit of {settings.build_pids} processes "
            f"(exit {result.exit_code}){where}\n{_tail(result)}",
            "raise build.pids in factory.toml only if the build legitimately needs more",
        )
    if result.timed_out:
        raise BuildError(
            f"{inputs.name} {inputs.version}: build killed after the {settings.build_timeout} s "
            f"limit{where}",
            "raise build.timeout in factory.toml if the build is legitimately slow",
        )
    if result.exit_code == EXIT_MISSING:
        raise MissingRequirementsError(inputs, _requires(work / "out"))
    if result.exit_code != 0:
        raise BuildError(
            f"{inputs.name} {inputs.version}: build failed (exit {result.exit_code}){where}\n"
            f"{_tail(result)}",
        )


def _check_output_size(settings: Settings, run: _Run, out: Path, log_name: str) -> None:
    """The watcher polls; this catches what a burst between two polls got past it."""
    limit = max_output(settings)
    total = sum(p.lstat().st_size for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    if total > limit:
        raise BuildError(
            f"{run.inputs.name} {run.inputs.version}: the build wrote {total} bytes of output, "
            f"over the limit of {limit} (log: {log_name})",
            "a wheel that large is suspect; raise build.max_output only if it is legitimate",
        )


def _requires(out: Path) -> Requires:
    path = out / "requires.json"
    if not path.is_file():
        raise BuildError("the build front end reported no requirements (requires.json missing)")
    data = json.loads(path.read_text(encoding="utf-8"))
    return Requires(
        static=list(data["static"]),
        dynamic=list(data["dynamic"]),
        missing=list(data["missing"]),
        backend=str(data["backend"]),
        backend_path=data.get("backend_path"),
    )


def _check_inventory(run: _Run, out: Path) -> None:
    """The venv must have held exactly the wheels we mounted, nothing more."""
    held = json.loads((out / "env.json").read_text(encoding="utf-8"))
    actual = {(canonicalize_name(d["name"]), str(Version(d["version"]))) for d in held}
    expected = {(n, str(Version(v))) for n, v in expected_inventory(run.tools)}
    if actual != expected:
        raise BuildError(
            f"{run.inputs.name} {run.inputs.version}: the build environment held "
            f"{sorted(actual)} instead of exactly {sorted(expected)}",
            "the builder image leaks packages into venvs; rebuild it with "
            "`factory builder bootstrap`",
        )


def _the_wheel(run: _Run, out: Path, log_name: str) -> Path:
    wheels = sorted(out.glob("*.whl"))
    inputs = run.inputs
    if len(wheels) != 1:
        raise BuildError(f"{inputs.name} {inputs.version}: expected one wheel, got "
                         f"{[w.name for w in wheels]} (log: {log_name})")
    if wheels[0].is_symlink() or not wheels[0].is_file():
        raise BuildError(f"{inputs.name} {inputs.version}: {wheels[0].name} is not a regular "
                         f"file (log: {log_name})")
    name, version, _, _ = parse_wheel_filename(wheels[0].name)
    if name != canonicalize_name(inputs.name) or version != Version(inputs.version):
        raise BuildError(
            f"{inputs.name} {inputs.version}: the backend produced {wheels[0].name}, "
            "which names another project or version",
            "the sdist's metadata disagrees with the lock; check the recipe's source",
        )
    return wheels[0]


def _record(
    settings: Settings,
    run: _Run,
    wheel: Path,
    environment: dict[str, str],
    requires: Requires,
    log_name: str,
    log_sha: str,
    repaired: dict[str, Any],
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
    )


def _builder_settings(
    settings: Settings, inputs: BuildInputs, environment: dict[str, str], requires: Requires
) -> dict[str, Any]:
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
        "build_requires": {"static": requires.static, "dynamic": requires.dynamic},
        "frontend": inputs.kit.describe(),
        "upstream_wheels": list(inputs.upstream_wheels),
        "image_origin": inputs.image.origin,
    }


def _place(settings: Settings, wheel: Path, record: BuildRecord) -> None:
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
