"""Laying a :class:`Report` out: terminal tables, CSV, an XLSX workbook, a
self-contained HTML page. The figures are the report's; nothing is computed here."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from html import escape
from typing import IO, Any

from qflow_assess import _svg
from qflow_assess._format import cell, delta, duration, label
from qflow_assess._kpis import KPI, UNDATED, Figure
from qflow_assess._report import Report

__all__ = ["render_csv", "render_html", "render_text", "render_xlsx", "rows"]


def _kpi_title(kpi: KPI, lang: str) -> str:
    return kpi.title_zh if lang == "zh" else kpi.title


#: The fishbone's six branches as the reader knows them (人机料法环测).
SIX_M_NAMES = {
    "en": {"man": "Man", "machine": "Machine", "method": "Method", "material": "Material",
           "measurement": "Measurement", "environment": "Environment"},
    "zh": {"man": "人", "machine": "机", "method": "法", "material": "料", "measurement": "测", "environment": "环"},
}


def _marked(report: Report, kpi: KPI) -> tuple[str, ...]:
    """What the people's formats mark *kpi* with † for: what it counts that the facts do
    not date, but rejections, which every figure leaves out and the note says once."""
    return tuple(u for u in report.undated(kpi) if u != "rejections")


def _dagger(report: Report, kpi: KPI) -> str:
    return " †" if _marked(report, kpi) else ""


def _as_then(report: Report, lang: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The note under the figures of a report as of a time before it was made: what the
    † figures count as it stood then, and what every figure does."""
    if not report.past or report.made_at is None:
        return []
    marked = {u for k in report.kpis for u in _marked(report, k)} | set(extra)
    things = [u for u in UNDATED if u in marked] + sorted(marked - set(UNDATED))
    made = report.made_at.astimezone(report.as_of.tzinfo).isoformat(timespec="minutes")
    as_of = report.as_of.isoformat(timespec="minutes")
    lines = [label("as_then", lang).format(made=made, as_of=as_of, things=_things(things, lang))] if things else []
    return lines + [label("as_then_all", lang).format(made=made)]


def _things(keys: Iterable[str], lang: str) -> str:
    """Keys of ``UNDATED`` (or a site metric's own) in words, one after the other."""
    words = []
    for key in keys:
        found = label(f"undated.{key}", lang)
        words.append(key if found == f"undated.{key}" else found)
    return ("；" if lang == "zh" else "; ").join(words)


def _ordered(sl: Any, report: Report) -> list[tuple[Any, Any]]:
    """A slice's groups in the order the ruleset defines them (severities most urgent
    first), the others by id after them, the one without a value (None) last."""
    place = {key: i for i, key in enumerate(report.names.get(sl.by or "", {}))}
    return sorted(sl.groups.items(), key=lambda kv: (kv[0] is None, place.get(kv[0], len(place)), str(kv[0])))


def _group(value: Any) -> str:
    return "—" if value is None else str(value)


def _named(report: Report, dim: str | None, value: Any) -> str:
    """A group as people know it: the name the ruleset gives it, else its id."""
    if value is None:
        return "—"
    return report.names.get(dim or "", {}).get(value) or str(value)


def rows(report: Report) -> Iterator[dict[str, Any]]:
    """Every figure as a flat record: view, group, kpi, value, n, numerator, denominator …"""
    def emit(view: str, group: Any, figures: dict[str, Figure], period: str) -> Iterator[dict[str, Any]]:
        for kpi in report.kpis:
            fig = figures.get(kpi.name)
            if fig is None:
                continue
            yield {"view": view, "period": period, "group": "" if group is None else group, "kpi": kpi.name,
                   "unit": kpi.unit, "value": fig.value, "n": fig.n, "numerator": fig.numerator,
                   "denominator": fig.denominator, "low_confidence": fig.low_confidence,
                   "not_as_of": ", ".join(report.undated(kpi)) or None,
                   **{f"extra.{k}": v for k, v in sorted(fig.extra.items())}}

    c = report.comparison
    for name, sl in (("period", c.current), ("previous", c.previous), ("last_year", c.last_year)):
        yield from emit(name, None, dict(sl.whole()), sl.period.label)
    for sl in report.slices:
        for group, figures in sorted(sl.groups.items(), key=lambda kv: (kv[0] is not None, str(kv[0]))):
            yield from emit(f"by {sl.by}", group, dict(figures), sl.period.label)


