"""Routing modes (first / all, continue, default) and shadow rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import qflow
from qflow.model import Incident

PM = qflow.make_plugin_manager(autoload=False)
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)

HEAD = """\
qflow: 1
teams: {desk: {}, hsk: {}, eng: {}}
severities:
  high: {respond: 1h, resolve: 1d}
  normal: {respond: 4h, resolve: 3d}
classify:
  - {id: d, set: {severity: normal}}
"""


def engine(route: str, head: str = HEAD) -> qflow.Engine:
    ruleset = qflow.load_ruleset_text(head + route, file="r.yaml", plugins=PM)
    return qflow.Engine(ruleset, plugins=PM)


def decide(e: qflow.Engine, **kw):
    d = e.decide(Incident(**kw), NOW)
    steps = [(s.rule, s.outcome) for s in d.trace if s.section == "route"]
    return (d.team, d.owner, d.responsibility), d.matched, steps


FIRST = """\
route:
  mode: first
  rules:
    - {id: hygiene, when: {category: hygiene}, assign: {team: hsk}}
    - {id: tag, when: {category: hygiene}, assign: {owner: 李}}
    - {id: catch-all, assign: {team: desk}}
    - {id: never, assign: {team: eng}}
  default: {responsibility: process}
"""


def test_mode_first_stops_at_the_first_match_and_the_default_fills_the_rest():
    e = engine(FIRST)
    assert decide(e, category="hygiene") == (
        ("hsk", None, "process"), ("classify:d", "route:hygiene", "route:default"),
        [(None, "info"), ("hygiene", "matched"), (None, "not reached"), ("default", "matched"), (None, "unset")])
    assert decide(e, category="noise")[:2] == (("desk", None, "process"), ("classify:d", "route:catch-all", "route:default"))


def test_continue_lets_later_rules_fill_what_is_unset_in_mode_first():
    e = engine(FIRST.replace("assign: {team: hsk}}", "continue: true, assign: {team: hsk}}"))
    assert decide(e, category="hygiene") == (
        ("hsk", "李", "process"), ("classify:d", "route:hygiene", "route:tag", "route:default"),
        [(None, "info"), ("hygiene", "matched"), ("tag", "matched"), (None, "not reached"), ("default", "matched")])


ALL = """\
route:
  mode: all
  rules:
    - {id: base, assign: {team: desk, owner: 王}}
    - {id: hygiene, when: {category: hygiene}, assign: {team: hsk}}
    - {id: stop, when: {place: lobby}, continue: false, assign: {owner: 李}}
    - {id: engineering, when: {category: [hygiene, equipment]}, assign: {team: eng}}
