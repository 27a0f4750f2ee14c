"""The process's forms, filled from the event log: the anomaly report form, the
cause-analysis sheet (5-Why and a drawn fishbone), the action tracking ledger and
the verification sheet — for one incident or every incident of a period, as
printable HTML or an XLSX workbook, in English or Chinese."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from qflow import Engine, IncidentQuery, IncidentState, InputError

__all__ = ["FORMS", "render_form"]

FORMS = ("report", "cause", "actions", "verification")
SIX_M = ("man", "machine", "method", "material", "measurement", "environment")

_T: dict[str, dict[str, str]] = {
    "en": {
        "report": "Anomaly report form", "cause": "Cause analysis sheet", "actions": "Corrective action tracking ledger",
        "verification": "Effect verification sheet", "id": "Incident", "reported_at": "Reported",
        "occurred_at": "Occurred", "channel": "Channel", "place": "Place", "asset": "Asset", "reporter": "Reporter",
        "customer": "Customer", "title": "Title", "description": "What was observed", "scope": "Impact scope",
        "impact": "Impact", "urgency": "Urgency", "attachments": "Attachments", "category": "Category",
        "severity": "Severity", "priority": "Priority", "team": "Team", "owner": "Owner",
        "responsibility": "Responsibility", "stage": "Stage", "deadlines": "Commitments", "clock": "Clock",
        "due": "Due", "summary": "Cause", "method": "Method", "branch": "6M branch", "confirmed": "Confirmed",
        "whys": "5-Why chain", "why": "Why?", "because": "Because", "root": "root cause", "evidence": "Evidence",
        "fishbone": "Fishbone", "kind": "Kind", "action": "Action", "target": "Measurable target",
        "feasibility": "Feasibility", "expected_effect": "Expected effect", "status": "Status",
        "done_at": "Done", "ledger": "Ledger", "at": "When", "by": "By", "note": "Note", "percent": "%",
        "result": "Result", "verifier": "Verifier", "metric": "Metric", "baseline": "Baseline", "after": "After",
        "windows": "Windows", "none": "none recorded", "signed": "Signature / date",
        "man": "Man", "machine": "Machine", "method_b": "Method", "material": "Material",
        "measurement": "Measurement", "environment": "Environment", "effect": "Effect",
    },
    "zh": {
        "report": "异常报告单", "cause": "原因分析表", "actions": "整改措施跟踪台账", "verification": "效果验证表",
        "id": "编号", "reported_at": "报告时间", "occurred_at": "发生时间", "channel": "报告渠道", "place": "地点",
        "asset": "设备/资产", "reporter": "报告人", "customer": "客户", "title": "标题", "description": "异常描述",
        "scope": "影响范围", "impact": "影响程度", "urgency": "紧急程度", "attachments": "附件", "category": "异常类型",
        "severity": "严重度", "priority": "优先级", "team": "责任部门", "owner": "责任人", "responsibility": "责任归属",
        "stage": "阶段", "deadlines": "承诺时限", "clock": "时钟", "due": "期限", "summary": "原因",
        "method": "分析方法", "branch": "6M 分类", "confirmed": "已确认", "whys": "5-Why 分析", "why": "为什么",
        "because": "因为", "root": "根本原因", "evidence": "证据", "fishbone": "鱼骨图", "kind": "类型",
        "action": "措施", "target": "可衡量目标", "feasibility": "可行性", "expected_effect": "预期效果",
        "status": "状态", "done_at": "完成时间", "ledger": "跟踪记录", "at": "时间", "by": "记录人", "note": "说明",
        "percent": "进度%", "result": "结论", "verifier": "验证人", "metric": "指标", "baseline": "基线",
        "after": "措施后", "windows": "观察期", "none": "无记录", "signed": "签字 / 日期",
        "man": "人", "machine": "机", "method_b": "法", "material": "料", "measurement": "测", "environment": "环",
        "effect": "问题",
    },
}


def _v(x: Any) -> str:
    if x is None:
        return "—"
    return str(getattr(x, "value", x))


class _Form:
    def __init__(self, lang: str, tz: ZoneInfo) -> None:
        self.t = _T.get(lang, _T["en"])
        self.tz = tz

    def when(self, at: datetime | None) -> str:
        return at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M") if at else "—"

    # -- the content of each form, as (heading, rows) tables -----------------------------

    def report(self, s: IncidentState) -> list[tuple[str, list[list[str]]]]:
        t, inc, d = self.t, s.incident, s.decision
        who = lambda p: " ".join(x for x in (p.name, p.id, p.contact) if x) if p else "—"  # noqa: E731
        facts = [[t["id"], s.id], [t["reported_at"], self.when(inc.reported_at)],
                 [t["occurred_at"], self.when(inc.occurred_at)], [t["channel"], _v(inc.channel)],
                 [t["place"], _v(inc.place)], [t["asset"], _v(inc.asset)], [t["reporter"], who(inc.reporter)],
                 [t["customer"], who(inc.customer)], [t["title"], _v(inc.title)],
                 [t["description"], inc.description or "—"], [t["scope"], _v(inc.scope)],
                 [t["impact"], _v(inc.impact)], [t["urgency"], _v(inc.urgency)],
                 [t["attachments"], ", ".join(f"{a.kind}: {a.ref}" for a in inc.attachments) or "—"]]
        decided = [[t["category"], _v(d.category if d else inc.category)], [t["severity"], _v(d and d.severity)],
                   [t["priority"], _v(d and d.priority)], [t["team"], _v(d and d.team)],
                   [t["owner"], _v(d and d.owner)], [t["responsibility"], _v(d and d.responsibility)],
                   [t["stage"], s.stage.value]]
        clocks = [[t["clock"], t["due"]]] + [[dl.clock, self.when(dl.due)] for dl in (d.deadlines if d else ())]
        return [(t["report"], facts), ("", decided), (t["deadlines"], clocks)]

    def cause(self, s: IncidentState) -> list[tuple[str, list[list[str]]]]:
        t = self.t
        out: list[tuple[str, list[list[str]]]] = []
        head = [[t["summary"], t["method"], t["branch"], t["confirmed"], t["evidence"]]]
        rows = [[c.summary, c.method, _v(c.branch), "✓" if c.confirmed else "",
                 "; ".join(f"{e.kind}: {e.ref}" + (f" ({e.added_by})" if e.added_by else "") for e in c.evidence) or "—"]
                for c in s.causes]
        out.append((f"{t['cause']} — {s.id}", head + (rows or [[t["none"], "", "", "", ""]])))
        for c in s.causes:
            if c.whys:
                chain = [[t['why'], t["because"]]] + [
                    [f"{i}. {w.why}", w.because + (f"  ← {t['root']}" if w.root else "")]
                    for i, w in enumerate(c.whys, start=1)]
                out.append((f"{t['whys']}: {c.summary}", chain))
        return out

    def actions(self, s: IncidentState) -> list[tuple[str, list[list[str]]]]:
        t = self.t
        head = [[t["action"], t["kind"], t["owner"], t["due"], t["target"], t["feasibility"], t["expected_effect"],
                 t["status"], t["done_at"]]]
        rows = [[f"{a.id} {a.description}", _v(a.kind), a.owner, self.when(a.due), _v(a.target),
                 _v(getattr(a, "feasibility", None)), _v(getattr(a, "expected_effect", None)), _v(a.status),
                 self.when(a.done_at)] for a in s.actions]
        out = [(f"{t['actions']} — {s.id}", head + (rows or [[t["none"]] + [""] * 8]))]
        for a in s.actions:
            entries = getattr(a, "ledger", ())
            if entries:
                out.append((f"{t['ledger']}: {a.id}", [[t["at"], t["kind"], t["note"], t["by"], t["percent"], t["due"]]] + [
                    [self.when(e.at), _v(e.kind), e.note, _v(e.by), _v(e.percent), self.when(e.due)] for e in entries]))
        return out

    def verification(self, s: IncidentState) -> list[tuple[str, list[list[str]]]]:
        t = self.t
        out = []
        if not s.verifications:
            out.append((f"{t['verification']} — {s.id}", [[t["none"]]]))
        for i, v in enumerate(s.verifications, start=1):
            rows = [[t["result"], _v(v.result)], [t["method"], v.method], [t["verifier"], _v(v.verifier)],
                    [t["at"], self.when(v.at)], [t["note"], _v(v.note)],
                    [t["windows"], f"{self.when(getattr(v, 'baseline_from', None))} → "
                                   f"{self.when(getattr(v, 'measured_from', None))} → "
                                   f"{self.when(getattr(v, 'after_until', None))}"],
                    [t["evidence"], "; ".join(f"{e.kind}: {e.ref}" for e in getattr(v, "evidence", ())) or "—"]]
            out.append((f"{t['verification']} — {s.id} #{i}", rows))
            figures = getattr(v, "figures", ())
            if figures:
                out.append(("", [[t["metric"], t["baseline"], t["after"], t["result"]]] +
                            [[f.metric, _v(f.baseline), _v(f.after), _v(f.result)] for f in figures]))
        return out

    # -- the fishbone ----------------------------------------------------------------------

    def fishbone(self, s: IncidentState) -> str:
        """An Ishikawa diagram: the effect at the head, the six M branches, each cause on
        its branch (the confirmed one in bold)."""
        t = self.t
        width, height, spine_y = 900, 360, 180
        head_x = width - 150
        parts = [f'<line x1="40" y1="{spine_y}" x2="{head_x}" y2="{spine_y}" stroke="#1f2933" stroke-width="3"/>',
                 f'<rect x="{head_x}" y="{spine_y - 34}" width="140" height="68" rx="6" fill="#fde68a" stroke="#1f2933"/>',
                 f'<text x="{head_x + 70}" y="{spine_y - 8}" text-anchor="middle" font-weight="600">{escape(t["effect"])}</text>',
                 f'<text x="{head_x + 70}" y="{spine_y + 14}" text-anchor="middle">{escape(s.id)}</text>']
        by_branch: dict[str, list[Any]] = {b: [] for b in SIX_M}
        for c in s.causes:
            by_branch.setdefault(c.branch or "method", []).append(c)
        slots = [(i % 3, i // 3) for i in range(6)]  # three along the spine, above and below
        for (col, row), branch in zip(slots, SIX_M, strict=True):
            x_end = 140 + col * 210
            top = row == 0
            y_tip = 40 if top else height - 40
            parts.append(f'<line x1="{x_end - 90}" y1="{y_tip}" x2="{x_end + 40}" y2="{spine_y}" stroke="#52606d" stroke-width="2"/>')
            name = t["method_b"] if branch == "method" else t.get(branch, branch)
            parts.append(f'<text x="{x_end - 96}" y="{y_tip + (-8 if top else 18)}" font-weight="600">{escape(name)}</text>')
            for k, c in enumerate(by_branch.get(branch, [])[:4]):
                frac = (k + 1) / 5
                cx = x_end - 90 + 130 * frac
                cy = y_tip + (spine_y - y_tip) * frac
                weight = ' font-weight="700"' if c.confirmed else ""
                label = c.summary if len(c.summary) <= 22 else c.summary[:21] + "…"
                parts.append(f'<text x="{cx + 6:.0f}" y="{cy + 4:.0f}" font-size="12"{weight}>{escape(label)}</text>')
        return (f'<svg viewBox="0 0 {width} {height}" width="100%" xmlns="http://www.w3.org/2000/svg" '
                f'font-family="inherit" font-size="13" role="img" aria-label="{escape(t["fishbone"])}">{"".join(parts)}</svg>')


_CSS = """
body { font: 13px/1.45 system-ui, "Noto Sans CJK SC", "PingFang SC", sans-serif; color: #1f2933; margin: 24px; }
h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; width: 100%; margin-bottom: 8px; }
td, th { border: 1px solid #9aa5b1; padding: 5px 7px; vertical-align: top; text-align: left; }
tr:first-child th { background: #e4e7eb; }
.sheet { page-break-after: always; } .sign { margin-top: 18px; color: #52606d; }
@media print { body { margin: 12mm; } }
"""


def _states(engine: Engine, incident: str | None, period: str | None) -> list[IncidentState]:
    if incident is not None:
        state = engine.store.get(incident)
        if state is None:
            raise InputError(f"no incident '{incident}' in this store")
        return [state]
    from qflow_assess import settings
    from qflow_assess._periods import parse_period

    conf = settings(engine.ruleset)
    tz = ZoneInfo(conf.timezone or engine.ruleset.timezone)
    try:
        p = parse_period(period or "", tz, engine.clock.now())
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return engine.store.query(IncidentQuery(reported_from=p.start, reported_until=p.end, limit=1000))


def render_form(engine: Engine, kind: str, *, incident: str | None = None, period: str | None = None,
                fmt: str = "html", lang: str = "en", path: str | None = None) -> str | None:
    """The form *kind* (``report``, ``cause``, ``actions``, ``verification``) as HTML
    text, or written to *path* as XLSX (returns None)."""
    if kind not in FORMS:
        raise InputError(f"unknown form '{kind}'; the forms are: {', '.join(FORMS)}")
    from qflow_assess import settings

    tz = ZoneInfo(settings(engine.ruleset).timezone or engine.ruleset.timezone)
    form = _Form(lang, tz)
    states = _states(engine, incident, period)
    sheets = [(s, getattr(form, kind)(s)) for s in states]
    if fmt == "xlsx":
        assert path is not None
        _xlsx(path, form.t[kind], sheets)
        return None
    body = []
    for s, tables in sheets:
        body.append('<section class="sheet">')
        for i, (heading, rows) in enumerate(tables):
            if heading:
                tag = "h1" if i == 0 else "h2"
                body.append(f"<{tag}>{escape(heading)}</{tag}>")
            body.append(_table(rows, header=len(rows) > 1 and len(rows[0]) > 2))
        if kind == "cause":
            body.append(f"<h2>{escape(form.t['fishbone'])}</h2>{form.fishbone(s)}")
        body.append(f'<p class="sign">{escape(form.t["signed"])}: ____________________</p></section>')
    title = form.t[kind]
    return (f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>")


def _table(rows: Sequence[Sequence[str]], *, header: bool) -> str:
    out = ["<table>"]
    for i, row in enumerate(rows):
        tag = "th" if header and i == 0 else "td"
        # A two-column table is label: value; its labels are header cells.
        cells = "".join(f"<{t}>{escape(c)}</{t}>" for j, c in enumerate(row)
                        for t in [tag if header or j else "th"])
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "".join(out)


def _xlsx(path: str, title: str, sheets: Sequence[tuple[IncidentState, list[tuple[str, list[list[str]]]]]]) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(path)
    bold = wb.add_format({"bold": True})
    head = wb.add_format({"bold": True, "bg_color": "#E4E7EB", "border": 1})
    box = wb.add_format({"border": 1, "text_wrap": True, "valign": "top"})
    for s, tables in sheets:
        ws = wb.add_worksheet(s.id[:31])
        ws.set_column(0, 0, 22)
        ws.set_column(1, 8, 24)
        ws.write(0, 0, f"{title} — {s.id}", bold)
        r = 2
        for heading, rows in tables:
            if heading:
                ws.write(r, 0, heading, bold)
                r += 1
            for i, row in enumerate(rows):
                fmt = head if i == 0 and len(rows) > 1 and len(row) > 2 else box
                ws.write_row(r, 0, row, fmt)
                r += 1
            r += 1
        ws.freeze_panes(1, 0)
    wb.close()
