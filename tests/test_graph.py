"""``qflow graph``: the ruleset as a flowchart (Mermaid, DOT, SVG/PNG when a renderer exists)."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest

import qflow
from qflow._graph import build_graph, to_dot, to_mermaid
from qflow.cli import main

REPO = Path(__file__).resolve().parents[1]

SMALL = """\
qflow: 1
name: small-desk
teams:
  front-office: {name: 前厅部 Front office, lead: 王芳}
  housekeeping: {name: 客房部 Housekeeping, lead: 李娜}
  quality: {name: 质检部 Quality, lead: 林晓燕}
severities:
  critical: {name: 紧急, respond: 15m, resolve: 4h}
  normal: {respond: 4h, resolve: 3d}
classify:
  - id: smoke
    when: {description: {matches: "烟"}}
    set: {category: safety, severity: critical}
  - id: default
    set: {severity: normal}
route:
  - id: cleanliness
    when:
      any:
        - category: [hygiene, room_not_clean]
        - category: [null, other]
          description: {matches: "脏"}
    assign: {team: housekeeping, owner: 张秀英, responsibility: human}
  - id: vip
    when: {customer.tier: platinum}
    assign: {owner: 陈静}
  - id: default
    assign: {team: front-office}
"""

LADDER = """\
escalation:
  ladders:
    default:
      - at: {clock: respond, used: 50%}
        notify: [assignee]
      - at: {clock: resolve, overdue: 2h}
        notify: [team.lead]
        raise_severity: 1
    urgent:
      - at: {clock: respond, remaining: 5m}
        notify: [team.lead]
        repeat: {every: 10m, limit: 3}
  severities: {critical: urgent}
"""


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        status = main(list(args))
    finally:
        sys.stdout, sys.stderr = saved
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def small(pm) -> qflow.Ruleset:
    return qflow.load_ruleset_text(SMALL, file="small.yaml", plugins=pm)


LOOP = """\
  subgraph loop["改进闭环 The closed loop: stage and who is responsible"]
    direction LR
    stage_reported["reported 报告<br/>front line: the routed team and owner"]
    stage_confirmed["confirmed 责任确认<br/>confirmation group: the routed team's lead (王芳, 李娜, 林晓燕) + 质检部 Quality (林晓燕)"]
    stage_rejected["rejected 不成立<br/>the routed team's lead (王芳, 李娜, 林晓燕), who records why"]
    stage_analysing["analysing 原因分析<br/>the owner with 质检部 Quality (林晓燕): 5-Why or fishbone"]
    stage_acting["acting 措施执行<br/>each action's owner, by its due date"]
    stage_verifying["verifying 效果验证<br/>质检部 Quality (林晓燕)"]
    stage_closed["closed 关闭<br/>质检部 Quality (林晓燕) closes it"]
    stage_reopened["reopened 重开<br/>the routed team's lead (王芳, 李娜, 林晓燕)"]
  end
"""

TRANSITION_EDGES = """\
  stage_reported --> stage_confirmed
  stage_reported --> stage_rejected
  stage_confirmed --> stage_analysing
  stage_confirmed --> stage_acting
  stage_rejected --> stage_reopened
  stage_analysing --> stage_acting
  stage_acting --> stage_analysing
  stage_acting --> stage_verifying
  stage_verifying --> stage_analysing
  stage_verifying --> stage_closed
  stage_closed --> stage_reopened
  stage_reopened --> stage_confirmed
  stage_reopened --> stage_analysing