# -- terminal -------------------------------------------------------------------------


def render_text(report: Report, out: IO[str], *, lang: str = "en", width: int = 120) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=width, no_color=not getattr(out, "isatty", lambda: False)(),
                      highlight=False, emoji=False)
    L = lambda k: label(k, lang)  # noqa: E731
    c = report.comparison
    console.print(f"{report.title} — {L('period')} {report.period.label} "
                  f"({L('as_of')} {report.as_of.isoformat(timespec='minutes')}, {L('timezone')} {report.timezone})")
    t = Table(show_edge=False, pad_edge=False)
    for col in (L("kpi"), L("value"), L("n"), L("previous"), "Δ", L("last_year"), "Δ"):
        t.add_column(col, justify="left" if col == L("kpi") else "right")
    for kpi in report.kpis:
        now, prev, ly = (sl.whole().get(kpi.name) for sl in (c.current, c.previous, c.last_year))
        flag = " *" if now is not None and now.low_confidence else ""
        t.add_row(_kpi_title(kpi, lang) + _dagger(report, kpi), cell(kpi, now) + flag, str(now.n if now else 0),
                  cell(kpi, prev), delta(kpi, now, prev)[0], cell(kpi, ly), delta(kpi, now, ly)[0])
    console.print(t)
    console.print(f"* {L('low')}: n < {report.min_n}")
    for line in _as_then(report, lang):
        console.print(line, soft_wrap=True)  # one line each in a file; a terminal wraps it
    shown = [k for k in report.kpis if k.unit in ("rate", "duration")][:7]
    for sl in report.slices:
        t = Table(title=f"{L('by')} {L(sl.by or '')}", show_edge=False, pad_edge=False)
        t.add_column(L(sl.by or ""), no_wrap=True)  # a name is read whole; the figures' headers wrap
        for kpi in shown:
            t.add_column(_kpi_title(kpi, lang) + _dagger(report, kpi), justify="right")
        for group, figures in _ordered(sl, report):
            t.add_row(_named(report, sl.by, group), *[cell(k, figures.get(k.name)) + (" *" if figures.get(k.name) and
                                                                   figures[k.name].low_confidence else "")
                                    for k in shown])
        console.print(t)
    counts = ", ".join(f"{L(s)} {n}" for s, n in report.problem_counts)
    console.print(f"{L('problems')}: {counts}")
    for card in report.scorecards:
        total = "—" if card.total is None else f"{card.total:.1f}"
        console.print(f"{L('scorecards')} {card.subject}: {total}" + (" *" if card.low_confidence else ""))


# -- CSV ---------------------------------------------------------------------------------


def render_csv(report: Report, out: IO[str]) -> None:
    records = list(rows(report))
    fields: list[str] = []
    for r in records:
        fields.extend(k for k in r if k not in fields)
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})


# -- XLSX --------------------------------------------------------------------------------


