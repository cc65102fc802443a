"""Test data and servers for the index tests.

Wheels and sdists come from tests.factories: real, installable wheels in
milliseconds and with no network, which build isolation would need. Sidecars
are small fabricated JSON files; the provenance carries a real X.509
certificate so the signer identity is parsed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from factory.config import Settings
from factory.index import Index
from tests import factories

SIGNER = "https://factory.invalid/builders/docker"
ISSUER = "https://factory.invalid/oidc"


def _certificate(identity: str = SIGNER, issuer: str = ISSUER) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    issuer_ext = issuer.encode()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), True
        )
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
                bytes([0x0C, len(issuer_ext)]) + issuer_ext,
            ),
            False,
        )
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


_CERT_CACHE: list[str] = []


def make_sidecars(directory: Path, wheel: Path, sdist: Path | None) -> dict[str, Path]:
    """Fabricated sidecars of the right shapes (provenance, SBOM, build record...)."""
    if not _CERT_CACHE:
        _CERT_CACHE.append(_certificate())
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / wheel.name
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": wheel.name, "digest": {"sha256": digest}}],
    }
    envelope = {
        "statement": base64.b64encode(json.dumps(statement).encode()).decode(),
        "signature": "c2ln",
    }
    material = {"certificate": _CERT_CACHE[0], "transparency_entries": []}
    attestation = {"version": 1, "verification_material": material, "envelope": envelope}
    provenance = {
        "version": 1,
        "attestation_bundles": [
            {"publisher": {"kind": "factory", "builder": "docker"}, "attestations": [attestation]}
        ],
    }
    source: dict[str, Any] = {}
    if sdist is not None:
        source = {
            "name": wheel.name.split("-")[0],
            "version": wheel.name.split("-")[1],
            "filename": sdist.name,
            "url": f"https://upstream.invalid/packages/{sdist.name}",
            "sha256": hashlib.sha256(sdist.read_bytes()).hexdigest(),
            "size": sdist.stat().st_size,
        }
    build = {
        "invocation_id": "test",
        "finished_on": "2024-01-01T00:00:00Z",
        "builder_image": "factory-builder:bookworm",
        "builder_image_id": "sha256:abc",
        "wheel_filename": wheel.name,
        "wheel_sha256": digest,
        "source": source,
    }
    paths = {
        "provenance": (base.with_name(wheel.name + ".provenance"), provenance),
        "sbom": (
            base.with_name(wheel.name + ".cdx.json"),
            {"bomFormat": "CycloneDX", "specVersion": "1.6"},
        ),
        "build": (base.with_name(wheel.name + ".build.json"), build),
        "sigstore": (
            base.with_name(wheel.name + ".sigstore.json"),
            {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"},
        ),
    }
    out = {}
    for kind, (path, value) in paths.items():
        path.write_text(json.dumps(value))
        out[kind] = path
    intoto = base.with_name(wheel.name + ".intoto.jsonl")
    intoto.write_text(json.dumps({"payloadType": "application/vnd.in-toto+json"}) + "\n")
    out["intoto"] = intoto
    links = base.with_name(wheel.name + ".in-toto")
    links.mkdir(exist_ok=True)
    (links / "root.layout").write_text("{}")
    (links / "build.abcdef12.link").write_text("{}")
    out["in-toto"] = links
    return out


def publish_wheel(
    settings: Settings,
    work: Path,
    name: str,
    version: str,
    requires: list[str] | None = None,
    requires_python: str | None = None,
    marker: str = "",
) -> Any:
    """``name`` ``version`` published with fabricated sidecars; its module holds ``marker``
    (another marker, other bytes under the same file name)."""

    module = f"VERSION = {version!r}\nMARKER = {marker!r}\n".encode()
    wheel = factories.wheel(work / "dist", name, version, requires=requires or (),
                            requires_python=requires_python,
                            files={f"{factories.dist_name(name)}/__init__.py": module})
    sdist = factories.sdist(work / "sdist", name, version)
    sidecars = make_sidecars(work / "side", wheel, sdist)
    return Index.of(settings).add(wheel, sidecars, sdist, {})


# alpha 1.0 and 1.1, and beta 2.0 that needs alpha: (name, version, Requires-Dist)
RELEASES: tuple[tuple[str, str, list[str]], ...] = (
    ("alpha", "1.0", []), ("alpha", "1.1", []), ("beta", "2.0", ["alpha>=1.0"]))


def publish_killed_at(settings: Settings, work: Path, name: str, version: str,
                      rename_number: int) -> bool:
    """Publish ``name`` ``version`` in a child process that SIGKILLs itself before its
    Nth rename (every step of a publish that makes something visible is a rename); True
    when it was killed (there were at least N renames)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        real = os.replace
        count = [0]

        def replace(src: Any, dst: Any) -> None:
            count[0] += 1
            if count[0] == rename_number:
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dst)

        os.replace = replace  # type: ignore[assignment]
        try:
            publish_wheel(settings, work, name, version)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def publish_all(settings: Settings, work: Path,
                releases: tuple[tuple[str, str, list[str]], ...] = RELEASES,
                requires_python: str | None = None) -> dict[tuple[str, str], Any]:
    """``publish_wheel`` for each of ``releases``: what it published, by (name, version)."""
    return {(name, version): publish_wheel(settings, work, name, version, requires,
                                           requires_python)
            for name, version, requires in releases}


class RequestLog:
    """ASGI middleware recording (method, path, status) of every request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        await self.app(scope, receive, capture)
        self.seen.append((scope["method"], scope["path"], status[0]))

    def paths(self) -> list[str]:
        return [p for _, p, _ in self.seen]


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # generous: a loaded CI machine
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # by lower-case name
    body: bytes
    raw_headers: list[tuple[str, str]]  # as sent, repeats kept


def request(host: str, port: int, target: str,
            headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
            method: str = "GET", timeout: float = 30) -> Answer:
    """``target`` sent exactly as written (http.client neither normalizes nor encodes it),
    with ``headers`` (a Host among them replaces http.client's own)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        skip_host = any(name.lower() == "host" for name, _ in items)
        conn.putrequest(method, target, skip_host=skip_host, skip_accept_encoding=True)
        for name, value in items:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        pairs = response.getheaders()
        return Answer(response.status, {k.lower(): v for k, v in pairs}, body, pairs)
    finally:
        conn.close()


def approve_requests(project: Settings, work: Path, versions: Sequence[str] = ("2.31.0", "2.32.3"),
                     yanked: str | None = "2.31.0") -> Index:
    """The answers keys, recipes for requests (>=2.31,<3), flask and six, requests's
    ``versions`` published and ``yanked`` yanked for an advisory: what the policy API and
    MCP tests ask about."""
    from factory.attest.keys import init_keys

    init_keys(project)
    for name, body in (("requests", 'versions = ">=2.31,<3"\n'), ("flask", ""), ("six", "")):
        factories.recipe(project.root, name, body)
    for version in versions:
        publish_wheel(project, work, "requests", version)
    index = Index.of(project)
    if yanked:
        index.yank("requests", yanked, "advisory GHSA-9wx4-h78v-vm56")
    return index
