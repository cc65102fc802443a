"""`make demo`: the main job on the embedded default, end to end.

Lock (when the lock is stale), make the builder image, find or build the CPython
interpreters besides the image's 3.11 (``make demo`` asks for 3.13, kept once per
machine in ~/.cache/factory/interpreters), create the keys and the embedded Sigstore
authority, start the embedded Prefect server, run the rebuild
flow (fetch, build from source in network-less containers, attest, sign,
publish; markupsafe, the one native component, once per interpreter), serve the index,
install requests and flask from it with pip into a fresh venv, and verify what was
published. Then keep serving until Ctrl-C (when
run from a terminal) or for ``--serve-for`` seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console

from factory.config import Settings, load_settings
from factory.errors import FactoryError
from factory.lock import check_stage, lock_stage

console = Console()


def step(text: str) -> None:
    console.print(f"[bold cyan]==>[/] {text}", highlight=False)


def _serve_in_thread(settings: Settings) -> tuple[threading.Thread, object]:
    import uvicorn

    from factory.index import Index
    from factory.index.serve import SERVER_OPTIONS, create_app

    app = create_app(Index.of(settings), settings=settings)
    config = uvicorn.Config(app, host=settings.serve_host, port=settings.serve_port,
                            log_level="warning", **SERVER_OPTIONS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise FactoryError(f"the index server could not listen on "
                               f"{settings.serve_host}:{settings.serve_port}",
                               "free that port or set [index] port in factory.toml")
        time.sleep(0.05)
    return thread, server


def _smoke_install(index: str) -> str:
    with tempfile.TemporaryDirectory(prefix="factory-demo-venv-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--isolated",
             "--disable-pip-version-check", "--no-cache-dir", "--index-url", index,
             "requests", "flask"], capture_output=True, text=True)
        if result.returncode != 0:
            raise FactoryError(f"pip could not install from {index}: "
                               f"{result.stderr.strip().splitlines()[-1:]}")
        check = subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import requests, flask, markupsafe._speedups; "
                                "print(requests.__version__, flask.__version__)"],
                               capture_output=True, text=True, check=True)
        return check.stdout.strip()


def run(serve_for: float | None) -> int:
    settings = load_settings()
    from flows.server import ensure_server, ui_url

    step("checking recipes.lock against the recipes")
    if check_stage(settings):
        step("recipes.lock is stale: locking against upstream")
        lock_stage(settings)
    step("builder image (debootstrap + docker import the first time, about a minute)")
    from factory.build.image import bootstrap_image

    image = bootstrap_image(settings)
    console.print(f"    {image.tag} {image.id}", highlight=False)
    settings = _interpreters(settings)
    step("keys and the embedded Sigstore authority")
    from factory.publish import ensure_keys

    ensure_keys(settings)
    step("Prefect server (embedded, SQLite in the state directory)")
    api = ensure_server(settings)
    console.print(f"    Prefect UI: {ui_url(api)}", highlight=False)
    step("rebuild flow: fetch, build from source, attest, sign, publish")
    from flows.rebuild import rebuild

    summary = rebuild()
    console.print(f"    {summary}", highlight=False)
    step(f"serving the index at http://{settings.serve_host}:{settings.serve_port}/")
    _, server = _serve_in_thread(settings)
    index = f"http://{settings.serve_host}:{settings.serve_port}/simple/"
    step("installing requests and flask from the factory with pip, in a fresh venv")
    console.print(f"    installed requests, flask: {_smoke_install(index)}", highlight=False)
    _native_wheels(settings)
    _verify(settings)
    console.print(f"\n[bold green]done.[/] Index: {index}   Human pages: "
                  f"http://{settings.serve_host}:{settings.serve_port}/   "
                  f"Prefect UI: {ui_url(api)}", highlight=False)
    console.print(f"    pip install --index-url {index} requests   "
                  "(use --index-url, never --extra-index-url)", highlight=False)
    _keep_serving(server, serve_for)
    return 0


def _interpreters(settings: Settings) -> Settings:
    """Find (checked against its manifest) or build each interpreter besides the image's
    3.11; one that cannot be had is left out of this run, said so (the rest goes on)."""
    from factory.build import interpreters
    from factory.build.image import bootstrap_image

    pins = interpreters.select(settings)
    if not pins:
        return settings
    step(f"CPython {', '.join(p.version for p in pins)} from Debian's verified source "
         f"(built once per machine, about 5 to 10 minutes; kept in {settings.interpreters_home})")
    image = bootstrap_image(settings, interpreters.BUILD_PACKAGES)
    kept = [interpreters.SYSTEM] if interpreters.SYSTEM in settings.build_interpreters else []
    for pin in pins:
        try:
            python = interpreters.for_build(settings, image, pin)
        except FactoryError as exc:
            console.print(f"    CPython {pin.version} left out: {exc.message}", markup=False,
                          highlight=False)
            continue
        kept.append(pin.version)
        how = f"built in {python.seconds:.0f} s" if python.fresh else "kept, checked"
        console.print(f"    CPython {python.version} {python.prefix} ({how}; tree sha256 "
                      f"{python.tree_sha256[:16]}…)", highlight=False)
    if len(kept) < len(settings.build_interpreters):  # the flow reads the environment
        os.environ["FACTORY_BUILD_INTERPRETERS"] = ",".join(kept)
        return load_settings()
    return settings


def _native_wheels(settings: Settings) -> None:
    """Say which interpreters markupsafe (the native component) was published for."""
    from factory.verify.view import IndexView

    record = IndexView(settings.index_dir).record("markupsafe")
    files = sorted(f.filename for f in record.files) if record else []
    tags = sorted({name.split("-")[2] for name in files if name.count("-") >= 4})
    console.print(f"    markupsafe wheels: {', '.join(tags) or 'none'} ({len(files)} files)",
                  highlight=False)


def _verify(settings: Settings) -> None:
    from factory.verify import verify

    step("verifying every published wheel offline (digests, Sigstore, SLSA provenance, "
         "SBOM, in-toto, advisories)")
    report = verify(settings, everything=True)
    failing = [a for a in report.artifacts if not a.ok]
    console.print(f"    {len(report.artifacts) - len(failing)}/{len(report.artifacts)} passed "
                  f"in {report.seconds:.1f} s", highlight=False)
    if failing:
        raise FactoryError(f"{len(failing)} published wheel(s) failed verification",
                           "run `factory verify --all` to see which check failed")


def _keep_serving(server: object, serve_for: float | None) -> None:
    if serve_for is None:
        serve_for = float("inf") if sys.stdin.isatty() else 0.0
    if serve_for > 0:
        console.print("serving; Ctrl-C to stop" if serve_for == float("inf")
                      else f"serving for {serve_for:g} s", highlight=False)
        try:
            deadline = time.monotonic() + serve_for
            while time.monotonic() < deadline:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    server.should_exit = True  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve-for", type=float, default=None,
                        help="seconds to keep serving after the run (default: until Ctrl-C "
                        "on a terminal, 0 otherwise)")
    args = parser.parse_args()
    try:
        return run(args.serve_for)
    except FactoryError as exc:
        console.print(exc.diagnostics(), markup=False, highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