def render_xlsx(report: Report, path: str, *, lang: str = "en") -> None:
    """One sheet per view, real number and date cells, frozen headers."""
    import xlsxwriter

    L = lambda k: label(k, lang)  # noqa: E731
    wb = xlsxwriter.Workbook(path, {"remove_timezone": True})
    head = wb.add_format({"bold": True, "bg_color": "#E4E7EB", "border": 1})
    pct = wb.add_format({"num_format": "0.0%"})
    num = wb.add_format({"num_format": "0.00"})
    when = wb.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    hours = wb.add_format({"num_format": "0.00"})

    def sheet(name: str, header: list[str]) -> Any:
        ws = wb.add_worksheet(name[:31])
        ws.write_row(0, 0, header, head)
        ws.freeze_panes(1, 0)
        ws.set_column(0, len(header) - 1, 16)
        return ws

    # A low-confidence figure in a slice reads grey and italic, and its row names it.
    low = {fmt: wb.add_format({**spec, "italic": True, "font_color": "#7b8794"})
           for fmt, spec in ((pct, {"num_format": "0.0%"}), (num, {"num_format": "0.00"}))}
    low[hours] = low[num]

    def value_cell(ws: Any, r: int, col: int, kpi: KPI, fig: Figure | None, flag: bool = False) -> None:
        def fmt(f: Any) -> Any:
            return low[f] if flag and fig is not None and fig.low_confidence else f
        if fig is None or fig.value is None:
            ws.write_blank(r, col, None)
        elif kpi.unit == "rate":
            ws.write_number(r, col, fig.value, fmt(pct))
        elif kpi.unit == "duration":
            ws.write_number(r, col, fig.value / 3600, fmt(hours))  # hours, business time
        else:
            ws.write_number(r, col, fig.value, fmt(num))

    c = report.comparison
    # What the workbook is: the periods its figures are of, and as of when.
    ws = sheet(L("report"), [L("item"), L("value")])
    ws.set_column(1, 1, 60)
    for i, (key, value) in enumerate((
            (L("title"), report.title), (L("period"), report.period.label), (L("previous"), c.previous.period.label),
            (L("last_year"), c.last_year.period.label), (L("as_of"), report.as_of.isoformat(timespec="minutes")),
            (L("timezone"), report.timezone), (L("ruleset"), report.ruleset),
            (L("low"), f"n < {report.min_n}"),
            *((L("not_as_of"), line) for line in _as_then(report, lang))), start=1):
        ws.write_string(i, 0, key)
        ws.write_string(i, 1, value)
    ws = sheet(L("figures"), [L("kpi"), "unit", L("value"), L("n"), L("numerator"), L("denominator"),
                              L("previous"), L("last_year"), L("low"), L("not_as_of")])
    for i, kpi in enumerate(report.kpis, start=1):
        now, prev, ly = (sl.whole().get(kpi.name) for sl in (c.current, c.previous, c.last_year))
        ws.write_string(i, 0, _kpi_title(kpi, lang) + _dagger(report, kpi))
        if _marked(report, kpi):
            ws.write_string(i, 9, _things(_marked(report, kpi), lang))
        ws.write_string(i, 1, "hours (business)" if kpi.unit == "duration" else kpi.unit)
        value_cell(ws, i, 2, kpi, now)
        ws.write_number(i, 3, now.n if now else 0)
        for col, v in ((4, now.numerator if now else None), (5, now.denominator if now else None)):
            ws.write_number(i, col, v) if v is not None else ws.write_blank(i, col, None)
        value_cell(ws, i, 6, kpi, prev)
        value_cell(ws, i, 7, kpi, ly)
        ws.write_boolean(i, 8, bool(now and now.low_confidence))
    for sl in report.slices:
        kpis = [k for k in report.kpis if k.unit != "count"]
        ws = sheet(f"{L('by')} {L(sl.by or '')}", [L(sl.by or ""), *[_kpi_title(k, lang) + _dagger(report, k)
                                                                     for k in kpis], L("low")])
        r = 1
        for group, figures in _ordered(sl, report):
            ws.write_string(r, 0, _group(group))
            for j, kpi in enumerate(kpis, start=1):
                value_cell(ws, r, j, kpi, figures.get(kpi.name), flag=True)
            flagged = [k.name for k in kpis if (f := figures.get(k.name)) is not None and f.low_confidence]
            ws.write_string(r, len(kpis) + 1, ", ".join(flagged))
            r += 1
    ws = sheet(L("problems"), [L("incident"), L("status"), "stage", L("category"), L("severity"), L("team"),
                               L("owner"), L("reported"), L("due"), L("summary")])
    for i, p in enumerate(report.problems, start=1):
        ws.write_row(i, 0, [p.incident_id, L(p.status), p.stage, p.category or "", p.severity or "", p.team or "",
                            p.owner or ""])
        ws.write_datetime(i, 7, _local(p.reported_at, report), when)
        if p.due is not None:
            ws.write_datetime(i, 8, _local(p.due, report), when)
        ws.write_string(i, 9, p.summary)
    if report.scorecards:
        ws = sheet(L("scorecards"), [L("subject"), L("component"), L("value"), L("score"), L("weight"), L("inputs"),
                                     L("total")])
        r = 1
        for card in report.scorecards:
            for comp in card.components:
                ws.write_string(r, 0, card.subject)
                ws.write_string(r, 1, comp.name)
                for col, v in ((2, comp.value), (3, comp.score)):
                    ws.write_number(r, col, v) if v is not None else ws.write_blank(r, col, None)
                ws.write_number(r, 4, comp.weight)
                ws.write_string(r, 5, comp.inputs)
                if card.total is not None:
                    ws.write_number(r, 6, card.total, num)
                r += 1
    ws = sheet(L("definitions"), [L("kpi"), "name", "version", L("numerator"), L("denominator"), L("membership")])
    for i, kpi in enumerate(report.kpis, start=1):
        ws.write_row(i, 0, [_kpi_title(kpi, lang), kpi.name, kpi.version, kpi.numerator, kpi.denominator,
                            kpi.membership])
    wb.close()


