"""Helpers of the tests that run the private PostgreSQL cluster (flows.postgres).

As root the server runs as Debian's ``postgres`` user, which must be able to enter
every directory above the cluster's; pytest's own temporary directories are private
to root, so such tests keep their project in a ``reachable_dir``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from factory.config import Settings, load_settings
from flows.postgres import PostgresError, binaries


def have_postgres() -> bool:
    """Whether the system's PostgreSQL server programs are installed."""
    try:
        binaries()
    except PostgresError:
        return False
    return True


def reachable_dir(prefix: str) -> Path:
    """A new directory under the system's temporary directory that the server's user can
    enter (mode 0711); the caller removes it."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o711)
    return base


def postgres_project(base: Path, database: str = "postgresql") -> Settings:
    """A project in ``base/project`` whose embedded server and ledger use ``database``."""
    root = base / "project"
    (root / "recipes").mkdir(parents=True)
    root.chmod(0o755)
    (root / "factory.toml").write_text(
        f'[factory]\nstate_dir = "state"\n[server]\ndatabase = "{database}"\n')
    return load_settings(root)
