"""The PEP 517 front end that runs INSIDE the build container (standalone script).

It imports nothing from the factory. The host mounts it at /kit/driver.py and
runs it with ``python3 -I -S`` so that neither PYTHONPATH nor the image's
dist-packages (Debian's pip, setuptools 66, ...) can leak in. The front-end
libraries come from the factory's own verified sdists, mounted read-only as
source trees under /kit/lib/<name> (pyproject-hooks, packaging, installer are
pure Python and run from source, which breaks the "a front end needs a front
end" cycle honestly).

Layout inside the container:
  /source   the unpacked (and patched) sdist, read-only
  /wheels   exactly the build-tool wheels this build may use, read-only
  /build    tmpfs: the writable copy of the source (fixed path) and the venv
  /out      the only writable host mount: wheel, requires.json, env.json, repair.json
  /kit/system.json  the build system the host read from the source's pyproject.toml
  /repair-wheels  (optional, read-only) auditwheel and its run-time deps
  /kit/patchelf   (optional, read-only) the patchelf the factory built from source;
                  put before the image's own on the repair step's PATH

It reports get_requires_for_build_wheel and builds, after checking every
dynamic requirement is met by the installed wheels. A
wheel that is not pure is then repaired with auditwheel, installed in a venv of
its own (made like the build venv), to the best manylinux policy auditwheel
finds for this image; when it cannot be repaired the original wheel is kept and
repair.json says why.
Exit 3 means requirements are missing (listed in /out/requires.json).

Everything written to /out is a report the host treats as untrusted: the build
backend runs in this same container and can overwrite any of it. The host takes
the build system from its own reading of pyproject.toml (/kit/system.json), the
tools from the wheelhouse it mounted, and uses env.json only as a check.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

SOURCE = Path("/source")
WHEELS = Path("/wheels")
KIT = Path("/kit/lib")
SYSTEM = Path("/kit/system.json")
WORK = Path("/build")
OUT = Path("/out")
SRC = WORK / "src"
VENV = WORK / "env"
PYTHON = VENV / "bin" / "python"
REPAIR_WHEELS = Path("/repair-wheels")
REPAIR_VENV = WORK / "repair-env"
PATCHELF_DIR = Path("/kit/patchelf")
REPAIRED = WORK / "repaired"
EXIT_MISSING = 3
DEFAULT_SYSTEM = {
    "requires": ["setuptools>=40.8.0"],
    "build-backend": "setuptools.build_meta:__legacy__",
}


def log(message: str) -> None:
    print(f"[factory] {message}", flush=True)


def use_kit() -> None:
    for entry in sorted(KIT.iterdir()) if KIT.is_dir() else []:
        sys.path.insert(0, str(entry))


def copy_source() -> None:
    # Backends write into the tree (build/, *.egg-info); the mount is read-only.
    shutil.copytree(SOURCE, SRC, symlinks=True)


def make_venv(venv: Path = VENV) -> None:
    # --without-pip: ensurepip would add Debian's setuptools 66 and pip, which are
    # not locked tools. The venv holds exactly the mounted wheels.
    subprocess.run([sys.executable, "-I", "-m", "venv", "--without-pip", str(venv)], check=True)


def venv_paths(python: Path = PYTHON) -> dict[str, str]:
    code = "import json, sysconfig; print(json.dumps(sysconfig.get_paths()))"
    out = subprocess.run([str(python), "-I", "-c", code], check=True, capture_output=True)
    return dict(json.loads(out.stdout))


def install_wheels(wheelhouse: Path = WHEELS, venv: Path = VENV) -> None:
    wheels = sorted(wheelhouse.glob("*.whl")) if wheelhouse.is_dir() else []
    if not wheels:
        return
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    python = venv / "bin" / "python"
    paths = venv_paths(python)
    scheme = {key: paths[key] for key in ("purelib", "platlib", "scripts", "data")}
    scheme["headers"] = paths["include"]
    destination = SchemeDictionaryDestination(
        scheme, interpreter=str(python), script_kind="posix", bytecode_optimization_levels=()
    )
    for wheel in wheels:
        log(f"install {wheel.name}")
        with WheelFile.open(wheel) as source:
            install(source, destination, additional_metadata={"INSTALLER": b"factory\n"})


def inventory(python: Path = PYTHON) -> list[dict[str, str]]:
    code = (
        "import json, importlib.metadata as m; print(json.dumps(sorted("
        "[d.metadata['Name'], d.version] for d in m.distributions())))"
    )
    out = subprocess.run([str(python), "-I", "-c", code], check=True, capture_output=True)
    return [{"name": n, "version": v} for n, v in json.loads(out.stdout)]


def build_system() -> dict[str, Any]:
    if SYSTEM.is_file():  # what the host read (and records): run exactly that
        given = json.loads(SYSTEM.read_text(encoding="utf-8"))
        return {k: v for k, v in given.items() if v is not None}
    path = SRC / "pyproject.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    system = data.get("build-system")
    if not system or "build-backend" not in system:
        merged = dict(DEFAULT_SYSTEM)
        merged.update(system or {})
        return merged
    return dict(system)


def hook_caller(system: dict[str, Any]) -> Any:
    from pyproject_hooks import BuildBackendHookCaller

    return BuildBackendHookCaller(
        str(SRC),
        system["build-backend"],
        backend_path=system.get("backend-path"),
        python_executable=str(PYTHON),
    )


def unmet(requires: list[str], installed: list[dict[str, str]]) -> list[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    have = {canonicalize_name(d["name"]): d["version"] for d in installed}
    missing = []
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = have.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def is_pure(filename: str) -> bool:
    from packaging.utils import parse_wheel_filename

    return all(tag.platform == "any" for tag in parse_wheel_filename(filename)[3])


def repair_path() -> str:
    """PATH for the repair step: the mounted patchelf first, when there is one."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return f"{PATCHELF_DIR}:{path}" if (PATCHELF_DIR / "patchelf").is_file() else path


