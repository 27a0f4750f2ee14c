"""``qflow confirm | reject | cause | action | act | verify | close | reopen | problems | risks``:
the improvement loop from the command line, against a store (``--store URL``).

Each command is one validated engine command: a refused step prints
``qflow: error: cannot close INC-42: action A-3 is still open, due 2026-12-01`` and
exits 1 with the incident unchanged.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import IO, Any

from qflow._convert import ShapeError, parse_duration, parse_time
from qflow.cli import PROG, UsageError, _load, _parse_now, _plugins
from qflow.clock import FakeClock
from qflow.engine import Engine, open_store
from qflow._cli_store import durable
from qflow.errors import InputError, QflowError
from qflow._loop import figures_text
from qflow.model import (
    Action,
    ActionKind,
    Attachment,
    Cause,
    IncidentState,
    Verification,
    VerificationResult,
    WhyStep,
)
from qflow.store import StoreError

__all__ = ["add_commands"]

_STORE_HELP = "the store URL, e.g. sqlite:///qflow.sqlite3 (default: $QFLOW_STORE, else sqlite:///qflow.sqlite3)"

_EPILOG = f"""\
examples:
  {PROG} confirm rules.yaml INC-7 --responsibility human --team housekeeping --owner 李娜 --by 值班经理
  {PROG} reject rules.yaml INC-8 --reason "guest mistake, not an anomaly"
  {PROG} cause rules.yaml INC-7 --id C-1 --summary "rota gap" --method five_why \\
      --why "why was 1203 not cleaned? => not on the rota" --root "why not on the rota? => the rota is kept by hand" \\
      --evidence photo:photos/1203.jpg --code rota-gap --confirmed
  {PROG} action add rules.yaml INC-7 --id A-1 --description "rota from the system" --owner 李娜 \\
      --due 2026-12-01T18:00:00+08:00 --target "no missed room in 30 days"
  {PROG} action progress rules.yaml INC-7 A-1 --note "half the floors" --percent 50
  {PROG} action done rules.yaml INC-7 A-1
  {PROG} act rules.yaml INC-7
  {PROG} verify rules.yaml INC-7 --result effective --metric repeats=0 --evidence photo:photos/ok.jpg
  {PROG} verify rules.yaml INC-7 --measure
  {PROG} close rules.yaml INC-7
  {PROG} risks rules.yaml --window 30d

