"""Settings: factory.toml at the project root, overridden by FACTORY_* variables.

The project root holds the policy (recipes/, recipes.lock, keys/); the state
directory holds everything the factory makes (caches, builds, the index, private
keys, the ledger). Unknown keys in factory.toml are errors, like in recipes.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from factory.errors import ConfigError

# The advisory source of a new install: OSV's published archive of every PyPI advisory
# (factory.upstream.advisories fetches it conditionally and caches it in the state).
OSV_PYPI_ARCHIVE = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"

PYPI_SIMPLE = "https://pypi.org/simple/"
# The default site license policy: the permissive licenses a platform team usually
# approves. Anything else `factory add` leaves to a human.
DEFAULT_LICENSES = (
    "0BSD", "Apache-2.0", "BlueOak-1.0.0", "BSD-2-Clause", "BSD-3-Clause", "BSL-1.0",
    "CC0-1.0", "CNRI-Python", "HPND", "ISC", "MIT", "MIT-0", "MIT-CMU", "MPL-2.0", "NCSA",
    "PostgreSQL", "PSF-2.0", "Python-2.0", "Unlicense", "X11", "Zlib", "ZPL-2.1",
)
CONFIG_FILE = "factory.toml"
_CPYTHON = re.compile(r"3\.[0-9]{1,2}")
_URL_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*)://")


@dataclass(frozen=True)
class Settings:
    root: Path
    state_dir: Path
    upstream: str = PYPI_SIMPLE
    advisories: str | None = None
    cooldown_days: float = 0.0
    python_version: str = "3.11"  # the builder image's Python; markers are evaluated for it
    builder_image: str = "factory-builder:bookworm"
    build_concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    build_timeout: int = 1800
    build_memory: str = "2g"
    build_pids: int = 512
    build_cpus: float = 2.0
    build_max_output: int = 1 << 30  # bytes a build may write; more is killed as suspect
    build_repair: str = "auditwheel"  # "auditwheel" | "none": native wheels to manylinux
    # [build] interpreters: the CPython versions the builder holds. "3.11" is the image's
    # Debian python3; others are built from Debian's verified source (factory.build.
    # interpreters) by `factory builder bootstrap --interpreters`. A native component is
    # built once per interpreter its Requires-Python admits (factory.build.variants).
    build_interpreters: tuple[str, ...] = ("3.11",)
    # [build] interpreters_dir: where built interpreters are kept (default
    # <state_dir>/builder/interpreters). Each is checked against its manifest on every use,
    # so a directory shared by several projects on one machine (as the tests and the demo
    # share one) pays CPython's build once, like the builder image in Docker's store.
    interpreters_dir: str | None = None
    index_url: str = "http://127.0.0.1:8700"
    serve_host: str = "127.0.0.1"
    serve_port: int = 8700
    ledger_url: str | None = None
    # [store] url: the artifact store build workers and the publisher share
    # (factory.artifact_store): a directory (relative to the root), file://, s3://, gs://
    store_url: str | None = None
    # [distributed] pool: the Prefect work pool whose workers build (each build a flow run
    # of the factory-build deployment, flows.build); unset: builds run in this process
    build_pool: str | None = None
    # [server] database: what the embedded Prefect server (flows.server) keeps its state in.
    # "sqlite" (default): a file in its home. "postgresql": a private cluster from the
    # system's PostgreSQL (flows.postgres) under postgres_dir, which the ledger then uses
    # too (unless [ledger] url says otherwise).
    server_database: str = "sqlite"
    postgres_dir: str | None = None
    signing_mode: str = "embedded"
    trust_config: str | None = None
    identity: str = "https://factory.invalid/builders/docker"
    issuer: str = "https://factory.invalid/oidc"
    authority_host: str = "127.0.0.1"
    http_retries: int = 4
    http_timeout: float = 30.0
    # [policy] licenses: SPDX ids `factory add` approves without a human (the site policy)
    allowed_licenses: tuple[str, ...] = field(default_factory=lambda: DEFAULT_LICENSES)
    # [intake] auto_approve: requests policy allows are approved without a human
    intake_auto_approve: bool = False
    # [equivalence] match_upstream_backend: build a pure wheel with the backend version
    # upstream's own wheel names (its WHEEL Generator), when that version passes policy
    match_upstream_backend: bool = True

    # -- paths of the project -------------------------------------------------
    @property
    def recipes_dir(self) -> Path:
        return self.root / "recipes"

    @property
    def lock_path(self) -> Path:
        return self.root / "recipes.lock"

    @property
    def public_keys_dir(self) -> Path:
        return self.root / "keys"

    # -- paths of the state directory -----------------------------------------
    @property
    def sources_dir(self) -> Path:
        return self.state_dir / "sources"

    @property
    def builds_dir(self) -> Path:
        return self.state_dir / "builds"

    @property
    def wheels_dir(self) -> Path:
        return self.state_dir / "wheels"

    @property
    def index_dir(self) -> Path:
        return self.state_dir / "index"

    @property
    def private_keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def authority_dir(self) -> Path:
        return self.state_dir / "authority"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def interpreters_home(self) -> Path:
        """Where built CPython interpreters are kept: [build] interpreters_dir or the state's."""
        if self.interpreters_dir:
            return (self.root / self.interpreters_dir).resolve()
        return self.state_dir / "builder" / "interpreters"

    @property
    def pythons(self) -> tuple[str, ...]:
        """The CPython versions (``3.11``) the lock judges Requires-Python and markers for:
        the builder image's own (python_version), which every run builds with, then the
        other [build] interpreters."""
        return tuple(dict.fromkeys((self.python_version, *self.build_interpreters)))

    @property
    def cluster_dir(self) -> Path:
        """The private PostgreSQL cluster of ``[server] database = "postgresql"``."""
        if self.postgres_dir:
            return (self.root / self.postgres_dir).resolve()
        return self.state_dir / "postgres"

    @property
    def ledger(self) -> str:
        """The ledger's URL as configured, or the SQLite default. With ``[server] database
        = "postgresql"`` and no [ledger] url, factory.ledger.ledger_url finds the cluster's."""
        return self.ledger_url or f"sqlite:///{self.state_dir / 'ledger.db'}"

    @property
    def store(self) -> str:
        """The artifact store's path or URL: [store] url, else <state_dir>/store."""
        return self.store_url or str(self.state_dir / "store")


