"""The ruleset loader: every mistake located, all at once, sorted."""

from __future__ import annotations

import os

import attrs
import pytest

import qflow
from qflow import CompileContext, PluginError, RulesetError, Section, hookimpl


def errors(text: str, pm, file: str = "r.yaml") -> list[str]:
    with pytest.raises(RulesetError) as info:
        qflow.load_ruleset_text(text, file=file, plugins=pm)
    return [str(d) for d in info.value.diagnostics]


def test_valid_ruleset_loads_with_names_in_order(base_ruleset):
    assert base_ruleset.name == "test-desk"
    assert base_ruleset.timezone == "Asia/Shanghai"
    assert base_ruleset.names("team") == ("front-office", "housekeeping", "engineering")
    assert base_ruleset.names("severity") == ("critical", "high", "normal")
    assert base_ruleset.names("responsibility") == ("human", "equipment", "process", "customer")
    assert len(base_ruleset.hash) == 12
    assert base_ruleset.ref == f"test-desk@{base_ruleset.hash}"


def test_hash_changes_with_content_only(pm):
    a = qflow.load_ruleset_text("qflow: 1\nname: x\n", file="a.yaml", plugins=pm)
    b = qflow.load_ruleset_text("qflow: 1\nname: x\n", file="a.yaml", plugins=pm)
    c = qflow.load_ruleset_text("qflow: 1\nname: x\ndescription: y\n", file="a.yaml", plugins=pm)
    assert a.hash == b.hash != c.hash


def test_every_error_reported_at_once_and_sorted(pm):
    text = """\
qflow: 1
timezone: Asia/Shanghi
teams:
  front-office: {name: 前厅, lead: 王芳, membres: []}
  housekeeping: {name: 5}
severities:
  critical: {respond: 15min, resolve: 4h}
  high: {respond: 1h, resolve: 1d, calendar: alway}
classify:
  - id: default
    set: {severity: hihg}
  - id: default
    set: {}
route:
  - id: default
    assign: {team: enginering, responsibility: humen}
routes: []
"""
    assert errors(text, pm) == [
        "r.yaml:2:11: QF106 unknown time zone 'Asia/Shanghi' (did you mean 'Asia/Shanghai'?) @ $.timezone",
        "r.yaml:4:38: QF101 unknown key 'membres' (did you mean 'members'?) @ $.teams.front-office.membres",
        "r.yaml:5:24: QF103 expected text, got the number 5 (put the value in quotes) @ $.teams.housekeeping.name",
        "r.yaml:7:23: QF105 '15min' is not a duration (use 15m, 1h, 2d, 1w or a sum like 1h30m) @ $.severities.critical.respond",
        "r.yaml:8:46: QF201 unknown calendar 'alway' (define it or use one of: 24x7) @ $.severities.high.calendar",
        "r.yaml:11:21: QF201 unknown severity 'hihg' (did you mean 'high'?) @ $.classify[0].set.severity (rule 'default')",
        "r.yaml:12:9: QF202 classify rule 'default' is defined twice (first defined at r.yaml:10) @ $.classify[1].id",
        "r.yaml:13:10: QF102 the rule sets nothing (give at least one of: category, severity) @ $.classify[1].set (rule 'default')",
        "r.yaml:16:20: QF201 unknown team 'enginering' (define it or use one of: front-office) @ $.route[0].assign.team (rule 'default')",
        "r.yaml:16:48: QF201 unknown responsibility 'humen' (did you mean 'human'?) @ $.route[0].assign.responsibility (rule 'default')",
        "r.yaml:17:1: QF101 unknown section 'routes' (did you mean 'route'?) @ $.routes",
    ]


def test_unknown_reference_suggests_close_name(pm):
    text = """\
qflow: 1
teams: {engineering: {}}
route:
  - id: equipment
    assign: {team: enginering}
"""
    assert errors(text, pm) == [
        "r.yaml:5:20: QF201 unknown team 'enginering' (did you mean 'engineering'?) @ $.route[0].assign.team (rule 'equipment')",
    ]


def test_duplicate_keys_are_errors_everywhere(pm):
    text = """\
qflow: 1
teams:
  a: {name: A, name: B}
teams: {}
"""
    assert errors(text, pm) == [
        "r.yaml:3:16: QF002 duplicate key 'name' (first defined at line 3; keep one) @ $.teams.a.name",
        "r.yaml:4:1: QF002 duplicate key 'teams' (first defined at line 2; keep one) @ $.teams",
    ]


