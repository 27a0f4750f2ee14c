"""``qflow db``, ``qflow import``, ``qflow ls``, ``qflow show``: the store from the command line.

Every command takes ``--store URL``; without it ``$QFLOW_STORE``, else
``sqlite:///qflow.sqlite3`` (a file in the current directory).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from zoneinfo import ZoneInfo
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any

from qflow._render import _plural
from qflow.cli import PROG, UsageError, _existing_file, _incidents, _load, _open_input, _parse_now, _plugins
from qflow.clock import FakeClock, SystemClock
from qflow.engine import Engine, open_store
from qflow._intake import ATTACHED, NEW, RETRY
from qflow.errors import ConcurrencyError, InputError, QflowError, StoreUnavailableError
from qflow.model import Incident, IncidentState, Stage
from qflow.store import IncidentQuery, SchemaError, Store, StoreError

__all__ = ["DEFAULT_STORE", "add_commands", "durable", "store_url"]

DEFAULT_STORE = "sqlite:///qflow.sqlite3"
BATCH = 1000

_STORE_HELP = f"the store URL (default: $QFLOW_STORE, else {DEFAULT_STORE}, a file in the current directory)"

_DB_EPILOG = f"""\
examples:
  {PROG} db upgrade --store sqlite:///qflow.sqlite3
  {PROG} db upgrade --store sqlite:///qflow.sqlite3 rulesets/hotel-front-desk.yaml
  {PROG} db backup --store sqlite:///qflow.sqlite3 backups/qflow-2026-11-20.sqlite3
"""
_IMPORT_EPILOG = f"""\
Reads one incident per line (JSON Lines), decides each under RULESET and records
them in batches of {BATCH}, each batch one transaction. A line that is not a valid
incident is rejected whole (never half-written) and listed as FILE:LINE:1: CODE message;
the others go on. Repeated external ids are retries (nothing new is written), and so
is a line repeating a recorded incident's id with the same facts, so importing a file
again records nothing twice; a dedup_key within the ruleset's intake.dedup_window
attaches to the open incident. A blank external_id or dedup_key ("") is no key. A
reported_at further ahead of the intake time (--now) than intake.clock_skew (default
5m) is rejected: importing old reports with --now needs a time after them.
When the store fails part-way (a full disk, a lost database), the batches before are
kept: the summary and the hint say which lines are in, and --from-line N goes on
from the first one that is not. Ctrl-C or SIGTERM stops it the same way (exit 130).
exit status: 0 all lines imported, 1 some lines rejected or the store failed,
2 a usage error, 130 interrupted.

examples:
  {PROG} import rulesets/hotel-front-desk.incidents.jsonl rulesets/hotel-front-desk.yaml
  cat export.jsonl | {PROG} import - rules.yaml --store sqlite:///site.sqlite3
"""
_LS_EPILOG = f"""\
examples:
  {PROG} ls --open --team front-office
  {PROG} ls --overdue --now 2026-11-21T09:00:00+08:00 --format json
"""
_SHOW_EPILOG = f"""\
Prints the incident's state, its timeline and its outbox. The timeline has every
event with when, who (actor), what, which rule or plugin (source) and which ruleset
version decided it; escalation steps say which step, when it was due, the occurrence,
the steps skipped and who was told. The outbox lists every message planned for the
incident: its topic, channel, recipients, status (pending, delivered or dead, with the
fallback channel) and each delivery attempt.

Every time is shown in one zone: --tz when given, else the zone of RULESET when
given, else the offset the incident was reported with.

examples:
  {PROG} show INC-1
  {PROG} show INC-1 rulesets/hotel-front-desk.yaml --store sqlite:///qflow.sqlite3
  {PROG} show INC-1 --tz Asia/Shanghai
