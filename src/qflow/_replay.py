"""``qflow replay``: what a ruleset change would change, measured on past incidents.

Both rulesets decide every incident at the moment it was reported (``decide`` is
pure, so this is what each would have decided live). Changes are counted per field
and per kind (``severity normal → high``), with a few incident ids of each kind to
look at. Deadlines are compared by their committed span and calendar
(``4h on office → 1h on office``), so one kind of change is one line however many
different due times it moves.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO, Any

from qflow._convert import format_duration
from qflow._render import _plural, _table
from qflow.engine import Engine
from qflow.model import Decision, Deadline, Incident

__all__ = ["FIELDS", "Replay", "run_replay", "summarize"]

_DECIDED = ("category", "severity", "priority", "team", "owner", "responsibility")
_CLOCKS = ("respond", "resolve")
#: The fields a replay compares, in the order it reports them.
FIELDS = (*_DECIDED, *_CLOCKS)


def _span(d: Deadline | None) -> str | None:
    return None if d is None else f"{format_duration(d.business)} on {d.calendar}"


Summary = tuple[Any, ...]


def summarize(decision: Decision) -> Summary:
    """What a replay compares of a decision, as a small picklable tuple: the decided
    fields, then per clock its span and due time."""
    out: list[Any] = [getattr(decision, f) for f in _DECIDED]
    for clock in _CLOCKS:
        d = decision.deadline(clock)
        out += [_span(d), d.due if d is not None else None]
    return tuple(out)


class Replay:
    """Tallies the differences between two rulesets' decisions, incident by incident."""

    def __init__(self, old_ref: str, new_ref: str, *, examples: int = 3) -> None:
        self.old_ref, self.new_ref = old_ref, new_ref
        self.examples = examples
        self.total = 0
        self.changed = 0
        self.broken: list[tuple[int | None, str]] = []
        # field -> (from, to) -> [count, example ids]
        self.kinds: dict[str, dict[tuple[Any, Any], list[Any]]] = {f: {} for f in FIELDS}

    def add(self, label: str, a: Summary, b: Summary) -> None:
        self.total += 1
        if a == b:
            return
        self.changed += 1
        for i, f in enumerate(_DECIDED):
            if a[i] != b[i]:
                self._note(f, a[i], b[i], label)
        n = len(_DECIDED)
        for j, clock in enumerate(_CLOCKS):
            ka, da, kb, db = a[n + 2 * j], a[n + 2 * j + 1], b[n + 2 * j], b[n + 2 * j + 1]
            if ka != kb:
                self._note(clock, ka, kb, label)
            elif da != db:
                # Same commitment, other due time: a calendar changed under it.
                self._note(clock, ka, f"{kb}, due {'later' if db > da else 'earlier'}", label)

    def _note(self, field: str, before: Any, after: Any, label: str) -> None:
        slot = self.kinds[field].get((before, after))
        if slot is None:
            slot = self.kinds[field][(before, after)] = [0, []]
        slot[0] += 1
        if len(slot[1]) < self.examples:
            slot[1].append(label)

    def field_counts(self) -> dict[str, int]:
        return {f: sum(n for n, _ in kinds.values()) for f, kinds in self.kinds.items()}

    def changes(self, field: str) -> list[tuple[Any, Any, int, list[str]]]:
        """The kinds of change of *field*, most frequent first."""
        rows = [(a, b, n, ex) for (a, b), (n, ex) in self.kinds[field].items()]
        return sorted(rows, key=lambda r: (-r[2], str(r[0]), str(r[1])))

    # -- output ------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        return {
            "old": self.old_ref, "new": self.new_ref, "incidents": self.total, "changed": self.changed,
            "broken": [{"line": n, "error": e} for n, e in self.broken],
            "fields": {f: {"changed": n, "changes": [{"from": a, "to": b, "count": c, "examples": ex}
                                                     for a, b, c, ex in self.changes(f)]}
                       for f, n in self.field_counts().items()},
        }

    def text(self) -> Iterable[str]:
        share = f" ({100 * self.changed / self.total:.1f}%)" if self.total else ""
        yield f"replay: {_plural(self.total, 'incident')}, {self.old_ref} (old) → {self.new_ref} (new)"
        if not self.changed:
            yield "no decision changes"
            return
        yield f"{self.changed} of {_plural(self.total, 'incident')} would change{share}"
        yield ""
        counts = self.field_counts()
        yield from _table([("field", "changed")] + [(f, str(n)) for f, n in counts.items()], indent="  ")
        for f, n in counts.items():
            if not n:
                continue
            yield ""
            yield f
            rows = [(f"{_show(a)} → {_show(b)}", f"{_plural(c, 'incident')}, e.g. {', '.join(ex)}")
                    for a, b, c, ex in self.changes(f)]
            # A header row keeps _table's column logic; it is dropped from the output.
            yield from _table([("", "")] + rows, indent="  ")[1:]


