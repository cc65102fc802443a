"""User-facing errors: each carries a one-line cause and a hint.

The CLI prints ``error: <cause>`` and ``hint: <hint>`` and exits non-zero, with
no traceback. Anything a user can cause (bad recipe, hash mismatch, unsafe
archive, policy refusal, missing engine) raises one of these.
"""

from __future__ import annotations


class FactoryError(Exception):
    """Base of every error a user can cause or fix."""

    exit_code = 1
    default_hint = "run with --debug for details"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def diagnostics(self) -> str:
        """One line: the cause, then what to do about it."""
        return f"error: {self.message} (hint: {self.hint})"


class ConfigError(FactoryError):
    default_hint = "check factory.toml and the FACTORY_* environment variables"


class RecipeError(FactoryError):
    default_hint = "fix the recipe and run `factory recipes check`"


class LockError(FactoryError):
    default_hint = "run `factory lock` to bring recipes.lock up to date"


class UpstreamError(FactoryError):
    default_hint = "check the upstream index URL and your network, then retry"


class IntegrityError(FactoryError):
    default_hint = "the file changed upstream or in transit; re-lock only if the change is expected"


class UnsafeArchiveError(FactoryError):
    default_hint = "the sdist is refused; report it upstream or remove the component"


class PolicyError(FactoryError):
    default_hint = "adjust the recipe's policy (versions, track, licences, cooldown) if intended"


class EngineError(FactoryError):
    default_hint = "run scripts/ensure-docker.sh or point DOCKER_HOST at a running engine"


class BuildError(FactoryError):
    default_hint = "read the build log in the state directory (factory status shows it)"


class PublishError(FactoryError):
    default_hint = "the index was left unchanged; fix the cause and publish again"


class SigningError(FactoryError):
    default_hint = "run `factory keys init` and check the signing configuration"


class VerificationError(FactoryError):
    default_hint = "the artifact or its attestations do not match; do not install it"
