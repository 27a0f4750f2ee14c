"""Grouping (a burst notifies once) and suppression (an open incident silences the
ones it explains): held notifications are recorded, never delivered."""

from __future__ import annotations

from datetime import timedelta

from tests.escalation_helpers import engine, fired

M = timedelta(minutes=1)
H = timedelta(hours=1)

GROUP = """\
escalation:
  ladders:
    default:
      - id: warn
        at: {clock: respond, used: 50%}
        notify: [assignee]
  group: {by: [category, place], window: 30m}
"""

SUPPRESS = """\
escalation:
  ladders:
    default:
      - id: warn
        at: {clock: respond, used: 50%}
        notify: [assignee]
  suppress:
    - id: outage
      source: {category: power_outage}
      target: {category: equipment_fault}
      equal: [place]
"""


def test_a_burst_of_the_same_anomaly_notifies_once():
    eng, clock, rec = engine(GROUP)
    first = eng.report({"category": "room_not_clean", "place": "8F"}).id
    clock.advance(10 * M)
    second = eng.report({"category": "room_not_clean", "place": "8F"}).id
    other_place = eng.report({"category": "room_not_clean", "place": "9F"}).id
    clock.advance(10 * M)
    third = eng.report({"category": "room_not_clean", "place": "8F"}).id
    clock.advance(15 * M)  # 35 minutes after the first: a new burst
    fourth = eng.report({"category": "room_not_clean", "place": "8F"}).id
    assert [n.incident_id for n in rec.notes] == [first, other_place, fourth]
    for held in (second, third):
        assert fired(eng, held) == [("NotificationSuppressed", "incident.reported", "('housekeeping',)", first,
                                     "grouped", "FrozenDict({'category': 'room_not_clean', 'place': '8F'})")]
    assert eng.get(second).decision.team == "housekeeping"  # recorded and decided as usual


def test_a_grouped_incident_stays_quiet_while_the_first_is_open_then_speaks():
    eng, clock, rec = engine(GROUP)
    first = eng.report({"category": "room_not_clean", "place": "8F"}).id
    clock.advance(M)
    second = eng.report({"category": "room_not_clean", "place": "8F"}).id
    clock.advance(2 * H)  # both warn: only the first is delivered
    eng.tick()
    assert [(n.incident_id, n.topic) for n in rec.notes] == [(first, "incident.reported"), (first, "escalation.warning")]
    assert [f[:2] for f in fired(eng, second)] == [("NotificationSuppressed", "incident.reported"),
                                                   ("EscalationStepFired", "warn"),
                                                   ("NotificationSuppressed", "escalation.warning")]
    eng.transition(first, "rejected", reason="duplicate")
    third = eng.report({"category": "room_not_clean", "place": "8F"}).id
    assert rec.notes[-1].incident_id == third  # the leader is closed: a new burst starts


def test_an_open_outage_suppresses_equipment_faults_in_the_same_place():
    eng, clock, rec = engine(SUPPRESS)
    outage = eng.report({"category": "power_outage", "place": "A座"}).id
    fault = eng.report({"category": "equipment_fault", "place": "A座", "description": "空调不制冷"}).id
    elsewhere = eng.report({"category": "equipment_fault", "place": "B座"}).id
    assert [n.incident_id for n in rec.notes] == [outage, elsewhere]
    assert fired(eng, fault) == [("NotificationSuppressed", "incident.reported", "('front-office',)", outage,
                                  "suppressed", "outage")]
    clock.advance(2 * H)
    eng.tick()
    assert [n.incident_id for n in rec.notes[2:]] == [outage, elsewhere]
    eng.transition(outage, "rejected", reason="power is back")
    later = eng.report({"category": "equipment_fault", "place": "A座"}).id
    assert rec.notes[-1].incident_id == later


def test_a_fault_reported_before_the_outage_is_quiet_once_the_outage_is_open():
    eng, clock, rec = engine(SUPPRESS)
    fault = eng.report({"category": "equipment_fault", "place": "A座"}).id
    clock.advance(30 * M)
    outage = eng.report({"category": "power_outage", "place": "A座"}).id
    clock.advance(H + 30 * M)  # the fault's warning falls due while the outage is open
    eng.tick()
    assert [(n.incident_id, n.topic) for n in rec.notes] == [(fault, "incident.reported"),
                                                            (outage, "incident.reported")]
    assert fired(eng, fault)[-1][:5] == ("NotificationSuppressed", "escalation.warning", "('assignee',)", outage,
                                         "suppressed")
