"""Pydantic plugins off wherever evidence is parsed.

A pydantic plugin is an entry point (group ``pydantic``) that any installed
distribution may declare. Pydantic imports it the first time it builds a validator
and wraps it around every validator built after that: the plugin sees, and may
change, each input and result, here every Sigstore bundle, DSSE envelope, Rekor
entry and trusted root the verifier parses. Once a model class is built, its
validator keeps the plugins it was built with: turning them off later does not
unwrap it. So the `factory` program turns plugins off before anything imports
pydantic (``plugins_off(check=False)`` in factory.cli.main), and each library entry
that parses evidence (factory.verify, factory.sign.monitor) turns them off too and
refuses to go on when a plugin was loaded in the process before it.

This keeps out what a well-meaning package adds by declaring a plugin (telemetry,
say). It is no defence against a hostile installed distribution, which can run code
in every interpreter that starts (a .pth file) without any plugin: what is
installed in the verifier's environment is trusted (docs/threat-model.md).
"""

from __future__ import annotations

import os
import sys

from factory.errors import ConfigError

ENV = "PYDANTIC_DISABLE_PLUGINS"


class PluginsLoaded(ConfigError):
    """A pydantic plugin was loaded before verification began (exit 2: the environment
    cannot be trusted to parse evidence as written)."""

    exit_code = 2
    default_hint = ("verify in a process of its own (the `factory` command turns plugins "
                    "off before any is loaded), or uninstall the plugin's distribution")


def plugins_off(check: bool = True) -> None:
    """No pydantic plugin for any validator built from now on in this process (and its
    children); with ``check``, PluginsLoaded when one was loaded before (the models
    built since carry it)."""
    os.environ[ENV] = "__all__"
    if check and (loaded := loaded_plugins()):
        raise PluginsLoaded(f"pydantic plugins were loaded in this process before "
                            f"verifying ({', '.join(loaded)[:300]}): they see, and may "
                            "change, every bundle and log entry it parses")


def loaded_plugins() -> list[str]:
    """The plugins pydantic has loaded in this process (none when it has not looked:
    pydantic is not imported, or no validator was built yet)."""
    loader = sys.modules.get("pydantic.plugin._loader")
    plugins = getattr(loader, "_plugins", None) if loader is not None else None
    return sorted(str(name) for name in plugins) if plugins else []
