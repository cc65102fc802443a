"""Bench comparison 5's fair peer: the stock sigstore CLI verifying the same bundles.

The peer is only fair if it does the work `factory verify` does: every distinct bundle
of every wheel (signature, signed statements, PEP 740 attestations), each checked
against the wheel it is staged beside. These tests run the real stock CLI on what the
bench stages from a released index.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.verify_throughput import _bundles_of, _stage_same_bundles, _stock_command
from factory.index.records import Sidecars
from tests.security_fixtures import released_copy


def _published(settings: Any) -> list[Path]:
    return sorted((settings.index_dir / "files").glob("*/*.whl"))


def _stock(settings: Any, inputs: list[Path]) -> subprocess.CompletedProcess[str]:
    command = _stock_command(SimpleNamespace(settings=settings), inputs)  # type: ignore[arg-type]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_the_peer_verifies_every_bundle_the_factory_checks(released_base: Path,
                                                           tmp_path: Path) -> None:
    settings = released_copy(released_base, tmp_path)
    wheels = _published(settings)
    assert wheels
    for wheel in wheels:
        bundles = _bundles_of(wheel)
        intoto = Sidecars(wheel).path("intoto").read_text(encoding="utf-8").splitlines()
        # the signature bundle, each signed statement, and the PEP 740 publish attestation
        # (its provenance attestation is the SLSA statement's bundle: counted once)
        assert len(bundles) >= 2 + len([line for line in intoto if line.strip()])
        types = {json.loads(b).get("dsseEnvelope", {}).get("payloadType") for b in bundles}
        assert "application/vnd.in-toto+json" in types
    inputs = _stage_same_bundles(wheels, tmp_path / "stage")
    result = _stock(settings, inputs)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("OK: ") == len(inputs) == sum(len(_bundles_of(w)) for w in wheels)


def test_the_peer_binds_each_bundle_to_its_wheel(released_base: Path, tmp_path: Path) -> None:
    """A statement staged beside another wheel fails: the peer checks the subject digest,
    as `factory verify` does, so it is not let off with the signature alone."""
    settings = released_copy(released_base, tmp_path)
    first, second = _published(settings)[:2]
    statement = next(b for b in _bundles_of(first) if "dsseEnvelope" in json.loads(b))
    slot = tmp_path / "swapped"
    slot.mkdir()
    staged = slot / second.name
    staged.symlink_to(second)
    staged.with_name(second.name + ".sigstore.json").write_text(statement, encoding="utf-8")
    result = _stock(settings, [staged])
    assert result.returncode != 0
    assert "no subject for digest" in result.stderr
