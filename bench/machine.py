"""The machine the figures came from: every report carries it."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def _first(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        return None
    return None


def cpu_model() -> str:
    return _first("/proc/cpuinfo", "model name") or platform.processor() or "unknown"


def memory_gib() -> float | None:
    raw = _first("/proc/meminfo", "MemTotal")  # "24570340 kB"
    if not raw:
        return None
    return round(int(raw.split()[0]) / (1024 * 1024), 1)


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def docker_version() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return str(client.version().get("Version"))
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no engine is a fact to report, not an error
        return None


def describe() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "os": os_name(),
        "kernel": platform.release(),
        "docker": docker_version(),
        "python": platform.python_version(),
    }


def one_line(machine: dict[str, Any]) -> str:
    return (f"{machine.get('cores')} cores ({machine.get('cpu')}), "
            f"{machine.get('memory_gib')} GiB, {machine.get('os')} "
            f"(kernel {machine.get('kernel')}), Docker {machine.get('docker') or 'absent'}, "
            f"Python {machine.get('python')}")
