"""Engine.tick: claims, batches, races between workers, failing plugins, the timer index."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qflow
from tests.escalation_helpers import LADDER, T0, Recorder, engine, fired, ruleset

H = timedelta(hours=1)
STEPS = ["warn", "breach", "late"]


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request, tmp_path):
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'tick.db'}"


def test_warning_breach_escalation_on_each_store(store_url):
    eng, clock, rec = engine(store=store_url)
    iid = eng.report({"category": "complaint"}).id
    for _ in range(6):
        clock.advance(H)
        eng.tick()
    assert [f[:2] for f in fired(eng, iid)] == [
        ("EscalationStepFired", "warn"), ("DeadlineBreached", "respond"), ("EscalationStepFired", "breach"),
        ("EscalationStepFired", "late"), ("EscalationStepFired", "late")]
    assert [n.topic for n in rec.notes] == ["incident.reported", "escalation.warning", "escalation.breach",
                                            "escalation.breach", "escalation.breach"]
    eng.store.close()


def test_two_engines_ticking_one_store_fire_each_step_once(store_url):
    a, clock, rec_a = engine(store=store_url)
    rs, pm = ruleset(LADDER, rec_b := Recorder())
    b = qflow.Engine(rs, plugins=pm, clock=clock, store=a.store if store_url == "memory://" else store_url)
    ids = [a.report({"category": "complaint"}).id for _ in range(5)]
    for _ in range(7):
        clock.advance(H)
        b.tick(worker="b")
        a.tick(worker="a")
    for iid in ids:
        assert [f[1] for f in fired(a, iid) if f[0] == "EscalationStepFired"] == ["warn", "breach", "late", "late", "late"]
    sent = [(n.incident_id, n.data["step"], n.data["occurrence"]) for n in rec_a.notes + rec_b.notes
            if n.topic.startswith("escalation.")]
    assert len(sent) == len(set(sent)) == 25


class Racer:
    """While engine A decides, engine B ticks the same incident past A's lease."""

    def __init__(self) -> None:
        self.other: qflow.Engine | None = None
        self.done = False

    @qflow.hookimpl(tryfirst=True)
    def qflow_due(self, now):
        if self.other is not None and not self.done:
            self.done = True
            self.other.tick(now + timedelta(minutes=10), worker="b")
        return []


def test_a_worker_that_loses_the_race_re_reads_and_records_nothing_twice():
    racer = Racer()
    a, clock, rec = engine(LADDER, racer)
    b_rs, b_pm = ruleset(LADDER)
    racer.other = qflow.Engine(b_rs, plugins=b_pm, clock=clock, store=a.store)
    iid = a.report({"category": "complaint"}).id
    clock.advance(2 * H)
    report = a.tick(worker="a", lease=timedelta(minutes=5))
    assert report.conflicts >= 1
    assert [f[1] for f in fired(a, iid)] == ["warn"]


class Broken:
    @qflow.hookimpl
    def qflow_due(self, state):
        if state.incident.place == "cursed":
            raise RuntimeError("plugin bug")
        return []


def test_a_failing_plugin_stops_neither_the_tick_nor_the_other_incidents():
    eng, clock, rec = engine(LADDER, Broken())
    bad = eng.report({"category": "complaint", "place": "cursed"}).id
    good = eng.report({"category": "complaint", "place": "lobby"}).id
    clock.advance(2 * H)
    report = eng.tick()
    assert (report.incidents, report.failed, report.effects) == (2, 1, 1)
    assert fired(eng, bad) == []
    assert [f[1] for f in fired(eng, good)] == ["warn"]
    # Released at the end of the tick: the next tick tries again.
    assert eng.tick().failed == 1


def test_one_tick_drains_every_due_incident_in_batches():
    eng, clock, rec = engine()
    ids = [eng.report({"category": "complaint"}).id for _ in range(7)]
    clock.advance(2 * H)
    report = eng.tick(limit=3)
    assert (report.incidents, report.effects, report.notifications) == (7, 7, 7)
    assert all(fired(eng, i)[0][1] == "warn" for i in ids)
    clock.advance(2 * H)
    once = eng.tick(limit=3, drain=False)
    assert (once.timers, once.incidents) == (3, 2)  # one incident has two timers due
    assert eng.tick(limit=100).incidents == 5


def test_a_timers_only_write_from_a_stale_state_is_refused():
    store = qflow.MemoryStore()
    eng, clock, _ = engine(store=store)
    iid = eng.report({"category": "complaint"}).id
    stale = store.get(iid)
    eng.acknowledge(iid, actor="王芳")
    with pytest.raises(qflow.ConcurrencyError) as info:
        store.write([qflow.Write((), stale, ())])
    assert str(info.value) == (f"{iid}: state at seq 2 is stale (the log is at 3); reload the incident and try again")


# -- the in-memory timer index ------------------------------------------------------

_minutes = st.integers(min_value=0, max_value=120)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.lists(_minutes, max_size=3)), max_size=30), _minutes,
       st.integers(1, 8))
