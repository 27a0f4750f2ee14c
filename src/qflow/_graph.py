"""``qflow graph``: the ruleset as a flowchart, for the quality manual and the wiki.

Three parts, each read from the ruleset (never invented): the stages of the closed
loop (``qflow.lifecycle.TRANSITIONS``) with the role responsible at each, named from
the ruleset's teams, leads and quality staff; the routing, rule by rule, from what it
looks at to the team, owner and responsibility class it assigns; and the escalation
ladder of each severity with the committed respond and resolve times.

The same graph is built once as plain nodes and edges, then written as Mermaid (for
wikis) or DOT (for Graphviz); SVG and PNG come from ``dot`` or mermaid-cli ``mmdc``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from qflow._convert import format_duration
from qflow.lifecycle import TRANSITIONS
from qflow.model import Stage
from qflow.ruleset import Ruleset

__all__ = ["Graph", "build_graph", "run_graph", "to_dot", "to_mermaid"]

#: What each stage means (DOMAIN.md), in the words the quality process uses.
STAGE_TITLES = {
    Stage.REPORTED: "reported 报告",
    Stage.CONFIRMED: "confirmed 责任确认",
    Stage.REJECTED: "rejected 不成立",
    Stage.ANALYSING: "analysing 原因分析",
    Stage.ACTING: "acting 措施执行",
    Stage.VERIFYING: "verifying 效果验证",
    Stage.CLOSED: "closed 关闭",
    Stage.REOPENED: "reopened 重开",
}
_ORDER = (Stage.REPORTED, Stage.CONFIRMED, Stage.REJECTED, Stage.ANALYSING, Stage.ACTING, Stage.VERIFYING,
          Stage.CLOSED, Stage.REOPENED)


@attrs.frozen
class Node:
    id: str
    label: tuple[str, ...]  # lines
    group: str


@attrs.frozen
class Edge:
    source: str
    target: str
    label: str = ""


@attrs.frozen
class Graph:
    title: str
    groups: tuple[tuple[str, str], ...]  # (id, title), in order
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


# ---------------------------------------------------------------------------
# Reading the ruleset (defensively: sections belong to plugins that evolve)
# ---------------------------------------------------------------------------


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _team_label(key: str, team: Any) -> str:
    name = _get(team, "name")
    return f"{name}" if name else key


def _roles(ruleset: Ruleset) -> dict[Stage, str]:
    teams: Mapping[str, Any] = ruleset.sections.get("teams") or {}
    quality_key = next((k for k in teams if "quality" in k or "质" in str(_get(teams[k], "name", ""))), None)
    quality = None
    if quality_key is not None:
        lead = _get(teams[quality_key], "lead")
        quality = f"{_team_label(quality_key, teams[quality_key])}" + (f" ({lead})" if lead else "")
    leads = [f"{_get(t, 'lead')}" for t in teams.values() if _get(t, "lead")]
    lead_text = "the routed team's lead" + (f" ({', '.join(leads[:3])}{' …' if len(leads) > 3 else ''})"
                                            if leads else "")
    q = quality or "quality staff"
    roles = {
        Stage.REPORTED: "front line: the routed team and owner",
        Stage.CONFIRMED: f"confirmation group: {lead_text} + {q}",
        Stage.REJECTED: f"{lead_text}, who records why",
        Stage.ANALYSING: f"the owner with {q}: 5-Why or fishbone",
        Stage.ACTING: "each action's owner, by its due date",
        Stage.VERIFYING: q,
        Stage.CLOSED: f"{q} closes it",
        Stage.REOPENED: lead_text,
    }
    # A ruleset (or a plugin's section) may name the role of a stage itself.
    named = ruleset.sections.get("roles")
    if isinstance(named, Mapping):
        for stage in Stage:
            who = named.get(stage.value)
            if who:
                roles[stage] = str(_get(who, "name", who))
    return roles


def _condition_summary(when: Any) -> str:
    if when is None:
        return "otherwise (default)"
    if isinstance(when, str):
        return _short(when, 60)
    cats, others = _looks_at(when)
    parts = [f"category {', '.join(cats)}"] if cats else []
    if others:
        parts.append("reads " + ", ".join(others))
    return "; ".join(parts) or "always"


def _looks_at(when: Any) -> tuple[list[str], list[str]]:
    """The categories a condition routes on by themselves, and the other fields it reads.

    A category tested together with other fields (``category: [null, other]`` with a
    keyword) is a guard for the keywords, not a category the rule handles."""
    cats: list[str] = []
    others: list[str] = []

    def add(items: list[str], value: str) -> None:
        if value not in items:
            items.append(value)

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            fields = [k for k in node if k not in ("any", "all", "not")]
            for key in fields:
                if key == "category" and len(fields) == 1:
                    value = node[key]
                    values = value if isinstance(value, list) else _get(value, "in", [value]) \
                        if isinstance(value, Mapping) else [value]
                    for v in values if isinstance(values, list) else [values]:
                        if isinstance(v, str):
                            add(cats, v)
                elif key != "category":
                    add(others, str(key))
            for key in ("any", "all", "not"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(when)
    return cats, others


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _ladders(ruleset: Ruleset) -> dict[str, list[Any]]:
    """Severity -> its ladder's steps, for whichever shape the escalation section has."""
    spec = ruleset.sections.get("escalation")
    if spec is None:
        return {}
    ladders = _get(spec, "ladders")
    mapping = _get(spec, "severities") or {}
    if ladders is None and isinstance(spec, Mapping):
        ladders, mapping = spec, {}  # the sketch's shape: {default: [steps], high: [steps]}
    if not isinstance(ladders, Mapping):
        return {}
    out: dict[str, list[Any]] = {}
    for severity in ruleset.names("severity") or ():
        name = mapping.get(severity) if isinstance(mapping, Mapping) else None
        name = name or (severity if severity in ladders else "default" if "default" in ladders else None)
        if name is not None and ladders.get(name):
            out[str(severity)] = list(ladders[name])
    return out