"""


def test_mode_all_applies_every_match_and_later_ones_override():
    e = engine(ALL)
    assert decide(e, category="hygiene") == (
        ("eng", "王", None), ("classify:d", "route:base", "route:engineering"),
        [(None, "info"), ("base", "matched"), ("hygiene", "no effect"), ("stop", "no match"),
         ("engineering", "matched"), (None, "unset")])
    assert decide(e, category="hygiene", place="lobby")[:2] == (
        ("hsk", "李", None), ("classify:d", "route:hygiene", "route:stop"))


def test_the_trace_says_which_mode_applied():
    d = engine(ALL).decide(Incident(category="hygiene"), NOW)
    info = [s.reason for s in d.trace if s.section == "route" and s.outcome == "info"]
    assert info == ["mode all: every matching rule applies in file order, a later one overriding an earlier one "
                    "('continue: false' stops after that rule)"]
    d = engine(FIRST).decide(Incident(category="hygiene"), NOW)
    assert [s.reason for s in d.trace if s.section == "route" and s.outcome in ("info", "not reached")] == [
        "mode first: rules in file order, the first that matches decides ('continue: true' lets later rules fill "
        "what is still unset)",
        "3 later rule(s) not considered: 'hygiene' matched and it does not say 'continue: true'"]


def test_many_bucketed_rules_run_like_their_explanation():
    rules = "\n".join(f"    - {{id: r{i}, when: {{category: c{i % 7}, impact: {{ge: {i % 4}}}}}, "
                      f"{'continue: true, ' if i % 5 == 0 else ''}assign: {{team: {['desk', 'hsk', 'eng'][i % 3]}}}}}"
                      for i in range(40))
    for mode in ("first", "all"):
        e = engine(f"route:\n  mode: {mode}\n  rules:\n{rules}\n  default: {{team: desk, owner: x}}\n")
        for c in range(8):
            for impact in range(5):
                d = e.decide(Incident(category=f"c{c}", impact=impact), NOW)
                traced = tuple(f"{s.section}:{s.rule}" for s in d.trace if s.outcome == "matched")
                assert traced == d.matched


def test_continue_in_a_plain_list_is_a_warning():
    ruleset = qflow.load_ruleset_text(HEAD + "route:\n  - {id: a, continue: true, assign: {team: desk}}\n",
                                      file="r.yaml", plugins=PM)
    assert [str(w) for w in ruleset.warnings] == [
        "r.yaml:9:23: QF657 'continue' has no effect in a plain list of rules (a plain list already considers "
        "every rule (first match per field); write the section as {mode: first, rules: [...]} to stop at the "
        "first match) @ $.route[0].continue (rule 'a')"]


@pytest.mark.parametrize(("route", "expected"), [
    ("route: {rules: []}", ["r.yaml:8:8: QF102 missing required key 'mode' @ $.route"]),
    ("route: {mode: fist, rules: []}",
     ["r.yaml:8:15: QF104 'fist' is not one of: first, all (did you mean 'first'?) @ $.route.mode"]),
    ("route: {mode: first, rules: [{id: a, assign: {team: dsk}}]}",
     ["r.yaml:8:53: QF201 unknown team 'dsk' (did you mean 'desk'?) @ $.route.rules[0].assign.team (rule 'a')"]),
    ("route: {mode: first, default: {}}",
     ["r.yaml:8:31: QF102 the default sets nothing (give at least one of: team, owner, responsibility, "
      "or remove 'default') @ $.route.default"]),
])
def test_mistakes_in_the_mapping_form_are_located(route, expected):
    with pytest.raises(qflow.RulesetError) as err:
        qflow.load_ruleset_text(HEAD + route + "\n", file="r.yaml", plugins=PM)
    assert [str(d) for d in err.value.diagnostics] == expected


SHADOW = """\
classify:
  - {id: vip, when: {customer.tier: gold}, set: {severity: high}}
  - {id: watch-cold, shadow: true, when: 'description matches "(?i)cold"', set: {severity: high}}
  - {id: d, set: {severity: normal}}
route:
  - {id: d, assign: {team: desk}}
  - {id: try-hsk, shadow: true, when: {category: hygiene}, assign: {team: hsk}}
"""


def test_a_shadow_rule_never_changes_the_decision_but_the_trace_says_it_would_have_matched():
    head = HEAD.split("classify:")[0]
    e = engine(SHADOW, head)
    d = e.decide(Incident(category="hygiene", description="the room is cold"), NOW)
    assert (d.severity, d.team, d.matched) == ("normal", "desk", ("classify:d", "route:d"))
    shadow = [(s.section, s.rule, s.outcome, s.reason) for s in d.trace if s.rule in ("watch-cold", "try-hsk")]
    assert shadow == [
        ("classify", "watch-cold", "would have matched",
         "shadow rule, the decision is unchanged: description is 'the room is cold', matching '(?i)cold'; "
         "would set severity=high (decided: normal)"),
        ("route", "try-hsk", "would have matched",
         "shadow rule, the decision is unchanged: category is 'hygiene'; would set team=hsk (decided: desk)"),
    ]
    d = e.decide(Incident(category="noise", description="fine"), NOW)
    assert [(s.rule, s.outcome) for s in d.trace if s.rule in ("watch-cold", "try-hsk")] == [
        ("watch-cold", "no match"), ("try-hsk", "no match")]


def test_shadow_rules_are_not_in_the_decision_path():
    head = HEAD.split("classify:")[0]
    chain = engine(SHADOW, head).ruleset.compiled("classify")
    assert [r.id for r in chain.rules] == ["vip", "d"]
    assert [r.id for r in chain.shadows] == ["watch-cold"]


def test_a_shadow_rule_in_mode_first_does_not_stop_the_walk():
    e = engine("route:\n  mode: first\n  rules:\n"
               "    - {id: new, shadow: true, when: {category: hygiene}, assign: {team: eng}}\n"
               "    - {id: hyg, when: {category: hygiene}, assign: {team: hsk}}\n")
    d = e.decide(Incident(category="hygiene"), NOW)
    assert (d.team, [(s.rule, s.outcome) for s in d.trace if s.section == "route"]) == (
        "hsk", [(None, "info"), ("hyg", "matched"), (None, "unset"), ("new", "would have matched")])