"""


def test_mermaid_shows_stages_with_roles_routing_and_severities(small):
    assert to_mermaid(build_graph(small)) == (
        f"%% qflow graph of {small.ref}\n"
        "flowchart TD\n"
        + LOOP +
        '  subgraph routing["分派 Routing: first match wins, field by field"]\n'
        '    route_0["cleanliness<br/>category hygiene, room_not_clean; reads description"]\n'
        '    route_1["vip<br/>reads customer.tier<br/>sets owner 陈静"]\n'
        '    route_2["default<br/>otherwise (default)"]\n'
        "  end\n"
        '  subgraph teams["责任部门 Teams"]\n'
        '    team_housekeeping["客房部 Housekeeping<br/>lead 李娜"]\n'
        '    team_front_2doffice["前厅部 Front office<br/>lead 王芳"]\n'
        "  end\n"
        '  subgraph escalation["升级 Severities, commitments and escalation"]\n'
        '    sev_critical["critical 紧急<br/>respond 15m, resolve 4h on 24x7"]\n'
        '    sev_normal["normal<br/>respond 4h, resolve 3d on 24x7"]\n'
        "  end\n"
        + TRANSITION_EDGES +
        "  route_0 -->|张秀英 · human| team_housekeeping\n"
        "  route_2 --> team_front_2doffice\n"
    )


def test_the_escalation_ladder_of_each_severity(pm):
    ruleset = qflow.load_ruleset_text(SMALL + LADDER, file="small.yaml", plugins=pm)
    text = to_mermaid(build_graph(ruleset))
    assert text.split('  subgraph escalation["升级 Severities, commitments and escalation"]\n')[1].split("  end\n")[0] == (
        '    sev_critical["critical 紧急<br/>respond 15m, resolve 4h on 24x7"]\n'
        '    esc_critical_0["step 1<br/>5m before respond is due; notify team.lead; repeat every 10m (at most 3)"]\n'
        '    sev_normal["normal<br/>respond 4h, resolve 3d on 24x7"]\n'
        '    esc_normal_0["step 1<br/>50% of respond used; notify assignee"]\n'
        '    esc_normal_1["step 2<br/>resolve 2h overdue; notify team.lead; raise severity by 1"]\n'
    )
    assert text.endswith("  sev_critical --> esc_critical_0\n  sev_normal --> esc_normal_0\n"
                         "  esc_normal_0 --> esc_normal_1\n")


def test_dot_is_the_same_graph(small):
    dot = to_dot(build_graph(small))
    assert dot.startswith(f"// qflow graph of {small.ref}\ndigraph qflow {{\n  rankdir=TB;\n")
    assert '    route_1 [label="vip\\nreads customer.tier\\nsets owner 陈静"];\n' in dot
    assert "  route_0 -> team_housekeeping [label=\"张秀英 · human\"];\n" in dot
    assert dot.count(" -> ") == 15
    assert dot.endswith("}\n")


def test_command_writes_mermaid_to_stdout_or_a_file(tmp_path):
    status, out, err = run_cli("graph", "--no-plugins", "rulesets/hotel-front-desk.yaml")
    assert (status, err) == (0, "")
    assert out.startswith("%% qflow graph of hotel-front-desk@")
    assert '    team_security["保安部 Security<br/>lead 马超"]\n' in out
    assert '    route_0["lift-entrapment<br/>reads description"]\n' in out
    target = tmp_path / "flow.mmd"
    status, out, _ = run_cli("graph", "--no-plugins", "rulesets/support-centre.yaml", "-o", str(target))
    assert (status, out) == (0, "")
    assert target.read_text(encoding="utf-8").startswith("%% qflow graph of support-centre@")


def test_svg_without_a_renderer_says_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    status, out, err = run_cli("graph", "--no-plugins", "rulesets/hotel-front-desk.yaml", "--format", "svg")
    assert (status, out) == (2, "")
    assert err == (
        "qflow: error: cannot draw svg: neither Graphviz 'dot' nor mermaid-cli 'mmdc' is on the PATH\n"
        "hint: install Graphviz (apt install graphviz, brew install graphviz) or mermaid-cli "
        "(npm install -g @mermaid-js/mermaid-cli); or use --format mermaid or --format dot\n")
    status, _, err = run_cli("graph", "--no-plugins", "rulesets/hotel-front-desk.yaml", "--format", "png")
    assert status == 2
    assert err == ("qflow: error: --format png needs -o FILE\n"
                   "hint: a picture is not written to the terminal; e.g. -o flow.png\n")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_svg_and_png_with_graphviz(tmp_path):
    status, out, err = run_cli("graph", "--no-plugins", "rulesets/hotel-front-desk.yaml", "--format", "svg")
    assert (status, err) == (0, "")
    assert out.lstrip().startswith("<?xml") and "<svg" in out and "保安部 Security" in out
    target = tmp_path / "flow.png"
    status, _, err = run_cli("graph", "--no-plugins", "rulesets/hotel-front-desk.yaml", "--format", "png",
                             "-o", str(target))
    assert (status, err) == (0, "")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_broken_ruleset_reports_its_diagnostics():
    status, out, err = run_cli("graph", "--no-plugins", "tests/data/cli/broken.yaml")
    assert (status, out) == (1, "")
    assert err.splitlines()[-1] == ("qflow: 2 errors in tests/data/cli/broken.yaml; "
                                    "run 'qflow check tests/data/cli/broken.yaml' after fixing")
