"""The address of the factory's private PostgreSQL cluster, as its directory records it.

``flows.postgres`` starts the cluster and writes two files beside its data
directory; the ledger (``factory.ledger.ledger_url``) reads them to connect:

- ``address.json`` (0644): host, port and role, while the cluster runs;
- ``password`` (0600): the role's generated password, never printed or logged.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from factory._internal.atomic import atomic_writer, canonical_json

ADDRESS_FILE = "address.json"
PASSWORD_FILE = "password"
ROLE = "factory"
DATABASES = ("prefect", "ledger")
_LIMIT = 4096  # bytes read from either file


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    role: str
    password: str = field(repr=False)

    def url(self, database: str, driver: str = "psycopg") -> str:
        """A SQLAlchemy URL: ``psycopg`` for the ledger, ``asyncpg`` for Prefect's server."""
        secret = quote(self.password, safe="")
        # libpq sends the password only in a SCRAM exchange, never in clear text to a
        # process that took a stale port (asyncpg has no such option)
        query = "?require_auth=scram-sha-256" if driver == "psycopg" else ""
        return (f"postgresql+{driver}://{self.role}:{secret}@{self.host}:{self.port}/"
                f"{database}{query}")


def read_password(directory: Path) -> str | None:
    try:
        with (directory / PASSWORD_FILE).open("rb") as handle:
            text = handle.read(_LIMIT).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def write_password(directory: Path, password: str) -> None:
    with atomic_writer(directory / PASSWORD_FILE, "w", permissions=0o600) as handle:
        handle.write(password + "\n")


def read_address(directory: Path) -> Address | None:
    """The address the cluster under ``directory`` recorded when it started, or None."""
    password = read_password(directory)
    try:
        with (directory / ADDRESS_FILE).open("rb") as handle:
            data = json.loads(handle.read(_LIMIT))
        host, port, role = data["host"], data["port"], data["role"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if password is None or not isinstance(host, str) or not isinstance(role, str) \
            or not isinstance(port, int) or not 0 < port < 65536:
        return None
    return Address(host, port, role, password)


def write_address(directory: Path, address: Address) -> None:
    with atomic_writer(directory / ADDRESS_FILE, "w", permissions=0o644) as handle:
        handle.write(canonical_json({"host": address.host, "port": address.port,
                                     "role": address.role}))


def forget_address(directory: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(directory / ADDRESS_FILE)
