"""in-toto layout and links for one wheel: fetch -> build -> attest.

The control plane records every link outside the build container, after the
step, by hashing the step's input and output files with in-toto's own runlib
(no command is run; the build itself happened in the container). Each link is
signed by the role's functionary key, the layout by the owner key; all
metadata is DSSE. The stock ``in-toto-verify`` checks the result, run in the
directory that holds the wheel::

    cd <dir of the wheel>
    in-toto-verify --layout W.in-toto/root.layout --link-dir W.in-toto \\
        --verification-keys keys/owner.pub.pem

Its final inspection (``receive``) hashes the files the auditor holds, so a
changed wheel or sidecar fails verification, as does a changed link (signature)
or layout (owner signature).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from in_toto.models.layout import Inspection, Layout, Step
from in_toto.models.metadata import Envelope
from in_toto.runlib import in_toto_run
from securesystemslib.signer import Signer

from factory._internal.atomic import TMP_PREFIX
from factory.attest.keys import load_public_key, load_signer, public_key_path
from factory.config import Settings
from factory.errors import SigningError, VerificationError, one_line
from factory.index.records import Sidecars

LAYOUT_NAME = "root.layout"
INSPECTION = "receive"
DEFAULT_EXPIRY_DAYS = 365
# Which role signs which step's link.
STEP_ROLES = {"fetch": "fetcher", "build": "builder", "attest": "attestor"}
# Inspection run by the verifier in the wheel's directory: checks every CRC in
# the wheel quietly (exit 1 if one is wrong, traceback if it is no zip).
_ZIP_CHECK = "import sys, zipfile; sys.exit(zipfile.ZipFile(sys.argv[1]).testzip() is not None)"
# in_toto.runlib keeps resolver state in module globals: one recording at a time.
_RUNLIB_LOCK = threading.Lock()


def intoto_dir_for(wheel: Path) -> Path:
    return Sidecars(wheel).path("in-toto")


def link_name(step: str, keyid: str) -> str:
    return f"{step}.{keyid[:8]}.link"


# -- links --------------------------------------------------------------------------
def _existing(paths: Sequence[Path]) -> list[str]:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SigningError(f"cannot record an in-toto link: missing {', '.join(missing)}")
    return [str(p.resolve()) for p in paths]


def record_link(
    step: str, signer: Signer, materials: Sequence[Path], products: Sequence[Path], out_dir: Path
) -> Path:
    """Sign a link for ``step`` naming each file by its base name (each once)."""
    materials, products = _once(materials), _once(products)
    files = [*materials, *products]
    # Longest prefix first: runlib strips the first prefix that matches.
    prefixes = sorted({str(p.resolve().parent) + os.sep for p in files}, key=len, reverse=True)
    with _RUNLIB_LOCK:
        metadata = in_toto_run(
            step,
            _existing(materials),
            _existing(products),
            [],  # nothing to run: the step already happened, we record its files
            lstrip_paths=prefixes,
            metadata_directory=str(out_dir),  # runlib writes the signed link here
            use_dsse=True,
            signer=signer,
        )
    link = metadata.get_payload()
    # runlib silently skips files its exclude patterns match (e.g. under a
    # directory named *.link*); a link must name every file it was given.
    recorded = (set(link.materials), set(link.products))
    wanted = ({p.resolve().name for p in materials}, {p.resolve().name for p in products})
    path = out_dir / link_name(step, signer.public_key.keyid)
    if recorded != wanted or not path.is_file():
        path.unlink(missing_ok=True)
        raise SigningError(
            f"in-toto recorded {sorted(recorded[0] | recorded[1])} for step {step}, "
            f"expected {sorted(wanted[0] | wanted[1])}",
            "move the files out of directories named like in-toto's exclude patterns",
        )
    return path


def _once(paths: Sequence[Path]) -> list[Path]:
    """Each file once, in order: a file given twice is one material, not two."""
    return list({p.resolve(): p for p in paths}.values())


# -- layout -------------------------------------------------------------------------
def _step(name: str, keyid: str, materials: list[list[str]], products: list[list[str]]) -> Step:
    return Step(
        name=name,
        pubkeys=[keyid],
        threshold=1,
        expected_command=[],
        expected_materials=materials,
        expected_products=products,
    )


def build_layout(
    settings: Settings, sdist: str, wheel: str, attest_products: Sequence[str], expires: datetime
) -> Layout:
    """The supply chain of one wheel, by file names (a product named twice is one)."""
    attest_products = list(dict.fromkeys(attest_products))
    keys = {role: load_public_key(settings, role) for role in STEP_ROLES.values()}
    ids = {step: keys[role].keyid for step, role in STEP_ROLES.items()}
    steps = [
        _step("fetch", ids["fetch"], [["DISALLOW", "*"]], [["CREATE", sdist], ["DISALLOW", "*"]]),
        _step(
            "build",
            ids["build"],
            [["MATCH", sdist, "WITH", "PRODUCTS", "FROM", "fetch"], ["DISALLOW", "*"]],
            [["CREATE", wheel], ["DISALLOW", "*"]],
        ),
        _step(
            "attest",
            ids["attest"],
            [["MATCH", wheel, "WITH", "PRODUCTS", "FROM", "build"], ["DISALLOW", "*"]],
            [*(["CREATE", p] for p in attest_products), ["DISALLOW", "*"]],
        ),
    ]
    # What the auditor holds must be exactly what build/attest produced; a
    # changed file is not consumed by MATCH and then hits its DISALLOW.
    received: list[list[str]] = []
    for name, step in [(wheel, "build"), *((p, "attest") for p in attest_products)]:
        received += [
            ["REQUIRE", name],
            ["MATCH", name, "WITH", "PRODUCTS", "FROM", step],
            ["DISALLOW", name],
        ]
    inspection = Inspection(
        name=INSPECTION,
        run=["python3", "-c", _ZIP_CHECK, wheel],
        expected_materials=[*received, ["ALLOW", "*"]],
        expected_products=[["ALLOW", "*"]],
    )
    layout = Layout(
        steps=steps,
        inspect=[inspection],
        expires=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        readme=f"artifact-factory supply chain of {wheel}: fetch {sdist}, build, attest",
    )
    for key in keys.values():
        layout.add_functionary_key({**key.to_dict(), "keyid": key.keyid})
    return layout


def sign_layout(layout: Layout, owner: Signer, path: Path) -> Path:
    envelope = Envelope.from_signable(layout)
    envelope.create_signature(owner)
    envelope.dump(str(path))
    return path


# -- the whole set --------------------------------------------------------------------
def write_intoto(
    settings: Settings,
    sdist: Path,
    wheel: Path,
    attest_products: list[Path],
    out_dir: Path,
    expiry_days: int = DEFAULT_EXPIRY_DAYS,
) -> list[Path]:
    """Write the signed layout and links for ``wheel`` into ``out_dir``.

    ``out_dir`` (suggested: ``intoto_dir_for(wheel)``) appears complete or not
    at all: everything is written to a temporary sibling and renamed.
    Returns the final paths, layout first.
    """
    signers = {step: load_signer(settings, role) for step, role in STEP_ROLES.items()}
    owner = load_signer(settings, "owner")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=out_dir.parent))
    try:
        names = [p.name for p in attest_products]
        expires = datetime.now(UTC) + timedelta(days=expiry_days)
        layout = build_layout(settings, sdist.name, wheel.name, names, expires)
        written = [sign_layout(layout, owner, tmp / LAYOUT_NAME)]
        written.append(record_link("fetch", signers["fetch"], [], [sdist], tmp))
        written.append(record_link("build", signers["build"], [sdist], [wheel], tmp))
        written.append(record_link("attest", signers["attest"], [wheel], attest_products, tmp))
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out_dir / p.name for p in written]


def _swap_into_place(new: Path, final: Path) -> None:
    os.chmod(new, 0o755)  # mkdtemp makes it 0700; the index serves it
    if not final.exists():
        os.rename(new, final)
        return
    old = final.with_name(f"{TMP_PREFIX}old-{final.name}")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old, ignore_errors=True)


# -- verification -----------------------------------------------------------------------
def verify_intoto(
    out_dir: Path,
    wheel: Path,
    owner_key: Path,
    files: Sequence[Path] | None = None,
    timeout: int = 60,
) -> None:
    """Run the stock in-toto-verify on ``wheel`` and its sidecars; raise on failure.

    ``files``: the sidecars the auditor holds (default: every ``<wheel>.*`` file
    next to the wheel). They are linked into an empty directory so that the
    inspection hashes only them, not the rest of a project's directory.
    """
    if files is None:
        files = [p for p in wheel.parent.glob(wheel.name + ".*") if p.is_file()]
    with tempfile.TemporaryDirectory(prefix="factory-verify-") as work:
        for path in [wheel, *files]:
            if path.is_file():
                os.symlink(path.resolve(), Path(work) / path.name)
        cmd = [
            sys.executable, "-c", "from in_toto.in_toto_verify import main; main()",
            "--layout", str((out_dir / LAYOUT_NAME).resolve()),
            "--link-dir", str(out_dir.resolve()),
            "--verification-keys", str(owner_key.resolve()),
            "--inspection-timeout", str(timeout),
        ]  # fmt: skip
        result = subprocess.run(
            cmd, cwd=work, capture_output=True, text=True, timeout=timeout + 60, check=False
        )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise VerificationError(
            f"in-toto verification of {wheel.name} failed: "
            f"{one_line(lines[-1], 200) if lines else 'no output'}",
            "the wheel, a sidecar or its in-toto metadata changed; do not install it",
        )


def verify_intoto_with_settings(settings: Settings, wheel: Path) -> None:
    """verify_intoto with the project's owner key and the wheel's default directory."""
    verify_intoto(intoto_dir_for(wheel), wheel, public_key_path(settings, "owner"))
