"""The bare loop (runs INSIDE the builder image; standalone, stdlib only).

`pip wheel --no-deps --no-index` on each sdist, with pip's own build isolation
taking the build tools from the wheels the loop has already built (/out is
both the output and the only --find-links). The order and the concurrency are
the factory's, handed in /bare/plan.json, so the two sides do the same work in
the same order and differ only in what the factory adds around each build. The
plan may name another interpreter (``"python"``): the loop then makes a venv of it
in /tmp first (its ensurepip installs the interpreter's bundled pip wheel, compiled
once) and runs that venv's pip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

OUT = "/out"
SDISTS = "/sdists"


PIP = [sys.executable, "-m", "pip"]
VENV = "/tmp/bare-venv"


def build(node: dict[str, object]) -> str | None:
    """Build one sdist; the wheel appears in /out only once complete. Returns an error."""
    staging = os.path.join(OUT, ".tmp-" + str(node["id"]).replace("=", "-"))
    command = [*PIP, "wheel", "--no-deps", "--no-index", "--no-cache-dir",
               "--disable-pip-version-check", "--quiet", "--find-links", OUT,
               "--wheel-dir", staging, os.path.join(SDISTS, str(node["sdist"]))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return (done.stdout + done.stderr)[-2000:]
    for name in os.listdir(staging):
        os.replace(os.path.join(staging, name), os.path.join(OUT, name))
    os.rmdir(staging)
    return None


def main() -> int:
    with open("/bare/plan.json", encoding="utf-8") as handle:
        plan = json.load(handle)
    if plan.get("python"):
        subprocess.run([str(plan["python"]), "-m", "venv", VENV], check=True)
        PIP[:] = [os.path.join(VENV, "bin", "python"), "-m", "pip"]
    nodes = {n["id"]: n for n in plan["nodes"]}
    limit = int(plan["concurrency"])
    done: set[str] = set()
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=limit) as pool:
        running: dict[Future[str | None], str] = {}
        while True:
            for nid in sorted(nodes):
                busy = nid in done or nid in failed or nid in running.values()
                deps = nodes[nid]["deps"]
                if busy or len(running) >= limit:
                    continue
                if any(d in failed for d in deps):
                    failed[nid] = "a build requirement failed"
                elif all(d in done for d in deps):
                    running[pool.submit(build, nodes[nid])] = nid
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                nid = running.pop(future)
                error = future.result()
                if error:
                    failed[nid] = error
                else:
                    done.add(nid)
    print(json.dumps({"built": sorted(done), "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