def test_yaml_syntax_error(pm):
    assert errors("qflow: 1\nteams: [a,\n", pm) == [
        "r.yaml:3:1: QF001 not valid YAML: did not find expected node content (while parsing a flow node) "
        "(check the indentation and quoting on this line) @ $",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\n", "r.yaml:1:1: QF005 missing format version (add 'qflow: 1' as the first line) @ $"),
        ("qflow: 2\n", "r.yaml:1:8: QF005 this ruleset is format 2 but this qflow reads format 1 (run 'pip install -U qflow') @ $.qflow"),
        ("qflow: one\n", "r.yaml:1:8: QF005 unsupported format version 'one' (use 'qflow: 1') @ $.qflow"),
        ("- a\n", "r.yaml:1:1: QF103 a ruleset must be a mapping of sections (start it with 'qflow: 1' and one key per section) @ $"),
        ("", "r.yaml:1:1: QF005 the file is empty (start it with 'qflow: 1') @ $"),
    ],
)
def test_format_version_is_checked_first(pm, text, expected):
    assert errors(text, pm) == [expected]


def test_wrong_shapes(pm):
    text = """\
qflow: 1
teams: [a, b]
severities:
  high: fast
  low: {respond: 5}
classify: {id: x}
"""
    assert errors(text, pm) == [
        "r.yaml:2:8: QF103 expected a mapping (write one 'name: value' per line) @ $.teams",
        "r.yaml:4:9: QF103 expected a mapping, got the text 'fast' (write the keys on the lines below, indented) @ $.severities.high",
        "r.yaml:5:18: QF105 the number 5 is not a duration (a duration needs its unit: write e.g. 5m or 5h) @ $.severities.low.respond",
        "r.yaml:6:11: QF103 expected a list (write one '- ' item per line) @ $.classify",
    ]


def test_text_where_a_list_belongs_is_an_error_not_a_list_of_its_characters(pm):
    text = """\
qflow: 1
teams:
  front-office: {name: Front office, lead: 王芳, members: 王芳}
  housekeeping: {name: Housekeeping, members: {李娜: lead}}
"""
    assert errors(text, pm) == [
        "r.yaml:3:57: QF103 expected a list, got '王芳' (write [王芳] for a list of one) @ $.teams.front-office.members",
        "r.yaml:4:47: QF103 expected a list, got a mapping (write one '- ' item per line, or [a, b]) "
        "@ $.teams.housekeeping.members",
    ]


def test_an_escalation_step_notifying_one_recipient_without_brackets_is_an_error(pm):
    text = """\
qflow: 1
teams: {front-office: {lead: 王芳}}
severities: {normal: {respond: 4h, resolve: 3d}}
escalation:
  ladders:
    normal:
      - id: warn
        at: {clock: respond, used: 50%}
        notify: assignee
"""
    assert errors(text, pm) == [
        "r.yaml:9:17: QF103 expected a list, got 'assignee' (write [assignee] for a list of one) "
        "@ $.escalation.ladders.normal[0].notify",
    ]


def test_missing_required_key_points_at_its_parent(pm):
    text = """\
qflow: 1
severities: {normal: {respond: 1h}}
classify:
  - set: {severity: normal}
"""
    assert errors(text, pm) == ["r.yaml:4:5: QF102 missing required key 'id' @ $.classify[0]"]


def test_respond_longer_than_resolve(pm):
    text = "qflow: 1\nseverities:\n  low: {respond: 2d, resolve: 1d}\n"
    assert errors(text, pm) == [
        "r.yaml:3:18: QF104 respond (2d) is longer than resolve (1d) "
        "(an answer cannot come after the fix; shorten respond or lengthen resolve) @ $.severities.low.respond",
    ]


def test_include_merges_sections_and_locates_errors_in_the_included_file(write, pm):
    write("common/teams.yaml", """\
        qflow: 1
        teams:
          front-office: {name: 前厅部}
          housekeeping: {lead: 5}
        classify:
          - id: from-include
            set: {severity: normal}
        """)
    main = write("main.yaml", """\
        qflow: 1
        name: merged
        include: [common/teams.yaml]
        teams:
          front-office: {name: again}
        severities: {normal: {respond: 1h}}
        classify:
          - id: local
            set: {category: x}
        """)
    with pytest.raises(RulesetError) as info:
        qflow.load_ruleset(main, plugins=pm)
    inc = os.path.join(os.path.dirname(main), "common", "teams.yaml")
    assert [str(d) for d in info.value.diagnostics] == [
        f"{inc}:4:24: QF103 expected text, got the number 5 (put the value in quotes) @ $.teams.housekeeping.lead",
        f"{main}:5:3: QF202 'front-office' is defined twice (first defined at {inc}:3) @ $.teams.front-office",
    ]


