"""Idempotent, multi-channel intake through the engine, on every store."""

from __future__ import annotations

from datetime import timedelta

import pytest

import qflow
from qflow import events as ev
from qflow.diagnostics import RulesetError

from tests.conftest import BASE, T0


@pytest.fixture
def pm():
    """Only the plugins intake needs, so other plugins being rewritten cannot break it."""
    import qflow_rules
    import qflow_sla

    return qflow.make_plugin_manager(autoload=False, builtins=False,
                                     plugins=[(qflow_rules, "rules"), (qflow_sla, "sla")])


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
    with pytest.raises(qflow.InputError):
        engine.report_many([{"channel": "phone"}, {"id": "INC-500", "channel": "phone"}])
    assert engine.store.count(qflow.IncidentQuery()) == 1


def test_a_window_that_is_not_a_duration_is_a_located_error(pm):
    with pytest.raises(RulesetError) as err:
        qflow.load_ruleset_text(BASE + "intake:\n  dedup_window: 2 hours\n", file="base.yaml", plugins=pm)
    assert str(err.value) == ("base.yaml:34:17: QF105 '2 hours' is not a duration "
                              "(use 15m, 1h, 2d, 1w or a sum like 1h30m) @ $.intake.dedup_window")