def _show(value: Any) -> str:
    return "(unset)" if value is None else str(value)


def run_replay(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow.cli import PROG, UsageError, _existing_file, _load, _parse_now, _plugins

    now = _parse_now(args.now) if args.now else None
    if args.input is not None and args.input != "-":
        _existing_file(args.input, "input file")
    if args.examples < 1:
        raise UsageError("--examples must be at least 1", "e.g. --examples 5")
    jobs = args.jobs if args.jobs is not None else min(2, os.cpu_count() or 1)
    if jobs < 1:
        raise UsageError("--jobs must be at least 1", "e.g. --jobs 2, or 1 to stay in one process")
    pm = _plugins(args)
    old, new = _load(args.old, pm), _load(args.new, pm)
    replay = Replay(old.ref, new.ref, examples=args.examples)
    source = args.input if args.input is not None else args.store
    old_engine, new_engine = Engine(old, plugins=pm), Engine(new, plugins=pm)
    if args.input is not None and args.input != "-" and jobs > 1 and _can_fork():
        # Each ruleset in its own process: a forked child decides the stream with the
        # new ruleset while this process does the old one, then hands its rows over.
        a_rows, b_rows = _decide_in_parallel(args.input, now, old_engine, new_engine)
        for (number, label, a), (_, _, b) in zip(a_rows, b_rows, strict=True):
            if isinstance(a, str):
                replay.broken.append((number, a))
            else:
                replay.add(label, a, b)
    else:
        for number, incident in _stream(args, pm):
            row = _row(number, incident, now, old_engine)
            if isinstance(row[2], str):
                replay.broken.append((number, row[2]))
            else:
                replay.add(row[1], row[2], _row(number, incident, now, new_engine)[2])
    for number, error in replay.broken:
        err.write(f"{source}:{number}: {error}\n" if number is not None else f"{source}: {error}\n")
    if args.format == "json":
        out.write(json.dumps(replay.as_json(), ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        for line in replay.text():
            out.write(line + "\n")
    if replay.broken:
        what = "line" if args.input is not None else "incident"
        err.write(f"{PROG}: {len(replay.broken)} of {_plural(replay.total + len(replay.broken), what)} "
                  f"could not be replayed (see above); the others were\n")
        return 1
    return 1 if args.fail_on_change and replay.changed else 0


def _stream(args: argparse.Namespace, pm: Any) -> Iterator[tuple[int | None, Incident | str]]:
    from qflow.cli import _incidents, _open_input

    if args.input is not None:
        with _open_input(args.input) as lines:
            yield from _incidents(lines)
        return
    from qflow.engine import open_store
    from qflow.store import IncidentQuery

    store = open_store(args.store, pm)
    try:
        for state in store.query(IncidentQuery()):
            yield None, state.incident
    finally:
        store.close()


def _row(number: int | None, incident: Incident | str, now: datetime | None,
         engine: Engine) -> tuple[int | None, str, Summary | str]:
    """One input incident decided: (line, label, summary), or the error in place of the summary."""
    if isinstance(incident, str):
        return number, "", incident
    when = incident.reported_at or now
    if when is None:
        return number, "", (f"{incident.id or 'the incident'} has no reported_at; "
                            "give --now to decide such incidents at that time")
    label = incident.id or (f"line {number}" if number is not None else "?")
    return number, label, summarize(engine.decide(incident, when))


def _decide_all(input_path: str, now: datetime | None, engine: Engine) -> list[tuple[int | None, str, Summary | str]]:
    from qflow.cli import _incidents, _open_input

    with _open_input(input_path) as lines:
        return [_row(number, incident, now, engine) for number, incident in _incidents(lines)]


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _decide_in_parallel(input_path: str, now: datetime | None, old: Engine,
                        new: Engine) -> tuple[list[Any], list[Any]]:
    import multiprocessing

    # fork, not spawn: the child gets the loaded, compiled ruleset as it is (compiled
    # rules are closures and do not pickle), and nothing is loaded twice.
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, input_path, now, new), daemon=True)
    child.start()
    send.close()
    try:
        mine = _decide_all(input_path, now, old)
        status, theirs = receive.recv()
    except EOFError:
        status, theirs = "error", "the worker process ended without an answer"
    finally:
        receive.close()
        child.join()
    if status != "ok":
        raise RuntimeError(f"replay worker failed: {theirs}")
    return mine, theirs


def _child(send: Any, input_path: str, now: datetime | None, engine: Engine) -> None:
    try:
        send.send(("ok", _decide_all(input_path, now, engine)))
    except Exception as exc:  # reported by the parent, which owns the terminal
        send.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()