def _step_label(step: Any) -> str:
    at = _get(step, "at")
    clock = _get(at, "clock", "?")
    when = "?"
    if _get(at, "used") is not None:
        used = str(_get(at, "used"))
        when = f"{clock} due ({used} used)" if used.strip() == "100%" else f"{used} of {clock} used"
    elif _get(at, "remaining") is not None:
        when = f"{_duration(_get(at, 'remaining'))} before {clock} is due"
    elif _get(at, "overdue") is not None:
        overdue = _get(at, "overdue")
        when = f"{clock} breached" if _duration(overdue) in ("0s", "0m") else f"{clock} {_duration(overdue)} overdue"
    parts = [when]
    notify = _get(step, "notify") or ()
    if notify:
        parts.append("notify " + ", ".join(_recipient(r) for r in notify))
    if _get(step, "raise_severity"):
        parts.append(f"raise severity by {_get(step, 'raise_severity')}")
    reassign = _get(step, "reassign")
    if reassign:
        parts.append("reassign to " + " / ".join(str(x) for x in (_get(reassign, "team"), _get(reassign, "owner")) if x))
    repeat = _get(step, "repeat")
    if repeat:
        parts.append(f"repeat every {_duration(_get(repeat, 'every'))} (at most {_get(repeat, 'limit')})")
    if _get(step, "only_in"):
        parts.append(f"only in {_get(step, 'only_in')}")
    return "; ".join(parts)


def _recipient(r: Any) -> str:
    if isinstance(r, Mapping):
        return ", ".join(f"{k} {v}" for k, v in r.items())
    return str(r)


def _duration(value: Any) -> str:
    try:
        return format_duration(value)
    except (TypeError, AttributeError):
        return str(value)


def build_graph(ruleset: Ruleset) -> Graph:
    nodes: list[Node] = []
    edges: list[Edge] = []
    roles = _roles(ruleset)
    for stage in _ORDER:
        nodes.append(Node(f"stage_{stage.value}", (STAGE_TITLES[stage], roles[stage]), "loop"))
    for stage in _ORDER:
        for target in sorted(TRANSITIONS[stage], key=_ORDER.index):
            edges.append(Edge(f"stage_{stage.value}", f"stage_{target.value}"))

    teams: Mapping[str, Any] = ruleset.sections.get("teams") or {}
    used_teams: list[str] = []
    for i, rule in enumerate(ruleset.sections.get("route") or ()):
        assign = _get(rule, "assign")
        team = _get(assign, "team")
        rid = _get(rule, "id", f"rule {i + 1}")
        details = " · ".join(str(x) for x in (_get(assign, "owner"), _get(assign, "responsibility")) if x)
        node = f"route_{i}"
        nodes.append(Node(node, (str(rid), _condition_summary(_get(rule, "when"))), "routing"))
        if team:
            if team not in used_teams:
                used_teams.append(team)
            edges.append(Edge(node, f"team_{_safe(team)}", details))
        else:
            sets = ", ".join(f"{k} {_get(assign, k)}" for k in ("owner", "responsibility") if _get(assign, k))
            nodes[-1] = attrs.evolve(nodes[-1], label=nodes[-1].label + (f"sets {sets}" if sets else "",))
    for team in used_teams:
        spec = teams.get(team)
        lead = _get(spec, "lead") if spec is not None else None
        label = (_team_label(team, spec) if spec is not None else team,) + ((f"lead {lead}",) if lead else ())
        nodes.append(Node(f"team_{_safe(team)}", label, "teams"))

    severities: Mapping[str, Any] = ruleset.sections.get("severities") or {}
    ladders = _ladders(ruleset)
    for severity in ruleset.names("severity") or ():
        policy = severities.get(severity)
        times = []
        for clock in ("respond", "resolve"):
            span = _get(policy, clock)
            if span:
                times.append(f"{clock} {_duration(span)}")
        calendar = _get(policy, "calendar")
        head = f"{severity}" + (f" {_get(policy, 'name')}" if _get(policy, "name") else "")
        nodes.append(Node(f"sev_{_safe(str(severity))}",
                          (head, ", ".join(times) + (f" on {calendar}" if calendar and times else "")), "escalation"))
        previous = f"sev_{_safe(str(severity))}"
        for j, step in enumerate(ladders.get(str(severity), ())):
            node = f"esc_{_safe(str(severity))}_{j}"
            nodes.append(Node(node, (f"step {j + 1}", _step_label(step)), "escalation"))
            edges.append(Edge(previous, node))
            previous = node
    groups = (("loop", "改进闭环 The closed loop: stage and who is responsible"),
              ("routing", "分派 Routing: first match wins, field by field"),
              ("teams", "责任部门 Teams"),
              ("escalation", "升级 Severities, commitments and escalation"))
    present = {n.group for n in nodes}
    return Graph(f"{ruleset.ref}", tuple(g for g in groups if g[0] in present), tuple(nodes), tuple(edges))


