"""Errors qflow raises. Each message says what went wrong and what to do next."""

from __future__ import annotations

from qflow.diagnostics import RulesetError

__all__ = [
    "ConcurrencyError",
    "IncidentNotFoundError",
    "InputError",
    "PluginError",
    "QflowError",
    "RulesetError",
    "TransitionError",
]


class QflowError(Exception):
    """Base class of qflow's own errors (RulesetError aside, which carries diagnostics)."""


class PluginError(QflowError):
    """Installed plugins contradict each other or break a contract."""


class TransitionError(QflowError):
    """A stage change that the lifecycle or a guard does not allow."""


class IncidentNotFoundError(QflowError, KeyError):
    """No incident has that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "incident not found"


class ConcurrencyError(QflowError):
    """Someone else appended to the incident's log first; reload and retry."""


class InputError(QflowError):
    """An incident given as JSON does not fit the incident format."""