"""


def store_url(args: argparse.Namespace) -> str:
    return args.store or os.environ.get("QFLOW_STORE") or DEFAULT_STORE


@contextmanager
def _opened(args: argparse.Namespace, pm: Any | None = None, *, create: bool = True) -> Iterator[Store]:
    """The store of --store; with *create* False (commands that read or look after a
    store) a mistyped path is refused instead of made into an empty store."""
    url = store_url(args)
    try:
        store = open_store(url, pm if pm is not None else _plugins(args), create=create)
    except StoreError as exc:
        raise UsageError(str(exc), f"check --store (now {url})") from None
    try:
        yield store
    except StoreError as exc:
        raise UsageError(str(exc), None) from None
    finally:
        store.close()


def add_commands(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("db", parents=[common], formatter_class=fmt, epilog=_DB_EPILOG,
                       help="upgrade or back up a store", description="Look after a store: schema and backups.")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dbsub.add_parser("upgrade", help="migrate the store's schema forward (one transaction)")
    up.add_argument("--store", metavar="URL", help=_STORE_HELP)
    up.add_argument("ruleset", metavar="RULESET", nargs="?",
                    help="the ruleset in force: also record the clocks' due moments (what 'ls --overdue' reads) of "
                         "open incidents last written before qflow recorded them")
    bk = dbsub.add_parser("backup", help="copy an SQLite store while it stays in use")
    bk.add_argument("--store", metavar="URL", help=_STORE_HELP)
    bk.add_argument("dest", metavar="DEST", help="the new file to write the copy to")

    p = sub.add_parser("import", parents=[common], formatter_class=fmt, epilog=_IMPORT_EPILOG,
                       help="record incidents from a JSON Lines file",
                       description="Decide and record every incident of a JSON Lines file.")
    p.add_argument("file", metavar="FILE.jsonl", help="incidents, one JSON object per line ('-' reads stdin)")
    p.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    p.add_argument("--store", metavar="URL", help=_STORE_HELP)
    p.add_argument("--now", metavar="ISO", help="the time of intake (default: the current time); a line whose "
                   "reported_at is more than the ruleset's intake.clock_skew after it is refused")
    p.add_argument("--from-line", type=int, default=1, metavar="N",
                   help="start at line N, leaving the lines before it out (to go on after a failure)")

    p = sub.add_parser("ls", parents=[common], formatter_class=fmt, epilog=_LS_EPILOG,
                       help="list incidents with filters", description="List the incidents of a store.")
    p.add_argument("ruleset", metavar="RULESET", nargs="?", help="a ruleset, to show times in its time zone")
    p.add_argument("--store", metavar="URL", help=_STORE_HELP)
    p.add_argument("--team")
    p.add_argument("--severity")
    p.add_argument("--stage", action="append", choices=[s.value for s in Stage], help="repeatable")
    p.add_argument("--open", action="store_true", help="only incidents not closed or rejected")
    p.add_argument("--overdue", action="store_true", help="only open incidents with an SLA clock due before --now, as escalation reads the clocks: not paused (waiting on the customer), not met (acknowledged, answered, confirmed, closed; also late), resolve counted from a reopening; each listed with the clocks that make it overdue and since when (column 'overdue since', JSON 'overdue')")
    p.add_argument("--now", metavar="ISO", help="the time --overdue compares with (default: the current time)")
    p.add_argument("--limit", type=int, metavar="N")
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = sub.add_parser("show", parents=[common], formatter_class=fmt, epilog=_SHOW_EPILOG,
                       help="show one incident and its timeline", description="Show an incident's timeline.")
    p.add_argument("id", metavar="ID")
    p.add_argument("ruleset", metavar="RULESET", nargs="?", help="a ruleset, to show times in its time zone")
    p.add_argument("--store", metavar="URL", help=_STORE_HELP)
    p.add_argument("--tz", metavar="ZONE",
                   help="show times in ZONE: an IANA name (Asia/Shanghai), UTC, or an offset (+08:00); "
                        "default: RULESET's zone, else the offset the incident was reported with")
    return {"db": _cmd_db, "import": _cmd_import, "ls": _cmd_ls, "show": _cmd_show}


# -- db ------------------------------------------------------------------------------------


def _cmd_db(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    url = store_url(args)
    with _opened(args, create=False) as store:
        if args.db_command == "upgrade":
            before, after = store.upgrade()
            if before == after:
                out.write(f"{url}: schema version {after}, up to date\n")
            else:
                out.write(f"{url}: schema upgraded from version {before} to {after}\n")
            if args.ruleset:
                pm = _plugins(args)
                engine = Engine(_load(args.ruleset, pm), plugins=pm, store=store)
                done = engine.record_dues()
                out.write(f"{url}: recorded the clocks' due moments of {_plural(done, 'open incident')}\n")
            else:
                _warn_without_dues(store, url, err)
            return 0
        backup = getattr(store, "backup", None)
        if backup is None:
            raise UsageError(f"the store {url} cannot be backed up by qflow",
                             "use the database's own tools (pg_dump for PostgreSQL)")
        backup(args.dest)
        out.write(f"{url}: backed up to {args.dest}\n")
        return 0


# -- import --------------------------------------------------------------------------------


def _cmd_import(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if args.ruleset.endswith((".jsonl", ".json")) and args.file.endswith((".yaml", ".yml")):
        # Read the other way round, the incidents fail as a ruleset with a YAML error.
        raise UsageError(f"{args.ruleset} looks like the incidents and {args.file} like the ruleset",
                         f"the incidents file comes first: qflow import {args.ruleset} {args.file}")
    if args.file != "-":
        _existing_file(args.file, "incidents file")
    if args.from_line < 1:
        raise UsageError(f"argument --from-line: {args.from_line} is not a line number", "lines count from 1")
    url = store_url(args)
    durable(url, "import")
    pm = _plugins(args)
    ruleset = _load(args.ruleset, pm)
    clock = FakeClock(_parse_now(args.now)) if args.now else SystemClock(ZoneInfo(ruleset.timezone))
    shown = "<stdin>" if args.file == "-" else args.file
    rejected: list[tuple[int, str]] = []
    counts = {NEW: 0, ATTACHED: 0, RETRY: 0}
    stopped: _Stopped | None = None
    interrupted: int | None = None  # the first line not in, when Ctrl-C or SIGTERM stopped the import
    with _opened(args, pm) as store, _sigterm_interrupts():
        engine = Engine(ruleset, plugins=pm, store=store, clock=clock)
        size = os.path.getsize(args.file) if args.file != "-" else None
        with _open_input(args.file) as lines, _progress(err, size) as advance:
            batch: list[tuple[int, Incident]] = []  # lines leave it as they are recorded or rejected
            read = args.from_line - 1
            try:
                for number, item in _incidents(_from_line(_counting(lines, advance), args.from_line)):
                    read = number
                    if isinstance(item, str):
                        rejected.append((number, item))
                        continue
                    batch.append((number, item))
                    if len(batch) >= BATCH:
                        _import_batch(engine, batch, rejected, counts)
                if batch:
                    _import_batch(engine, batch, rejected, counts)
            except _Stopped as exc:
                stopped = exc
            except KeyboardInterrupt:
                # The batch in progress was rolled back; lines before it are in.
                interrupted = batch[0][0] if batch else read + 1
    rejected.sort()
    resume = stopped.line if stopped is not None else interrupted
    if resume is not None:  # what was read past the stop is read again on resuming
        rejected = [(n, m) for n, m in rejected if n < resume]
    for number, message in rejected:
        err.write(f"{shown}:{number}:1: {message}\n")
    out.write(f"imported {_plural(counts[NEW], 'incident')} from {shown} into {url}"
              f" ({counts[ATTACHED]} attached to open incidents, {counts[RETRY]} retries of recorded ones)\n")
    if resume is not None:
        first = args.from_line
        done = (f"lines {first}–{resume - 1} of {shown} are imported" if resume > first
                else f"nothing from line {first} of {shown} on is imported")
        listed = f" ({_plural(len(rejected), 'line')} rejected, listed above)" if rejected else ""
        again = f"run the same import with --from-line {resume} to go on without recording them twice"
        if stopped is None:
            err.write(f"{PROG}: interrupted\nhint: {done}{listed}; {again}\n")
            return 130
        err.write(f"{PROG}: error: {stopped.error}\nhint: {done}{listed}; once the store works again, {again}\n")
        return 1
    if rejected:
        err.write(f"{PROG}: {_plural(len(rejected), 'line')} rejected: "
                  f"{', '.join(str(n) for n, _ in rejected[:20])}{' ...' if len(rejected) > 20 else ''}; "
                  f"fix them and import those lines again\n")
        return 1
    return 0


class _Stopped(Exception):
    """The store failed while importing: lines from *line* on are not recorded."""

    def __init__(self, line: int, error: QflowError) -> None:
        super().__init__(line, error)
        self.line = line
        self.error = error


def _import_batch(engine: Engine, batch: list[tuple[int, Incident]], rejected: list[tuple[int, str]],
                  counts: dict[str, int]) -> None:
    """Record *batch*, emptying it as its lines are recorded or rejected: an interrupt
    leaves in it the lines that are not in."""
    try:
        _recorded(engine, batch[0][0], [i for _, i in batch], counts)
        batch.clear()
    except (InputError, ConcurrencyError):
        # One line spoils its batch (which wrote nothing): find it, line by line.
        while batch:
            number, incident = batch[0]
            try:
                _recorded(engine, number, [incident], counts)
            except (InputError, ConcurrencyError) as exc:
                rejected.append((number, f"QF402 {exc}"))
            del batch[0]


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops an import as Ctrl-C does, so it too says where to go on."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _recorded(engine: Engine, first: int, incidents: Sequence[Incident], counts: dict[str, int]) -> None:
    """Record *incidents* (from line *first* on) in one transaction and count what
    each turned out to be: this import's own, whatever other writers do meanwhile."""
    try:
        outcomes = engine.report_batch(incidents)
    except SchemaError:
        raise  # the store needs 'qflow db upgrade' before anything is written: a usage error
    except (StoreError, StoreUnavailableError) as exc:
        raise _Stopped(first, exc) from None
    for _, outcome in outcomes:
        counts[outcome] += 1


