"""One CycloneDX 1.6 SBOM for a whole environment (``factory sbom TARGET``).

TARGET's pins (factory.environment: a lock, a requirements file or a venv) matched
to the wheels the index publishes; each wheel one component with a versioned purl
(``pkg:pypi/NAME@VERSION?file_name=...``), its sha256, and external references to
the wheel, its PEP 740 provenance, its own SBOM and its build record on the index.
A pin the index does not serve, or not as the pin names it (a --hash of another
file, a venv's copy installed from elsewhere), is still listed, marked, without the
factory's digest and links, and reported as a problem.
The document has no timestamp and a serial number derived from its content, so the
same environment and index give the same bytes.

    from factory.attest.environment import environment_sbom
    document = environment_sbom(matches, "http://127.0.0.1:8700", "requirements.txt")
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from factory import __version__
from factory.attest.provenance import pypi_purl
from factory.attest.sbom import PROP, validate
from factory.environment import Match
from factory.export import index_root
from factory.index.records import Sidecars

# the sidecars each component links to, as CycloneDX external reference types
_LINKS = (("provenance", "attestation", "PEP 740 provenance (signed SLSA and SBOM statements)"),
          ("sbom", "bom", "the wheel's own CycloneDX SBOM (with its build's formulation)"),
          ("build", "build-meta", "the factory's build record"))


def _component(match: Match, base_url: str) -> list[dict[str, Any]]:
    pin = match.pin
    props = [{"name": f"{PROP}:pinned-by", "value": pin.origin}]
    if pin.kind:
        props.append({"name": f"{PROP}:lock-kind", "value": pin.kind})
    if not match.files or match.problem:
        # A problem (a --hash naming an unserved file besides the served one, say) means
        # an installer may have taken something else: the served wheel's digest and
        # links would vouch for what the pin does not name.
        purl = pypi_purl(pin.name, pin.version)
        return [{"type": "library", "bom-ref": purl, "name": pin.name, "version": pin.version,
                 "purl": purl, "properties": [*props, {"name": f"{PROP}:not-served",
                                                       "value": match.problem or "no wheel"}]}]
    out = []
    for item in match.files:
        wheel = f"{base_url}/files/{item.project}/{item.filename}"
        links = [{"type": "distribution", "url": wheel, "comment": "the wheel the index serves"}]
        links += [{"type": kind, "url": Sidecars.name(wheel, sidecar), "comment": comment}
                  for sidecar, kind, comment in _LINKS if sidecar in item.entry.sidecars]
        purl = pypi_purl(item.project, item.entry.version, item.filename)
        extra = [{"name": f"{PROP}:yanked", "value": item.entry.yanked_reason or "yanked"}
                 ] if item.entry.yanked else []
        out.append({"type": "library", "bom-ref": purl, "name": item.project,
                    "version": item.entry.version, "purl": purl,
                    "hashes": [{"alg": "SHA-256", "content": item.entry.sha256}],
                    "externalReferences": links, "properties": [*props, *extra]})
    return out


def environment_sbom(matches: Sequence[Match], base_url: str, name: str) -> dict[str, Any]:
    """The environment's CycloneDX 1.6 document, schema-validated; deterministic.
    ``base_url`` is the index's root or its simple page, as export pylock takes it."""
    base_url = index_root(base_url)  # files and sidecars are served from the root
    components: dict[str, dict[str, Any]] = {}
    for match in matches:
        for component in _component(match, base_url):
            components.setdefault(component["bom-ref"], component)  # a pin said twice: once
    listed = sorted(components.values(), key=lambda c: c["bom-ref"])
    root = {"type": "application", "bom-ref": "environment", "name": name}
    serial = uuid.uuid5(uuid.NAMESPACE_URL, json.dumps([root, listed], sort_keys=True))
    document: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial.urn,
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "artifact-factory",
                                      "version": __version__,
                                      "bom-ref": "tool:artifact-factory"}]},
            "component": root,
            "properties": [{"name": f"{PROP}:index", "value": base_url}],
        },
        "components": listed,
        "dependencies": [{"ref": "environment", "dependsOn": [c["bom-ref"] for c in listed]}]
        + [{"ref": c["bom-ref"]} for c in listed],
    }
    validate(document)
    return document
