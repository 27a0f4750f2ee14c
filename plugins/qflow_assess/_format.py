"""How figures read: durations, rates, deltas, in English or Chinese."""

from __future__ import annotations

from typing import Any

from qflow._convert import duration_to_the_minute
from qflow_assess._kpis import KPI, Figure

__all__ = ["LABELS", "cell", "delta", "duration", "label"]

LABELS: dict[str, dict[str, str]] = {
    "en": {"kpi": "KPI", "value": "value", "n": "n", "previous": "previous", "last_year": "a year ago",
           "mean": "mean", "median": "median", "p90": "P90", "calendar": "calendar", "business": "business",
           "low": "low confidence", "whole": "all", "period": "Period", "as_of": "as of", "timezone": "time zone",
           "problems": "Problem list", "status": "status", "owner": "owner", "due": "due", "incident": "incident",
           "category": "category", "severity": "severity", "team": "team", "reported": "reported",
           "summary": "summary", "scorecards": "Scorecards", "total": "total", "weight": "weight",
           "score": "score", "inputs": "inputs", "component": "component", "subject": "subject",
           "trend": "On-time rate by month", "histogram": "Resolution time (business hours)",
           "pareto": "Causes by 6M branch (Pareto)", "recurrence": "Recurrence by place",
           "incidents": "incidents", "repeats": "repeats", "definitions": "Definitions",
           "numerator": "numerator", "denominator": "denominator", "membership": "period membership",
           "no_data": "no data", "resolved": "resolved", "in progress": "in progress", "pending": "pending",
           "figures": "Figures", "by": "by", "place": "place", "channel": "channel", "cumulative": "cumulative",
           "durations_note": "Durations are business time (working hours, pauses left out) unless marked calendar.",
           "ruleset": "ruleset", "report": "Report", "item": "item", "title": "title", "open": "open",
           "made_at": "made at", "not_as_of": "not as of",
           "as_then": "† counted as the facts stood at {made}, not as of {as_of}: they keep no time of {things}.",
           "as_then_all": "Rejections, and the team, owner, category and severity an incident is grouped by, "
                          "are as they stood at {made} in every figure.",
           "undated.rejections": "rejections", "undated.reopenings": "reopenings after a close",
           "undated.contacts": "further answers, reports and hand-overs", "undated.surveys": "surveys",
           "undated.verifications": "verifications", "undated.actions": "actions planned, cancelled or rescheduled",
           "undated.causes": "cause analyses"},
    "zh": {"kpi": "指标", "value": "数值", "n": "样本", "previous": "上期", "last_year": "去年同期",
           "mean": "平均", "median": "中位数", "p90": "P90", "calendar": "日历时间", "business": "工作时间",
           "low": "样本不足", "whole": "全部", "period": "期间", "as_of": "截至", "timezone": "时区",
           "problems": "问题清单", "status": "状态", "owner": "责任人", "due": "期限", "incident": "编号",
           "category": "类型", "severity": "严重度", "team": "部门", "reported": "报告时间",
           "summary": "描述", "scorecards": "考核评分", "total": "总分", "weight": "权重",
           "score": "得分", "inputs": "依据", "component": "项目", "subject": "对象",
           "trend": "按月及时率", "histogram": "解决时间分布（工作小时）",
           "pareto": "原因帕累托（6M）", "recurrence": "各地点再发",
           "incidents": "异常数", "repeats": "再发数", "definitions": "指标定义",
           "numerator": "分子", "denominator": "分母", "membership": "期间归属",
           "no_data": "无数据", "resolved": "已解决", "in progress": "处理中", "pending": "待处理",
           "figures": "指标", "by": "按", "place": "地点", "channel": "渠道", "cumulative": "累计",
           "durations_note": "时长按工作时间计算（不含暂停），标注日历时间者除外。", "ruleset": "规则集",
           "report": "报告", "item": "项目", "title": "标题", "open": "未解决", "made_at": "制表时间",
           "not_as_of": "非截至数据",
           "as_then": "† 按 {made} 时的记录计，而非截至 {as_of}：{things}未记录发生时间。",
           "as_then_all": "驳回，以及分组所用的部门、责任人、类型与严重度，在所有指标中均按 {made} 时的情况计。",
           "undated.rejections": "驳回", "undated.reopenings": "关闭后的重开",
           "undated.contacts": "后续答复、重复报告与转派", "undated.surveys": "满意度调查",
           "undated.verifications": "效果验证", "undated.actions": "措施的制定、取消与改期",
           "undated.causes": "原因分析"},
}


def label(key: str, lang: str) -> str:
    return LABELS.get(lang, LABELS["en"]).get(key, key)


def duration(seconds: float | None) -> str:
    """*seconds* to the minute, as every report format shows durations (see
    ``duration_to_the_minute``); a dash for none."""
    return "—" if seconds is None else duration_to_the_minute(seconds)


def cell(kpi: KPI, fig: Figure | None) -> str:
    """The figure as a reader sees it: 93.1%, 1h20m, +35, 12."""
    if fig is None or fig.value is None:
        return "—"
    v = fig.value
    if kpi.unit == "rate":
        return f"{100 * v:.1f}%"
    if kpi.unit == "duration":
        return duration(v)
    if kpi.unit == "score":
        return f"{v:+.0f}"
    return f"{v:g}"


def delta(kpi: KPI, now: Figure | None, before: Figure | None) -> tuple[str, int]:
    """The change and its direction: 1 better, -1 worse, 0 same or unknown."""
    if now is None or before is None or now.value is None or before.value is None:
        return "—", 0
    diff = now.value - before.value
    if kpi.unit == "rate":
        text = f"{100 * diff:+.1f} pt"
    elif kpi.unit == "duration":
        text = ("+" if diff >= 0 else "−") + duration(abs(diff))
    elif kpi.unit == "score":
        text = f"{diff:+.0f}"
    else:
        text = f"{diff:+g}"
    if diff == 0:
        return text, 0
    better = (diff > 0) == kpi.higher_is_better
    return text, 1 if better else -1


def number(value: Any) -> str:
    return "—" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
