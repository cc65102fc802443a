"""The container engine: a Docker Engine reached through the docker SDK.

``DOCKER_HOST`` (and the other ``DOCKER_*`` variables) are honoured because the
client is made with ``docker.from_env()``. A missing or silent engine is a user
error with a fix, never a traceback.
"""

from __future__ import annotations

import functools
import os

import docker
from docker.errors import DockerException

from factory.errors import EngineError

# The API calls we make need 1.41 (Docker Engine 20.10) at most.
_MIN_TIMEOUT = 60
_POOL = 64


def _where() -> str:
    return os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"


@functools.lru_cache(maxsize=4)
def _cached_client(docker_host: str | None) -> docker.DockerClient:
    del docker_host  # the cache key only: a changed DOCKER_HOST gets a new client
    # Each running build holds two connections (its wait and its followed log).
    return docker.from_env(timeout=_MIN_TIMEOUT, max_pool_size=_POOL)


def connect() -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names; EngineError when none answers."""
    try:
        client = _cached_client(os.environ.get("DOCKER_HOST"))
        client.ping()
    except DockerException as exc:
        _cached_client.cache_clear()
        raise EngineError(
            f"no Docker Engine answers at {_where()} ({_short(exc)})",
            "run scripts/ensure-docker.sh (installs and starts dockerd on Debian as root) "
            "or point DOCKER_HOST at a running engine",
        ) from None
    return client


def engine_info(client: docker.DockerClient) -> dict[str, str]:
    """What provenance records about the engine that ran a build."""
    version = client.version()
    return {
        "engine": "docker",
        "version": str(version.get("Version", "")),
        "api_version": str(version.get("ApiVersion", "")),
        "os": str(version.get("Os", "")),
        "arch": str(version.get("Arch", "")),
    }


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