def durable(url: str, command: str) -> None:
    """Refuse a store that keeps nothing (``memory://``) for a command that writes and
    exits: it would report success and throw everything away."""
    if url.split(":", 1)[0] == "memory":
        raise UsageError(f"'{PROG} {command}' would record into {url}, which keeps nothing after the command ends",
                         f"give a store that keeps its data, e.g. --store {DEFAULT_STORE}")


def _from_line(lines: Iterable[bytes], first: int) -> Iterator[bytes]:
    # Lines before *first* keep their numbers and read as blank, which is skipped.
    for number, raw in enumerate(lines, 1):
        yield raw if number >= first else b""


def _counting(lines: Any, advance: Any) -> Iterator[bytes]:
    for raw in lines:
        advance(len(raw))
        yield raw


@contextmanager
def _progress(err: IO[str], total: int | None) -> Iterator[Any]:
    if not (hasattr(err, "isatty") and err.isatty()):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=Console(file=err), transient=True) as bar:
        task = bar.add_task("import", total=total)
        yield lambda n: bar.advance(task, n)


# -- ls and show ---------------------------------------------------------------------------


def _cmd_ls(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("argument --limit must be at least 1", "leave it out to list every incident")
    tz = None
    if args.ruleset:
        tz = ZoneInfo(_load(args.ruleset, _plugins(args)).timezone)
    query = IncidentQuery(
        stages=tuple(Stage(s) for s in args.stage) if args.stage else None, team=args.team, severity=args.severity,
        open_only=args.open, overdue_at=_parse_now(args.now) if args.overdue else None, limit=args.limit)
    late: dict[str, list[Any]] = {}
    with _opened(args, create=False) as store:
        states = store.query(query)
        if query.overdue_at is not None:
            _warn_without_dues(store, store_url(args), err)
            # What makes each overdue: its clocks due before --now, as the query read them.
            for due in store.due(query.overdue_at):
                if due.at < query.overdue_at:
                    late.setdefault(due.incident_id, []).append(due)
    rows = [_row(s, tz) for s in states]
    if query.overdue_at is not None:
        for row in rows:
            row["overdue"] = [{"clock": d.clock, "due": _iso(d.at, tz)} for d in late.get(row["id"], ())]
    if args.format == "json":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        out.write("no incidents match\n")
        return 0
    cols: tuple[str, ...] = ("id", "stage", "severity", "team", "owner", "reported_at", "respond_by", "title")
    if query.overdue_at is not None:  # what makes it overdue, in the place of the decided respond_by
        cols = tuple("overdue since" if c == "respond_by" else c for c in cols)
        for row in rows:
            row["overdue since"] = ", ".join(f"{d['clock']} {d['due']}" for d in row["overdue"])
    widths = {c: max(len(c), *(len(str(r[c] or "-")) for r in rows)) for c in cols}
    out.write("  ".join(c.ljust(widths[c]) for c in cols).rstrip() + "\n")
    for r in rows:
        out.write("  ".join(str(r[c] or "-").ljust(widths[c]) for c in cols).rstrip() + "\n")
    out.write(f"{_plural(len(rows), 'incident')}\n")
    return 0


def _warn_without_dues(store: Store, url: str, err: IO[str]) -> None:
    """Say so when open incidents are read by their decision's deadlines for want of
    recorded due moments (written before qflow recorded them)."""
    missing = store.without_dues()
    if missing:
        err.write(f"{PROG}: warning: {_plural(missing, 'open incident')} written before qflow recorded the "
                  "clocks' due moments: until their next change, overdue reads their decision's deadlines, which "
                  "know no pause, reset or severity change\n"
                  f"hint: record them with '{PROG} db upgrade --store {url} RULESET'\n")


def _iso(dt: datetime | None, tz: Any) -> str | None:
    if dt is None:
        return None
    return (dt.astimezone(tz) if tz is not None else dt).isoformat(timespec="minutes")


def _row(s: IncidentState, tz: Any) -> dict[str, Any]:
    d = s.decision
    inc = s.incident
    title = inc.title or inc.description
    return {"id": s.id, "stage": s.stage.value, "severity": d.severity if d else None,
            "team": d.team if d else None, "owner": d.owner if d else None,
            "reported_at": _iso(inc.reported_at, tz), "respond_by": _iso(d.respond_by if d else None, tz),
            "resolve_by": _iso(d.resolve_by if d else None, tz), "reports": s.reports,
            "title": title[:40] + ("…" if len(title) > 40 else "")}


def _cmd_show(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow._show import parse_zone, write_show

    tz = None
    if args.tz is not None:
        tz = parse_zone(args.tz)
        if tz is None:
            raise UsageError(f"argument --tz: unknown time zone '{args.tz}'",
                             "give an IANA name such as Asia/Shanghai, UTC, or an offset such as +08:00")
    elif args.ruleset:
        tz = ZoneInfo(_load(args.ruleset, _plugins(args)).timezone)
    with _opened(args, create=False) as store:
        state = store.get(args.id)
        if state is None:
            raise UsageError(f"no incident '{args.id}' in {store_url(args)}",
                             f"list them with '{PROG} ls --store {store_url(args)}'")
        events = store.events(args.id)
        messages = [(m, store.attempts(m.id)) for m in store.outbox(incident_id=args.id)]
    if tz is None:
        reported = state.incident.reported_at
        tz = reported.tzinfo if reported is not None and reported.tzinfo is not None else timezone.utc
    write_show(out, state, events, messages, tz)
    return 0