def auditwheel(*args: str) -> subprocess.CompletedProcess[str]:
    python = REPAIR_VENV / "bin" / "python"
    return subprocess.run([str(python), "-I", "-m", "auditwheel", *args],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": repair_path()})


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def patchelf_version() -> str | None:
    found = shutil.which("patchelf", path=repair_path())
    if found is None:
        return None
    done = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def patcher(patchelf: str | None) -> str:
    """auditwheel's ELF patcher: patchelf when it is recent enough, else "none".

    auditwheel needs patchelf >= 0.14.5 (Debian bookworm has 0.14.3). The "none"
    patcher still repairs wheels that need no grafted library (only their tags
    change); one that needs grafting then fails, and the wheel is kept as built.
    """
    parts = (patchelf or "").split()[-1:] or ["0"]
    try:
        version = tuple(int(x) for x in parts[0].split("."))
    except ValueError:
        return "none"
    return "patchelf" if version >= (0, 14, 5) else "none"


def repair(wheel: Path) -> tuple[Path, dict[str, Any]]:
    """The wheel to keep (repaired, or the original) and what was done, for the record."""
    if is_pure(wheel.name):
        return wheel, {"action": "pure"}
    if not (REPAIR_WHEELS.is_dir() and any(REPAIR_WHEELS.glob("*.whl"))):
        return wheel, {"action": "unavailable"}
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    info: dict[str, Any] = {"original": {"filename": wheel.name, "sha256": digest}}
    make_venv(REPAIR_VENV)
    install_wheels(REPAIR_WHEELS, REPAIR_VENV)
    info["env"] = inventory(REPAIR_VENV / "bin" / "python")
    info["patchelf"] = patchelf_version()
    info["patcher"] = patcher(info["patchelf"])
    shown = auditwheel("show", "--json", str(wheel))
    try:  # the JSON document is all of stdout (pretty-printed); logs go to stderr
        report = json.loads(shown.stdout)
    except ValueError:
        return wheel, {**info, "action": "not-repairable",
                       "reason": "auditwheel show failed: " + tail(shown.stdout + shown.stderr)}
    policy = str(report.get("overall_tag", ""))
    symbols = str(report.get("sym_tag", ""))
    if policy.startswith("linux_") and info["patcher"] == "patchelf" \
            and symbols.startswith("manylinux_") and report.get("external_libs"):
        # show judges the wheel as it is; repair grafts the external libraries, which
        # leaves the policy its versioned symbols allow (repair refuses what else fails).
        policy = symbols
    if "error" in report or not policy or policy.startswith("linux_"):
        why = report.get("error") or tail(auditwheel("show", str(wheel)).stdout)
        return wheel, {**info, "action": "not-repairable", "show": report,
                       "reason": f"no manylinux policy fits: {why}"}
    log(f"auditwheel: {wheel.name} fits {policy}; repairing")
    done = auditwheel("repair", "--plat", policy, "--patcher", info["patcher"],
                      "-w", str(REPAIRED), str(wheel))
    repaired = sorted(REPAIRED.glob("*.whl")) if REPAIRED.is_dir() else []
    if done.returncode != 0 or len(repaired) != 1:
        return wheel, {**info, "action": "not-repairable", "policy": policy,
                       "reason": f"auditwheel repair failed (exit {done.returncode}): "
                                 + tail(done.stdout + done.stderr)}
    return repaired[0], {**info, "action": "repaired", "policy": policy}


def write_json(name: str, value: Any) -> None:
    (OUT / name).write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main() -> int:
    os.umask(0o022)
    use_kit()
    copy_source()
    make_venv()
    install_wheels()
    installed = inventory()
    write_json("env.json", installed)
    system = build_system()
    hooks = hook_caller(system)
    dynamic = list(hooks.get_requires_for_build_wheel())
    missing = unmet([*system.get("requires", []), *dynamic], installed)
    write_json(
        "requires.json",
        {"static": system.get("requires", []), "dynamic": dynamic, "missing": missing,
         "backend": system["build-backend"], "backend_path": system.get("backend-path")},
    )
    log(f"backend {system['build-backend']}; dynamic requires {dynamic}")
    if missing:
        log(f"missing build requirements: {missing}")
        return EXIT_MISSING
    dist = WORK / "dist"
    dist.mkdir()
    name = hooks.build_wheel(str(dist))
    log(f"built {name}")
    kept, repaired = repair(dist / name)
    write_json("repair.json", repaired)
    if repaired.get("reason"):
        log(f"kept {name} as built: {repaired['reason']}")
    shutil.copyfile(kept, OUT / kept.name)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        # The backend's own traceback is already in the log, just above.
        log(f"the build backend failed (exit {exc.returncode})")
        sys.exit(1)
