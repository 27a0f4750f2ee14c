"""Timers and the outbox: replace, claim with leases, release, idempotent messages."""

from __future__ import annotations

from datetime import timedelta, timezone

from qflow import events as ev
from qflow.model import Stage
from qflow.store import DeliveryAttempt, OutboxMessage, Timer, Write

from tests.store.builders import T0, follow, report_write, reported, to_stage

M = timedelta(minutes=1)


def _timers(iid: str, *offsets: int) -> tuple[Timer, ...]:
    return tuple(Timer(iid, f"clock:{n}", T0 + n * M) for n in offsets)


def test_timers_are_replaced_kept_or_cleared_with_each_write(store):
    events, state = reported("INC-1")
    store.write([Write(events, state, _timers("INC-1", 30, 10))])
    assert store.timers("INC-1") == list(_timers("INC-1", 10, 30))
    more, after = follow(state, (ev.ACKNOWLEDGED, {"note": ""}))
    store.write([Write(more, after, None)])
    assert store.timers("INC-1") == list(_timers("INC-1", 10, 30))
    more2, after2 = follow(after, (ev.ACKNOWLEDGED, {"note": ""}))
    store.write([Write(more2, after2, _timers("INC-1", 45))])
    assert store.timers("INC-1") == list(_timers("INC-1", 45))
    more3, after3 = to_stage(after2, Stage.REJECTED)
    store.write([Write(more3, after3, ())])
    assert store.timers("INC-1") == [] and store.timers() == []


def test_the_last_write_of_a_batch_says_what_an_incidents_timers_are(store):
    events, state = reported("INC-1")
    store.write([Write(events, state, _timers("INC-1", 10, 30))])
    one, mid = follow(state, (ev.ACKNOWLEDGED, {"note": ""}))
    two, last = follow(mid, (ev.ACKNOWLEDGED, {"note": ""}))
    moved = Timer("INC-1", "clock:30", T0 + 40 * M)
    same_instant = Timer("INC-1", "clock:10", (T0 + 10 * M).astimezone(timezone.utc))
    store.write([Write(one, mid, _timers("INC-1", 10, 20, 30)), Write(two, last, (same_instant, moved))])
    assert store.timers("INC-1") == [same_instant, moved]
    assert store.timers("INC-1")[0].at.utcoffset() == timedelta(0)  # as written last


def test_due_timers_are_claimed_earliest_first_up_to_the_limit(store):
    store.write([report_write("INC-1", timers=_timers("INC-1", 5, 50)),
                 report_write("INC-2", timers=_timers("INC-2", 1, 20)),
                 report_write("INC-3", timers=_timers("INC-3", 500))])
    assert store.timers() == sorted(_timers("INC-1", 5, 50) + _timers("INC-2", 1, 20) + _timers("INC-3", 500),
                                    key=lambda t: (t.at, t.incident_id))
    got = store.claim_timers(T0 + 60 * M, worker="w1", limit=3, lease_until=T0 + 65 * M)
    assert got == [Timer("INC-2", "clock:1", T0 + M), Timer("INC-1", "clock:5", T0 + 5 * M),
                   Timer("INC-2", "clock:20", T0 + 20 * M)]
    assert got[0].at.utcoffset() == timedelta(hours=8)


def test_a_claim_holds_against_other_workers_until_its_lease_ends(store_factory):
    one, two = store_factory.open(), store_factory.open()
    one.write([report_write("INC-1", timers=_timers("INC-1", 5, 6))])
    now = T0 + 10 * M
    assert len(one.claim_timers(now, worker="w1", lease_until=now + 5 * M)) == 2
    assert two.claim_timers(now, worker="w2", lease_until=now + 5 * M) == []
    assert two.claim_timers(now + 4 * M, worker="w2") == []
    # The holder may claim again (a retried tick), and after the lease anyone may.
    assert len(one.claim_timers(now, worker="w1", lease_until=now + 5 * M)) == 2
    assert len(two.claim_timers(now + 5 * M, worker="w2", lease_until=now + 10 * M)) == 2
    assert one.claim_timers(now + 6 * M, worker="w1") == []


def test_released_claims_go_to_the_next_worker(store_factory):
    one, two = store_factory.open(), store_factory.open()
    one.write([report_write("INC-1", timers=_timers("INC-1", 5))])
    now = T0 + 10 * M
    assert one.claim_timers(now, worker="w1", lease_until=now + 60 * M) != []
    assert two.claim_timers(now, worker="w2") == []
    one.release_timers("w1")
    assert two.claim_timers(now, worker="w2") == list(_timers("INC-1", 5))


def test_a_claim_without_a_lease_holds_until_released(store):
    store.write([report_write("INC-1", timers=_timers("INC-1", 5))])
    assert store.claim_timers(T0 + 10 * M, worker="w1") != []
    assert store.claim_timers(T0 + 1000 * M, worker="w2") == []


def test_replacing_an_incidents_timers_drops_their_claims(store):
    events, state = reported("INC-1")
    store.write([Write(events, state, _timers("INC-1", 5))])
    now = T0 + 10 * M
    assert store.claim_timers(now, worker="w1", lease_until=now + 60 * M) != []
    more, after = follow(state, (ev.ACKNOWLEDGED, {"note": ""}))
    store.write([Write(more, after, _timers("INC-1", 5))])
    assert store.claim_timers(now, worker="w2") == list(_timers("INC-1", 5))


def _message(mid: str, iid: str = "INC-1", *, at_min: int = 0, status: str = "pending") -> OutboxMessage:
    return OutboxMessage(id=mid, incident_id=iid, channel="team-lead", backend="smtp", created_at=T0 + at_min * M,
                         next_attempt_at=T0 + at_min * M, payload={"to": ["王芳"], "subject": "[high] INC-1"},
                         status=status)


