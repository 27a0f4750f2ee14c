"""Model values: frozen, strict to structure, and every class round-trips."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qflow
from qflow import (
    Action,
    ActionKind,
    ActionStatus,
    Assignment,
    Attachment,
    Cause,
    Classification,
    Command,
    Customer,
    Deadline,
    Decision,
    Effect,
    Event,
    Incident,
    IncidentState,
    KnownError,
    LedgerEntry,
    LedgerKind,
    MetricFigure,
    Notification,
    Person,
    Problem,
    RiskPoint,
    Stage,
    Suggestion,
    Trace,
    TraceStep,
    Verification,
    VerificationResult,
    WhyStep,
)
from qflow._frozen import FrozenDict

conv = qflow.make_converter()

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
opt_text = st.none() | text
offsets = st.sampled_from([timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))])
aware = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(lambda d: d.replace(microsecond=0)),
    offsets,
)
json_scalar = st.none() | st.booleans() | st.integers(-10**6, 10**6) | text
json_data = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8)
extra = st.dictionaries(text, json_data, max_size=3)
durations = st.integers(1, 10**7).map(lambda s: timedelta(seconds=s))

person = st.builds(Person, id=opt_text, name=opt_text, contact=opt_text)
customer = st.builds(Customer, id=opt_text, name=opt_text, tier=opt_text, contact=opt_text, extra=extra)
attachment = st.builds(Attachment, ref=text, kind=text, name=opt_text, added_by=opt_text)
incident = st.builds(
    Incident, id=opt_text, reported_at=st.none() | aware, occurred_at=st.none() | aware, channel=opt_text,
    category=opt_text, place=opt_text, asset=opt_text, title=opt_text, description=text, scope=opt_text,
    impact=st.none() | st.integers(1, 5), urgency=st.none() | st.integers(1, 5),
    reporter=st.none() | person, customer=st.none() | customer,
    attachments=st.lists(attachment, max_size=2), tags=st.lists(text, max_size=3), external_id=opt_text, extra=extra,
)
why = st.builds(WhyStep, why=text, because=text, root=st.booleans())
cause = st.builds(Cause, id=text, summary=text, method=text, branch=opt_text, whys=st.lists(why, max_size=5),
                  evidence=st.lists(attachment, max_size=2), confirmed=st.booleans(), recorded_by=opt_text,
                  code=opt_text, responsibility=opt_text)
numbers = st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32)
ledger = st.builds(LedgerEntry, at=aware, kind=st.sampled_from(LedgerKind), note=text, by=opt_text,
                   percent=st.none() | st.integers(0, 100), due=st.none() | aware)
action = st.builds(Action, id=text, description=text, owner=text, due=aware, kind=st.sampled_from(ActionKind),
                   target=opt_text, status=st.sampled_from(ActionStatus), done_at=st.none() | aware,
                   feasibility=opt_text, expected_effect=opt_text, cause=opt_text, ledger=st.lists(ledger, max_size=2))
figure = st.builds(MetricFigure, metric=text, kind=text, baseline=numbers, after=numbers,
                   result=st.none() | st.sampled_from(VerificationResult), note=opt_text)
verification = st.builds(Verification, result=st.sampled_from(VerificationResult), at=aware, verifier=opt_text,
                         method=text, metrics=extra, note=opt_text, figures=st.lists(figure, max_size=2),
                         evidence=st.lists(attachment, max_size=2), baseline_from=st.none() | aware,
                         measured_from=st.none() | aware, after_until=st.none() | aware)
command = st.builds(Command, name=text, actor=opt_text, subject=st.none() | text, data=extra)
suggestion = st.builds(Suggestion, known_error=text, score=st.floats(0, 1), reason=text, workaround=opt_text,
                       source=opt_text)
known_error = st.builds(KnownError, id=text, summary=text, workaround=opt_text, cause_code=opt_text,
                        category=opt_text, place=opt_text, asset=opt_text, keywords=st.lists(text, max_size=2),
                        incidents=st.lists(text, max_size=2), recorded_at=st.none() | aware)
problem = st.builds(Problem, id=text, fingerprint=extra, opened_at=aware, incidents=st.lists(text, max_size=3),
                    status=text, reason=opt_text, known_error=opt_text)
risk = st.builds(RiskPoint, dimension=text, value=text, count=st.integers(0, 100), previous=st.integers(0, 100))
event = st.builds(Event, incident_id=text, seq=st.integers(1, 10**6), at=aware, type=text, actor=opt_text,
                  source=opt_text, ruleset=opt_text, data=extra)
deadline = st.builds(lambda c, start, span, cal: Deadline(c, start, start + span, span, cal), text, aware, durations, text)
step = st.builds(TraceStep, section=text, rule=opt_text, outcome=text, reason=text, source=opt_text)
decision = st.builds(
    Decision, incident_id=opt_text, decided_at=aware, ruleset=text, category=opt_text, severity=opt_text,
    priority=opt_text, team=opt_text, owner=opt_text, responsibility=opt_text, deadlines=st.lists(deadline, max_size=2),
    matched=st.lists(text, max_size=3), sources=st.dictionaries(text, text, max_size=3),
    trace=st.lists(step, max_size=3).map(lambda s: Trace(tuple(s))),
)
classification = st.builds(Classification, category=opt_text, severity=opt_text, priority=opt_text, source=opt_text,
                           matched=st.lists(text, max_size=2), sources=st.dictionaries(text, text, max_size=2))
assignment = st.builds(Assignment, team=opt_text, owner=opt_text, responsibility=opt_text, source=opt_text,
                       matched=st.lists(text, max_size=2), sources=st.dictionaries(text, text, max_size=2))
notification = st.builds(Notification, incident_id=text, topic=text, at=aware, recipients=st.lists(text, max_size=2),
                         subject=text, body=text, data=extra)
effect = st.builds(Effect, type=text, source=text, data=extra, notifications=st.lists(notification, max_size=2))
state = st.builds(
    IncidentState, incident=incident, stage=st.sampled_from(Stage), seq=st.integers(1, 1000), updated_at=aware,
    decision=st.none() | decision, causes=st.lists(cause, max_size=2), actions=st.lists(action, max_size=2),
    verifications=st.lists(verification, max_size=2), rejected_reason=opt_text, problem=opt_text,
)

ALL = {
    Person: person, Customer: customer, Attachment: attachment, Incident: incident, WhyStep: why, Cause: cause,
    Action: action, Verification: verification, Event: event, Deadline: deadline, TraceStep: step,
    Decision: decision, Classification: classification, Assignment: assignment, Notification: notification,
    IncidentState: state, Effect: effect, LedgerEntry: ledger, MetricFigure: figure, Command: command,
    Suggestion: suggestion, KnownError: known_error, Problem: problem, RiskPoint: risk,
}


def test_every_public_model_class_is_covered():
    public = {getattr(qflow.model, n) for n in qflow.model.__all__}
    attrs_classes = {c for c in public if attrs.has(c)}
    assert attrs_classes == set(ALL)


@pytest.mark.parametrize("cls", list(ALL), ids=lambda c: c.__name__)
def test_round_trip(cls):
    @settings(max_examples=60, deadline=None)
    @given(ALL[cls])
    def check(value):
        plain = conv.unstructure(value)
        back = conv.structure(plain, cls)
        assert back == value
        if cls is Decision:
            assert back.trace == value.trace

    check()


def test_values_are_frozen_and_collections_immutable():
    inc = Incident(description="x", tags=["a"], extra={"room": {"floor": 3, "beds": [1, 2]}})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        inc.description = "y"  # type: ignore[misc]
    assert inc.tags == ("a",)
    assert isinstance(inc.extra["room"], FrozenDict)
    assert inc.extra["room"]["beds"] == (1, 2)
    with pytest.raises(TypeError):
        inc.extra["room"]["floor"] = 4  # type: ignore[index]
    assert hash(inc) == hash(Incident(description="x", tags=("a",), extra={"room": {"floor": 3, "beds": [1, 2]}}))


def test_naive_times_are_refused_with_a_hint():
    with pytest.raises(ValueError) as info:
        Incident(reported_at=datetime(2026, 11, 20, 9, 0))
    assert str(info.value) == "reported_at 2026-11-20T09:00:00 has no time zone; add an offset such as +08:00 or Z"


def test_parse_incident_is_strict_and_says_where():
    with pytest.raises(qflow.InputError) as info:
        qflow.parse_incident({"description": 5, "reported_at": "2026-11-20 09:00", "impact": "high", "colour": "red"})
    assert str(info.value) == (
        "'2026-11-20 09:00' has no time zone (add an offset such as +08:00 or Z) @ $.reported_at; "
        "expected text, got the number 5 (put the value in quotes) @ $.description; "
        "expected a whole number, got 'high' @ $.impact; "
        "unknown key 'colour' @ $.colour"
    )
    with pytest.raises(qflow.InputError) as info:
        qflow.parse_incident(["not", "an", "object"])
    assert str(info.value) == "an incident must be a JSON object"


def test_parse_incident_reads_nested_values():
    inc = qflow.parse_incident({
        "reported_at": "2026-11-20T23:10:00+08:00", "channel": "phone", "description": "前台办理入住等待超过30分钟",
        "customer": {"tier": "gold", "extra": {"member_since": 2019}},
        "attachments": [{"ref": "s3://photos/1.jpg", "kind": "photo"}],
    })
    assert inc.customer == Customer(tier="gold", extra={"member_since": 2019})
    assert inc.attachments == (Attachment(ref="s3://photos/1.jpg", kind="photo"),)
    assert inc.reported_at == datetime(2026, 11, 20, 23, 10, tzinfo=timezone(timedelta(hours=8)))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("90s", 90), ("1.5h", 5400)],
)
def test_durations(text, seconds):
    assert qflow.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1hr", "'1hr' is not a duration"),
        ("", "'' is not a duration"),
        ("0m", "'0m' is not a positive duration"),
        (15, "the number 15 is not a duration"),
        ("h", "'h' is not a duration"),
    ],
)
def test_bad_durations(text, message):
    with pytest.raises(ValueError) as info:
        qflow.parse_duration(text)
    assert str(info.value) == message


@given(durations)
def test_format_duration_round_trips(span):
    assert qflow.parse_duration(qflow.format_duration(span)) == span


def test_fake_clock_only_moves_forward():
    clock = qflow.FakeClock(datetime(2026, 11, 20, tzinfo=timezone.utc))
    assert clock.advance(timedelta(minutes=16)) == datetime(2026, 11, 20, 0, 16, tzinfo=timezone.utc)
    with pytest.raises(ValueError) as info:
        clock.advance(timedelta(seconds=-1))
    assert str(info.value) == "time can't go backwards"
    with pytest.raises(ValueError):
        qflow.FakeClock(datetime(2026, 11, 20))


def test_enums_unstructure_to_their_values():
    assert conv.unstructure(ActionKind.CORRECTIVE) == "corrective"
    assert conv.unstructure(Action("A-1", "x", "y", datetime(2026, 1, 1, tzinfo=timezone.utc)))["status"] == "planned"
    assert conv.unstructure(Stage.CLOSED) == "closed"
    assert conv.structure("done", ActionStatus) is ActionStatus.DONE
    with pytest.raises(ValueError) as info:
        conv.structure("finished", ActionStatus)
    assert str(info.value) == "'finished' is not one of: planned, in_progress, done, cancelled"


def test_parse_duration_refuses_with_a_value_error_saying_what_to_write():
    with pytest.raises(ValueError) as info:
        qflow.parse_duration("1hr")
    assert str(info.value) == "'1hr' is not a duration"
    assert (info.value.code, info.value.hint) == ("QF105", "use 15m, 1h, 2d, 1w or a sum like 1h30m")