def test_include_order_puts_included_rules_first(write, pm):
    write("base.yaml", "qflow: 1\nseverities: {normal: {respond: 1h}, low: {respond: 2h}}\nclassify:\n  - {id: inc, set: {severity: low}}\n")
    main = write("main.yaml", "qflow: 1\ninclude: base.yaml\nclassify:\n  - {id: mine, set: {severity: normal}}\n")
    rs = qflow.load_ruleset(main, plugins=pm)
    assert [r.id for r in rs.sections["classify"]] == ["inc", "mine"]
    assert len(rs.files) == 2


def test_include_cycle_and_missing_file(write, pm):
    a = write("a.yaml", "qflow: 1\ninclude: [b.yaml, missing.yaml]\n")
    write("b.yaml", "qflow: 1\ninclude: [a.yaml]\n")
    with pytest.raises(RulesetError) as info:
        qflow.load_ruleset(a, plugins=pm)
    d = os.path.dirname(a)
    assert [str(x) for x in info.value.diagnostics] == [
        f"{d}/a.yaml:2:19: QF003 file '{d}/missing.yaml' does not exist "
        "(check the path; include paths are relative to the including file) @ $.include[1]",
        f"{d}/b.yaml:2:11: QF004 include cycle: a.yaml -> b.yaml -> a.yaml (remove one of the includes) @ $.include[0]",
    ]


def test_names_an_include_could_have_defined_are_one_line_while_it_cannot_be_read(write, pm):
    # The teams and severities may be in the missing file: their references are told
    # apart from a mistake only once it is read, so they are not one error each.
    write("common/more.yaml", "qflow: 1\ncalendars: {office: {hours: 24x7}}\n")
    main = write("main.yaml", """\
        qflow: 1
        include: [common/teams.yaml, common/more.yaml]
        responsibilities: {human: {}}
        severities: {normal: {respond: 1h, calendar: office}}
        classify:
          - {id: a, set: {severity: high}}
          - {id: b, set: {severity: normal}}
        route:
          - {id: a, assign: {team: engineering, responsibility: human}}
          - {id: b, assign: {team: security, responsibility: guest}}
          - {id: c, assign: {team: engineering}}
        """)
    with pytest.raises(RulesetError) as info:
        qflow.load_ruleset(main, plugins=pm)
    assert [str(d) for d in info.value.diagnostics] == [
        f"{main}:2:11: QF003 file '{os.path.dirname(main)}/common/teams.yaml' does not exist "
        "(check the path; include paths are relative to the including file) @ $.include[0]",
        f"{main}:2:11: QF201 5 references to undefined names follow from the include that could not be read: "
        "severity 'high'; team 'engineering', 'security'; responsibility 'guest' "
        "(each is checked once it is read; one it does not define is then reported where it is used) "
        "@ $.include[0]",
    ]


def test_shipped_ruleset_without_its_teams_file_says_so_once(tmp_path, pm):
    shipped = os.path.join(os.path.dirname(__file__), "..", "rulesets")
    main = tmp_path / "hotel-front-desk.yaml"
    main.write_bytes(open(os.path.join(shipped, "hotel-front-desk.yaml"), "rb").read())
    with pytest.raises(RulesetError) as info:
        qflow.load_ruleset(main, plugins=pm)
    assert [str(d) for d in info.value.diagnostics] == [
        f"{main}:6:11: QF003 file '{tmp_path}/common/hotel-teams.yaml' does not exist "
        "(check the path; include paths are relative to the including file) @ $.include[0]",
        f"{main}:6:11: QF201 26 references to undefined names follow from the include that could not be read: "
        "team 'engineering', 'security', 'fnb', 'housekeeping', 'quality', 'front-office' "
        "(each is checked once it is read; one it does not define is then reported where it is used) "
        "@ $.include[0]",
    ]


def test_missing_main_file_and_not_utf8(tmp_path, pm):
    with pytest.raises(RulesetError) as info:
        qflow.load_ruleset(tmp_path / "nope.yaml", plugins=pm)
    assert str(info.value) == (
        f"{tmp_path}/nope.yaml:1:1: QF003 file '{tmp_path}/nope.yaml' does not exist "
        "(check the path; include paths are relative to the including file) @ $"
    )
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"qflow: 1\nname: caf\xe9\n")
    with pytest.raises(RulesetError) as info:
        qflow.load_ruleset(bad, plugins=pm)
    assert str(info.value) == (
        f"{bad}:1:1: QF003 file '{bad}' is not UTF-8 text (invalid continuation byte at byte 18) (save the file as UTF-8) @ $"
    )


