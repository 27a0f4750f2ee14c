"""The ``escalation:`` section as written in YAML (structured by the kernel's converter)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

__all__ = ["At", "CountSpec", "EscalationSpec", "GroupSpec", "Reassign", "Repeat", "StepSpec", "SuppressSpec"]


@attrs.frozen
class At:
    """When a step falls due on a clock: exactly one of ``used`` (``50%`` of the
    target), ``remaining`` (``30m`` before the breach) or ``overdue`` (``2h`` after it;
    the breach itself is ``used: 100%``)."""

    clock: str
    # Text such as "50%", read when the ladder compiles: a bare 50 is then told to
    # be written 50%, where the converter could only ask for quotes.
    used: Any = attrs.field(default=None, metadata={"doc": "a percentage of the target, such as 50%"})
    remaining: timedelta | None = None
    overdue: timedelta | None = None


@attrs.frozen
class Repeat:
    """Fire again every ``every`` of the clock's business time, at most ``limit`` times."""

    every: timedelta
    limit: int


@attrs.frozen
class Reassign:
    team: str | None = None
    owner: str | None = None


@attrs.frozen
class CountSpec:
    """Fire only when more than ``more_than`` incidents with the same ``same`` fields
    (this one included) were reported within ``within`` of this one's report (before
    or after it, up to the moment the step falls due)."""

    more_than: int
    within: timedelta
    same: tuple[str, ...] = attrs.field(default=("category",), converter=tuple)


@attrs.frozen
class StepSpec:
    """One level of a ladder."""

    at: At
    id: str | None = None
    notify: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    topic: str | None = None
    repeat: Repeat | None = None
    raise_severity: int | None = None
    reassign: Reassign | None = None
    jump: str | None = None
    only_in: str | None = None
    count: CountSpec | None = None
    skip_unavailable: bool = True


@attrs.frozen
class GroupSpec:
    """Incidents with equal ``by`` fields reported within ``window`` of the first one
    notify once: the later ones' notifications are held while the first is open."""

    by: tuple[str, ...] = attrs.field(converter=tuple)
    window: timedelta


@attrs.frozen
class SuppressSpec:
    """While an open incident matches ``source``, incidents matching ``target`` with
    the same ``equal`` fields have their notifications held."""

    id: str
    source: Any = None
    target: Any = None
    equal: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen
class ReleaseSpec:
    """What was held is sent once its holder closes: a held incident that is still
    open looks at its holder every ``check``; ``enabled: false`` keeps held
    notifications held for good."""

    enabled: bool = True
    check: timedelta = timedelta(minutes=5)


@attrs.frozen
class EscalationSpec:
    """``ladders`` are named lists of steps; a ladder named after a severity (or
    ``default``) applies to it, and ``severities`` maps a severity to a ladder by
    name, so one ladder template serves several severities."""

    ladders: dict[str, tuple[StepSpec, ...]] = attrs.field(factory=dict)
    severities: dict[str, str] = attrs.field(factory=dict)
    group: GroupSpec | None = None
    suppress: tuple[SuppressSpec, ...] = attrs.field(default=(), converter=tuple)
    release: ReleaseSpec = attrs.field(factory=ReleaseSpec)