def test_outbox_messages_are_stored_once_per_id(store):
    events, state = reported("INC-1")
    store.write([Write(events, state, (), (_message("m1"), _message("m2", at_min=1)))])
    more, after = follow(state, (ev.ACKNOWLEDGED, {"note": ""}))
    store.write([Write(more, after, None, (_message("m1"), _message("m3", at_min=2)))])
    assert [m.id for m in store.outbox()] == ["m1", "m2", "m3"]
    assert store.outbox(incident_id="INC-1", status="pending")[0] == _message("m1")
    assert store.outbox(incident_id="INC-2") == [] and store.outbox(status="delivered") == []


def test_ready_messages_are_claimed_once_and_delivery_is_recorded(store_factory):
    one, two = store_factory.open(), store_factory.open()
    events, state = reported("INC-1")
    one.write([Write(events, state, (), (_message("m2", at_min=2), _message("m1", at_min=1),
                                         _message("m9", at_min=90)))])
    now = T0 + 10 * M
    got = one.claim_outbox(now, worker="w1", lease_until=now + 5 * M)
    assert [m.id for m in got] == ["m1", "m2"]
    assert two.claim_outbox(now, worker="w2") == []
    import attrs

    sent = attrs.evolve(got[0], status="delivered", attempts=1)
    more, after = follow(state, (ev.ACKNOWLEDGED, {"note": "sent"}))
    one.record_delivery(sent, DeliveryAttempt("m1", 1, now, True, None, "w1"), Write(more, after))
    failed = attrs.evolve(got[1], attempts=1, last_error="550 mailbox unavailable", next_attempt_at=now + 30 * M)
    one.record_delivery(failed, DeliveryAttempt("m2", 1, now, False, "550 mailbox unavailable", "w1"))
    assert two.outbox(status="delivered") == [sent]
    assert two.get("INC-1").seq == 3
    assert two.attempts("m2") == [DeliveryAttempt("m2", 1, now, False, "550 mailbox unavailable", "w1")]
    assert two.attempts("m404") == []
    # m2 waits for its next attempt; the claim was released with the record.
    assert two.claim_outbox(now + 29 * M, worker="w2") == []
    assert [m.id for m in two.claim_outbox(now + 30 * M, worker="w2")] == ["m2"]
    assert one.claim_outbox(now + 100 * M, worker="w1") == [_message("m9", at_min=90)]


def test_release_gives_back_outbox_claims_too(store_factory):
    one, two = store_factory.open(), store_factory.open()
    events, state = reported("INC-1")
    one.write([Write(events, state, (), (_message("m1"),))])
    assert one.claim_outbox(T0, worker="w1") != []
    one.release_timers("w1")
    assert [m.id for m in two.claim_outbox(T0, worker="w2")] == ["m1"]


def test_a_late_failure_after_another_workers_success_leaves_the_message_delivered(store_factory):
    import attrs

    a, b = store_factory.open(), store_factory.open()
    events, state = reported("INC-1")
    a.write([Write(events, state, (), (_message("m1"),))])
    [mine] = a.claim_outbox(T0, worker="A", lease_until=T0 + 5 * M)
    later = T0 + 6 * M  # A's send hangs past its lease; B takes the message and delivers it
    [theirs] = b.claim_outbox(later, worker="B", lease_until=later + 5 * M)
    assert b.record_delivery(attrs.evolve(theirs, status="delivered", attempts=1),
                             DeliveryAttempt("m1", 1, later, True, None, "B")) is True
    more, after = follow(state, (ev.NOTIFICATION_DEAD_LETTERED, {"message": "m1"}))
    dead = attrs.evolve(mine, status="dead", attempts=1, last_error="HTTP 500")
    assert a.record_delivery(dead, DeliveryAttempt("m1", 1, later, False, "HTTP 500", "A"),
                             Write(more, after)) is False
    assert [(m.id, m.status, m.attempts) for m in b.outbox()] == [("m1", "delivered", 1)]
    assert b.attempts("m1") == [DeliveryAttempt("m1", 1, later, True, None, "B"),
                                DeliveryAttempt("m1", 2, later, False, "HTTP 500", "A", stale=True)]
    assert b.get("INC-1").seq == 2 and [e.type for e in b.events("INC-1")] == [ev.INCIDENT_REPORTED,
                                                                               ev.DECISION_MADE]
    assert b.claim_outbox(later + 60 * M, worker="C") == []


def test_a_stale_try_recorded_first_does_not_take_the_holders_number(store_factory):
    import attrs

    a, b = store_factory.open(), store_factory.open()
    events, state = reported("INC-1")
    a.write([Write(events, state, (), (_message("m1"),))])
    [mine] = a.claim_outbox(T0, worker="A", lease_until=T0 + 5 * M)
    later = T0 + 6 * M
    [theirs] = b.claim_outbox(later, worker="B", lease_until=later + 5 * M)
    retry = later + 30 * M
    assert a.record_delivery(attrs.evolve(mine, attempts=1, next_attempt_at=retry),
                             DeliveryAttempt("m1", 1, later, False, "timeout", "A")) is False
    assert [(m.status, m.next_attempt_at) for m in b.outbox()] == [("pending", T0)]  # B's claim stands
    assert b.record_delivery(attrs.evolve(theirs, status="delivered", attempts=1),
                             DeliveryAttempt("m1", 1, later, True, None, "B")) is True
    assert [(t.number, t.worker, t.ok, t.stale) for t in b.attempts("m1")] == [
        (1, "A", False, True), (2, "B", True, False)]
    assert [m.status for m in b.outbox()] == ["delivered"]
