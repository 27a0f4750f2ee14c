"""Compile the ``escalation:`` section: check every step can fire, resolve templates.

Codes QF740-QF769 belong to this plugin (see docs/diagnostics.md).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import attrs

from qflow import CompileContext, format_duration
from qflow.diagnostics import did_you_mean

from qflow_escalation._spec import EscalationSpec, StepSpec

__all__ = ["BREACH_TOPIC", "FIELDS", "WARNING_TOPIC", "Compiled", "Count", "Group", "Step", "Suppress", "compile_escalation"]

#: Fields incidents can be grouped, counted and compared by: those the store can filter on.
FIELDS = ("category", "place", "team", "severity", "owner")

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_PREFIXES = ("role:", "team:", "person:")
#: A step's notification topic when it names none: before the breach, and at or after it.
WARNING_TOPIC = "escalation.warning"
BREACH_TOPIC = "escalation.breach"
_ZERO = timedelta(0)


@attrs.frozen
class Count:
    more_than: int
    within: timedelta
    same: tuple[str, ...]


@attrs.frozen
class Step:
    """A compiled ladder step. ``kind`` is ``used``, ``remaining`` or ``overdue``."""

    ladder: str
    id: str
    level: int
    clock: str
    kind: str
    fraction: float = 1.0
    amount: timedelta = _ZERO
    notify: tuple[str, ...] = ()
    topic: str = WARNING_TOPIC
    every: timedelta | None = None
    limit: int = 0
    raise_severity: int = 0
    team: str | None = None
    owner: str | None = None
    jump: str | None = None
    only_in: str | None = None
    count: Count | None = None
    skip_unavailable: bool = True
    # Worked out once: a tick reads them for every step it fires.
    _key: str = attrs.field(init=False, eq=False, repr=False)
    _when: str = attrs.field(init=False, eq=False, repr=False)
    _trigger: Mapping[str, Any] = attrs.field(init=False, eq=False, repr=False)
    _source: str = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_key", f"esc:{self.clock}:{self.ladder}/{self.id}")
        object.__setattr__(self, "_when", self._describe())
        object.__setattr__(self, "_trigger", self._structure())
        object.__setattr__(self, "_source", f"escalation:{self.ladder}/{self.id}")

    @property
    def key(self) -> str:
        """The timer key of this step within an incident."""
        return self._key

    @property
    def source(self) -> str:
        """The source of the events this step records."""
        return self._source

    def threshold(self, target: timedelta) -> timedelta | None:
        """Business time used on the clock when this step falls due; None when it
        cannot fall due for this target."""
        if self.kind == "used":
            at = target * self.fraction
        elif self.kind == "remaining":
            at = target - self.amount
        else:
            at = target + self.amount
        return at if at >= _ZERO else None

    def describe(self) -> str:
        return self._when

    @property
    def trigger(self) -> Mapping[str, Any]:
        """What :meth:`describe` says, as data for templates in any language: ``kind``
        (``used``, ``breached``, ``remaining``, ``overdue``), ``percent`` (text, ``50``),
        ``amount`` (``1h``) and ``seconds``."""
        return self._trigger

    def _structure(self) -> Mapping[str, Any]:
        breached = self.kind == "used" and self.fraction == 1.0 or self.kind == "overdue" and self.amount == _ZERO
        return {"kind": "breached" if breached else self.kind,
                "percent": f"{self.fraction * 100:g}" if self.kind == "used" else None,
                "amount": format_duration(self.amount) if self.kind != "used" else None,
                "seconds": int(self.amount.total_seconds()) if self.kind != "used" else None}

    def _describe(self) -> str:
        if self.kind == "used" and self.fraction == 1.0:
            return f"{self.clock} breached"  # the deadline itself, as people say it
        if self.kind == "used":
            return f"{self.fraction * 100:g}% of {self.clock} used"
        if self.kind == "remaining":
            return f"{format_duration(self.amount)} left on {self.clock}"
        if self.amount == _ZERO:
            return f"{self.clock} breached"
        return f"{self.clock} overdue by {format_duration(self.amount)}"


@attrs.frozen
class Group:
    by: tuple[str, ...]
    window: timedelta


@attrs.frozen
class Suppress:
    id: str
    source: Any  # a compiled qflow condition
    target: Any
    equal: tuple[str, ...]
    #: What *source* requires of a field an IncidentQuery filters on with the same
    #: meaning: asked of the store too, so the candidates are the few incidents that
    #: may be a source (open power outages), not every open incident of the place.
    query: Mapping[str, str] = attrs.field(factory=dict)


#: The fields of a condition's view that an IncidentQuery filters on with the same
#: meaning (the decided category and severity, the incident's place).
_QUERY_FIELDS = frozenset({"category", "severity", "place"})


def _required(condition: Any) -> dict[str, str]:
    return {f: value for f, values in condition.equalities.items()
            if f in _QUERY_FIELDS and len(values) == 1 and type(value := next(iter(values))) is str}


@attrs.frozen
class Compiled:
    ladders: Mapping[str, tuple[Step, ...]]
    by_severity: Mapping[str, str]  # severity (or "default") -> ladder name
    group: Group | None = None
    suppress: tuple[Suppress, ...] = ()
    #: How often a held incident looks whether its holder has closed; None: never
    #: (release disabled, or nothing is ever held).
    release_check: timedelta | None = None

    def ladder_for(self, severity: str | None) -> tuple[str, tuple[Step, ...]] | None:
        name = self.by_severity.get(severity) if severity is not None else None
        if name is None:
            name = self.by_severity.get("default")
        if name is None:
            return None
        return name, self.ladders[name]


def _targets(ctx: CompileContext, section: str) -> dict[str, dict[str, timedelta]]:
    """Severity (or priority) -> clock -> committed time, read from *section*."""
    out: dict[str, dict[str, timedelta]] = {}
    for name, policy in (ctx.section(section) or {}).items():
        fields = attrs.fields(type(policy)) if attrs.has(type(policy)) else ()
        out[name] = {f.name: v for f in fields if isinstance(v := getattr(policy, f.name), timedelta)}
    return out


def _misspelt_targets(ctx: CompileContext) -> set[str]:
    """The clocks a severity or priority with an unknown key has no target for: the
    unknown key (reported with the key it likely means) may be one of them."""
    out: set[str] = set()
    for section in ("severities", "priorities"):
        for name, policy in (ctx.section(section) or {}).items():
            if attrs.has(type(policy)) and ctx.partial((section, name)):
                hints = typing.get_type_hints(type(policy))
                out.update(f.name for f in attrs.fields(type(policy))
                           if getattr(policy, f.name) is None and timedelta in typing.get_args(hints[f.name]))
    return out


def _percent(text: Any, path: tuple[Any, ...], ctx: CompileContext, rule: str) -> float | None:
    if not isinstance(text, str):
        number = isinstance(text, (int, float)) and not isinstance(text, bool)
        got = (f"the number {text:g}" if number else "a mapping" if isinstance(text, Mapping)
               else "a list" if isinstance(text, list) else f"the boolean {str(text).lower()}")
        hint = "write it like 50%"
        if number and 0 < text < 1:
            hint = f"write {text * 100:g}% for {text:g} of the target"
        elif number and text > 0:
            hint = f"write {text:g}%"
        ctx.error(path, "QF103", f"expected a percentage, got {got}", hint=hint, rule=rule)
        return None
    m = _PERCENT.match(text)
    if m is None:
        ctx.error(path, "QF742", f"'{text}' is not a percentage", hint="write it like 50%", rule=rule)
        return None
    value = float(m.group(1))
    if value <= 0:
        ctx.error(path, "QF742", f"used {text.strip()} falls due when the clock starts",
                  hint="use a percentage above 0%, e.g. 50%", rule=rule)
        return None
    if value > 100:
        ctx.error(path, "QF743", f"used {text.strip()} can never be reached: a clock's use stops at 100% when it breaches",
                  hint="for a step after the breach write overdue: with a duration, e.g. overdue: 2h", rule=rule)
        return None
    return value / 100


@attrs.frozen
class Roles:
    """The recipient roles ``notify.recipients`` defines, and whether a plugin other
    than the built-in notify one answers ``qflow_recipients`` (it may know more)."""

    names: tuple[str, ...]
    resolver: bool


def _roles(ctx: CompileContext) -> Roles | None:
    """None when the notify plugin does not plan this ruleset's delivery (no
    ``notify`` section): then whoever does resolves the names its own way."""
    if ctx.section("notify") is None:
        return None
    caller = getattr(ctx.hook, "qflow_recipients", None) if ctx.hook is not None else None
    impls = caller.get_hookimpls() if caller is not None else ()
    return Roles(tuple(ctx.defined("recipient role")),
                 any(getattr(i.plugin, "__name__", None) != "qflow_notify" for i in impls))


def _recipient(who: str, path: tuple[Any, ...], ctx: CompileContext, rule: str, roles: Roles | None) -> bool:
    """Check one recipient as the notify plugin resolves it when it sends."""
    name = who.strip()
    prefix = next((p for p in _PREFIXES if name.startswith(p)), None)
    rest = name[len(prefix):].strip() if prefix else name
    if name.startswith("channel:"):
        ctx.error(path, "QF752", f"recipient '{who}' is a channel, not a recipient", rule=rule,
                  hint="name who to tell here; which channels carry the step's topic is set under notify.routes")
        return False
    if not rest:
        ctx.error(path, "QF752", f"recipient '{who}' names nobody",
                  hint="use assignee, team.lead, role:<name>, team:<name> or an address", rule=rule)
        return False
    if prefix == "team:":
        ctx.refer("team", rest, path, rule=rule)  # teams are the ruleset's own, whoever resolves recipients
    elif prefix == "role:" and roles is not None and rest not in roles.names:
        near = did_you_mean(rest, roles.names)
        message = f"recipient '{who}' names a role that notify.recipients does not define"
        if roles.resolver:
            # A qflow_recipients plugin answers before the built-in resolver and may know the role.
            ctx.warn(path, "QF752", message, rule=rule,
                     hint="fine if your qflow_recipients plugin resolves it; otherwise define it under "
                     "notify.recipients" + (f", or {near}" if near else ""))
        else:
            ctx.error(path, "QF752", message, rule=rule, hint=near or (
                f"define it under notify.recipients, or use one of: {', '.join(roles.names)}" if roles.names
                else f"define it under notify.recipients, e.g. {rest}: [a person or an address]"))
    return True  # the step still compiles, so its other mistakes show too


def _step(ladder: str, level: int, spec: StepSpec, path: tuple[Any, ...], ctx: CompileContext,
          clocks: Sequence[str], roles: Roles | None) -> Step | None:
    sid = spec.id or f"level-{level}"
    at = spec.at
    ok = True
    if at.clock not in clocks:
        hint = did_you_mean(at.clock, clocks) or (f"the clocks are: {', '.join(clocks)}" if clocks
                                                 else "no severity has committed times yet; add respond or resolve")
        ctx.error(path + ("at", "clock"), "QF740", f"unknown clock '{at.clock}'", hint=hint, rule=sid)
        ok = False
    given = [k for k in ("used", "remaining", "overdue") if getattr(at, k) is not None]
    fraction, amount, kind = 1.0, _ZERO, "overdue"
    if len(given) != 1:
        ctx.error(path + ("at",), "QF741",
                  "a step needs exactly one of used, remaining or overdue" if not given
                  else f"a step needs exactly one of used, remaining or overdue, not {' and '.join(given)}",
                  hint="e.g. used: 50%, remaining: 30m or overdue: 2h", rule=sid)
        return None
    kind = given[0]
    if kind == "used":
        f = _percent(at.used, path + ("at", "used"), ctx, sid)
        if f is None:
            return None
        fraction = f
    else:
        amount = getattr(at, kind)
        if amount < _ZERO or (kind == "remaining" and amount == _ZERO):
            ctx.error(path + ("at", kind), "QF742", f"{kind} must be longer than 0",
                      hint="for the breach itself write used: 100%", rule=sid)
            return None
    every, limit = None, 0
    if spec.repeat is not None:
        if spec.repeat.every <= _ZERO:
            ctx.error(path + ("repeat", "every"), "QF749", "repeat every must be longer than 0",
                      hint="e.g. every: 1h", rule=sid)
            ok = False
        if spec.repeat.limit < 1:
            ctx.error(path + ("repeat", "limit"), "QF749", f"repeat limit {spec.repeat.limit} repeats nothing",
                      hint="give 1 or more, or leave repeat out", rule=sid)
            ok = False
        every, limit = spec.repeat.every, spec.repeat.limit
    raise_by = spec.raise_severity or 0
    if spec.raise_severity is not None and spec.raise_severity < 1:
        ctx.error(path + ("raise_severity",), "QF750", f"raise_severity {spec.raise_severity} raises nothing",
                  hint="give the number of levels to raise, 1 or more", rule=sid)
        ok = False
    for i, who in enumerate(spec.notify):
        ok &= _recipient(who, path + ("notify", i), ctx, sid, roles)
    team = owner = None
    if spec.reassign is not None:
        team, owner = spec.reassign.team, spec.reassign.owner
        if team is None and owner is None:
            ctx.error(path + ("reassign",), "QF753", "reassign names neither a team nor an owner",
                      hint="give team:, owner: or both", rule=sid)
            ok = False
        if team is not None:
            ctx.refer("team", team, path + ("reassign", "team"), rule=sid)
    if spec.only_in is not None:
        ctx.refer("calendar", spec.only_in, path + ("only_in",), rule=sid)
    count = None
    if spec.count is not None:
        c = spec.count
        if c.more_than < 0:
            ctx.error(path + ("count", "more_than"), "QF754", f"more_than {c.more_than} is always true",
                      hint="give 0 or more", rule=sid)
            ok = False
        if c.within <= _ZERO:
            ctx.error(path + ("count", "within"), "QF754", "within must be longer than 0",
                      hint="e.g. within: 30m", rule=sid)
            ok = False
        ok &= _fields(c.same, path + ("count", "same"), ctx, sid)
        count = Count(c.more_than, c.within, c.same)
    if not (spec.notify or raise_by or spec.reassign or spec.jump):
        ctx.error(path, "QF753", "the step does nothing",
                  hint="give notify, raise_severity, reassign or jump", rule=sid)
        ok = False
    if not ok:
        return None
    before = kind == "remaining" or (kind == "used" and fraction < 1)
    topic = spec.topic or (WARNING_TOPIC if before else BREACH_TOPIC)
    return Step(ladder, sid, level, at.clock, kind, fraction, amount, spec.notify, topic, every, limit,
                raise_by, team, owner, spec.jump, spec.only_in, count, spec.skip_unavailable)


def _fields(names: Sequence[str], path: tuple[Any, ...], ctx: CompileContext, rule: str | None) -> bool:
    ok = True
    for i, name in enumerate(names):
        if name not in FIELDS:
            ctx.error(path + (i,), "QF751", f"incidents cannot be grouped, counted or compared by '{name}'",
                      hint=did_you_mean(name, FIELDS) or f"use {', '.join(FIELDS)}", rule=rule)
            ok = False
    return ok


def _ladder(name: str, specs: Sequence[StepSpec], ctx: CompileContext, clocks: Sequence[str],
            roles: Roles | None) -> tuple[Step, ...]:
    base = ("escalation", "ladders", name)
    if not specs:
        ctx.error(base, "QF755", f"ladder '{name}' has no steps", hint="give at least one step, or remove it")
        return ()
    steps: list[Step] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        sid = spec.id or f"level-{i + 1}"
        if sid in seen:
            ctx.error(base + (i, "id"), "QF202", f"step '{sid}' is defined twice in ladder '{name}'",
                      hint=f"first at level {seen[sid] + 1}; give each step its own id", rule=sid)
            continue
        seen[sid] = i
        step = _step(name, i + 1, spec, base + (i,), ctx, clocks, roles)
        if step is not None:
            steps.append(step)
    for i, spec in enumerate(specs):
        if spec.jump is None:
            continue
        path, sid = base + (i, "jump"), spec.id or f"level-{i + 1}"
        if spec.jump not in seen:
            ctx.error(path, "QF747", f"jump to unknown step '{spec.jump}'",
                      hint=did_you_mean(spec.jump, list(seen)) or f"the steps of '{name}': {', '.join(seen)}",
                      rule=sid)
        elif seen[spec.jump] <= i:
            ctx.error(path, "QF747", f"jump to '{spec.jump}' goes back to level {seen[spec.jump] + 1}",
                      hint="a jump goes to a later level of the ladder", rule=sid)
    return tuple(steps)


def _check_reachable(name: str, steps: Sequence[Step], severities: Sequence[str],
                     targets: Mapping[str, Mapping[str, timedelta]],
                     priorities: Mapping[str, Mapping[str, timedelta]], opaque: Sequence[str],
                     ctx: CompileContext) -> None:
    """Report the steps of ladder *name* that no incident it runs for can reach.

    A ladder runs for the severities mapped to it; a priority's target replaces the
    severity's, clock by clock, whatever the severity (priority and severity are
    decided apart), so a step can run against each of them.
    """
    if not severities:
        return  # used by no severity: QF756 says so
    # The targets of the severities and priorities with a misspelt key, read once.
    partial = [targets.get(s, {}) for s in severities if ctx.partial(("severities", s))]
    partial += [spans for p, spans in priorities.items() if ctx.partial(("priorities", p))]
    for step in steps:
        if step.clock in opaque:
            continue  # a plugin's own clock: its targets are not written here
        if any(step.clock not in spans for spans in partial):
            continue  # its target may be written under a misspelt key, reported as such
        path = ("escalation", "ladders", name, step.level - 1, "at")
        possible = [(f"severity {s}", t) for s in severities if (t := targets.get(s, {}).get(step.clock)) is not None]
        possible += [(f"priority {p}", t) for p, spans in priorities.items()
                     if (t := spans.get(step.clock)) is not None]
        if not possible:
            have = list(dict.fromkeys(c for s in severities for c in targets.get(s, {})))
            names = ", ".join(severities[:-1]) + " or " + severities[-1] if len(severities) > 1 else severities[0]
            hint = f"add {step.clock}: to severity {names}"
            ctx.error(path + ("clock",), "QF740",
                      f"no severity using ladder '{name}' ({', '.join(severities)}) and no priority sets a target "
                      f"for {step.clock}, so this step can never fire",
                      hint=hint + (f", or use a clock {'it has' if len(severities) == 1 else 'they have'}: "
                                   f"{', '.join(have)}" if have else ""), rule=step.id)
        elif step.kind == "remaining" and all(step.amount >= t for _, t in possible):
            source, longest = max(possible, key=lambda p: p[1])
            against = (f"the {step.clock} target of {source} ({format_duration(longest)})" if len(possible) == 1
                       else f"any {step.clock} target it runs against (the longest: {format_duration(longest)}, "
                            f"{source})")
            ctx.error(path + ("remaining",), "QF744",
                      f"remaining {format_duration(step.amount)} is not shorter than {against}, "
                      f"so this step can never fire",
                      hint="shorten remaining, or use used: with a percentage", rule=step.id)


def compile_escalation(spec: EscalationSpec | None, ctx: CompileContext) -> Compiled | None:
    if spec is None:
        return None
    targets, priorities = _targets(ctx, "severities"), _targets(ctx, "priorities")
    opaque = ctx.defined("clock")
    clocks = sorted({c for cl in (*targets.values(), *priorities.values()) for c in cl} | set(opaque)
                    | _misspelt_targets(ctx))
    roles = _roles(ctx)
    ladders = {name: _ladder(name, steps, ctx, clocks, roles) for name, steps in spec.ladders.items()}
    severities = list(ctx.defined("severity"))
    by_severity: dict[str, str] = {}
    for sev in severities + ["default"]:
        if sev in ladders:
            by_severity[sev] = sev
    for sev, ladder in spec.severities.items():
        path = ("escalation", "severities", sev)
        if sev != "default":
            ctx.refer("severity", sev, path, rule=None)
        if ladder not in ladders:
            ctx.error(path, "QF745", f"unknown ladder '{ladder}'",
                      hint=did_you_mean(ladder, list(ladders)) or
                      (f"the ladders are: {', '.join(ladders)}" if ladders else "define it under escalation.ladders"))
            continue
        by_severity[sev] = ladder
    users: dict[str, list[str]] = {}
    for sev in severities:
        ladder = by_severity.get(sev, by_severity.get("default"))
        if ladder is not None:
            users.setdefault(ladder, []).append(sev)
    for name, steps in ladders.items():
        if name not in users and name not in by_severity.values():
            ctx.warn(("escalation", "ladders", name), "QF756", f"ladder '{name}' is used by no severity",
                     hint=did_you_mean(name, severities + ["default"]) or
                     "name it after a severity or default, or map one to it under escalation.severities",
                     at="key")
        _check_reachable(name, steps, users.get(name, ()), targets, priorities, opaque, ctx)
    group = None
    if spec.group is not None:
        path = ("escalation", "group")
        ok = _fields(spec.group.by, path + ("by",), ctx, None)
        if not spec.group.by:
            ctx.error(path + ("by",), "QF757", "group by names no field", hint="e.g. by: [category, place]")
            ok = False
        if spec.group.window <= _ZERO:
            ctx.error(path + ("window",), "QF757", "group window must be longer than 0", hint="e.g. window: 30m")
            ok = False
        group = Group(spec.group.by, spec.group.window) if ok else None
    suppress = []
    for i, rule in enumerate(spec.suppress):
        path = ("escalation", "suppress", i)
        ctx.define("suppress rule", rule.id, path + ("id",))
        _fields(rule.equal, path + ("equal",), ctx, rule.id)
        if rule.source is None or rule.target is None:
            missing = "source" if rule.source is None else "target"
            ctx.error(path, "QF758", f"a suppress rule needs a {missing} condition",
                      hint="e.g. source: {category: power_outage}, target: {category: equipment_fault}",
                      rule=rule.id)
            continue
        source = ctx.condition(path + ("source",), rule=rule.id)
        suppress.append(Suppress(rule.id, source, ctx.condition(path + ("target",), rule=rule.id), rule.equal,
                                 _required(source) if source is not None else {}))
    # The duration type refuses a check of no time (QF105).
    release_check = spec.release.check if spec.release.enabled and (group or suppress) else None
    return Compiled(ladders, by_severity, group, tuple(suppress), release_check)
