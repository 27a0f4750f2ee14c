"""``qflow report``, ``qflow survey record``, ``qflow score record``, ``qflow form``:
the assessment commands, added to ``qflow`` through the ``qflow_commands`` hook."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any

from qflow._cli_store import durable
from qflow.cli import _FORMATTER, PROG, UsageError, _load, _parse_now, _plugins
from qflow.errors import InputError, QflowError

__all__ = ["add_commands"]

_REPORT_EPILOG = f"""\
Figures are computed in the store's database from the facts each command keeps up
to date; periods are months (2026-11), quarters (2026-Q4), years (2026) or rolling
windows (30d, 90d) in the organisation's time zone, each compared with the period
before and the same period a year earlier. Definitions: docs/kpis.md.

examples:
  {PROG} report rulesets/hotel-front-desk.yaml --store sqlite:///qflow.sqlite3 --period 2026-Q4
  {PROG} report rules.yaml --store sqlite:///q.db --period 2026-11 --format html -o report.html --lang zh
  {PROG} report rules.yaml --store sqlite:///q.db --period 90d --format xlsx -o report.xlsx
  {PROG} report rules.yaml --store sqlite:///q.db --period 2026-11 --format csv > figures.csv
  {PROG} report rules.yaml --store sqlite:///q.db --period 2026-11 --as-of 2026-11-05T12:00:00+08:00
      (November as it stood on the 5th at noon; what the facts keep no time of is marked †)
"""


_SURVEY_EPILOG = f"""\
examples:
  {PROG} survey record rules.yaml INC-7 --store sqlite:///q.db --score 4 --nps 9 --channel sms
  {PROG} survey record rules.yaml INC-7 --store sqlite:///q.db --score 2 --comment "slow refund" --by desk