def test_claims_come_earliest_first_and_only_for_current_timers(writes, until, limit):
    store = qflow.MemoryStore()
    base = qflow.Incident(id="X", reported_at=T0)
    current: dict[str, list[qflow.Timer]] = {}
    seqs: dict[str, int] = {}
    for n, minutes in writes:
        iid = f"INC-{n}"
        seq = seqs.get(iid, 0) + 1
        seqs[iid] = seq
        state = qflow.IncidentState(incident=qflow.Incident(id=iid, reported_at=T0), stage=qflow.Stage.REPORTED,
                                    seq=seq, updated_at=T0)
        event = qflow.Event(iid, seq, T0, "Noted")
        timers = [qflow.Timer(iid, f"k{i}", T0 + timedelta(minutes=m)) for i, m in enumerate(minutes)]
        store.write([qflow.Write((event,), state, timers)])
        current[iid] = timers
    assert base.id == "X"
    cut = T0 + timedelta(minutes=until)
    expected = sorted((t for ts in current.values() for t in ts if t.at <= cut),
                      key=lambda t: (t.at, t.incident_id, t.key))
    first = store.claim_timers(cut, worker="a", limit=limit)
    assert first == expected[:limit]
    # Claimed ones are not handed to another worker; the rest are.
    assert store.claim_timers(cut, worker="b", limit=100) == expected[limit:]
    store.release_timers("a")
    assert store.claim_timers(cut, worker="c", limit=100) == expected[:limit]


class CountingStore(qflow.MemoryStore):
    """Counts how the tick reads incidents; can be told to fail its batch read."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail, self.batches, self.gets = fail, [], 0

    def read_many(self, incident_ids):
        self.batches.append(len(incident_ids))
        if self.fail:
            raise qflow.StoreError("batch read failed")
        return super().read_many(incident_ids)

    def get(self, incident_id):
        self.gets += 1
        return super().get(incident_id)


def test_a_tick_reads_each_batch_of_due_incidents_in_one_go():
    store = CountingStore()
    eng, clock, _ = engine(store=store)
    ids = [eng.report({"category": "complaint"}).id for _ in range(7)]
    clock.advance(2 * H)
    store.gets = 0
    report = eng.tick(limit=3)
    assert (report.incidents, report.effects) == (7, 7)
    assert store.batches == [3, 3, 1]
    assert store.gets == 7  # the default read_many: one get per incident, none again to plan it
    assert all(fired(eng, i)[0][1] == "warn" for i in ids)


def test_a_failing_batch_read_falls_back_to_reading_each_incident():
    store = CountingStore(fail=True)
    eng, clock, _ = engine(store=store)
    ids = [eng.report({"category": "complaint"}).id for _ in range(3)]
    clock.advance(2 * H)
    report = eng.tick()
    assert (report.incidents, report.effects, report.failed) == (3, 3, 0)
    assert all(fired(eng, i)[0][1] == "warn" for i in ids)


CASCADE = """\
escalation:
  ladders:
    default:
      - id: late
        at: {clock: respond, overdue: 1h}
        notify: ["role:quality-manager"]
        raise_severity: 2
      - id: resolve-warn
        at: {clock: resolve, used: 50%}
        notify: [team.lead]
"""


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_what_a_tick_makes_due_at_once_is_fired_in_the_same_tick(kind, tmp_path):
    # At 15:00 the raise to critical (resolve 4h from 10:00) puts the resolve breach and
    # the resolve warning in the past: they are recorded by this tick, not the next.
    store = None if kind == "memory" else f"sqlite:///{tmp_path / 'c.db'}"
    eng, clock, rec = engine(CASCADE, store=store)
    iid = eng.report({"category": "complaint"}).id
    clock.advance(5 * H)
    assert eng.tick() == qflow.TickReport(timers=4, incidents=1, effects=5, notifications=2)
    assert [f[:2] for f in fired(eng, iid)] == [
        ("DeadlineBreached", "respond"), ("EscalationStepFired", "late"), ("SeverityChanged", "normal"),
        ("DeadlineBreached", "resolve"), ("EscalationStepFired", "resolve-warn")]
    assert {e.at for e in eng.events(iid)[2:]} == {clock.now()}
    assert [t for t in eng.store.timers(iid) if t.at <= clock.now()] == []
    assert eng.tick() == qflow.TickReport()


class Restless:
    """Records an event and makes a timer due at once on every ask: never settles."""

    asked = 0

    @qflow.hookimpl
    def qflow_schedule(self, state, events, ruleset, now):
        return [qflow.Timer(state.id, "restless", now)]

    @qflow.hookimpl
    def qflow_due(self, state, events, ruleset, now, store, plugins):
        Restless.asked += 1
        return [qflow.Effect("Restless", "restless", {})]


def test_an_incident_that_never_settles_is_asked_three_times_a_tick():
    Restless.asked = 0
    eng, clock, _ = engine("", Restless())
    eng.report({"category": "complaint"})
    assert eng.tick() == qflow.TickReport(timers=3, incidents=1, effects=3)
    assert Restless.asked == 3


def test_stop_is_asked_before_an_incident_is_asked_again():
    Restless.asked = 0
    eng, clock, _ = engine("", Restless())
    eng.report({"category": "complaint"})
    assert eng.tick(stop=lambda: True) == qflow.TickReport(timers=1, incidents=1, effects=1)