def _safe(name: str) -> str:
    """A node id from any name (Chinese included): letters, digits and _ only."""
    return re.sub(r"[^0-9A-Za-z_]", lambda m: f"_{ord(m.group()):x}", name)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(graph: Graph) -> str:
    lines = [f"%% qflow graph of {graph.title}", "flowchart TD"]
    for gid, title in graph.groups:
        lines.append(f'  subgraph {gid}["{_mermaid_text(title)}"]')
        if gid == "loop":
            lines.append("    direction LR")
        for n in graph.nodes:
            if n.group == gid:
                label = "<br/>".join(_mermaid_text(x) for x in n.label if x)
                lines.append(f'    {n.id}["{label}"]')
        lines.append("  end")
    for e in graph.edges:
        arrow = f" -->|{_mermaid_text(e.label)}| " if e.label else " --> "
        lines.append(f"  {e.source}{arrow}{e.target}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graph: Graph) -> str:
    lines = [f"// qflow graph of {graph.title}", "digraph qflow {", "  rankdir=TB;",
             '  node [shape=box, style="rounded", fontname="Noto Sans CJK SC, sans-serif"];',
             '  edge [fontname="Noto Sans CJK SC, sans-serif", fontsize=10];']
    for gid, title in graph.groups:
        lines.append(f"  subgraph cluster_{gid} {{")
        lines.append(f'    label="{_dot_text(title)}";')
        if gid == "loop":
            lines.append("    rank=same;")
        for n in graph.nodes:
            if n.group == gid:
                label = "\\n".join(_dot_text(x) for x in n.label if x)
                lines.append(f'    {n.id} [label="{label}"];')
        lines.append("  }")
    for e in graph.edges:
        label = f' [label="{_dot_text(e.label)}"]' if e.label else ""
        lines.append(f"  {e.source} -> {e.target}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_graph(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow.cli import UsageError, _load, _plugins

    if args.format == "png" and not args.output:
        raise UsageError("--format png needs -o FILE", "a picture is not written to the terminal; e.g. -o flow.png")
    ruleset = _load(args.ruleset, _plugins(args))
    graph = build_graph(ruleset)
    if args.format in ("mermaid", "dot"):
        text = to_mermaid(graph) if args.format == "mermaid" else to_dot(graph)
        _emit(text.encode("utf-8"), args.output, out)
        return 0
    picture = render_picture(graph, args.format)
    _emit(picture, args.output, out)
    return 0


def render_picture(graph: Graph, fmt: str, *, which: Iterable[str] = ("dot", "mmdc")) -> bytes:
    """SVG or PNG bytes from Graphviz ``dot`` or mermaid-cli ``mmdc``, whichever is found first."""
    from qflow.cli import UsageError

    for tool in which:
        exe = shutil.which(tool)
        if exe is None:
            continue
        if tool == "dot":
            done = subprocess.run([exe, f"-T{fmt}"], input=to_dot(graph).encode("utf-8"), capture_output=True,
                                  timeout=120)
            if done.returncode != 0:
                raise UsageError(f"dot failed: {done.stderr.decode('utf-8', 'replace').strip()}",
                                 "use --format dot and look at the DOT it was given")
            return done.stdout
        with tempfile.TemporaryDirectory() as tmp:
            source, target = Path(tmp) / "graph.mmd", Path(tmp) / f"graph.{fmt}"
            source.write_text(to_mermaid(graph), encoding="utf-8")
            done = subprocess.run([exe, "-i", str(source), "-o", str(target)], capture_output=True, timeout=300)
            if done.returncode != 0 or not target.exists():
                raise UsageError(f"mmdc failed: {done.stderr.decode('utf-8', 'replace').strip()[:500]}",
                                 "use --format mermaid and paste it into a Mermaid editor")
            return target.read_bytes()
    raise UsageError(f"cannot draw {fmt}: neither Graphviz 'dot' nor mermaid-cli 'mmdc' is on the PATH",
                     "install Graphviz (apt install graphviz, brew install graphviz) or mermaid-cli "
                     "(npm install -g @mermaid-js/mermaid-cli); or use --format mermaid or --format dot")


def _emit(data: bytes, output: str | None, out: IO[str]) -> None:
    from qflow.cli import UsageError

    if output:
        try:
            Path(output).write_bytes(data)
        except OSError as exc:
            raise UsageError(f"cannot write '{output}': {exc.strerror}", "check the folder exists and is writable") from None
        return
    out.write(data.decode("utf-8"))