exit status: 0 done, 1 the step was refused (the incident is unchanged), 2 a usage error.
"""


def _common(p: argparse.ArgumentParser, incident: bool = True) -> None:
    p.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    if incident:
        p.add_argument("incident", metavar="INCIDENT", help="the incident id, e.g. INC-7")
    p.add_argument("--store", metavar="URL", help=_STORE_HELP)
    p.add_argument("--by", metavar="NAME", help="who does it (recorded as the actor)")
    p.add_argument("--now", metavar="ISO", help="the time of the step (default: the current time)")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    fmt = argparse.RawDescriptionHelpFormatter

    def parser(name: str, help_: str, incident: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], formatter_class=fmt, epilog=_EPILOG, help=help_,
                           description=help_[0].upper() + help_[1:] + ".")
        _common(p, incident)
        return p

    p = parser("confirm", "confirm an anomaly as real, with its responsibility class and owner")
    p.add_argument("--responsibility", metavar="CLASS", help="human, equipment, process, customer (the ruleset's)")
    p.add_argument("--team")
    p.add_argument("--owner")
    p.add_argument("--note")
    p = parser("reject", "reject a report as not an anomaly (it stays in the archive)")
    p.add_argument("--reason", required=True)
    p = parser("cause", "record a cause (5-Why, fishbone or a note), or confirm a recorded one")
    p.add_argument("--id", dest="cause_id", metavar="ID", help="the cause id, e.g. C-1")
    p.add_argument("--summary")
    p.add_argument("--method", default="note", choices=("five_why", "fishbone", "note"))
    p.add_argument("--why", action="append", default=[], metavar="'WHY => BECAUSE'", help="a 5-Why step (repeatable)")
    p.add_argument("--root", metavar="'WHY => BECAUSE'", help="the last 5-Why step: its because is the root cause")
    p.add_argument("--branch", help="the fishbone branch (man, machine, method, material, measurement, environment)")
    p.add_argument("--code", help="a stable name for the root cause, e.g. rota-gap")
    p.add_argument("--responsibility", metavar="CLASS")
    p.add_argument("--evidence", action="append", default=[], metavar="KIND:REF", help="e.g. photo:photos/1.jpg")
    p.add_argument("--confirmed", action="store_true", help="record it as the confirmed root cause")
    p.add_argument("--confirm", metavar="ID", help="confirm the recorded cause ID instead of recording one")

    p = sub.add_parser("action", parents=[common], formatter_class=fmt, epilog=_EPILOG,
                       help="plan an action, log progress on it, finish it",
                       description="Plan actions and keep their tracking ledger.")
    asub = p.add_subparsers(dest="action_command", metavar="STEP", required=True)
    a = asub.add_parser("add", help="plan a correction, corrective or preventive action")
    _common(a)
    a.add_argument("--id", dest="action_id", required=True)
    a.add_argument("--description", required=True)
    a.add_argument("--owner", required=True)
    a.add_argument("--due", required=True, metavar="ISO")
    a.add_argument("--kind", default="corrective", choices=[k.value for k in ActionKind])
    a.add_argument("--target", help="the measurable target")
    a.add_argument("--feasibility")
    a.add_argument("--effect", help="the expected effect")
    a.add_argument("--cause", help="the id of the cause it aims at")
    a = asub.add_parser("progress", help="write a ledger line: progress, deviation or adjustment")
    _common(a)
    a.add_argument("action_id", metavar="ACTION")
    a.add_argument("--note", required=True)
    a.add_argument("--kind", default="progress", choices=("progress", "deviation", "adjustment"))
    a.add_argument("--percent", type=int)
    a.add_argument("--due", metavar="ISO", help="an adjustment's new due date")
    a = asub.add_parser("done", help="mark an action done (or --cancel it with a --note)")
    _common(a)
    a.add_argument("action_id", metavar="ACTION")
    a.add_argument("--cancel", action="store_true")
    a.add_argument("--note")

    p = parser("verify", "record whether the measures worked (by hand, or --measure the configured metrics)")
    p.add_argument("--result", choices=[r.value for r in VerificationResult])
    p.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--evidence", action="append", default=[], metavar="KIND:REF")
    p.add_argument("--note")
    p.add_argument("--measure", action="store_true", help="measure the configured metrics now and record the result")
    p = parser("act", "start working the planned actions (analysing to acting)")
    p.add_argument("--reason")
    p = parser("close", "close a verified incident")
    p.add_argument("--reason")
    p = parser("reopen", "reopen a closed or rejected incident")
    p.add_argument("--reason", required=True)
    p = parser("problems", "list the problem records (many incidents, one fingerprint)", incident=False)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p = parser("risks", "list the places, categories and causes whose recurrence is rising", incident=False)
    p.add_argument("--window", default="30d", help="the window compared with the one before (default 30d)")
    p.add_argument("--min", dest="min_count", type=int, default=2, help="at least this many in the window")
    p.add_argument("--format", choices=("table", "json"), default="table")
    names = ("confirm", "reject", "cause", "action", "act", "verify", "close", "reopen", "problems", "risks")
    return {name: _handler(name) for name in names}


def _handler(name: str) -> Any:
    def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
        pm = _plugins(args)
        ruleset = _load(args.ruleset, pm)
        url = _store_url(args)
        if name not in _READING:
            durable(url, name)
        try:
            store = open_store(url, pm, create=False)  # every one works on what a store holds
        except StoreError as exc:
            raise UsageError(str(exc), f"check --store (now {url})") from None
        clock = FakeClock(_parse_now(args.now)) if args.now else None  # the engine's: the ruleset's zone
        engine = Engine(ruleset, plugins=pm, store=store, clock=clock)
        try:
            return _COMMANDS[name](engine, args, out)
        except QflowError as exc:
            err.write(f"{PROG}: error: {exc}\n")
            return 1
        finally:
            store.close()

    return run


#: The commands that only read; every other one records and exits.
_READING = ("problems", "risks")


def _store_url(args: argparse.Namespace) -> str:
    import os

    return args.store or os.environ.get("QFLOW_STORE") or "sqlite:///qflow.sqlite3"


def _time(text: str, option: str) -> Any:
    try:
        return parse_time(text)
    except ShapeError as exc:
        raise UsageError(f"argument {option}: {exc.message}", exc.hint) from None


def _evidence(items: list[str], by: str | None) -> list[Attachment]:
    out = []
    for item in items:
        kind, sep, ref = item.partition(":")
        if not sep or not kind or not ref:
            raise UsageError(f"argument --evidence: '{item}' is not KIND:REF", "e.g. --evidence photo:photos/1203.jpg")
        out.append(Attachment(ref=ref, kind=kind, added_by=by))
    return out


def _step(text: str, root: bool = False) -> WhyStep:
    why, sep, because = text.partition("=>")
    if not sep:
        raise UsageError(f"argument --{'root' if root else 'why'}: '{text}' has no '=>'",
                         "write 'WHY => BECAUSE', e.g. 'why not cleaned? => not on the rota'")
    return WhyStep(why.strip(), because.strip(), root=root)


def _said(out: IO[str], state: IncidentState, what: str) -> int:
    out.write(f"{state.id} {what} (now {state.stage.value}, event {state.seq})\n")
    return 0


def _confirm(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    state = engine.confirm(args.incident, actor=args.by, responsibility=args.responsibility, team=args.team,
                           owner=args.owner, note=args.note)
    return _said(out, state, "confirmed")


def _reject(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    return _said(out, engine.reject(args.incident, args.reason, actor=args.by), "rejected")


def _cause(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    if args.confirm:
        return _said(out, engine.confirm_cause(args.incident, args.confirm, actor=args.by),
                     f"cause {args.confirm} confirmed")
    if not args.cause_id or not args.summary:
        raise UsageError("give --id and --summary (or --confirm ID)", f"run '{PROG} cause --help'")
    whys = [_step(w) for w in args.why] + ([_step(args.root, root=True)] if args.root else [])
    cause = Cause(args.cause_id, args.summary, method=args.method, branch=args.branch, whys=whys,
                  evidence=_evidence(args.evidence, args.by), confirmed=args.confirmed, recorded_by=args.by,
                  code=args.code, responsibility=args.responsibility)
    return _said(out, engine.record_cause(args.incident, cause, actor=args.by), f"cause {cause.id} recorded")


def _action(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    step = args.action_command
    if step == "add":
        action = Action(args.action_id, args.description, args.owner, _time(args.due, "--due"),
                        kind=ActionKind(args.kind), target=args.target, feasibility=args.feasibility,
                        expected_effect=args.effect, cause=args.cause)
        return _said(out, engine.plan_action(args.incident, action, actor=args.by), f"action {action.id} planned")
    if step == "progress":
        due = _time(args.due, "--due") if args.due else None
        state = engine.log_action(args.incident, args.action_id, args.kind, args.note, actor=args.by,
                                  percent=args.percent, due=due)
        return _said(out, state, f"action {args.action_id}: {args.kind} logged")
    status = "cancelled" if args.cancel else "done"
    state = engine.update_action(args.incident, args.action_id, status, actor=args.by, note=args.note)
    return _said(out, state, f"action {args.action_id} {status}")


def _verify(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    if args.measure:
        measured = engine.measure_effect(args.incident)
        if measured is None:
            raise UsageError("no plugin measures this incident's effect", "verify by hand with --result and --metric")
        if measured.figures and all(f.result is None for f in measured.figures):
            # Recording it would settle the verification on no evidence (and stop the one
            # scheduled after the observation window): say so, record nothing.
            raise InputError(f"cannot verify {args.incident}: {measured.note or 'no metric could judge'} with "
                             f"--result and --metric ({figures_text(measured)})")
        verification = measured
    else:
        if not args.result:
            raise UsageError("give --result (or --measure)", f"run '{PROG} verify --help'")
        metrics: dict[str, Any] = {}
        for item in args.metric:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UsageError(f"argument --metric: '{item}' is not NAME=VALUE", "e.g. --metric repeats=0")
            metrics[key] = _number(value)
        verification = Verification(VerificationResult(args.result), engine.clock.now(), verifier=args.by,
                                    metrics=metrics, note=args.note, evidence=_evidence(args.evidence, args.by))
    state = engine.record_verification(args.incident, verification, actor=args.by)
    return _said(out, state, f"verified {verification.result.value}")


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _act(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    return _said(out, engine.act(args.incident, actor=args.by, reason=args.reason), "acting on its actions")


def _close(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    return _said(out, engine.close(args.incident, actor=args.by, reason=args.reason), "closed")


def _reopen(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    return _said(out, engine.reopen(args.incident, args.reason, actor=args.by), "reopened")


def _problems(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    problems = engine.problems()
    if args.format == "json":
        for p in problems:
            out.write(json.dumps(engine._conv.unstructure(p), ensure_ascii=False) + "\n")
        return 0
    if not problems:
        out.write("no problem records\n")
    for p in problems:
        out.write(f"{p.id}  {p.status:<11}  {len(p.incidents)} incidents  {p.reason or ''}\n")
        out.write(f"    {', '.join(p.incidents)}\n")
    return 0


def _risks(engine: Engine, args: argparse.Namespace, out: IO[str]) -> int:
    try:
        window: timedelta = parse_duration(args.window)
    except ShapeError as exc:
        raise UsageError(f"argument --window: {exc.message}", exc.hint) from None
    points = engine.risk_points(engine.clock.now(), window, min_count=args.min_count)
    if args.format == "json":
        for r in points:
            out.write(json.dumps(engine._conv.unstructure(r), ensure_ascii=False) + "\n")
        return 0
    if not points:
        out.write(f"nothing rising over the last {args.window}\n")
    for r in points:
        out.write(f"{r.dimension:<9} {r.value:<20} {r.previous} → {r.count}\n")
    return 0


_COMMANDS = {"confirm": _confirm, "reject": _reject, "cause": _cause, "action": _action, "verify": _verify,
             "act": _act, "close": _close, "reopen": _reopen, "problems": _problems, "risks": _risks}