# factory.toml section/key -> Settings field
_TOML_KEYS: dict[str, dict[str, str]] = {
    "factory": {
        "state_dir": "state_dir",
        "upstream": "upstream",
        "advisories": "advisories",
        "cooldown_days": "cooldown_days",
        "python_version": "python_version",
    },
    "build": {
        "image": "builder_image",
        "concurrency": "build_concurrency",
        "timeout": "build_timeout",
        "memory": "build_memory",
        "pids": "build_pids",
        "cpus": "build_cpus",
        "max_output": "build_max_output",
        "repair": "build_repair",
        "interpreters": "build_interpreters",
        "interpreters_dir": "interpreters_dir",
    },
    "index": {"url": "index_url", "host": "serve_host", "port": "serve_port"},
    "ledger": {"url": "ledger_url"},
    "store": {"url": "store_url"},
    "distributed": {"pool": "build_pool"},
    "server": {"database": "server_database", "postgres_dir": "postgres_dir"},
    "signing": {
        "mode": "signing_mode",
        "trust_config": "trust_config",
        "identity": "identity",
        "issuer": "issuer",
        "authority_host": "authority_host",
    },
    "http": {"retries": "http_retries", "timeout": "http_timeout"},
    "policy": {"licenses": "allowed_licenses"},
    "intake": {"auto_approve": "intake_auto_approve"},
    "equivalence": {"match_upstream_backend": "match_upstream_backend"},
}

