"""The shipped content: rulesets, their incident files, the embedding example and the
example site plugin. What an ops person gets out of the box must load, decide as
documented, and keep doing so."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import qflow
from qflow import Assignment, hookimpl

ROOT = Path(__file__).resolve().parent.parent
RULESETS = ROOT / "rulesets"
SITE = ROOT / "examples" / "qflow_site_example"
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=CST)  # after every shipped incident

HOTEL = RULESETS / "hotel-front-desk.yaml"
SUPPORT = RULESETS / "support-centre.yaml"
SHIPPED = sorted(p for p in RULESETS.glob("*.yaml") if not p.name.endswith(".tests.yaml"))
INCIDENT_FILES = {HOTEL: RULESETS / "hotel-front-desk.incidents.jsonl",
                  SUPPORT: RULESETS / "support-centre.incidents.jsonl"}


def builtins_only():
    return qflow.make_plugin_manager(autoload=False)


def engine(path: Path, pm=None) -> qflow.Engine:
    pm = pm or builtins_only()
    return qflow.Engine(qflow.load_ruleset(path, plugins=pm), plugins=pm, clock=qflow.FakeClock(NOW))


def incidents(path: Path) -> list[qflow.Incident]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [qflow.parse_incident(json.loads(line)) for line in lines]


def decide_all(ruleset: Path) -> dict[str, qflow.Decision]:
    eng = engine(ruleset)
    # Each incident is decided at the moment it was reported, as a live system would.
    return {i.id: eng.decide(i, i.reported_at) for i in incidents(INCIDENT_FILES[ruleset])}


# -- rulesets load ----------------------------------------------------------------------


def test_every_shipped_ruleset_has_an_incident_file():
    assert SHIPPED == sorted(INCIDENT_FILES)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_ruleset_loads_without_errors_or_warnings(path):
    try:
        ruleset = qflow.load_ruleset(path, plugins=builtins_only())
    except qflow.RulesetError as exc:  # show every diagnostic, not just "it failed"
        pytest.fail(f"{path.name} does not load:\n{exc}")
    assert ruleset.warnings == ()
    assert ruleset.name == path.stem
    assert ruleset.names("severity") == ("critical", "high", "normal", "low")
    assert set(ruleset.names("responsibility")) == {"human", "equipment", "process", "customer"}


def test_the_hotel_ruleset_includes_the_teams_file():
    ruleset = qflow.load_ruleset(HOTEL, plugins=builtins_only())
    assert [Path(f).name for f in ruleset.files] == ["hotel-front-desk.yaml", "hotel-teams.yaml"]
    assert ruleset.names("team") == ("front-office", "housekeeping", "engineering", "fnb", "security", "quality")
    teams = ruleset.sections["teams"]
    assert teams["front-office"].name == "前厅部 Front office"
    assert teams["front-office"].lead == "王芳"
    assert ruleset.sections["responsibilities"]["process"].name == "流程缺陷 Process gap"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_rule_has_a_note_and_each_section_ends_with_a_default(path):
    ruleset = qflow.load_ruleset(path, plugins=builtins_only())
    for section in ("classify", "route"):
        rules = ruleset.sections[section]
        assert [r.id for r in rules if not r.note] == [], f"{section} rules without a note"
        assert rules[-1].id == "default" and rules[-1].when is None
        assert [r.id for r in rules[:-1] if r.when is None] == [], f"{section}: defaults before the end"


def test_hotel_ruleset_size():
    ruleset = qflow.load_ruleset(HOTEL, plugins=builtins_only())
    assert 25 <= len(ruleset.sections["classify"]) <= 40
    assert 15 <= len(ruleset.sections["route"]) <= 30


# -- incident files -----------------------------------------------------------------------


@pytest.mark.parametrize("ruleset", SHIPPED, ids=lambda p: p.name)
def test_every_line_of_the_incident_files_parses(ruleset):
    path = INCIDENT_FILES[ruleset]
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            incident = qflow.parse_incident(json.loads(line))
        except (ValueError, qflow.InputError) as exc:
            pytest.fail(f"{path.name}:{n}: {exc}")
        assert incident.id and incident.reported_at is not None, f"{path.name}:{n}"
        assert incident.reported_at.utcoffset() == timedelta(hours=8), f"{path.name}:{n}"
        assert datetime(2026, 11, 24, tzinfo=CST) <= incident.reported_at < datetime(2026, 11, 26, tzinfo=CST)
        if incident.occurred_at is not None:
            assert incident.occurred_at <= incident.reported_at, f"{path.name}:{n}"
    ids = [i.id for i in incidents(path)]
    assert len(ids) == len(set(ids))


def test_hotel_incidents_cover_every_channel_category_and_severity():
    found = incidents(INCIDENT_FILES[HOTEL])
    decisions = decide_all(HOTEL)
    ruleset = qflow.load_ruleset(HOTEL, plugins=builtins_only())
    assert 30 <= len(found) <= 40
    assert {i.channel for i in found} == {"phone", "email", "online", "onsite", "inspection", "system", "review"}
    assert {d.category for d in decisions.values()} == set(ruleset.names("category"))
    assert {d.severity for d in decisions.values()} == {"critical", "high", "normal", "low"}
    assert {d.team for d in decisions.values()} == set(ruleset.names("team"))
    assert {i.customer.tier for i in found if i.customer} >= {"platinum", "gold", "silver", "member"}
    assert sum(1 for i in found if i.attachments) >= 5
    assert sum(1 for i in found if i.impact is not None) >= 5


# -- decisions ------------------------------------------------------------------------------

HOTEL_TABLE = {
    "FD-20261124-01": ("noise", "high", "security"),
    "FD-20261124-02": ("safety", "critical", "security"),
    "FD-20261124-03": ("staff_error", "high", "front-office"),
    "FD-20261124-04": ("food_quality", "normal", "fnb"),
    "FD-20261124-05": ("room_not_clean", "normal", "housekeeping"),
    "FD-20261124-06": ("service_delay", "high", "front-office"),
    "FD-20261124-07": ("billing", "high", "front-office"),
    "FD-20261124-08": ("safety", "high", "security"),
    "FD-20261124-09": ("equipment_fault", "high", "engineering"),
    "FD-20261124-10": ("safety", "critical", "security"),
    "FD-20261124-11": ("service_delay", "high", "front-office"),
    "FD-20261124-12": ("equipment_fault", "high", "engineering"),
    "FD-20261124-13": ("staff_error", "normal", "fnb"),
    "FD-20261124-14": ("hygiene", "high", "housekeeping"),
    "FD-20261124-15": ("reservation", "normal", "front-office"),
    "FD-20261124-16": ("lost_item", "normal", "housekeeping"),
    "FD-20261124-17": ("equipment_fault", "high", "engineering"),
    "FD-20261124-18": ("staff_error", "normal", "quality"),
    "FD-20261124-19": ("equipment_fault", "high", "engineering"),
    "FD-20261124-20": ("noise", "normal", "engineering"),
    "FD-20261124-21": ("billing", "normal", "front-office"),
    "FD-20261124-22": ("theft", "high", "security"),
    "FD-20261125-01": ("noise", "high", "security"),
    "FD-20261125-02": ("equipment_fault", "high", "engineering"),
    "FD-20261125-03": ("safety", "critical", "fnb"),
    "FD-20261125-04": ("reservation", "high", "front-office"),
    "FD-20261125-05": ("equipment_fault", "low", "engineering"),
    "FD-20261125-06": ("room_not_clean", "high", "quality"),
    "FD-20261125-07": ("room_not_clean", "low", "housekeeping"),
    "FD-20261125-08": ("other", "low", "front-office"),
    "FD-20261125-09": ("staff_error", "high", "front-office"),
    "FD-20261125-10": ("complaint", "high", "front-office"),
    "FD-20261125-11": ("equipment_fault", "critical", "engineering"),
    "FD-20261125-12": ("lost_item", "high", "housekeeping"),
    "FD-20261125-13": ("safety", "critical", "security"),
    "FD-20261125-14": ("billing", "normal", "front-office"),
    "FD-20261125-15": ("amenities", "low", "housekeeping"),
    "FD-20261125-16": ("food_quality", "high", "fnb"),
    "FD-20261125-17": ("room_not_clean", "high", "housekeeping"),
    "FD-20261125-18": ("equipment_fault", "high", "engineering"),
}

SUPPORT_TABLE = {
    "TS-2611-0401": ("outage", "critical", "l2"),
    "TS-2611-0402": ("defect", "normal", "l2"),
    "TS-2611-0403": ("field_delay", "normal", "field-service"),
    "TS-2611-0404": ("how_to", "low", "service-desk"),
    "TS-2611-0405": ("spare_parts", "high", "parts"),
    "TS-2611-0406": ("staff_error", "normal", "field-service"),
    "TS-2611-0407": ("security", "critical", "l2"),
    "TS-2611-0408": ("complaint", "normal", "customer-care"),
    "TS-2611-0409": ("defect", "high", "quality"),
    "TS-2611-0410": ("installation", "high", "field-service"),
    "TS-2611-0411": ("defect", "high", "l2"),
    "TS-2611-0412": ("outage", "high", "l2"),
    "TS-2611-0413": ("field_delay", "critical", "field-service"),
    "TS-2611-0414": ("how_to", "low", "service-desk"),
    "TS-2611-0415": ("other", "normal", "l2"),
}


@pytest.mark.parametrize(("ruleset", "table"), [(HOTEL, HOTEL_TABLE), (SUPPORT, SUPPORT_TABLE)],
                         ids=["hotel", "support"])
def test_decision_table_of_the_shipped_incidents(ruleset, table):
    got = {iid: (d.category, d.severity, d.team) for iid, d in decide_all(ruleset).items()}
    assert got == table


def at(day: int, hm: str) -> datetime:
    h, m = map(int, hm.split(":"))
    return datetime(2026, 11, day, h, m, tzinfo=CST)


# id: category, severity, priority, team, owner, responsibility, respond_by, resolve_by, sources
CHOSEN = {
    # A gold guest's phone complaint about a party next door at night: security calls at the room.
    "FD-20261124-01": ("noise", "high", None, "security", "高峰", "customer", at(24, "01:40"), at(25, "00:40"),
                       {"category": "classify:noise", "severity": "classify:gold-guest-in-person",
                        "team": "route:night-noise", "owner": "route:night-noise",
                        "responsibility": "route:night-noise"}),
    # A smoke alarm from the fire panel at night: critical, and P1 from impact 3 x urgency 3.
    "FD-20261124-02": ("safety", "critical", "P1", "security", "高峰", "process", at(24, "02:30"), at(24, "06:15"),
                       {"category": "classify:fire-smoke-gas", "severity": "classify:fire-smoke-gas",
                        "priority": "priority:matrix[3][3]", "team": "route:safety-at-night",
                        "owner": "route:safety-at-night", "responsibility": "route:safety-at-night"}),
    # A platinum guest's cold room: engineering fixes it, the guest relations manager owns it.
    "FD-20261124-09": ("equipment_fault", "high", None, "engineering", "陈静", "equipment", at(24, "11:40"),
                       at(25, "10:40"),
                       {"category": "classify:equipment-fault", "severity": "classify:platinum-guest",
                        "team": "route:equipment-fault", "owner": "route:platinum-guest-relations",
                        "responsibility": "route:equipment-fault"}),
    # A reservation problem with impact and urgency but no severity rule: the matrix decides.
    "FD-20261124-15": ("reservation", "normal", "P3", "front-office", "刘洋", "process", at(24, "19:05"),
                       at(27, "15:05"),
                       {"category": "classify:reservation", "severity": "priority:matrix[1][2]",
                        "priority": "priority:matrix[1][2]", "team": "route:reservation",
                        "owner": "route:reservation", "responsibility": "route:reservation"}),
    # The second complaint about the same bathroom: quality leads the root-cause analysis.
    "FD-20261125-06": ("room_not_clean", "high", None, "quality", "林晓燕", "process", at(25, "11:00"),
                       at(26, "10:00"),
                       {"category": "classify:room-not-clean", "severity": "classify:repeat-complaint",
                        "team": "route:repeat-complaint", "owner": "route:repeat-complaint",
                        "responsibility": "route:repeat-complaint"}),
    # A lift out of service reported by the building system: P1 from the matrix makes it critical.
    "FD-20261125-11": ("equipment_fault", "critical", "P1", "engineering", "郑海", "equipment", at(25, "14:45"),
                       at(25, "18:30"),
                       {"category": "classify:equipment-fault", "severity": "priority:matrix[3][2]",
                        "priority": "priority:matrix[3][2]", "team": "route:equipment-fault",
                        "owner": "route:equipment-fault", "responsibility": "route:equipment-fault"}),
    # Cigarette smoke is not a fire; the threat of a one-star review makes it high.
    "FD-20261125-17": ("room_not_clean", "high", None, "housekeeping", "张秀英", "human", at(25, "23:30"),
                       at(26, "22:30"),
                       {"category": "classify:room-not-clean", "severity": "classify:reputation-risk",
                        "team": "route:room-not-clean", "owner": "route:room-not-clean",
                        "responsibility": "route:room-not-clean"}),
}


@pytest.mark.parametrize("iid", sorted(CHOSEN))
def test_chosen_hotel_decisions_in_full(iid):
    d = decide_all(HOTEL)[iid]
    category, severity, priority, team, owner, responsibility, respond_by, resolve_by, sources = CHOSEN[iid]
    assert (d.category, d.severity, d.priority) == (category, severity, priority)
    assert (d.team, d.owner, d.responsibility) == (team, owner, responsibility)
    assert (d.respond_by, d.resolve_by) == (respond_by, resolve_by)
    assert dict(d.sources) == sources
    assert d.ruleset.startswith("hotel-front-desk@")


def test_the_trace_of_a_shipped_decision_names_the_rules_that_matched():
    d = decide_all(HOTEL)["FD-20261125-13"]  # sparks from a socket, reported by phone
    matched = [(s.section, s.rule) for s in d.trace if s.outcome == "matched"]
    assert matched == [("classify", "fire-smoke-gas"), ("route", "safety")]
    assert d.matched == ("classify:fire-smoke-gas", "route:safety")


class RouteOnClassification:
    """Routes with the classified category in place of the reported one."""

    @hookimpl(tryfirst=True)
    def qflow_route(self, view, classification, ruleset) -> Assignment:
        return ruleset.compiled("route").run({**view, "category": classification.category})


@pytest.mark.parametrize("ruleset", SHIPPED, ids=lambda p: p.name)
def test_routing_agrees_with_the_classification(ruleset):
    # Route rules repeat the evidence of the classify rule for their category, so the
    # assignment is the same whether route conditions read the reported category or
    # the classified one.
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(RouteOnClassification(), "route-on-classification")])
    try:
        classified = engine(ruleset, pm)
        for iid, d in decide_all(ruleset).items():
            incident = next(i for i in incidents(INCIDENT_FILES[ruleset]) if i.id == iid)
            other = classified.decide(incident, incident.reported_at)
            assert (other.team, other.owner, other.responsibility) == (d.team, d.owner, d.responsibility), iid
    finally:
        pm.unregister(name="route-on-classification")


# -- examples/embed.py --------------------------------------------------------------------


@pytest.mark.parametrize("ruleset", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_incidents_escalate_and_notify_with_nothing_configured(ruleset, caplog):
    """Reported as they came and left unanswered, every shipped incident whose answer
    was due by the next morning has climbed its ladder, and the log channel delivered
    every message."""
    pm = builtins_only()
    found = incidents(INCIDENT_FILES[ruleset])
    clock = qflow.FakeClock(min(i.reported_at for i in found))
    eng = qflow.Engine(qflow.load_ruleset(ruleset, plugins=pm), plugins=pm, clock=clock, store=qflow.MemoryStore())
    for incident in sorted(found, key=lambda i: i.reported_at):
        clock.set(incident.reported_at)
        eng.report(incident)
    clock.set(NOW)
    assert eng.tick(NOW).effects > len(found)
    caplog.set_level("INFO", logger="qflow.notify")
    while eng.deliver(NOW, limit=500).claimed:
        pass
    late = [i.id for i in found if eng.get(i.id).decision.respond_by <= NOW]
    assert len(late) > len(found) / 2
    for iid in late:
        fired = [e for e in eng.events(iid) if e.type == "EscalationStepFired"]
        assert fired and fired[0].data["step"] in ("warn", "breach"), iid
    outbox = eng.store.outbox()
    assert outbox and {(m.backend, m.status) for m in outbox} == {("log", "delivered")}
    lines = [r.getMessage() for r in caplog.records if r.name == "qflow.notify"]
    assert len(lines) == len(outbox)
    assert any(" escalation.breach " in line for line in lines)


def test_the_embedding_example_runs():
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "QFLOW_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "examples/embed.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "INC-1: noise/high -> security (高峰), respond by 00:10, resolve by 11-25 23:10",
        "INC-2: safety/critical -> security (高峰), respond by 23:25, resolve by 11-25 03:10",
        "why INC-2:",
    ]
    assert lines[3].startswith("  classify/fire-smoke-gas: sets category=safety, severity=critical (because ")
    assert lines[4].startswith("  route/safety-at-night: sets team=security, owner=高峰, responsibility=process ")
    assert lines[5:] == ["INC-1 is now analysing (4 events)"]


# -- examples/qflow_site_example ------------------------------------------------------------

SITE_RULESET = SITE / "ruleset.yaml"


@pytest.fixture
def site_pm(monkeypatch):
    monkeypatch.delenv("QFLOW_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("QFLOW_BLOCKED_PLUGINS", raising=False)
    pm = qflow.make_plugin_manager()
    if not pm.has_plugin("site_example"):
        pytest.fail("the example site plugin is not installed; run: pip install -e examples/qflow_site_example")
    return pm


def test_the_site_plugin_is_found_through_its_entry_point(site_pm):
    import qflow_site_example

    assert site_pm.get_plugin("site_example") is qflow_site_example
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="qflow")}
    assert names["site_example"] == "qflow_site_example"


def site_decide(pm, **fields):
    eng = engine(SITE_RULESET, pm)
    return eng.decide(qflow.parse_incident({"reported_at": "2026-11-24T10:00:00+08:00", **fields}), NOW)


def test_the_site_plugin_raises_the_severity_for_a_listed_guest(site_pm):
    wifi = {"description": "ＷＩ-ＦＩ 连不上"}  # full-width: still mentions wifi
    plain = site_decide(site_pm, **wifi, customer={"id": "M-77120045"})
    vip = site_decide(site_pm, **wifi, customer={"id": "M-00018852"})
    assert (plain.category, plain.severity, plain.team) == ("equipment_fault", "low", "engineering")
    assert (vip.category, vip.severity, vip.team) == ("equipment_fault", "high", "engineering")
    assert vip.sources["severity"] == "vip_guests:M-00018852"
    assert vip.matched[0] == "vip_guests:M-00018852"
    assert vip.respond_by == datetime(2026, 11, 24, 11, 0, tzinfo=CST)
    steps = [(s.rule, s.outcome, s.reason) for s in vip.trace if s.section == "vip_guests"]
    assert steps == [("M-00018852", "matched", "customer M-00018852 (Catherine Liu, 集团大使 Ambassador) "
                      "is on the VIP list: severity at least high")]


def test_the_site_plugin_never_lowers_a_severity(site_pm):
    fire = site_decide(site_pm, description="房间冒烟了", customer={"id": "M-00018852"})
    assert (fire.severity, fire.sources["severity"]) == ("critical", "classify:fire")
    official = site_decide(site_pm, description="Heating is off", customer={"id": "G-2026-0031"})
    assert (official.severity, official.sources["severity"]) == ("critical", "vip_guests:G-2026-0031")


def test_the_site_ruleset_needs_the_plugin():
    with pytest.raises(qflow.RulesetError) as info:
        qflow.load_ruleset(SITE_RULESET, plugins=builtins_only())
    assert any(d.code == "QF101" and d.message == "unknown section 'vip_guests'" for d in info.value.diagnostics)


@pytest.mark.parametrize(("typo", "expected"), [
    (("raise_to: critical", "raise_to: critcal"),
     "ruleset.yaml:29:15: QF201 unknown severity 'critcal' (did you mean 'critical'?) "
     "@ $.vip_guests[1].raise_to (rule 'G-2026-0031')"),
    (("raise_to: critical", "rasie_to: critical"),
     "ruleset.yaml:29:5: QF101 unknown key 'rasie_to' (did you mean 'raise_to'?) "
     "@ $.vip_guests[1].rasie_to (rule 'G-2026-0031')"),
    (("- id: G-2026-0031", "- id: M-00018852"),
     "ruleset.yaml:26:9: QF202 vip guest 'M-00018852' is defined twice "
     "(first defined at ruleset.yaml:22) @ $.vip_guests[1].id"),
    (("{mentions: [着火, 冒烟, 烟雾, fire, smoke]}", "{mentions: [着火, 119]}"),
     "ruleset.yaml:36:31: QF303 operator 'mentions' cannot use a list: every word must be text; "
     "put numbers in quotes, e.g. mentions: ['1202'] (mentions: [word, ...] holds when the text "
     "mentions any word, ignoring width, case, spaces and hyphens) "
     "@ $.classify[0].when.description.mentions (rule 'fire')"),
], ids=["severity", "key", "duplicate", "mentions"])
def test_a_typo_in_the_site_section_is_located(site_pm, typo, expected):
    text = SITE_RULESET.read_text(encoding="utf-8")
    old, new = typo
    assert text.count(old) == 1
    with pytest.raises(qflow.RulesetError) as info:
        qflow.load_ruleset_text(text.replace(old, new), file="ruleset.yaml", plugins=site_pm)
    assert [str(d) for d in info.value.diagnostics] == [expected]
