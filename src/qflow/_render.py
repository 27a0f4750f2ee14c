"""Text the ``qflow`` command prints: aligned tables (Chinese counts double), times in
the ruleset's zone, and the readable explanation of a decision."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from qflow._convert import format_duration
from qflow.model import (
    Decision,
    Incident,
)
from qflow.ruleset import Ruleset

__all__ = ["COLLAPSE_AFTER", "render_explanation"]

#: Runs of more non-matching rules than this are folded into one line by ``explain``.
COLLAPSE_AFTER = 15


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _width(text: str) -> int:
    """Columns *text* takes in a terminal (CJK characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
               for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _table(rows: Sequence[Sequence[str]], *, sep: str = "  ", indent: str = "") -> list[str]:
    """Align *rows* (the first is the header) into columns; the last column is not padded."""
    if not rows:
        return []
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [_pad(c, widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        lines.append((indent + sep.join(cells)).rstrip())
    return lines


def _iso(dt: datetime | None, tz: ZoneInfo) -> str | None:
    return None if dt is None else dt.astimezone(tz).isoformat()


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if _width(text) <= n else _cut(text, n - 1) + "…"


def _cut(text: str, n: int) -> str:
    out, used = [], 0
    for c in text:
        w = _width(c)
        if used + w > n:
            break
        out.append(c)
        used += w
    return "".join(out)


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


# ---------------------------------------------------------------------------
# qflow check
# ---------------------------------------------------------------------------


_DECIDED = ("category", "severity", "priority", "team", "owner", "responsibility")


def render_explanation(incident: Incident, decision: Decision, ruleset: Ruleset, *,
                       show_all: bool = False) -> list[str]:
    """The decision for *incident* and its trace, as lines a person reads top to bottom."""
    tz = ZoneInfo(ruleset.timezone)
    lines: list[str] = []
    head = [("incident", incident.id or "(no id)")]
    if incident.reported_at is not None:
        head.append(("reported", _when(incident.reported_at, tz)))
    tier = incident.customer.tier if incident.customer else None
    facts = ", ".join(f"{k} {v}" for k, v in (("channel", incident.channel), ("category", incident.category),
                                                ("place", incident.place), ("customer tier", tier)) if v)
    if facts:
        head.append(("facts", facts))
    text = incident.title or incident.description
    if text:
        head.append(("says", _short(text, 72)))
    head += [("decided at", _when(decision.decided_at, tz)), ("ruleset", f"{decision.ruleset} ({ruleset.timezone})")]
    lines += _table([(f"{k}:", v) for k, v in head], sep=" ")

    lines += ["", "decision:"]
    rows: list[tuple[str, ...]] = []
    for field in _DECIDED:
        value = getattr(decision, field)
        source = decision.sources.get(field)
        if value is None:
            why = "not set: no rule sets it"
        elif source:
            why = f"from {source}"
        else:
            why = "as reported" if field == "category" and value == incident.category else ""
        rows.append((field, _show(value), why))
    lines += _table(rows, indent="  ")

    lines += ["", "deadlines:"]
    if decision.deadlines:
        rows = [("clock", "due", "left", "business time", "calendar time", "counted from")]
        for d in decision.deadlines:
            rows.append((d.clock, _when(d.due, tz), _left(d.due - decision.decided_at),
                         f"{format_duration(d.business)} on {d.calendar}", format_duration(d.elapsed),
                         _when(d.start, tz)))
        lines += _table(rows, indent="  ")
    else:
        lines.append("  none: the severity has no committed times" if decision.severity
                     else "  none: no severity was decided")

    lines += ["", "why:"]
    steps = list(decision.trace.steps)
    sections: dict[str, list[Any]] = {}
    for step in steps:
        sections.setdefault(step.section, []).append(step)
    # Sections whose rules decided something first (classify, route ...), notes last.
    ordered = sorted(sections.items(), key=lambda kv: all(s.outcome == "info" for s in kv[1]))
    rule_w = min(28, max((_width(s.rule or "") for s in steps), default=0))
    out_w = max((_width(s.outcome) for s in steps), default=0)
    for section, group in ordered:
        lines.append(f"  {section}")
        for kind, item in _runs(group, show_all):
            if kind == "fold":
                first, last = item[0].rule or "?", item[-1].rule or "?"
                lines.append(f"    {_pad('no match', out_w)}  {_pad(f'{len(item)} rules', rule_w)}  "
                             f"'{first}' … '{last}' did not match (--all lists them)")
            else:
                lines.append(f"    {_pad(item.outcome, out_w)}  {_pad(item.rule or '', rule_w)}  {item.reason}"
                             .rstrip())
    if not steps:
        lines.append("  no plugin explained this decision")
    return lines


def _runs(steps: Sequence[Any], show_all: bool) -> Iterator[tuple[str, Any]]:
    """Steps one by one, with runs of more than COLLAPSE_AFTER non-matches folded."""
    i = 0
    while i < len(steps):
        j = i
        while j < len(steps) and steps[j].outcome == "no match":
            j += 1
        if j - i > COLLAPSE_AFTER and not show_all:
            yield "fold", steps[i:j]
            i = j
            continue
        end = max(j, i + 1)
        for s in steps[i:end]:
            yield "step", s
        i = end


def _left(delta: timedelta) -> str:
    """``in 1h30m`` or ``2h overdue``."""
    if delta < timedelta(0):
        return f"{format_duration(-delta)} overdue"
    return f"in {format_duration(delta)}"


def _when(dt: datetime, tz: ZoneInfo) -> str:
    """``2026-11-20 23:10 +08:00`` (seconds only when there are some)."""
    local = dt.astimezone(tz)
    fmt = "%Y-%m-%d %H:%M:%S" if local.second or local.microsecond else "%Y-%m-%d %H:%M"
    return f"{local.strftime(fmt)} {_offset(local)}"


def _offset(dt: datetime) -> str:
    off = dt.utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# ---------------------------------------------------------------------------
# qflow demo
# ---------------------------------------------------------------------------
