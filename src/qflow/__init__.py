"""qflow: rules and plugins for handling service-quality anomalies.

The public surface is re-exported here; modules starting with ``_`` are private.
"""

from __future__ import annotations

from qflow._convert import format_duration, make_converter, parse_duration
from qflow._frozen import FrozenDict, freeze, thaw
from qflow._manager import make_plugin_manager
from qflow._view import incident_view
from qflow.clock import Clock, FakeClock, SystemClock
from qflow.diagnostics import Diagnostic, RulesetError
from qflow.engine import Engine, parse_incident
from qflow.errors import (
    ConcurrencyError,
    DecisionError,
    DuplicateReportError,
    IncidentNotFoundError,
    InputError,
    PluginError,
    QflowError,
    StoreUnavailableError,
    TransitionError,
)
from qflow.hookimpl import hookimpl
from qflow.model import (
    Action,
    ActionKind,
    ActionStatus,
    Assignment,
    Attachment,
    Cause,
    Classification,
    Customer,
    Deadline,
    Decision,
    Effect,
    Event,
    Incident,
    IncidentState,
    Notification,
    Person,
    Stage,
    Trace,
    TraceStep,
    Verification,
    VerificationResult,
    WhyStep,
)
from qflow.model import (  # the improvement loop
    Command,
    KnownError,
    LedgerEntry,
    LedgerKind,
    MetricFigure,
    Problem,
    RiskPoint,
    Suggestion,
)
from qflow.ruleset import CompileContext, Ruleset, Section, load_ruleset, load_ruleset_text
from qflow._tick import TickReport
from qflow._versions import SwapResult
from qflow.store import (
    DeliveryAttempt,
    StoreError,
    Filter,
    IncidentQuery,
    Measure,
    MemoryStore,
    OutboxMessage,
    Projection,
    Store,
    Timer,
    Write,
)
from qflow._delivery import Backend, Channel, DeliveryReport, RetryPolicy, redact

__version__ = "0.1.0"

__all__ = [
    "Backend", "Channel", "DeliveryReport", "RetryPolicy", "redact",
    "Filter", "Measure", "Projection", "FrozenDict", "freeze", "thaw",
    "SwapResult",
    "Action", "ActionKind", "ActionStatus", "Assignment", "Attachment", "Cause", "Classification",
    "Clock", "CompileContext", "ConcurrencyError", "Customer", "Deadline", "Decision", "DecisionError", "Diagnostic",
    "DuplicateReportError", "Effect",
    "Engine", "Event", "FakeClock", "Incident", "IncidentNotFoundError", "IncidentQuery",
    "IncidentState", "InputError", "MemoryStore", "Notification", "Person", "PluginError",
    "QflowError", "Ruleset", "RulesetError", "Section", "Stage", "Store", "StoreError", "StoreUnavailableError",
    "SystemClock", "TickReport", "Timer", "Write", "OutboxMessage", "DeliveryAttempt", "Trace",
    "TraceStep", "TransitionError", "Verification", "VerificationResult", "WhyStep",
    "Command", "KnownError", "LedgerEntry", "LedgerKind", "MetricFigure", "Problem", "RiskPoint", "Suggestion",
    "format_duration", "hookimpl", "incident_view", "load_ruleset", "load_ruleset_text",
    "make_converter", "make_plugin_manager", "parse_duration", "parse_incident",
]
