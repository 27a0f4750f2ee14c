"""``${env:NAME}`` references: checked at load, resolved only at send time.

Secrets never sit in the ruleset, the outbox payload or an event: a channel's config
keeps the reference, and the backend resolves it from the environment it is given
the moment it sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["MissingSecretError", "is_reference", "malformed", "resolve"]

_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_REF = re.compile(r"\$\{[^}]*\}?")


class MissingSecretError(LookupError):
    """A referenced environment variable is not set."""


def resolve(value: str | None, env: Mapping[str, str]) -> str | None:
    """*value* with every ``${env:NAME}`` replaced by the variable's value."""
    if value is None:
        return None

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise MissingSecretError(f"environment variable {name} is not set; "
                                     f"export {name} for the delivery worker")
        return env[name]

    return _REF.sub(sub, value)


def is_reference(value: str) -> bool:
    """True when *value* is exactly one ``${env:NAME}``."""
    return _REF.fullmatch(value.strip()) is not None


def malformed(value: str) -> str | None:
    """The first ``${...}`` in *value* that is not a valid ``${env:NAME}``, or None."""
    for m in _ANY_REF.finditer(value):
        if not _REF.fullmatch(m.group(0)):
            return m.group(0)
    return None
