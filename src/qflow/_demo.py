"""``qflow demo``: the main job end to end on a shipped ruleset and its incidents.

Kept apart from the command line proper because it is a scripted tour (report,
explain, walk one incident through the loop, show what is due), not a tool.
"""

from __future__ import annotations

import argparse
import enum
import functools
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import qflow
from qflow._render import _left, _offset, _plural, _short, _show, _table, render_explanation
from qflow.cli import (
    DEMO_INCIDENTS,
    DEMO_RULESET,
    PROG,
    UsageError,
    _existing_file,
    _incidents,
    _load,
    _open_input,
    _plugins,
)
from qflow._convert import duration_to_the_minute
from qflow.clock import FakeClock
from qflow.engine import Engine
from qflow.errors import InputError, QflowError, TransitionError
from qflow.model import (
    Action,
    ActionKind,
    ActionStatus,
    Cause,
    Decision,
    Event,
    Incident,
    Stage,
    Verification,
    VerificationResult,
    WhyStep,
)
from qflow.ruleset import Ruleset

__all__ = ["run_demo"]


def run_demo(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    ruleset_path = _find_demo_file(args.ruleset, DEMO_RULESET, "ruleset")
    if args.incidents is not None:
        incidents_path = _find_demo_file(args.incidents, DEMO_INCIDENTS, "incidents file")
    elif args.ruleset is not None:
        guess = re.sub(r"\.ya?ml$", "", ruleset_path) + ".incidents.jsonl"
        if not Path(guess).is_file():
            raise UsageError(f"no incidents file next to the ruleset (looked for '{guess}')",
                             "pass --incidents PATH")
        incidents_path = guess
    else:
        incidents_path = _find_demo_file(None, DEMO_INCIDENTS, "incidents file")

    pm = _plugins(args)
    ruleset = _load(ruleset_path, pm)
    incidents = _read_demo_incidents(incidents_path, err)
    if incidents is None:
        return 1
    if not incidents:
        raise UsageError(f"'{incidents_path}' holds no incidents", "give a JSON Lines file with one incident a line")
    target = Path(args.out)
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in ("demo.sqlite3", "history.sqlite3"):
            for suffix in ("", "-wal", "-shm"):
                (target / (name + suffix)).unlink(missing_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write the demo's files to '{target}': {exc.strerror}",
                         "give a writable directory with --out") from None
    Demo(ruleset, pm, incidents, ruleset_path, incidents_path, out, target).run()
    return 0


def _find_demo_file(given: str | None, default: str, what: str) -> str:
    if given is not None:
        return _existing_file(given, what)
    if Path(default).is_file():
        return default
    root = Path(qflow.__file__).resolve().parents[2]
    candidate = root / default
    if candidate.is_file():
        try:
            shown = os.path.relpath(candidate)
        except ValueError:  # another drive on Windows
            return str(candidate)
        return shown if not shown.startswith("..") else str(candidate)
    raise UsageError(f"cannot find the demo {what} '{default}' here or in {root}",
                     f"run from the qflow repository, or pass --{'ruleset' if what == 'ruleset' else 'incidents'}"
                     " PATH")


def _read_demo_incidents(path: str, err: IO[str]) -> list[tuple[int, Incident]] | None:
    good: list[tuple[int, Incident]] = []
    bad = 0
    with _open_input(path) as lines:
        for number, item in _incidents(lines):
            if isinstance(item, str):
                bad += 1
                err.write(f"{path}:{number}:1: {item}\n")
            else:
                good.append((number, item))
    if bad:
        err.write(f"{PROG}: {_plural(bad, 'bad line')} in {path}; fix them or run '{PROG} decide' to see all\n")
        return None
    return good


# The loop walked for one incident: (minutes after its report, step).
_LOOP = (
    (10, "confirm"), (20, "analyse"), (60, "cause"), (70, "act"), (75, "plan"),
    (240, "done"), (245, "verify"), (300, "verification"), (305, "close"),
)


_WHYS = (
    WhyStep("why did it happen?", "nobody checked before it was noticed"),
    WhyStep("why did nobody check?", "the shift checklist has no such step"),
    WhyStep("why is the step missing?", "the checklist was not updated after the last change", root=True),
)


class Demo:
    """The demo, one section after another, printed to *out*."""

    def __init__(self, ruleset: Ruleset, pm: Any, incidents: list[tuple[int, Incident]],
                 ruleset_path: str, incidents_path: str, out: IO[str], target: Path) -> None:
        self.target = target
        self.ruleset = ruleset
        self.tz = ZoneInfo(ruleset.timezone)
        self.pm = pm
        self.incidents = incidents
        self.paths = (ruleset_path, incidents_path)
        self.out = out
        self.states: dict[str, Any] = {}
        self.order: list[str] = []
        self.notes: list[str] = []

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def run(self) -> None:
        ruleset, tz = self.ruleset, self.tz
        reported = [i.reported_at for _, i in self.incidents if i.reported_at is not None]
        start = min(reported) if reported else datetime(2026, 1, 1, tzinfo=tz)
        self.clock = FakeClock(start)
        self.store_url = f"sqlite:///{self.target / 'demo.sqlite3'}"
        self.engine = Engine(ruleset, plugins=self.pm, clock=self.clock, store=self.store_url)
        times = [i.reported_at or start for _, i in self.incidents]
        self.year_known = len({t.astimezone(tz).year for t in times}) == 1

        year = f", dates in {start.astimezone(tz).year}" if self.year_known else ""
        self.say(f"qflow demo: {ruleset.ref}; times in {ruleset.timezone} "
                 f"(UTC{_offset(start.astimezone(tz))}){year}")
        self.say(f"ruleset:   {self.paths[0]}")
        self.say(f"incidents: {self.paths[1]} ({_plural(len(self.incidents), 'incident')})")
        self.say(f"store:     {self.store_url} (kept: 'qflow ls --store {self.store_url}' lists it)")
        self.say()

        # Pick the incident to explain and the one to walk through the loop before
        # replaying, so the loop's steps can interleave with later reports.
        # The first incident (in time) of the most urgent severity decided: the first
        # critical one with the usual severities.
        order = list(ruleset.names("severity"))
        rank = {name: n for n, name in enumerate(order)}
        severities = [d.severity for d in self._predecide()]
        focus = min(range(len(self.incidents)),
                    key=lambda k: (rank.get(severities[k], len(order)), times[k], k))

        schedule: list[tuple[datetime, int, int, Callable[[], None]]] = []
        for k, (_, inc) in enumerate(self.incidents):
            at = inc.reported_at or start
            schedule.append((at, 0, k, functools.partial(self._report, k)))
        focus_at = self.incidents[focus][1].reported_at or start
        for n, (minutes, step) in enumerate(_LOOP):
            schedule.append((focus_at + timedelta(minutes=minutes), 1, n, functools.partial(self._loop, step)))
        schedule.sort(key=lambda s: (s[0], s[1], s[2]))
        self.focus = focus
        self.focus_id: str | None = None
        self.loop_log: list[str] = []
        self.loop_stopped = False
        self.last_report = max(times)
        for at, _, _, do in schedule:
            self.clock.set(max(at, self.clock.now()))
            do()

        self._table()
        self._explain()
        self._timeline()
        self._due()
        self._summary()
        self._escalation()
        self.engine.store.close()
        self._history()

    # -- replay --------------------------------------------------------------------

    def _predecide(self) -> list[Decision]:
        engine = Engine(self.ruleset, plugins=self.pm, clock=FakeClock(datetime(2000, 1, 1, tzinfo=self.tz)))
        return [engine.decide(i, i.reported_at or engine.clock.now()) for _, i in self.incidents]

    def _report(self, k: int) -> None:
        number, incident = self.incidents[k]
        try:
            state = self.engine.report(incident, actor=incident.reporter.name if incident.reporter else None)
        except QflowError as exc:
            self.notes.append(f"line {number}: not reported: {exc}")
            return
        if state.id not in self.states:
            self.order.append(state.id)
        self.states[state.id] = state
        if k == self.focus:
            self.focus_id = state.id

    def _loop(self, step: str) -> None:
        iid = self.focus_id
        if iid is None or self.loop_stopped:
            return
        engine = self.engine
        now = self.clock.now()
        state = engine.get(iid)
        team = state.decision.team if state.decision else None
        lead = self._lead(team) or "supervisor"
        try:
            if step == "confirm":
                engine.transition(iid, Stage.CONFIRMED, actor=lead, reason="checked on site: the anomaly is real")
            elif step == "analyse":
                engine.transition(iid, Stage.ANALYSING, actor=lead)
            elif step == "cause":
                engine.record_cause(iid, Cause(
                    id="C1", summary="the shift checklist does not cover this check", method="five_why",
                    whys=_WHYS,  # type: ignore[arg-type]  # mypy reads attrs' converter=tuple wrongly
                    confirmed=True, recorded_by="quality"), actor="quality")
            elif step == "act":
                engine.transition(iid, Stage.ACTING, actor=lead)
            elif step == "plan":
                engine.plan_action(iid, Action(
                    id="A1", description="add the check to the shift checklist and brief every shift",
                    owner=lead, due=now + timedelta(days=2), kind=ActionKind.CORRECTIVE,
                    target="no repeat of this anomaly in 30 days"), actor=lead)
            elif step == "done":
                engine.update_action(iid, "A1", ActionStatus.DONE, actor=lead)
            elif step == "verify":
                engine.transition(iid, Stage.VERIFYING, actor="quality")
            elif step == "verification":
                engine.record_verification(iid, Verification(
                    result=VerificationResult.EFFECTIVE, at=now, verifier="quality", method="spot check",
                    metrics={"repeats": 0, "checks passed": "12/12"}, note="checklist followed on every shift"),
                    actor="quality")
            elif step == "close":
                engine.transition(iid, Stage.CLOSED, actor="quality", reason="verified effective")
        except (TransitionError, InputError) as exc:
            self.loop_log.append(f"stopped at '{step}': {exc}")
            self.loop_stopped = True
            return
        self.states[iid] = engine.get(iid)

    def _lead(self, team: str | None) -> str | None:
        teams = self.ruleset.sections.get("teams") or {}
        spec = teams.get(team) if team else None
        return getattr(spec, "lead", None)

    # -- output --------------------------------------------------------------------

    def _t(self, dt: datetime | None) -> str:
        if dt is None:
            return "-"
        local = dt.astimezone(self.tz)
        return local.strftime("%m-%d %H:%M" if self.year_known else "%Y-%m-%d %H:%M")

    def _table(self) -> None:
        self.say(f"1. Reported {_plural(len(self.order), 'incident')} in time order "
                 "(the clock set to each reported_at)")
        self.say()
        rows = [("id", "reported", "category", "severity", "team", "respond by", "resolve by")]
        for iid in self.order:
            state = self.engine.get(iid)
            d = state.decision
            assert d is not None  # every reported incident is decided
            rows.append((iid, self._t(state.incident.reported_at), _show(d.category), _show(d.severity),
                         _show(d.team), self._t(d.respond_by), self._t(d.resolve_by)))
        for line in _table(rows, indent="  "):
            self.say(line)
        for note in self.notes:
            self.say(f"  {note}")
        self.say()

    def _explain(self) -> None:
        iid = self.focus_id
        if iid is None:
            return
        state = self.engine.get(iid)
        decision = self.engine.decide(state.incident, state.decision.decided_at if state.decision else None)
        self.say(f"2. Why {iid} is {decision.severity} (what 'qflow explain' shows)")
        self.say()
        for line in render_explanation(state.incident, decision, self.ruleset):
            self.say(f"  {line}" if line else "")
        self.say()

    def _timeline(self) -> None:
        iid = self.focus_id
        if iid is None:
            return
        state = self.engine.get(iid)
        self.say(f"3. {iid} through the loop: confirm, analyse, act, verify, close (now {state.stage.value})")
        self.say()
        rows = [("seq", "at", "event", "by", "what")]
        for e in self.engine.events(iid):
            by = e.actor or ("qflow" if e.type == "DecisionMade" else "-")
            rows.append((str(e.seq), self._t(e.at), e.type, by, _event_text(e, self)))
        for line in _table(rows, indent="  "):
            self.say(line)
        for line in self.loop_log:
            self.say(f"  {line}")
        self.say()

    def _due(self) -> None:
        # What falls due in the 24 hours after the last report; the deadlines that
        # already passed (nobody answers the incidents in this demo) are only counted.
        now = self.last_report
        until = now + timedelta(hours=24)
        due = self.engine.due(until)
        coming = [item for item in due if item.at > now]
        passed = [item for item in due if item.at <= now]
        self.say(f"4. Due in the 24 hours after the last report ({self._t(now)} to {self._t(until)}): "
                 f"{_plural(len(coming), 'deadline')}")
        self.say()
        if not coming:
            self.say("  nothing falls due")
        else:
            rows = [("due", "in", "incident", "clock", "team")]
            for item in coming:
                state = self.engine.get(item.incident_id)
                rows.append((self._t(item.at), _left(item.at - now), item.incident_id, item.clock,
                             _show(state.decision.team if state.decision else None)))
            for line in _table(rows, sep=" | ", indent="  "):
                self.say(line)
        if passed:
            self.say(f"  already passed: {_plural(len(passed), 'deadline')} of "
                     f"{_plural(len({p.incident_id for p in passed}), 'open incident')} "
                     "(the demo answers none but the one above)")
        self.say()

    def _summary(self) -> None:
        counts = Counter(s.decision.severity if s.decision else None for s in
                         (self.engine.get(i) for i in self.order))
        order = [s for s in self.ruleset.names("severity") if counts.get(s)]
        order += sorted((s for s in counts if s not in order and s is not None), key=str)
        parts = [f"{counts[s]} {s}" for s in order]
        if counts.get(None):
            parts.append(f"{counts[None]} without severity")
        self.say(f"{_plural(len(self.order), 'incident')}: {', '.join(parts) or 'none decided'}")

    def _escalation(self) -> None:
        """Nobody answers the last incident reported: the worker's ticks and deliveries
        on the demo's clock, at the moments its escalation steps fall due."""
        self.say()
        engine, store = self.engine, self.engine.store
        start = self.clock.now()
        follow = next((i for i in reversed(self.order) if i != self.focus_id
                       and any(t.key.startswith("esc:") and t.at > start for t in store.timers(i))), None)
        if follow is None:
            self.say(f"5. Escalation: nothing falls due ({self.ruleset.ref} has no escalation ladder "
                     "for the incidents still open)")
            return
        ticks: list[str] = []
        caught_up = 0  # incidents the first tick touched
        rows = [("at", "event", "step", "who is told")]
        sent: list[str] = []
        seen, delivered_ids = len(engine.events(follow)), set()
        for _ in range(_TICKS):
            due = [t.at for t in store.timers(follow) if t.key.startswith("esc:")]
            if not due:
                break
            at = min(due)
            self.clock.set(max(at, self.clock.now()))
            tick = engine.tick(at, worker="demo")
            caught_up = caught_up or tick.incidents
            delivered = 0
            while (report := engine.deliver(at, worker="demo", limit=500)).claimed:
                delivered += report.delivered
            ticks.append(f"  tick at {self._t(at)}: {_plural(tick.effects, 'effect')} on "
                         f"{_plural(tick.incidents, 'incident')}, {delivered} delivered")
            told: dict[tuple[Any, Any], str] = {}
            for m in store.outbox(incident_id=follow, status="delivered"):
                if m.id in delivered_ids:
                    continue
                delivered_ids.add(m.id)
                who = ", ".join(r.get("name") or r.get("email") or r.get("mobile") or "?"
                                for r in m.payload.get("recipients", ()))
                data = (m.payload.get("context") or {}).get("data") or {}
                told[(data.get("step"), data.get("occurrence"))] = who
                if m.payload.get("topic") != "incident.reported":
                    sent.append(f"  {self._t(at)}  {m.channel}  {m.payload.get('subject')} -> {who or '-'}")
            events = engine.events(follow)
            rows.extend(_fired_row(e, told, self) for e in events[seen:])
            seen = len(events)
        d = engine.get(follow).decision
        self.say(f"5. Nobody answers {follow} ({_show(d.severity if d else None)}, {_show(d.team if d else None)}) "
                 f"until {self._t(self.clock.now())}: the worker's ticks")
        self.say()
        for line in ticks:
            self.say(line)
        if caught_up > 1:
            self.say("  (the first tick catches up on every incident above: the demo answers none of them)")
        self.say()
        self.say(f"  what the ticks recorded on {follow}:")
        for line in _table(rows, indent="  "):
            self.say(line)
        self.say()
        self.say("  what engine.deliver() sent for it (the log backend: one line each in the worker's log):")
        for line in sent or ["  nothing"]:
            self.say(line)

    def _history(self) -> None:
        """Six months of the same desk, the report for the last month, and the forms."""
        from qflow._demo_history import build_history
        from qflow.cli import _build_parser

        url = f"sqlite:///{self.target / 'history.sqlite3'}"
        incidents = [inc for _, inc in self.incidents if inc.reported_at is not None]
        if not incidents:
            return
        engine, count, began = build_history(
            lambda clock: Engine(self.ruleset, plugins=self.pm, clock=clock, store=url), incidents)
        as_of = engine.clock.now()
        month = as_of.astimezone(self.tz).strftime("%Y-%m")
        first = began.astimezone(self.tz).strftime("%Y-%m")
        closed = [s for s in engine.query() if s.stage is Stage.CLOSED]
        example = closed[-1].id if closed else None
        engine.store.close()
        self.say()
        self.say(f"6. Six months of the same desk ({first} to {month}), and its report for {month}")
        self.say()
        self.say(f"  history: {_plural(count, 'incident')} answered, analysed, acted on, verified and surveyed, "
                 f"in {self.target / 'history.sqlite3'}")
        parser, handlers = _build_parser(self.pm)
        # Made at the end of the history, as of then: nothing happened after it.
        common = [self.paths[0], "--store", url, "--as-of", as_of.isoformat(), "--now", as_of.isoformat()]
        wrote = []
        if "report" not in handlers:
            self.say("  (no report: the assess plugin is blocked)")
            return
        runs = [("report", ["--period", month, "--format", "json", "-o", "figures.json"]),
                ("report", ["--period", month, "--format", "html", "-o", "report.html"]),
                ("report", ["--period", month, "--format", "html", "--lang", "zh", "-o", "report.zh.html"]),
                ("report", ["--period", month, "--format", "xlsx", "-o", "report.xlsx"])]
        if example is not None:
            runs += [("form", [kind, "--incident", example, "--lang", "zh", "-o", f"form-{kind}.html"])
                     for kind in ("report", "cause", "actions", "verification")]
        for command, words in runs:
            args = words[:-1] + [str(self.target / words[-1])]
            if command == "form":
                argv = [command, args[0], *common[:3], *args[1:]]
            else:
                argv = [command, *common, *args]
            parsed = parser.parse_args(argv)
            parsed.no_plugins, parsed.block, parsed.plugin_manager = False, [], self.pm
            sink = _Sink()
            handlers[command](parsed, sink, sink)
            wrote.append(words[-1])
        figures = {r["kpi"]: r for r in json.loads((self.target / "figures.json").read_text(encoding="utf-8"))
                   if r["view"] == "period"}

        def pct(name: str) -> str:
            v = figures.get(name, {}).get("value")
            return "-" if v is None else f"{100 * v:.1f}%"

        def dur(name: str) -> str:
            v = figures.get(name, {}).get("value")
            return "-" if v is None else duration_to_the_minute(v)

        self.say(f"  {month}: on time {pct('on_time_respond')} answered, {pct('on_time_resolve')} resolved; "
                 f"median first answer {dur('first_response_time')}, resolution {dur('time_to_resolve')}; "
                 f"CSAT {pct('csat')}; recurrence {pct('recurrence_rate')}")
        self.say(f"  wrote {', '.join(wrote)} in {self.target}/")
        if example is not None:
            self.say(f"  (the forms are those of {example}; 'qflow report --help' makes others)")


#: How many of the followed incident's escalation moments the demo ticks at.
_TICKS = 4


def _fired_row(e: Event, names: dict[tuple[Any, Any], str], demo: Demo) -> tuple[str, str, str, str]:
    """One line of the escalation section: an event the ticks recorded on the incident."""
    data = {k: _plain(v) for k, v in e.data.items()}
    if e.type == "EscalationStepFired":
        repeat = f", repeat {data.get('occurrence')}" if data.get("occurrence") else ""
        step = f"{data.get('ladder')}/{data.get('step')} ({data.get('when')}{repeat})"
        told = ", ".join(data.get("recipients") or ()) or "nobody available"
        resolved = names.get((data.get("step"), data.get("occurrence")))
        return demo._t(e.at), e.type, step, f"{told}: {resolved}" if resolved else told
    if e.type == "DeadlineBreached":
        due = data.get("due")
        due_text = demo._t(datetime.fromisoformat(due)) if isinstance(due, str) else "-"
        return demo._t(e.at), e.type, f"{data.get('clock')} was due {due_text}", "-"
    return demo._t(e.at), e.type, _event_text(e, demo), "-"


class _Sink:
    """Swallows a command's output: the demo prints its own summary."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _event_text(e: Event, demo: Demo) -> str:
    data = {k: _plain(v) for k, v in e.data.items()}
    if e.type == "IncidentReported":
        bits = [data.get("channel"), data.get("category"), data.get("place")]
        text = data.get("title") or data.get("description") or ""
        return _short(", ".join(str(b) for b in bits if b) + (f": {text}" if text else ""), 60)
    if e.type == "DecisionMade":
        return (f"{data.get('severity')}, team {data.get('team')}, "
                f"respond by {_t_iso(data, 'respond', demo)}, resolve by {_t_iso(data, 'resolve', demo)}")
    if e.type == "StageChanged":
        reason = f" ({data['reason']})" if data.get("reason") else ""
        return f"{data.get('from')} → {data.get('to')}{reason}"
    if e.type == "CauseRecorded":
        return f"{data.get('method')}: {data.get('summary')} ({len(data.get('whys') or ())} whys)"
    if e.type == "ActionPlanned":
        due = data.get("due")
        due_text = demo._t(datetime.fromisoformat(due)) if isinstance(due, str) else _show(due)
        return (f"{data.get('id')} {data.get('kind')}: {data.get('description')}, "
                f"owner {data.get('owner')}, due {due_text}")
    if e.type == "ActionUpdated":
        return f"{data.get('id')} is {data.get('status')}"
    if e.type == "VerificationRecorded":
        metrics = ", ".join(f"{k} {v}" for k, v in (data.get("metrics") or {}).items())
        return f"{data.get('result')}" + (f" ({metrics})" if metrics else "")
    if e.type == "NotificationFailed":
        return f"{data.get('plugin')}: {data.get('error')}"
    return _short(json.dumps(dict(data), ensure_ascii=False, default=str), 60)


def _plain(value: Any) -> Any:
    # Event data may hold enum members (str enums) rather than their values.
    return value.value if isinstance(value, enum.Enum) else value


def _t_iso(data: Any, clock: str, demo: Demo) -> str:
    for d in data.get("deadlines") or ():
        if d.get("clock") == clock:
            return demo._t(datetime.fromisoformat(d["due"]))
    return "-"
