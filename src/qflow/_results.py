"""What each hook must return, checked where the engine calls it: a plugin returning
something else is a :class:`~qflow.errors.PluginError` naming it and the hook, rather
than an ``AttributeError`` deep in the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from qflow.model import Assignment, Classification, Deadline, Effect, Suggestion, TraceStep, Verification
from qflow.store import OutboxMessage, Timer

__all__ = ["Expect"]


@attrs.frozen
class Expect:
    """What a hook's result must be: an instance of *kind* (or, with *each*, a list or
    tuple of them); *what* says so in the error."""

    kind: Any
    what: str
    each: bool = False

    def fits(self, result: Any) -> bool:
        if not self.each:
            return isinstance(result, self.kind)
        if not isinstance(result, (list, tuple)):
            return False
        # A loop, not all() over a generator: this runs on every hook result of a tick.
        kind = self.kind
        for x in result:
            if not isinstance(x, kind):
                return False
        return True


A_CLASSIFICATION = Expect(Classification, "a qflow.Classification, or None for no opinion")
AN_ASSIGNMENT = Expect(Assignment, "a qflow.Assignment, or None to let the next plugin decide")
DEADLINES = Expect(Deadline, "a list of qflow.Deadline, or None to let the next plugin decide", each=True)
TRACE_STEPS = Expect(TraceStep, "a list of qflow.TraceStep (empty for nothing to say)", each=True)
A_SENTENCE = Expect(str, "None to allow, or a sentence (str) saying why not and what to do")
TIMERS = Expect(Timer, "a list of qflow.Timer (empty for none)", each=True)
MESSAGES = Expect(OutboxMessage, "a list of qflow.OutboxMessage (empty for none)", each=True)
EFFECTS = Expect(Effect, "a list of qflow.Effect (empty for none)", each=True)
DUE_MOMENTS = Expect(Mapping, "a mapping of clock name to its due moment (None while not running), or None")
ROWS = Expect(Mapping, "a mapping of projection name to rows (empty for none)")
A_VERIFICATION = Expect(Verification, "a qflow.Verification, or None when the plugin has no metrics for it")
SUGGESTIONS = Expect(Suggestion, "a list of qflow.Suggestion (empty for none)", each=True)
