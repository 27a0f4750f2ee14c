"""Errors qflow raises. Each message says what went wrong and what to do next."""

from __future__ import annotations

from qflow.diagnostics import RulesetError

__all__ = [
    "ConcurrencyError",
    "DecisionError",
    "DuplicateReportError",
    "IncidentNotFoundError",
    "InputError",
    "PluginError",
    "QflowError",
    "RulesetError",
    "StoreUnavailableError",
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


class DuplicateReportError(ConcurrencyError):
    """A new incident's write was refused because what makes its report a repeat was
    recorded by another writer meanwhile: an incident with its external id, or an open
    one with its dedup key within the window. Nothing was written; the engine reports
    it again and gets that incident back (or attaches to it)."""


class StoreUnavailableError(QflowError):
    """The store cannot be reached (the database went away); nothing was written.
    Retrying later is safe: a long-running worker waits and reconnects."""


class DecisionError(QflowError):
    """A plugin cannot work out part of the decision for this incident (a deadline
    with no working time left to count on). Nothing is recorded; ``qflow decide``
    reports it for the one input line."""


class InputError(QflowError):
    """An incident given as JSON does not fit the incident format."""
