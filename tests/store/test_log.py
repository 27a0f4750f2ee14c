"""The event log and the state row: appends, conflicts, atomic batches, ids."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from qflow import events as ev
from qflow.errors import ConcurrencyError, DuplicateReportError
from qflow.model import Stage
from qflow.store import Write

from tests.store.builders import T0, follow, report_write, reported, to_stage


def test_a_reported_incident_reads_back_as_written(store):
    events, state = reported("INC-1")
    store.append(events, state)
    assert store.get("INC-1") == state
    assert store.events("INC-1") == events
    got = store.get("INC-1")
    assert got.incident.place == "15楼 1512房"
    assert got.incident.extra["nested"]["list"][2] == {"deep": None}
    assert got.decision.deadlines[0].due == T0 + timedelta(hours=1)
    assert got.decision.deadlines[0].due.utcoffset() == timedelta(hours=8)


def test_unknown_incidents_read_as_nothing(store):
    assert store.get("INC-404") is None
    assert store.events("INC-404") == ()


def test_later_events_append_after_the_last_seq(store):
    events, state = reported("INC-1")
    store.append(events, state)
    more, after = follow(state, (ev.ACKNOWLEDGED, {"note": "收到"}), (ev.RESPONDED, {"message": "已处理", "channel": "phone"}))
    store.append(more, after)
    assert [e.seq for e in store.events("INC-1")] == [1, 2, 3, 4]
    got = store.get("INC-1")
    assert got == after and got.seq == 4 and got.acknowledged_at == more[0].at


def test_an_append_that_lost_the_race_is_refused_and_changes_nothing(store):
    events, state = reported("INC-1")
    store.append(events, state)
    mine, mine_after = follow(state, (ev.ACKNOWLEDGED, {"note": "a"}))
    theirs, theirs_after = follow(state, (ev.ACKNOWLEDGED, {"note": "b"}))
    store.append(theirs, theirs_after)
    with pytest.raises(ConcurrencyError) as err:
        store.append(mine, mine_after)
    assert str(err.value) == "INC-1: event seq 3 does not follow 3; reload the incident and try again"
    assert store.events("INC-1")[-1].data["note"] == "b"
    assert store.get("INC-1") == theirs_after


def test_a_batch_with_one_lost_race_names_that_incident_and_writes_none(store):
    one, one_state = reported("INC-1")
    two, two_state = reported("INC-2")
    store.write([Write(one, one_state), Write(two, two_state)])
    fine, fine_after = follow(one_state, (ev.ACKNOWLEDGED, {"note": "a"}))
    mine, mine_after = follow(two_state, (ev.ACKNOWLEDGED, {"note": "a"}))
    theirs, theirs_after = follow(two_state, (ev.ACKNOWLEDGED, {"note": "b"}))
    store.append(theirs, theirs_after)
    with pytest.raises(ConcurrencyError) as err:
        store.write([Write(fine, fine_after), Write(mine, mine_after)])
    assert str(err.value) == "INC-2: event seq 3 does not follow 3; reload the incident and try again"
    assert store.get("INC-1") == one_state and store.events("INC-1") == one
    assert store.get("INC-2") == theirs_after


def test_a_gap_in_the_log_is_refused(store):
    events, state = reported("INC-1")
    store.append(events, state)
    more, after = follow(state, (ev.ACKNOWLEDGED, {"note": "a"}), (ev.ACKNOWLEDGED, {"note": "b"}))
    with pytest.raises(ConcurrencyError) as err:
        store.append(more[1:], after)
    assert str(err.value) == "INC-1: event seq 4 does not follow 2; reload the incident and try again"
    assert len(store.events("INC-1")) == 2


def test_reporting_the_same_id_twice_is_a_conflict(store):
    events, state = reported("INC-1")
    store.append(events, state)
    with pytest.raises(ConcurrencyError) as err:
        store.append(events, state)
    assert str(err.value) == "INC-1: event seq 1 does not follow 2; reload the incident and try again"


def test_a_batch_is_written_whole_or_not_at_all(store):
    events, state = reported("INC-1")
    store.append(events, state)
    batch = [report_write(f"INC-{n}") for n in range(2, 50)] + [Write(events, state)]
    with pytest.raises(ConcurrencyError):
        store.write(batch)
    assert store.get("INC-2") is None and store.get("INC-49") is None
    assert store.events("INC-30") == ()
    assert store.events("INC-1") == events
    store.write(batch[:-1])
    assert store.get("INC-49") is not None and len(store.events("INC-49")) == 2


def test_one_batch_may_hold_several_writes_of_one_incident(store):
    events, state = reported("INC-1")
    more, after = to_stage(state, Stage.CONFIRMED)
    store.write([Write(events, state), Write(more, after)])
    assert store.get("INC-1").stage is Stage.CONFIRMED
    assert [e.seq for e in store.events("INC-1")] == [1, 2, 3]


def test_a_write_with_events_of_another_incident_is_refused(store):
    events, state = reported("INC-1")
    other, _ = reported("INC-2")
    with pytest.raises(ConcurrencyError):
        store.append((events[0], other[1]), state)
    assert store.get("INC-1") is None


def test_new_ids_are_unique_and_skip_taken_ones(store):
    first = store.next_id()
    assert first.startswith("INC-")
    events, state = reported(f"INC-{int(first[4:]) + 1}")
    store.append(events, state)
    ids = [store.next_id() for _ in range(3)] + store.next_ids(5)
    assert len(set(ids) | {first}) == 9
    assert state.id not in ids


def test_a_second_handle_sees_what_the_first_wrote(store_factory):
    one = store_factory.open()
    events, state = reported("INC-1")
    one.append(events, state)
    two = store_factory.open()
    assert two.get("INC-1") == state
    assert two.events("INC-1") == events


def test_external_ids_find_their_incident(store):
    store.write([report_write("INC-1", external_id="crm-77"), report_write("INC-2")])
    assert store.find_external("crm-77") == "INC-1"
    assert store.find_external("crm-78") is None


def test_a_second_incident_with_a_known_external_id_is_refused(store):
    store.write([report_write("INC-1", external_id="crm-77")])
    with pytest.raises(DuplicateReportError) as err:
        store.write([report_write("INC-2", external_id="crm-77")])
    assert str(err.value) == ("INC-2: external id 'crm-77' is already recorded for INC-1; the report is a retry "
                              "of INC-1: read that incident instead of writing a new one")
    with pytest.raises(ConcurrencyError):
        store.write([report_write("INC-3", external_id="crm-78"), report_write("INC-4", external_id="crm-78")])
    assert store.get("INC-3") is None
    assert store.get("INC-2") is None
    assert store.find_external("crm-77") == "INC-1"


def test_dedup_keys_find_the_latest_open_incident_in_the_window(store):
    store.write([
        report_write("INC-1", dedup_key="room-1512-noise", at=T0),
        report_write("INC-2", dedup_key="room-1512-noise", at=T0 + timedelta(hours=1)),
        report_write("INC-3", dedup_key="room-900-leak", at=T0 + timedelta(hours=1)),
    ])
    assert store.find_dedup("room-1512-noise", T0 - timedelta(hours=2)) == "INC-2"
    assert store.find_dedup("room-1512-noise", T0 + timedelta(minutes=61)) is None
    assert store.find_dedup("lobby", T0) is None
    state = store.get("INC-2")
    more, closed = to_stage(state, Stage.REJECTED)
    store.append(more, closed)
    assert store.find_dedup("room-1512-noise", T0 - timedelta(hours=2)) == "INC-1"


def test_the_schema_version_is_a_number(store_factory):
    store = store_factory.open()
    version = store.schema_version()
    assert isinstance(version, int)
    assert (version >= 1) == store_factory.durable
    assert store.upgrade() == (version, version)


def test_a_state_without_events_replaces_the_row_and_keeps_the_log(store):
    events, state = reported("INC-1")
    store.append(events, state)
    store.write([Write((), state, ())])
    assert store.events("INC-1") == events
    assert store.get("INC-1") == state


def test_a_write_without_events_from_a_stale_state_is_refused(store):
    # A tick that fired nothing writes the incident's timers alone; if the incident
    # moved on meanwhile, that write must not put back the state it read.
    events, state = reported("INC-1")
    store.append(events, state)
    more, after = follow(state, (ev.ACKNOWLEDGED, {"note": "a"}))
    store.append(more, after)
    with pytest.raises(ConcurrencyError) as err:
        store.write([Write((), state, ())])
    assert str(err.value) == "INC-1: state at seq 2 is stale (the log is at 3); reload the incident and try again"
    assert store.get("INC-1") == after


def test_a_new_incident_is_refused_when_an_open_one_took_its_dedup_key_meanwhile(store):
    store.write([report_write("INC-1", dedup_key="1512-noise", at=T0)])
    at = T0 + timedelta(minutes=10)
    late = attrs.evolve(report_write("INC-2", dedup_key="1512-noise", at=at), dedup_since=at - timedelta(hours=2))
    with pytest.raises(DuplicateReportError) as err:
        store.write([report_write("INC-3"), late])
    assert str(err.value) == ("INC-2: INC-1 with dedup key '1512-noise' was recorded meanwhile; the report is a "
                              "further report of INC-1: attach it there instead of writing a new incident")
    assert store.get("INC-2") is None and store.get("INC-3") is None
    # Incidents of the same batch are the engine's to match; one outside the window is none.
    store.write([report_write("INC-4", dedup_key="lobby", at=T0),
                 attrs.evolve(report_write("INC-5", dedup_key="lobby", at=T0 + timedelta(hours=3)),
                              dedup_since=T0 + timedelta(hours=1))])
    store.write([attrs.evolve(late, dedup_since=T0 + timedelta(minutes=1))])
    assert store.get("INC-2") is not None


def test_a_closed_incident_does_not_take_a_dedup_key(store):
    events, state = reported("INC-1", dedup_key="1512-noise")
    more, rejected = to_stage(state, Stage.REJECTED)
    store.write([Write(events, state), Write(more, rejected)])
    at = T0 + timedelta(minutes=10)
    store.write([attrs.evolve(report_write("INC-2", dedup_key="1512-noise", at=at),
                              dedup_since=at - timedelta(hours=2))])
    assert store.find_dedup("1512-noise", T0 - timedelta(hours=2)) == "INC-2"