def _local(at: datetime, report: Report) -> datetime:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(report.timezone)).replace(tzinfo=None)


# -- HTML --------------------------------------------------------------------------------

_CSS = """
:root { --ink:#1f2933; --muted:#7b8794; --line:#e4e7eb; --good:#047857; --bad:#b91c1c; --accent:#2563eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "PingFang SC", sans-serif;
       color: var(--ink); margin: 0; background: #f5f7fa; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 48px; background: #fff; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 12px; margin-bottom: 20px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.meta { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .v { font-size: 26px; font-weight: 650; } .card .t { color: var(--muted); font-size: 12px; }
.good { color: var(--good); } .bad { color: var(--bad); } .low { color: var(--muted); font-style: italic; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; } th { background: #f0f2f5; font-weight: 600; }
td.s { text-align: left; white-space: normal; }
table.slice th { white-space: normal; vertical-align: bottom; font-size: 12px; }
table.slice td { font-size: 13px; }
figcaption .note { font-weight: 400; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; margin-top: 18px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; }
figcaption { font-weight: 600; margin-bottom: 6px; }
.note { color: var(--muted); font-size: 12px; }
@media print { body { background: #fff; } main { padding: 0; } .charts { break-inside: avoid; } }
"""


def render_html(report: Report, *, lang: str = "en") -> str:
    L = lambda k: label(k, lang)  # noqa: E731
    c = report.comparison
    whole, prev = dict(c.current.whole()), dict(c.previous.whole())
    by = {k.name: k for k in report.kpis}
    parts = [f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f'<title>{escape(report.title)} {escape(report.period.label)}</title><style>{_CSS}</style></head>'
             f'<body><main><header><h1>{escape(report.title)}</h1><div class="meta">{L("period")} '
             f'<b>{escape(report.period.label)}</b> · {L("as_of")} {report.as_of.isoformat(timespec="minutes")} · '
             f'{L("timezone")} {escape(report.timezone)} · {L("ruleset")} {escape(report.ruleset)}</div></header>']
    # headline cards
    parts.append('<section class="cards">')
    for name in ("on_time_respond", "on_time_resolve", "first_response_time", "time_to_resolve",
                 "resolution_rate", "csat", "recurrence_rate", "backlog"):
        kpi = by.get(name)
        if kpi is None:
            continue
        fig = whole.get(name)
        d_text, d_dir = delta(kpi, fig, prev.get(name))
        cls = {1: "good", -1: "bad", 0: ""}[d_dir]
        low = ' <span class="low">*</span>' if fig is not None and fig.low_confidence else ""
        parts.append(f'<div class="card"><div class="t">{escape(_kpi_title(kpi, lang) + _dagger(report, kpi))}</div>'
                     f'<div class="v">{cell(kpi, fig)}{low}</div>'
                     f'<div class="t {cls}">{d_text} {L("previous")}</div></div>')
    parts.append("</section>")
    # charts
    months = [sl.period.label for sl in report.trend]
    series = [(_kpi_title(by[n], lang), [sl.whole().get(n).value if sl.whole().get(n) else None
                                                               for sl in report.trend])
              for n in ("on_time_respond", "on_time_resolve") if n in by]
    parts.append('<section class="charts">')
    parts.append(f'<figure><figcaption>{L("trend")}</figcaption>{_svg.lines(months, series, title=L("trend"), empty=L("no_data"))}</figure>')
    parts.append(f'<figure><figcaption>{L("histogram")}</figcaption>'
                 f'{_svg.bars(list(report.histogram), title=L("histogram"), empty=L("no_data"))}</figure>')
    branches = [(SIX_M_NAMES.get(lang, SIX_M_NAMES["en"]).get(b, b), n) for b, n in report.pareto]
    # The causes of a past report's incidents are those recorded since too (their time is not in the facts).
    parts.append(f'<figure><figcaption>{L("pareto")}{" †" if report.past else ""}</figcaption>'
                 f'{_svg.pareto(branches, title=L("pareto"), cumulative=L("cumulative"), empty=L("no_data"))}</figure>')
    # Only the places where something came back, most repeats first: the chart is where to look next.
    places = [(p, float(r), f"{r} / {n} {L('incidents')}") for p, n, r in report.recurrence_by_place if r > 0][:8]
    parts.append(f'<figure><figcaption>{L("recurrence")} <span class="note">({L("repeats")})</span></figcaption>'
                 f'{_svg.hbars(places, title=L("recurrence"), color=_svg.PALETTE[3], empty=L("no_data"))}</figure>')
    parts.append("</section>")
    # the figures table
    parts.append(f'<h2>{L("figures")}</h2><table><tr><th>{L("kpi")}</th><th>{L("value")}</th><th>{L("n")}</th>'
                 f'<th>{L("mean")}</th><th>P90</th><th>{L("calendar")} ({L("median")})</th>'
                 f'<th>{L("previous")}</th><th>Δ</th><th>{L("last_year")}</th><th>Δ</th></tr>')
    for kpi in report.kpis:
        fig, p, ly = whole.get(kpi.name), prev.get(kpi.name), c.last_year.whole().get(kpi.name)
        extra = fig.extra if fig is not None else {}
        d1, dir1 = delta(kpi, fig, p)
        d2, dir2 = delta(kpi, fig, ly)
        cls = {1: "good", -1: "bad", 0: ""}
        low = ' <span class="low">*</span>' if fig is not None and fig.low_confidence else ""
        dur = kpi.unit == "duration"
        parts.append(f'<tr><td>{escape(_kpi_title(kpi, lang) + _dagger(report, kpi))}</td><td>{cell(kpi, fig)}{low}</td>'
                     f'<td>{fig.n if fig else 0}</td>'
                     f'<td>{duration(extra.get("mean")) if dur else ""}</td>'
                     f'<td>{duration(extra.get("p90")) if dur else ""}</td>'
                     f'<td>{duration(extra.get("median_calendar")) if dur else ""}</td>'
                     f'<td>{cell(kpi, p)}</td><td class="{cls[dir1]}">{d1}</td>'
                     f'<td>{cell(kpi, ly)}</td><td class="{cls[dir2]}">{d2}</td></tr>')
    parts.append(f'</table><p class="note">* {L("low")}: n &lt; {report.min_n}. {L("durations_note")}</p>')
    parts.extend(f'<p class="note">{escape(line)}</p>' for line in _as_then(report, lang, ("causes",)))
    # slices
    shown = [k for k in report.kpis if k.unit in ("rate", "duration")][:8]
    for sl in report.slices:
        parts.append(f'<h2>{L("by")} {L(sl.by or "")}</h2><table class="slice"><tr><th>{L(sl.by or "")}</th>'
                     + "".join(f"<th>{escape(_kpi_title(k, lang) + _dagger(report, k))}</th>" for k in shown)
                     + "</tr>")
        for group, figures in _ordered(sl, report):
            cells = []
            for k in shown:
                f = figures.get(k.name)
                low = ' class="low"' if f is not None and f.low_confidence else ""
                cells.append(f"<td{low}>{cell(k, f)}</td>")
            name = _named(report, sl.by, group)
            title = f' title="{escape(str(group))}"' if group is not None and name != str(group) else ""
            parts.append(f"<tr><td{title}>{escape(name)}</td>{''.join(cells)}</tr>")
        parts.append("</table>")
    # scorecards
    if report.scorecards:
        parts.append(f'<h2>{L("scorecards")}</h2><table><tr><th>{L("subject")}</th><th>{L("total")}</th>'
                     f'<th class="s">{L("component")}: {L("score")} × {L("weight")} ({L("inputs")})</th></tr>')
        for card in report.scorecards:
            total = "—" if card.total is None else f"{card.total:.1f}"
            comps = "; ".join(f"{escape(x.name)}: {'—' if x.score is None else f'{x.score:.0f}'} × {x.weight:g} "
                              f"({escape(x.inputs)})" for x in card.components)
            parts.append(f'<tr><td>{escape(card.subject)}</td><td>{total}</td><td class="s">{comps}</td></tr>')
        parts.append("</table>")
    # the problem list
    counts = " · ".join(f"{L(s)} {n}" for s, n in report.problem_counts)
    parts.append(f'<h2>{L("problems")}</h2><p class="meta">{counts}</p><table><tr><th>{L("incident")}</th>'
                 f'<th>{L("status")}</th><th class="s">{L("summary")}</th><th>{L("category")}</th>'
                 f'<th>{L("team")}</th><th>{L("owner")}</th><th>{L("due")}</th></tr>')
    for p in report.problems:
        due = _local(p.due, report).strftime("%Y-%m-%d %H:%M") if p.due else "—"
        parts.append(f'<tr><td>{escape(p.incident_id)}</td><td>{L(p.status)}</td><td class="s">{escape(p.summary)}</td>'
                     f'<td>{escape(p.category or "—")}</td><td>{escape(p.team or "—")}</td>'
                     f'<td>{escape(p.owner or "—")}</td><td>{due}</td></tr>')
    parts.append("</table>")
    # definitions, so a figure can be checked against what it claims to count
    parts.append(f'<h2>{L("definitions")}</h2><table><tr><th>{L("kpi")}</th><th class="s">{L("numerator")}</th>'
                 f'<th class="s">{L("denominator")}</th><th>{L("membership")}</th></tr>')
    for kpi in report.kpis:
        parts.append(f'<tr><td>{escape(_kpi_title(kpi, lang))} <span class="note">{kpi.name} v{kpi.version}</span></td>'
                     f'<td class="s">{escape(kpi.numerator)}</td><td class="s">{escape(kpi.denominator)}</td>'
                     f'<td>{escape(kpi.membership)}</td></tr>')
    parts.append("</table></main></body></html>")
    return "".join(parts)


def to_string(render: Any, report: Report, **kw: Any) -> str:
    buf = io.StringIO()
    render(report, buf, **kw)
    return buf.getvalue()