"""


def _store_option(p: argparse.ArgumentParser) -> None:
    default = os.environ.get("QFLOW_STORE")
    p.add_argument("--store", metavar="URL", default=default, required=default is None,
                   help="the store: sqlite:///PATH or postgresql://… (default $QFLOW_STORE)")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser("report", parents=[common], formatter_class=_FORMATTER, epilog=_REPORT_EPILOG,
                       help="KPIs, slices, charts and the problem list for a period",
                       description="The period report: figures, slices, trend, problem list, scorecards.")
    p.add_argument("ruleset", metavar="RULESET")
    _store_option(p)
    p.add_argument("--period", required=True, metavar="PERIOD", help="2026-11, 2026-Q4, 2026, 30d or 90d")
    p.add_argument("--by", default="team,category,severity", metavar="DIMS",
                   help="slice by these, comma-separated: team, owner, category, severity, channel, place")
    p.add_argument("--format", choices=("table", "csv", "json", "xlsx", "html"), default="table")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (xlsx needs a file)")
    p.add_argument("--lang", choices=("en", "zh"), default="en")
    p.add_argument("--as-of", dest="as_of", metavar="ISO",
                   help="every figure as of this time, e.g. 2026-11-05T12:00:00+08:00 (default now); what the "
                        "facts keep no time of (surveys, reopenings ...) is counted as it stands, and marked †")
    p.add_argument("--now", metavar="ISO", help="the time the report is made (default: the current time)")

    p = sub.add_parser("survey", parents=[common], formatter_class=_FORMATTER,
                       help="record a satisfaction survey against an incident",
                       description="Record a customer's satisfaction survey (CSAT score, NPS answer, comment).")
    ssub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = ssub.add_parser("record", formatter_class=_FORMATTER, help="record one survey result",
                        epilog=_SURVEY_EPILOG)
    # RULESET first, as every command on an incident (verify, confirm ...) and score
    # record take it; _cmd_survey still reads the old order, ID RULESET.
    r.add_argument("ruleset", metavar="RULESET")
    r.add_argument("incident", metavar="ID")
    _store_option(r)
    r.add_argument("--score", type=float, help="satisfaction, 1..scale")
    r.add_argument("--scale", type=int, default=5)
    r.add_argument("--nps", type=int, help="would recommend us, 0-10")
    r.add_argument("--comment")
    r.add_argument("--channel", help="how the survey was answered (phone, sms, online …)")
    r.add_argument("--respondent")
    r.add_argument("--self-rated", action="store_true", help="filled in by staff: kept, left out of the figures")
    r.add_argument("--by", "--actor", dest="actor", metavar="NAME", help="who records it (recorded as the actor)")

    p = sub.add_parser("score", parents=[common], formatter_class=_FORMATTER,
                       help="record an expert review, inspection or mystery-shopper score",
                       description="Record a qualitative score against a team or a person; a score below the "
                                   "criterion's standard also opens an incident through the inspection channel.")
    ssub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = ssub.add_parser("record", formatter_class=_FORMATTER, help="record one score")
    r.add_argument("ruleset", metavar="RULESET")
    _store_option(r)
    r.add_argument("--subject", required=True, help="the team (or, with --person, the person)")
    r.add_argument("--person", action="store_true", help="the subject is a person, not a team")
    r.add_argument("--criterion", required=True)
    r.add_argument("--score", required=True, type=float)
    r.add_argument("--method", required=True, help="expert_review, inspection, mystery_shopper …")
    r.add_argument("--period", help="the period the score is for, e.g. 2026-11 (shown on the scorecard)")
    r.add_argument("--assessor")
    r.add_argument("--note")
    r.add_argument("--place")

    p = sub.add_parser("form", parents=[common], formatter_class=_FORMATTER,
                       help="print a form: anomaly report, cause analysis, action ledger, verification",
                       description="The process's forms for one incident (or a period), as HTML or XLSX.")
    p.add_argument("kind", choices=("report", "cause", "actions", "verification"))
    p.add_argument("ruleset", metavar="RULESET")
    _store_option(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--incident", metavar="ID")
    target.add_argument("--period", metavar="PERIOD")
    p.add_argument("--format", choices=("html", "xlsx"), default="html")
    p.add_argument("-o", "--output", metavar="FILE")
    p.add_argument("--lang", choices=("en", "zh"), default="en")
    return {"report": _cmd_report, "survey": _cmd_survey, "score": _cmd_score, "form": _cmd_form}


def _engine(args: argparse.Namespace, *, create: bool = False) -> Any:
    """The engine on --store; a store that is not there is refused unless the command
    may *create* it (a score below standard opens an incident)."""
    from qflow.engine import Engine, open_store

    pm = _plugins(args)
    ruleset = _load(args.ruleset, pm)
    try:
        return Engine(ruleset, plugins=pm, store=open_store(args.store, pm, create=create))
    except QflowError as exc:
        raise UsageError(str(exc), "check --store") from None


def _write(args: argparse.Namespace, out: IO[str], text: str) -> None:
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        out.write(text)


def _cmd_report(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow_assess import site_kpis
    from qflow_assess._compute import DIMENSIONS
    from qflow_assess._render import render_csv, render_html, render_text, render_xlsx, rows
    from qflow_assess._report import build_report

    dims = [d.strip() for d in args.by.split(",") if d.strip()]
    for d in dims:
        if d not in DIMENSIONS:
            raise UsageError(f"cannot slice by '{d}'", f"use some of: {', '.join(DIMENSIONS)}")
    if args.format == "xlsx" and not args.output:
        raise UsageError("an XLSX workbook needs a file", "add -o report.xlsx")
    now = _parse_now(args.now)
    try:
        as_of = _parse_now(args.as_of) if args.as_of is not None else now
    except UsageError as exc:  # the kernel's parser names its own option
        raise UsageError(exc.message.replace("argument --now", "argument --as-of", 1), exc.hint) from None
    engine = _engine(args)
    try:
        with _progress(err) as step:
            try:
                report = build_report(engine.store, engine.ruleset, args.period, as_of=as_of, now=now,
                                      dimensions=dims,
                                      site_kpis=site_kpis(engine.plugins, engine.ruleset), progress=step,
                                      workers=min(2, os.cpu_count() or 1))
            except ValueError as exc:
                raise UsageError(f"argument --period: {exc}") from None
        if args.format == "table":
            render_text(report, out if not args.output else open(args.output, "w", encoding="utf-8"), lang=args.lang)
        elif args.format == "csv":
            if args.output:
                with open(args.output, "w", encoding="utf-8", newline="") as f:
                    render_csv(report, f)
            else:
                render_csv(report, out)
        elif args.format == "json":
            _write(args, out, json.dumps(list(rows(report)), ensure_ascii=False, indent=1) + "\n")
        elif args.format == "html":
            _write(args, out, render_html(report, lang=args.lang))
        else:
            render_xlsx(report, args.output, lang=args.lang)
        if args.output:
            err.write(f"wrote {args.output}\n")
    finally:
        engine.store.close()
    return 0


class _progress:
    """A progress bar on a terminal's stderr (rich): the report's steps done of all of
    them, the one running and the time so far; cleared at the end, silent when stderr
    is a file."""

    def __init__(self, err: IO[str]) -> None:
        self.err = err
        self.live: Any = None

    def __enter__(self) -> Any:
        if not getattr(self.err, "isatty", lambda: False)() or self.err is not sys.stderr:
            return lambda _what, _done, _total: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.live = Progress(TextColumn("report"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                             TimeElapsedColumn(), transient=True)
        self.live.start()
        task = self.live.add_task("", total=None)

        def step(what: str, done: int, total: int) -> None:
            self.live.update(task, description=what, completed=done, total=total)
        return step

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()


def _cmd_survey(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if not os.path.isfile(args.ruleset) and os.path.isfile(args.incident):
        args.ruleset, args.incident = args.incident, args.ruleset  # written in the old order, ID RULESET
    durable(args.store, "survey record")
    engine = _engine(args)
    try:
        score = int(args.score) if args.score is not None and args.score.is_integer() else args.score
        state = engine.record_survey(args.incident, score=score, scale=args.scale, nps=args.nps,
                                     comment=args.comment, channel=args.channel, respondent=args.respondent,
                                     self_rated=args.self_rated, actor=args.actor)
    except (InputError, KeyError) as exc:
        raise UsageError(str(exc).strip("'\""), "check the incident id and the values") from None
    finally:
        engine.store.close()
    out.write(f"recorded a survey on {state.id} (event {state.seq})\n")
    return 0


def _cmd_score(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow_assess import record_score

    durable(args.store, "score record")
    engine = _engine(args, create=True)
    try:
        score = record_score(engine, subject=args.subject, subject_kind="person" if args.person else "team",
                             criterion=args.criterion, score=args.score, method=args.method, period=args.period,
                             assessor=args.assessor, note=args.note, place=args.place)
    except InputError as exc:
        raise UsageError(str(exc), "see the assessment section of the ruleset") from None
    finally:
        engine.store.close()
    out.write(f"recorded {score.id}: {score.subject} {score.criterion} {score.score:g} ({score.method})\n")
    if score.incident_id:
        out.write(f"below standard: opened {score.incident_id} through the inspection channel\n")
    return 0


def _cmd_form(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow_assess._forms import render_form

    if args.format == "xlsx" and not args.output:
        raise UsageError("an XLSX form needs a file", "add -o form.xlsx")
    engine = _engine(args)
    try:
        text = render_form(engine, args.kind, incident=args.incident, period=args.period, fmt=args.format,
                           lang=args.lang, path=args.output)
    except InputError as exc:
        raise UsageError(str(exc), "check the incident id or the period") from None
    finally:
        engine.store.close()
    if text is not None:
        _write(args, out, text)
    if args.output:
        err.write(f"wrote {args.output}\n")
    return 0