def test_chinese_names_work_everywhere(pm):
    text = """\
qflow: 1
name: 酒店前台
teams: {前厅部: {lead: 王芳}}
severities: {紧急: {respond: 15m}}
categories: {投诉: {name: 客户投诉}}
classify:
  - id: 投诉规则
    when: {category: 投诉}
    set: {severity: 紧急}
route:
  - id: 默认
    assign: {team: 前厅部}
"""
    rs = qflow.load_ruleset_text(text, file="中文.yaml", plugins=pm)
    assert rs.name == "酒店前台"
    assert errors(text.replace("team: 前厅部}", "team: 前台部}"), pm, "中文.yaml") == [
        "中文.yaml:12:20: QF201 unknown team '前台部' (did you mean '前厅部'?) @ $.route[0].assign.team (rule '默认')",
    ]


def test_categories_are_checked_once_listed(pm):
    text = "qflow: 1\ncategories: {hygiene: {}}\nclassify:\n  - {id: a, set: {category: hygeine}}\n"
    assert errors(text, pm) == [
        "r.yaml:4:29: QF201 unknown category 'hygeine' (did you mean 'hygiene'?) @ $.classify[0].set.category (rule 'a')",
    ]
    qflow.load_ruleset_text("qflow: 1\nclassify:\n  - {id: a, set: {category: anything}}\n", file="r.yaml", plugins=pm)


@attrs.frozen
class Shift:
    starts: str
    team: str


class ShiftPlugin:
    """A site plugin with a section of its own, validated like any other."""

    def __init__(self) -> None:
        self.compiled = None

    @hookimpl
    def qflow_ruleset_sections(self):
        def compile_(shifts, ctx: CompileContext):
            for i, s in enumerate(shifts or ()):
                ctx.refer("team", s.team, ("shifts", ctx.index("shifts", i), "team"))
            self.compiled = shifts
            return tuple(shifts or ())

        return [Section("shifts", list[Shift], compile_, default=list)]


def test_plugin_sections_are_validated_the_same_way():
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(ShiftPlugin(), "shifts")])
    text = """\
qflow: 1
teams: {night: {}}
shifts:
  - {starts: "22:00", team: nigth}
  - {starts: 6, team: night, extra: 1}
"""
    assert errors(text, pm) == [
        "r.yaml:4:29: QF201 unknown team 'nigth' (did you mean 'night'?) @ $.shifts[0].team",
        "r.yaml:5:14: QF103 expected text, got the number 6 (put the value in quotes) @ $.shifts[1].starts",
        "r.yaml:5:30: QF101 unknown key 'extra' @ $.shifts[1].extra",
    ]
    rs = qflow.load_ruleset_text(text.replace("nigth", "night").replace("starts: 6, team: night, extra: 1", 'starts: "06:00", team: night'),
                                 file="r.yaml", plugins=pm)
    assert rs.compiled("shifts") == (Shift("22:00", "night"), Shift("06:00", "night"))


class BrokenPlugin:
    @hookimpl
    def qflow_ruleset_sections(self):
        def compile_(value, ctx):
            raise RuntimeError("boom")

        return [Section("broken", dict[str, str], compile_)]


def test_a_plugin_that_raises_is_reported_not_crashing():
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(BrokenPlugin(), "broken")])
    assert errors("qflow: 1\nbroken: {a: b}\n", pm) == [
        "r.yaml:2:9: QF501 plugin 'broken' failed on this section: RuntimeError: boom "
        "(this is a bug in the plugin; report it to its authors) @ $.broken",
    ]


class ClashPlugin:
    @hookimpl
    def qflow_ruleset_sections(self):
        return [Section("teams", dict[str, str])]


def test_two_plugins_claiming_a_section_is_a_plugin_error():
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(ClashPlugin(), "clash")])
    with pytest.raises(PluginError) as info:
        qflow.load_ruleset_text("qflow: 1\n", plugins=pm)
    assert str(info.value) == (
        "plugins 'qflow.vocabulary' and 'clash' both claim the ruleset section 'teams'; "
        "block one with QFLOW_BLOCKED_PLUGINS=clash"
    )