_ENV_PREFIX = "FACTORY_"

# [build] repair: the tool that repairs native wheels (a locked project of that name),
# or none.
REPAIR_TOOL = "auditwheel"
REPAIR_MODES = (REPAIR_TOOL, "none")
# [server] database
SERVER_DATABASES = ("sqlite", "postgresql")


def repair_mode(value: object) -> str:
    """``value`` as a [build] repair setting, or a ConfigError."""
    if value not in REPAIR_MODES:
        raise ConfigError(f"build.repair = {value!r} is not one of {', '.join(REPAIR_MODES)}",
                          'set [build] repair = "auditwheel" (default) or "none" in factory.toml')
    return str(value)


def find_root(start: Path | None = None) -> Path:
    """The nearest directory upwards holding recipes/ or factory.toml."""
    env = os.environ.get("FACTORY_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file() or (candidate / "recipes").is_dir():
            return candidate
    return here


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    values: dict[str, Any] = {}
    for section, table in data.items():
        keys = _TOML_KEYS.get(section)
        if keys is None or not isinstance(table, dict):
            raise ConfigError(
                f"{path}: unknown section [{section}]",
                f"known sections: {', '.join(sorted(_TOML_KEYS))}",
            )
        for key, value in table.items():
            if key not in keys:
                raise ConfigError(
                    f"{path}: unknown key {section}.{key}",
                    f"known keys in [{section}]: {', '.join(sorted(keys))}",
                )
            values[keys[key]] = value
    return values


# Settings that must be positive (a zero or negative limit is a typo, not a policy).
_POSITIVE = frozenset({"build_concurrency", "build_timeout", "build_pids", "build_cpus",
                       "build_max_output", "serve_port", "http_timeout"})


def _coerce(name: str, raw: Any, kind: Any) -> Any:
    """``raw`` (from TOML or the environment) as the field's type, or a ConfigError."""
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if isinstance(raw, bool) and kind in ("int", "float"):
        raise ConfigError(f"setting {name}={raw!r} is not a number")
    try:
        if kind == "bool":
            value: Any = _flag(name, raw)
        elif kind == "int":
            value = int(raw)
        elif kind == "float":
            value = float(raw)
        elif kind.startswith("str") and not isinstance(raw, str):
            raise ConfigError(f"setting {name}={raw!r} is not a string",
                              "quote the value in factory.toml")
        else:
            value = raw
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"setting {name}={raw!r} is not a {kind}") from None
    if name in _POSITIVE and not value > 0:
        raise ConfigError(f"setting {name}={raw!r} must be greater than zero")
    if name == "build_repair":
        repair_mode(value)
    if name == "server_database" and value not in SERVER_DATABASES:
        raise ConfigError(f"server.database = {value!r} is not one of "
                          f"{', '.join(SERVER_DATABASES)}",
                          'set [server] database = "sqlite" (default) or "postgresql"')
    if name == "allowed_licenses":
        value = _strings(name, raw)
    if name == "build_interpreters":
        value = _interpreters(name, raw)
    if name == "http_retries" and value < 0:
        raise ConfigError(f"setting {name}={raw!r} must not be negative")
    return value


def _flag(name: str, raw: Any) -> bool:
    """A yes/no setting: a TOML boolean, or true/false/1/0 from the environment."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return raw.strip().lower() in ("true", "1", "yes")
    raise ConfigError(f"setting {name}={raw!r} is not true or false",
                      "write it as a TOML boolean, e.g. auto_approve = true")


def _strings(name: str, raw: Any) -> tuple[str, ...]:
    """A list of names from TOML, or a comma-separated list from the environment."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(
            isinstance(i, str) and i.strip() and i.strip().isprintable() for i in items):
        raise ConfigError(f"setting {name}={raw!r} is not a list of names",
                          'write it as a TOML list, e.g. licenses = ["MIT", "Apache-2.0"]')
    return tuple(i.strip() for i in items)


