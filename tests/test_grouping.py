"""Grouping (a burst notifies once) and suppression (an open incident silences the
ones it explains): held notifications are recorded, never delivered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.escalation_helpers import T0, engine, fired

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


def test_the_leader_is_found_behind_earlier_reports_grouped_into_a_closed_one():
    # The store is asked a few incidents at a time, earliest first: here the leader
    # comes after three open reports that were grouped into one since closed.
    eng, clock, rec = engine(GROUP)
    first = eng.report({"category": "room_not_clean", "place": "8F"}).id
    grouped = []
    for _ in range(3):
        clock.advance(M)
        grouped.append(eng.report({"category": "room_not_clean", "place": "8F"}).id)
    eng.transition(first, "rejected", reason="duplicate")
    clock.advance(M)
    leader = eng.report({"category": "room_not_clean", "place": "8F"}).id
    clock.advance(M)
    follower = eng.report({"category": "room_not_clean", "place": "8F"}).id
    assert [n.incident_id for n in rec.notes] == [first, leader]
    assert [f[3] for f in fired(eng, follower)] == [leader]
    assert all([f[3] for f in fired(eng, g)] == [first] for g in grouped)


def test_a_suppression_asks_the_store_only_for_incidents_that_may_be_its_source():
    # Among many open faults of the place, only open power outages can suppress: the
    # source's category goes into the query rather than being tested on every one.
    eng, clock, rec = engine(SUPPRESS)
    for _ in range(5):
        eng.report({"category": "equipment_fault", "place": "A座"})
    outage = eng.report({"category": "power_outage", "place": "A座"}).id
    asked, query = [], eng.store.query

    def recording(q):
        found = query(q)
        asked.append((q.category, q.place, q.open_only, [s.id for s in found]))
        return found

    eng.store.query = recording
    fault = eng.report({"category": "equipment_fault", "place": "A座", "description": "空调不制冷"}).id
    assert asked == [("power_outage", "A座", True, [outage])]
    assert fired(eng, fault)[0][3:5] == (outage, "suppressed")


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


# -- release: what a holder held is sent once it closes --------------------------------

def _release_timer(eng, incident_id):
    return [t.at for t in eng.store.timers(incident_id) if t.key == "esc:release"]


def _released(eng, incident_id):
    return [(e.at, dict(e.data)) for e in eng.events(incident_id) if e.type == "NotificationsReleased"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_fault_still_open_when_its_outage_closes_is_told_once(kind, tmp_path):
    store = None if kind == "memory" else f"sqlite:///{tmp_path / 'g.sqlite3'}"
    eng, clock, rec = engine(SUPPRESS, store=store)
    outage = eng.report({"category": "power_outage", "place": "A座"}).id
    fault = eng.report({"category": "equipment_fault", "place": "A座", "title": "空调不制冷"}).id
    assert _release_timer(eng, fault) == [T0 + 5 * M]
    clock.advance(4 * M)
    eng.tick()  # not yet looked at: nothing
    clock.advance(M)
    eng.tick()  # looked at, the outage still open: held on, looked at again 5 minutes later
    assert _released(eng, fault) == [] and [n.incident_id for n in rec.notes] == [outage]
    assert _release_timer(eng, fault) == [T0 + 10 * M]
    clock.advance(2 * M)
    eng.transition(outage, "rejected", reason="power is back")
    clock.advance(3 * M)
    eng.tick()
    assert _released(eng, fault) == [(T0 + 10 * M, {
        "by": outage, "reason": "suppressed", "held": 1, "topics": ("incident.reported",),
        "holder_stage": "rejected"})]
    note = rec.notes[-1]
    assert (note.incident_id, note.topic, note.recipients, note.subject, note.body) == (
        fault, "incident.released", ("front-office",),
        f"[normal] {fault} equipment_fault: still open; 1 notification held while {outage} was open "
        f"(incident.reported), and {outage} is rejected", "空调不制冷")
    assert _release_timer(eng, fault) == []
    clock.advance(H)
    eng.tick()
    assert len(_released(eng, fault)) == 1  # once


def test_a_group_releases_everything_it_held_to_everyone_it_was_for():
    eng, clock, rec = engine(GROUP)
    first = eng.report({"category": "room_not_clean", "place": "8F"}).id
    clock.advance(M)
    second = eng.report({"category": "room_not_clean", "place": "8F"}).id
    clock.advance(2 * H)
    eng.tick()  # both warn; the second's warning is held too
    eng.transition(first, "rejected", reason="duplicate")
    clock.advance(5 * M)
    eng.tick()
    assert [d for _, d in _released(eng, second)] == [{
        "by": first, "reason": "grouped", "held": 2, "topics": ("incident.reported", "escalation.warning"),
        "holder_stage": "rejected"}]
    assert rec.topics()[-1] == (second, "incident.released", ("housekeeping", "assignee"))


def test_an_incident_that_closes_while_held_is_not_released_and_looks_no_more():
    eng, clock, rec = engine(SUPPRESS)
    outage = eng.report({"category": "power_outage", "place": "A座"}).id
    fault = eng.report({"category": "equipment_fault", "place": "A座"}).id
    eng.transition(fault, "rejected", reason="same cause as the outage")
    assert eng.store.timers(fault) == []
    eng.transition(outage, "rejected", reason="power is back")
    clock.advance(H)
    eng.tick()
    assert _released(eng, fault) == [] and [n.incident_id for n in rec.notes] == [outage]


def test_release_can_be_turned_off():
    eng, clock, rec = engine(SUPPRESS + "  release: {enabled: false}\n")
    outage = eng.report({"category": "power_outage", "place": "A座"}).id
    fault = eng.report({"category": "equipment_fault", "place": "A座"}).id
    assert _release_timer(eng, fault) == []
    eng.transition(outage, "rejected", reason="power is back")
    clock.advance(H)
    eng.tick()
    assert _released(eng, fault) == [] and [n.incident_id for n in rec.notes] == [outage]


def test_a_release_check_of_no_time_is_a_located_error():
    from qflow.diagnostics import RulesetError

    with pytest.raises(RulesetError) as err:
        engine(SUPPRESS + "  release: {check: 0m}\n")
    assert [str(d) for d in err.value.diagnostics] == [
        "esc.yaml:44:20: QF105 '0m' is not a positive duration (use 15m, 1h, 2d, 1w or a sum like 1h30m) "
        "@ $.escalation.release.check"]


# -- two sources of one rule: the earlier holds the later, never both ways -----------

def test_two_reports_of_one_power_outage_the_first_keeps_notifying_the_second_is_held():
    # The shipped hotel ruleset: each outage report matches the power-outage rule as
    # its source and as its target; 40 minutes apart, so they are not grouped.
    from pathlib import Path

    import qflow

    hotel = Path(__file__).resolve().parent.parent / "rulesets" / "hotel-front-desk.yaml"
    clock = qflow.FakeClock(T0.replace(hour=14))
    eng = qflow.Engine.from_path(hotel, clock=clock)
    first = eng.report({"channel": "phone", "place": "15楼", "description": "15楼停电了，房间没电"}).id
    clock.advance(40 * M)
    second = eng.report({"channel": "phone", "place": "15楼", "description": "停电，电梯口也没电 power outage"}).id
    for _ in range(3):
        clock.advance(H)
        eng.tick()

    def topics(iid):
        return sorted(m.payload["topic"] for m in eng.store.outbox(incident_id=iid))

    assert topics(first) == ["escalation.breach", "escalation.breach", "escalation.warning", "incident.reported"]
    assert not [e for e in eng.events(first) if e.type == "NotificationSuppressed"]
    assert topics(second) == []
    assert {(e.data["by"], e.data["reason"]) for e in eng.events(second) if e.type == "NotificationSuppressed"} == {
        (first, "suppressed")}
    eng.transition(first, "rejected", reason="power is back")
    clock.advance(10 * M)
    eng.tick()  # the second is still open: what it held is told once
    assert topics(second) == ["incident.released"]


def test_a_burst_held_by_an_outage_is_released_once_by_its_leader():
    # B and C are one burst (grouped) and both consequences of the outage A: C joins
    # B's group, so when A closes only B speaks for the burst.
    eng, clock, rec = engine(SUPPRESS + "  group: {by: [category, place], window: 30m}\n")
    outage = eng.report({"category": "power_outage", "place": "B1"}).id
    clock.advance(5 * M)
    leader = eng.report({"category": "equipment_fault", "place": "B1"}).id
    clock.advance(5 * M)
    member = eng.report({"category": "equipment_fault", "place": "B1"}).id
    assert [f[3:5] for f in fired(eng, leader)] == [(outage, "suppressed")]
    assert [f[3:5] for f in fired(eng, member)] == [(leader, "grouped")]
    clock.advance(H)
    eng.transition(outage, "rejected", reason="power is back")
    clock.advance(5 * M)
    eng.tick()
    assert rec.topics()[1:] == [(leader, "incident.released", ("front-office",))]
    clock.advance(H)  # the warnings fall due: the member's is held by its leader
    eng.tick()
    assert rec.topics()[2:] == [(leader, "escalation.warning", ("assignee",))]
    assert [f[:5] for f in fired(eng, member)][-1] == (
        "NotificationSuppressed", "escalation.warning", "('assignee',)", leader, "grouped")