def test_blocking_a_builtin_removes_its_sections():
    pm = qflow.make_plugin_manager(autoload=False, blocked=["sla"])
    assert errors("qflow: 1\nseverities: {}\n", pm) == [
        "r.yaml:2:1: QF101 unknown section 'severities' (no installed plugin reads it; check the spelling or install the plugin) @ $.severities",
    ]


def test_hash_does_not_depend_on_the_directory_it_is_loaded_from(write, pm, monkeypatch, tmp_path):
    write("inc/t.yaml", "qflow: 1\nteams: {a: {}}\n")
    path = write("main.yaml", "qflow: 1\ninclude: inc/t.yaml\n")
    absolute = qflow.load_ruleset(path, plugins=pm)
    monkeypatch.chdir(tmp_path)
    relative = qflow.load_ruleset("main.yaml", plugins=pm)
    assert absolute.hash == relative.hash


def test_an_unknown_key_does_not_hide_the_other_mistakes_of_its_section(pm):
    # Each section is checked as if its unknown keys were absent, at every depth. A
    # mapping with a misspelt key is not told what it lacks: the step whose 'notify'
    # is misspelt is not also said to do nothing.
    text = """\
qflow: 1
teams:
  desk: {lead: amy, colour: red}
severities:
  high: {respond: 1h, resolve: 1d}
route:
  mode: first
  colour: red
  rules:
    - id: desk
      assign: {team: dsk}
escalation:
  colour: red
  ladders:
    default:
      - at: {clock: respond, used: 50%}
        notfy: [team.lead]
      - at: {clock: respond, used: 100%, colour: red}
        notify: [team.lead]
        reassign: {team: dsek}
  severities: {hgih: default}
notify:
  routes:
    - {channels: [log], severities: [hihg], teams: [dsek], colour: red}
"""
    assert errors(text, pm) == [
        "r.yaml:3:21: QF101 unknown key 'colour' @ $.teams.desk.colour",
        "r.yaml:8:3: QF101 unknown key 'colour' @ $.route.colour",
        "r.yaml:11:22: QF201 unknown team 'dsk' (did you mean 'desk'?) @ $.route.rules[0].assign.team (rule 'desk')",
        "r.yaml:13:3: QF101 unknown key 'colour' @ $.escalation.colour",
        "r.yaml:17:9: QF101 unknown key 'notfy' (did you mean 'notify'?) @ $.escalation.ladders.default[0].notfy",
        "r.yaml:18:42: QF101 unknown key 'colour' @ $.escalation.ladders.default[1].at.colour",
        "r.yaml:20:26: QF201 unknown team 'dsek' (did you mean 'desk'?) "
        "@ $.escalation.ladders.default[1].reassign.team (rule 'level-2')",
        "r.yaml:21:22: QF201 unknown severity 'hgih' (did you mean 'high'?) @ $.escalation.severities.hgih",
        "r.yaml:24:19: QF775 unknown channel 'log' (name a channel of notify.channels) @ $.notify.routes[0].channels[0]",
        "r.yaml:24:38: QF201 unknown severity 'hihg' (did you mean 'high'?) @ $.notify.routes[0].severities[0]",
        "r.yaml:24:53: QF201 unknown team 'dsek' (did you mean 'desk'?) @ $.notify.routes[0].teams[0]",
        "r.yaml:24:60: QF101 unknown key 'colour' @ $.notify.routes[0].colour",
    ]


def test_a_target_may_be_a_misspelt_key_so_a_step_on_its_clock_is_not_an_error(pm):
    # 'repond' may be the respond target the ladder's step runs on, and low's 'colour'
    # hides nothing the step needs: low's acknowledge target is still checked.
    text = """\
qflow: 1
severities:
  high: {repond: 1h, resolve: 1d}
  low: {acknowledge: 1h, respond: 4h, resolve: 3d, colour: red}
escalation:
  ladders:
    high:
      - at: {clock: respond, used: 50%}
        notify: [assignee]
      - at: {clock: acknowledge, used: 50%}
        notify: [assignee]
    low:
      - at: {clock: acknowledge, remaining: 2h}
        notify: [assignee]
"""
    assert errors(text, pm) == [
        "r.yaml:3:10: QF101 unknown key 'repond' (did you mean 'respond'?) @ $.severities.high.repond",
        "r.yaml:4:52: QF101 unknown key 'colour' @ $.severities.low.colour",
        "r.yaml:13:45: QF744 remaining 2h is not shorter than the acknowledge target of severity low (1h), so this "
        "step can never fire (shorten remaining, or use used: with a percentage) "
        "@ $.escalation.ladders.low[0].at.remaining (rule 'level-1')",
    ]
