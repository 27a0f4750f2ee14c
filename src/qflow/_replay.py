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
import gc
import itertools
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
    if d is None:
        return None
    key = (d.business, d.calendar)
    text = _SPANS.get(key)
    if text is None:
        if len(_SPANS) > 4096:  # a ruleset has a handful of spans; never let it grow unbounded
            _SPANS.clear()
        text = _SPANS[key] = f"{format_duration(d.business)} on {d.calendar}"
    return text


#: (business span, calendar) -> its text: summarize runs twice per replayed incident.
_SPANS: dict[tuple[Any, str], str] = {}


Summary = tuple[Any, ...]


def summarize(decision: Decision) -> Summary:
    """What a replay compares of a decision, as a small picklable tuple: the decided
    fields, then per clock its span and due time."""
    respond = resolve = None
    for d in decision.deadlines:  # the first deadline of each clock, as Decision.deadline
        if d.clock == "respond":
            if respond is None:
                respond = d
        elif d.clock == "resolve" and resolve is None:
            resolve = d
    return (decision.category, decision.severity, decision.priority, decision.team, decision.owner,
            decision.responsibility, _span(respond), None if respond is None else respond.due,
            _span(resolve), None if resolve is None else resolve.due)


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

    def state(self) -> tuple[int, int, list[tuple[int | None, str]], dict[str, dict[tuple[Any, Any], list[Any]]]]:
        """What :meth:`merge` takes: the tally without the rulesets' names (picklable)."""
        return self.total, self.changed, self.broken, self.kinds

    def merge(self, state: tuple[int, int, list[Any], dict[str, dict[tuple[Any, Any], list[Any]]]]) -> None:
        """Add the tally of the incidents that come after this one's (see :meth:`state`):
        the same counts, kinds in the same order and the same examples as one tally of all."""
        total, changed, broken, kinds = state
        self.total += total
        self.changed += changed
        self.broken.extend(broken)
        for field, theirs in kinds.items():
            mine = self.kinds[field]
            for key, (count, examples) in theirs.items():
                slot = mine.get(key)
                if slot is None:
                    mine[key] = [count, examples[:self.examples]]
                else:
                    slot[0] += count
                    slot[1].extend(examples[:self.examples - len(slot[1])])

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
    # The compiled rulesets live as long as the run: out of the collector's sight, so
    # the many short-lived decisions do not make it walk them again and again.
    gc.freeze()
    try:
        if args.input not in (None, "-") and jobs > 1 and os.path.isfile(args.input) and _can_fork():
            # Only a regular file can be split: stdin, a pipe or a device is read in one pass.
            _replay_in_parallel(args.input, now, old_engine, new_engine, replay)
        else:
            _replay_stream(_stream(args, pm), now, old_engine, new_engine, replay)
    finally:
        gc.unfreeze()
    for number, error in replay.broken:
        err.write(f"{source}:{number}: {error}\n" if number is not None else f"{source}: {error}\n")
    if args.format == "json":
        out.write(json.dumps(replay.as_json(), ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        for line in replay.text():
            out.write(line + "\n")
    if replay.broken:
        what = "line" if args.input is not None else "incident"
        others = "; the others were" if replay.total else ""
        err.write(f"{PROG}: {len(replay.broken)} of {_plural(replay.total + len(replay.broken), what)} "
                  f"could not be replayed (see above){others}\n")
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

    store = open_store(args.store, pm, create=False)
    try:
        for state in store.query(IncidentQuery()):
            yield None, state.incident
    finally:
        store.close()


def _replay_stream(stream: Iterable[tuple[int | None, Incident | str]], now: datetime | None, old: Engine,
                   new: Engine, replay: Replay) -> None:
    """Decide every incident of *stream* with both engines, at the time it was reported,
    and tally the differences into *replay*; a broken line is noted with its number."""
    broken, add = replay.broken.append, replay.add
    old_decide, new_decide = old.decide, new.decide
    for number, incident in stream:
        if isinstance(incident, str):
            broken((number, incident))
            continue
        when = incident.reported_at or now
        if when is None:
            broken((number, f"{incident.id or 'the incident'} has no reported_at; "
                            "give --now to decide such incidents at that time"))
            continue
        label = incident.id or (f"line {number}" if number is not None else "?")
        add(label, summarize(old_decide(incident, when)), summarize(new_decide(incident, when)))


def _numbered(lines: Iterable[bytes], first: int) -> Iterator[tuple[int, Incident | str]]:
    """``qflow.cli._incidents`` for a part of a file whose first line is number *first*."""
    from qflow.cli import _incidents

    if first == 1:
        yield from _incidents(lines)
        return
    # _incidents numbers from 1 and strips a byte-order mark from line 1 only: shift its
    # numbers, and give it a harmless first line so that no line of this part is "line 1".
    for number, item in _incidents(itertools.chain((b"\n",), lines)):
        yield number + first - 2, item


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _split(f: IO[bytes]) -> tuple[int, int]:
    """Where the second half of the file *f* starts: (byte offset, line number), at the
    start of the line after the one the middle falls in (the end when that is the last)."""
    size = f.seek(0, os.SEEK_END)
    f.seek(size // 2)
    f.readline()
    offset = f.tell()
    f.seek(0)
    lines = 0
    left = offset
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            break
        lines += chunk.count(b"\n")
        left -= len(chunk)
    f.seek(0)
    return offset, lines + 1


def _replay_in_parallel(input_path: str, now: datetime | None, old: Engine, new: Engine,
                        replay: Replay) -> None:
    """Replay the file's first half here and its second half in a forked child, each
    with both rulesets, then add the child's tally after this one's.

    Each process reads, parses and decides its own half, so nothing per incident
    crosses between them: only the child's tally (counts, a few examples per kind of
    change, its broken lines) comes back, and merged after the first half's it is what
    one process reading the whole file would have tallied.
    """
    import multiprocessing

    from qflow.cli import _open_input

    # fork, not spawn: the child gets the loaded, compiled rulesets as they are (compiled
    # rules are closures and do not pickle), and nothing is loaded twice.
    ctx = multiprocessing.get_context("fork")
    with _open_input(input_path) as f:  # one that cannot be read is a usage error, as with --jobs 1
        offset, first = _split(f)
        receive, send = ctx.Pipe(duplex=False)
        part = Replay(replay.old_ref, replay.new_ref, examples=replay.examples)
        child = ctx.Process(target=_child, args=(send, input_path, offset, first, now, old, new, part), daemon=True)
        child.start()
        send.close()
        answered = False
        try:
            _replay_stream(_numbered(_head(f, offset), 1), now, old, new, replay)
            try:
                status, theirs = receive.recv()
            except EOFError:
                status, theirs = "error", "the worker process ended without an answer"
            answered = True
        finally:
            receive.close()
            if not answered:  # this process failed first: the child's answer is not wanted
                child.terminate()
            child.join()
    if status != "ok":
        raise RuntimeError(f"replay worker failed: {theirs}")
    replay.merge(theirs)


def _head(f: IO[bytes], size: int) -> Iterator[bytes]:
    """The lines of *f* within its first *size* bytes (*size* falls at a line start)."""
    left = size
    for line in f:
        if left <= 0:
            return
        left -= len(line)
        yield line


def _child(send: Any, input_path: str, offset: int, first: int, now: datetime | None, old: Engine,
           new: Engine, part: Replay) -> None:
    try:
        with open(input_path, "rb") as f:  # its own: a shared descriptor would share the position
            f.seek(offset)
            _replay_stream(_numbered(f, first), now, old, new, part)
        send.send(("ok", part.state()))
    except Exception as exc:  # reported by the parent, which owns the terminal
        send.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()