def _interpreters(name: str, raw: Any) -> tuple[str, ...]:
    """CPython versions as MAJOR.MINOR ("3.13"), each once, in the order given."""
    versions = _strings(name, raw)
    if not versions or not all(_CPYTHON.fullmatch(v) for v in versions):
        raise ConfigError(f"setting {name}={raw!r} is not a list of CPython versions",
                          'write it as a TOML list, e.g. interpreters = ["3.11", "3.13"]')
    return tuple(dict.fromkeys(versions))


def _state_dir(root: Path, raw: Any) -> Path:
    """The state directory, absolute; an error when it cannot be one.

    It need not exist yet (commands create it), but it must not be, or lie
    under, something that is not a directory.
    """
    if not isinstance(raw, str | os.PathLike) or not str(raw).strip() or "\0" in str(raw):
        raise ConfigError(f"setting state_dir={raw!r} is not a path",
                          "set state_dir in factory.toml or FACTORY_STATE_DIR to a directory")
    state = Path(raw)
    state = (state if state.is_absolute() else root / state).resolve()
    for candidate in (state, *state.parents):
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                raise ConfigError(
                    f"the state directory {state} cannot be used: {candidate} is not a directory",
                    "set state_dir in factory.toml or FACTORY_STATE_DIR to a directory")
            break
    return state


def _store_url(root: Path, raw: str) -> str:
    """[store] url: a directory (relative to the project root) or an absolute URL."""
    hint = ('set [store] url in factory.toml to a directory, file:///path, s3://bucket/prefix '
            'or gs://bucket/prefix')
    # the setting is never echoed whole: a user:secret@ in it would reach the terminal
    shown = raw
    if "@" in raw and "://" in raw:
        shown = f"{raw.partition('://')[0]}://<credentials>@{raw.rpartition('@')[2]}"
    if not raw.strip() or raw != raw.strip() or not raw.isprintable():
        raise ConfigError(f"setting store_url={shown!r} is not a path or URL", hint)
    scheme = _URL_SCHEME.match(raw)
    if scheme is None:
        if "://" in raw:
            raise ConfigError(f"setting store_url={shown!r} is not a path or URL", hint)
        return str((root / raw).resolve())
    if "@" in raw[scheme.end():] and scheme.group(1) not in ("file", "local"):
        # anywhere: a secret may hold '/' (AWS's do), so no authority can be told apart
        raise ConfigError(f"setting store_url={shown!r} carries credentials or an '@'",
                          "give the store's credentials through the environment "
                          "(AWS_*, GOOGLE_APPLICATION_CREDENTIALS), not in the URL")
    if scheme.group(1) == "file" and not raw[scheme.end():].startswith("/"):
        raise ConfigError(f"setting store_url={shown!r} is not an absolute file:// URL",
                          "write it as file:///absolute/path")
    return raw


def load_settings(root: Path | None = None, **overrides: Any) -> Settings:
    """Settings for the project at ``root`` (found from the cwd by default)."""
    root = (root or find_root()).resolve()
    values: dict[str, Any] = {}
    config = root / CONFIG_FILE
    if config.is_file():
        values.update(_read_toml(config))
    kinds = {f.name: f.type for f in fields(Settings)}
    for name in kinds:
        env = os.environ.get(_ENV_PREFIX + name.upper())
        if env is not None and name != "root":
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name, raw in list(values.items()):
        values[name] = _coerce(name, raw, kinds[name])
    state = _state_dir(root, values.pop("state_dir", ".factory"))
    if values.get("store_url") is not None:
        values["store_url"] = _store_url(root, values["store_url"])
    if "advisories" not in values:  # the shared snapshot (demo, tests), else OSV's feed
        default_db = root.parent / "shared" / "advisory-database"
        values["advisories"] = str(default_db) if default_db.is_dir() else OSV_PYPI_ARCHIVE
    return Settings(root=root, state_dir=state, **values)
