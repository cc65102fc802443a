"""The peers: installed from PyPI into venvs of their own, never into the project's venv.

Venvs live in a cache directory (kept between runs, keyed by interpreter and
pins), so only the first run pays for the install. Every peer and every
installer runs in a *clean* environment: this machine's pip configuration adds
find-links and extra indexes, which would let pip take wheels from somewhere
other than the server under test.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness import BenchSetupError

# Exact pins: a benchmark against a moving peer is not repeatable.
FROMAGER = ("fromager==0.101.0",)
# waitress is the first server pypiserver's `--server auto` picks; without it
# pypiserver falls back to wsgiref, which serves one request at a time and
# would make the comparison meaningless.
PYPISERVER = ("pypiserver==2.4.2", "waitress==3.0.2")

_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
         "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "DOCKER_HOST")


def cache_dir() -> Path:
    explicit = os.environ.get("FACTORY_BENCH_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "factory-bench"


def clean_env(**extra: str) -> dict[str, str]:
    """The host environment minus anything that steers pip, uv or Python."""
    env = {k: v for k, v in os.environ.items() if k in _KEEP}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({
        "PIP_CONFIG_FILE": os.devnull,  # ignore /etc/pip.conf and ~/.config/pip
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "UV_NO_CONFIG": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.update(extra)
    return env


def find_python(version: str) -> Path:
    """An interpreter of ``version`` (e.g. "3.12"): on PATH, or a pyenv installation."""
    explicit = os.environ.get("FACTORY_BENCH_PYTHON" + version.replace(".", ""))
    candidates = [explicit] if explicit else []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"),
                         reverse=True)
    for candidate in candidates:
        if candidate and _answers(candidate, version):
            return Path(candidate)
    raise BenchSetupError(f"no Python {version} found",
                          f"install one, or set FACTORY_BENCH_PYTHON{version.replace('.', '')}")


def _answers(python: str, version: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False  # a pyenv shim that has no such version, for one
    return done.returncode == 0 and done.stdout.strip() == version


def venv(name: str, requirements: tuple[str, ...], python: Path | None = None,
         cache: Path | None = None) -> Path:
    """A venv holding exactly ``requirements``, made once and then reused."""
    python = python or Path(sys.executable)
    key = hashlib.sha256("\n".join([str(python), *requirements]).encode()).hexdigest()[:10]
    path = (cache or cache_dir()) / f"{name}-{key}"
    stamp = path / ".bench-installed"
    if stamp.is_file():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    _run([str(python), "-m", "venv", str(path)], f"create the {name} venv")
    _run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
         f"install {' '.join(requirements)}")
    stamp.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    return path


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env(), check=False,
                          timeout=900)
    if done.returncode != 0:
        tail = " ".join((done.stdout + done.stderr).split()[-40:])
        raise BenchSetupError(f"cannot {what}: {tail}",
                              "check that PyPI is reachable (peers are installed from it)")


def version_of(command: list[str], env: dict[str, str] | None = None) -> str:
    """The first line a ``--version`` style command prints (for the report)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env=env or clean_env(), check=False)
    except OSError as exc:
        return f"unknown ({exc})"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def run_fromager(venv: Path, arguments: list[str], base: Path, out: Path,
                 timeout: float) -> int:
    """``fromager ARGS`` with its output under ``out`` and its log in ``base``, in a clean
    environment; the wheels it built (a failure raises with the log's tail)."""
    env = clean_env(PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    command = [str(venv / "bin" / "fromager"), "--output-dir", str(out), *arguments]
    log = base / "fromager.log"
    with log.open("wb") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env,
                              cwd=base, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = " ".join(log.read_text(errors="replace").split()[-40:])
        raise RuntimeError(f"fromager failed (exit {done.returncode}): {tail}")
    return len(list((out / "wheels-repo" / "downloads").glob("*.whl")))
