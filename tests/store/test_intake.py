"""Idempotent, multi-channel intake through the engine, on every store."""

from __future__ import annotations

from datetime import timedelta

import pytest

import qflow
from qflow import events as ev
from qflow.diagnostics import RulesetError

from tests.conftest import BASE, T0


@pytest.fixture
def engine(store, pm):
    ruleset = qflow.load_ruleset_text(BASE + "intake: {dedup_window: 2h}\n", file="base.yaml", plugins=pm)
    return qflow.Engine(ruleset, plugins=pm, store=store, clock=qflow.FakeClock(T0))


PHONE = {"channel": "phone", "category": "complaint", "place": "1512", "description": "隔壁喧哗",
         "dedup_key": "1512-noise"}


def test_a_retry_with_the_same_external_id_records_nothing(engine):
    first = engine.report({**PHONE, "external_id": "crm-1"})
    again = engine.report({**PHONE, "external_id": "crm-1", "description": "retry"})
    assert again == first
    assert len(engine.events(first.id)) == 2
    assert engine.store.count(qflow.IncidentQuery()) == 1


def test_the_same_anomaly_through_another_channel_attaches_as_a_further_report(engine):
    first = engine.report(PHONE)
    engine.clock.advance(timedelta(minutes=30))
    mail = engine.report({**PHONE, "channel": "email", "description": "邮件投诉：1514房噪音"})
    assert mail.id == first.id and mail.reports == 2
    log = engine.events(first.id)
    assert [e.type for e in log] == [ev.INCIDENT_REPORTED, ev.DECISION_MADE, ev.REPORT_ATTACHED]
    assert log[-1].data["channel"] == "email"
    assert log[-1].data["report"]["description"] == "邮件投诉：1514房噪音"
    assert engine.get(first.id).reports == 2


def test_a_report_outside_the_window_or_after_closing_opens_a_new_incident(engine):
    first = engine.report(PHONE)
    engine.clock.advance(timedelta(hours=2, minutes=1))
    later = engine.report(PHONE)
    assert later.id != first.id and later.reports == 1
    engine.reject(later.id, reason="not an anomaly")
    third = engine.report(PHONE)
    assert third.id not in (first.id, later.id)


def test_a_retried_attached_report_attaches_once(engine):
    first = engine.report(PHONE)
    engine.report({**PHONE, "channel": "email", "external_id": "mail-9"})
    engine.report({**PHONE, "channel": "email", "external_id": "mail-9"})
    assert engine.get(first.id).reports == 2


def test_a_batch_is_one_transaction_with_retries_and_attachments_inside_it(engine):
    known = engine.report({**PHONE, "external_id": "crm-1", "dedup_key": None})
    states = engine.report_many([
        {**PHONE, "external_id": "crm-1"},  # a retry of a recorded report
        {**PHONE, "dedup_key": "lobby-wet-floor", "category": "hygiene"},
        {**PHONE, "dedup_key": "lobby-wet-floor", "channel": "onsite"},  # attaches to the one before
        {**PHONE, "external_id": "crm-2", "dedup_key": None},
        {**PHONE, "external_id": "crm-2", "dedup_key": None},  # the same line twice
    ])
    ids = [s.id for s in states]
    assert ids[0] == known.id and ids[1] == ids[2] and ids[3] == ids[4]
    assert len(set(ids)) == 3
    assert states[2].reports == 2 and engine.get(ids[1]).reports == 2
    assert engine.store.count(qflow.IncidentQuery()) == 3
    assert [e.seq for e in engine.events(ids[1])] == [1, 2, 3]


def test_a_failing_batch_leaves_nothing_behind(engine):
    engine.report({"id": "INC-500", "channel": "phone"})
    with pytest.raises(qflow.InputError) as err:
        engine.report_many([{"channel": "phone"}, {"id": "INC-500", "channel": "email"}])
    assert str(err.value) == ("incident INC-500 is already recorded with another report (channel differs); a retry "
                              "must repeat the recorded report, and a new incident needs an id of its own (or none)")
    assert engine.store.count(qflow.IncidentQuery()) == 1


def test_a_window_that_is_not_a_duration_is_a_located_error(pm):
    with pytest.raises(RulesetError) as err:
        qflow.load_ruleset_text(BASE + "intake:\n  dedup_window: 2 hours\n", file="base.yaml", plugins=pm)
    assert str(err.value) == ("base.yaml:34:17: QF105 '2 hours' is not a duration "
                              "(use 15m, 1h, 2d, 1w or a sum like 1h30m) @ $.intake.dedup_window")



@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_external_id_or_dedup_key_is_no_key(engine, blank):
    # Many senders write "" where they have no value: as keys, two unrelated reports
    # would be one retry, or a fire an attachment of an air-conditioning ticket.
    ac = {"channel": "phone", "category": "equipment", "description": "1203房空调不制冷",
          "external_id": blank, "dedup_key": blank}
    fire = {"channel": "email", "category": "safety", "description": "厨房起火", "external_id": blank,
            "dedup_key": blank}
    states = [engine.report(ac), engine.report(fire), *engine.report_many([ac, fire])]
    assert len({s.id for s in states}) == 4
    assert [s.reports for s in states] == [1, 1, 1, 1]
    assert [s.decision.severity for s in states] == ["normal", "critical", "normal", "critical"]
    assert {(s.incident.external_id, s.incident.dedup_key) for s in states} == {(None, None)}


def _engines(store_factory, pm) -> tuple[qflow.Engine, qflow.Engine]:
    """Two workers, each with its own handle on one store (a connection of its own on
    SQLite and PostgreSQL)."""
    ruleset = qflow.load_ruleset_text(BASE + "intake: {dedup_window: 2h}\n", file="base.yaml", plugins=pm)
    return tuple(qflow.Engine(ruleset, plugins=pm, store=store_factory.open(), clock=qflow.FakeClock(T0))
                 for _ in range(2))  # type: ignore[return-value]


def _meanwhile(store, name, run) -> None:
    """Let *run* (another worker recording) go between *store*'s next answer to the
    look-up *name* and what the asking worker does with it: the race of two workers
    taking the same report at once, made to happen every time."""
    look_up = getattr(store, name)

    def held(*args, **kwargs):
        found = look_up(*args, **kwargs)
        del store.__dict__[name]  # once (on the memory store the other worker asks it too)
        run()
        return found

    setattr(store, name, held)


@pytest.mark.parametrize("batch", [False, True], ids=["report", "report_many"])
def test_a_retry_racing_the_first_report_gets_the_recorded_incident(store_factory, pm, batch):
    first, second = _engines(store_factory, pm)
    report = {**PHONE, "external_id": "crm-1", "dedup_key": None}
    recorded = []
    _meanwhile(second.store, "find_external", lambda: recorded.append(first.report(report)))
    got = second.report_many([report])[0] if batch else second.report(report)
    assert got == recorded[0] == first.get(got.id)
    assert len(second.events(got.id)) == 2
    assert second.store.count(qflow.IncidentQuery()) == 1


@pytest.mark.parametrize("batch", [False, True], ids=["report", "report_many"])
def test_one_anomaly_reported_through_two_channels_at_once_is_one_incident(store_factory, pm, batch):
    first, second = _engines(store_factory, pm)
    recorded = []
    _meanwhile(second.store, "find_dedup", lambda: recorded.append(first.report(PHONE)))
    mail = {**PHONE, "channel": "email", "description": "邮件投诉：1514房噪音"}
    got = second.report_many([mail])[0] if batch else second.report(mail)
    assert got.id == recorded[0].id and got.reports == 2
    assert [e.type for e in second.events(got.id)] == [ev.INCIDENT_REPORTED, ev.DECISION_MADE, ev.REPORT_ATTACHED]
    assert second.events(got.id)[-1].data["channel"] == "email"
    assert second.store.count(qflow.IncidentQuery()) == 1


def test_the_same_report_under_one_id_racing_itself_is_recorded_once(store_factory, pm):
    first, second = _engines(store_factory, pm)
    report = {**PHONE, "id": "FD-20261120-01", "reported_at": T0.isoformat(), "dedup_key": None}
    recorded = []
    _meanwhile(second.store, "get", lambda: recorded.append(first.report(report)))
    assert second.report(report) == recorded[0]
    assert second.store.count(qflow.IncidentQuery()) == 1


def test_a_repeated_line_with_an_id_that_was_attached_attaches_once(engine):
    first = engine.report(PHONE)
    mail = {**PHONE, "id": "MAIL-7", "channel": "email"}
    assert engine.report(mail).reports == 2
    assert engine.report(mail).reports == 2
    assert engine.report_many([mail, mail])[0].reports == 2
    assert engine.get(first.id).reports == 2
    assert engine.store.get("MAIL-7") is None


def test_report_batch_says_what_each_report_turned_out_to_be(engine):
    engine.report({**PHONE, "external_id": "crm-1"})
    outcomes = engine.report_batch([
        {**PHONE, "external_id": "crm-1"},
        {**PHONE, "channel": "email"},
        {**PHONE, "dedup_key": "lobby"},
        {**PHONE, "dedup_key": "lobby", "external_id": "crm-2"},
        {**PHONE, "dedup_key": "lobby", "external_id": "crm-2"},
    ])
    assert [o for _, o in outcomes] == ["retry", "attached", "new", "attached", "retry"]
    assert [s.reports for s, _ in outcomes] == [2, 2, 2, 2, 2]
