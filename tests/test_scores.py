"""Qualitative scores and the weighted scorecards of docs/kpis.md ("Scorecards"), on the
hand-computed October history of test_kpis: every part on 0-100, the total over the
parts with data, and every part traceable to what it was computed from."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import qflow
from qflow import InputError, RulesetError
from qflow_assess import DEFINITIONS, record_score
from qflow_assess._periods import parse_period
from qflow_assess._scores import Component, scorecards, scores_in
from tests.test_assess_cli import CLI_RULES
from tests.test_kpis import AS_OF, _tz, build

UTC = timezone.utc


@pytest.fixture(scope="module")
def scored():
    engine, ids = build(rules=CLI_RULES)  # the clock stands at 31 Oct 23:30Z
    s1 = record_score(engine, subject="housekeeping", criterion="attitude", score=4, method="inspection")
    s2 = record_score(engine, subject="housekeeping", criterion="attitude", score=2, method="mystery_shopper",
                      place="1203", assessor="MS-7", period="2026-10")
    engine.clock.set(datetime(2026, 11, 2, 10, tzinfo=UTC))
    s3 = record_score(engine, subject="Lina", subject_kind="person", criterion="hygiene", score=8,
                      method="expert_review", period="2026-10")  # recorded in November, for October
    s4 = record_score(engine, subject="housekeeping", criterion="attitude", score=5, method="inspection")
    return engine, ids, (s1, s2, s3, s4)


def cards(engine):
    p = parse_period("2026-10", _tz(), AS_OF)
    return {(c.subject_kind, c.subject): c for c in scorecards(engine.store, engine.ruleset, p, as_of=AS_OF,
                                                             kpis=DEFINITIONS)}


def test_scores_count_in_the_period_they_are_for(scored):
    engine, _, (s1, s2, s3, s4) = scored
    october = scores_in(engine.store, parse_period("2026-10", _tz(), AS_OF))
    november = scores_in(engine.store, parse_period("2026-11", _tz(), AS_OF))
    assert [s.id for s in october] == [s1.id, s2.id, s3.id]
    assert [s.id for s in november] == [s4.id]  # no period given: the month it was recorded in
    assert [s.id for s in scores_in(engine.store, parse_period("2026-Q4", _tz(), AS_OF))] == ["S-1", "S-2", "S-3",
                                                                                             "S-4"]
    assert s2.incident_id == "INC-16" and s1.incident_id is None  # 2 is below the standard 3


def test_a_score_recorded_after_the_as_of_time_is_not_yet_there(scored):
    engine, _, (s1, s2, s3, _s4) = scored
    october = parse_period("2026-10", _tz(), AS_OF)
    then = datetime(2026, 11, 1, tzinfo=UTC)  # S-3, for October, was recorded on 2 November
    assert [s.id for s in scores_in(engine.store, october, then)] == [s1.id, s2.id]
    lina = {(c.subject_kind, c.subject): c for c in scorecards(engine.store, engine.ruleset, october, as_of=then,
                                                               kpis=DEFINITIONS)}.get(("person", "Lina"))
    assert lina is None  # a person has a card for the scores recorded about them: none yet


def test_team_scorecard_combines_kpis_and_criteria_by_weight(scored):
    engine, _, _ = scored
    card = cards(engine)[("team", "housekeeping")]
    parts = {c.name: c for c in card.components}
    # housekeeping in October (test_kpis): respond kept 3 of 4 (I5 open past due) -> 75
    assert parts["on_time_respond"] == Component("on_time_respond", "kpi", 0.75, 75.0, 2, "3 of 4", False)
    # resolved I2 (23400 s) and I9 (21600 s): median 21600 = 6h over the 4h target -> 100 * 4 / 6
    assert parts["time_to_resolve"] == Component("time_to_resolve", "kpi", 21600, pytest.approx(200 / 3), 1,
                                                 "median of 2", True)
    # I2 of (I2, I9) reopened: lower is better -> (1 - 0.5) * 100
    assert parts["reopen_rate"] == Component("reopen_rate", "kpi", 0.5, 50.0, 1, "1 of 2", True)
    # one NPS answer, 9 (promoter): NPS 100 -> (100 + 100) / 2
    assert parts["nps"] == Component("nps", "kpi", 100.0, 100.0, 1, "1 of 1", True)
    # attitude S-1 4 and S-2 2 on 1-5: mean 3 -> (3 - 1) / (5 - 1) * 100
    assert parts["attitude"] == Component("attitude", "criterion", 3.0, 50.0, 2, "S-1, S-2", False)
    # no hygiene score for the team: shown, and left out of both sums
    assert parts["hygiene"] == Component("hygiene", "criterion", None, None, 1, "no scores", True)
    # (2*75 + 1*66.67 + 1*50 + 1*100 + 2*50) / (2 + 1 + 1 + 1 + 2)
    assert card.total == pytest.approx((150 + 200 / 3 + 50 + 100 + 100) / 7)
    assert card.low_confidence and card.period == "2026-10"


def test_person_scorecard_uses_the_owner_slice_and_their_own_scores(scored):
    engine, _, _ = scored
    card = cards(engine)[("person", "Lina")]
    parts = {c.name: c for c in card.components}
    # Lina owns every housekeeping incident: the same KPI parts; hygiene S-3 8 on 0-10 -> 80
    assert parts["on_time_respond"].score == 75.0 and parts["hygiene"].score == 80.0
    assert parts["hygiene"].inputs == "S-3" and parts["attitude"].score is None
    assert card.total == pytest.approx((150 + 200 / 3 + 50 + 100 + 80) / 6)


def test_every_team_gets_a_card_even_without_data(scored):
    engine, _, _ = scored
    found = cards(engine)
    assert set(found) == {("team", "front-office"), ("team", "housekeeping"), ("team", "engineering"),
                          ("person", "Lina")}
    en = {c.name: c for c in found[("team", "engineering")].components}
    # engineering: respond kept 1 of 3; resolved I3 only (10h); no reopen; no NPS; no scores
    assert (en["on_time_respond"].inputs, en["time_to_resolve"].score) == ("1 of 3", 40.0)
    assert (en["nps"].score, en["nps"].inputs) == (None, "0 of 0")
    total = (2 * 100 / 3 + 40 + 100) / 4
    assert found[("team", "engineering")].total == pytest.approx(total)


def test_a_rate_part_follows_the_direction_of_its_kpi():
    from qflow_assess._kpis import Figure
    from qflow_assess._scores import _kpi_score

    kpi = {k.name: k for k in DEFINITIONS}
    assert _kpi_score(kpi["recurrence_rate"], Figure("recurrence_rate", 0.25, 8, 2, 8), None) == 75.0
    assert _kpi_score(kpi["on_time_resolve"], Figure("on_time_resolve", 0.25, 8, 2, 8), None) == 25.0
    assert _kpi_score(kpi["nps"], Figure("nps", -40.0, 5), None) == 30.0
    assert _kpi_score(kpi["first_response_time"], Figure("first_response_time", 1800.0, 5), timedelta(hours=1)) == 100
    assert _kpi_score(kpi["first_response_time"], Figure("first_response_time", 7200.0, 5), timedelta(hours=1)) == 50


@pytest.mark.parametrize(("kw", "message"), [
    ({"criterion": "atitude"}, "unknown criterion 'atitude' (did you mean 'attitude'?)"),
    ({"criterion": "speed"}, "unknown criterion 'speed' (the criteria are: attitude, hygiene)"),
    ({"method": "audit"}, "unknown method 'audit' (the methods are: expert_review, inspection, mystery_shopper)"),
    ({"subject": "kitchen"}, "unknown team 'kitchen' (the teams are: front-office, housekeeping, engineering)"),
    ({"subject": "housekeepin"}, "unknown team 'housekeepin' (did you mean 'housekeeping'?)"),
    ({"subject_kind": "shift"}, "a score is for a team or a person, not a shift"),
    ({"score": 0}, "score 0 for attitude is outside its scale 1-5"),
    ({"score": 1, "period": "2026-13"}, "the score's period: '2026-13' has no month 13; use a month (2026-11), "
                                        "a quarter (2026-Q4), a year (2026) or a rolling window (30d, 90d)"),
])
def test_bad_scores_are_refused_whole_and_write_nothing(kw, message):
    engine = _empty_engine()
    args = {"subject": "housekeeping", "criterion": "attitude", "score": 1, "method": "inspection", **kw}
    with pytest.raises(InputError) as err:
        record_score(engine, **args)
    assert str(err.value) == message
    assert engine.store.documents("assessment_score") == [] and engine.query() == []


def _empty_engine():
    pm = qflow.make_plugin_manager()
    rs = qflow.load_ruleset_text(CLI_RULES, file="kpi.yaml", plugins=pm)
    return qflow.Engine(rs, plugins=pm, clock=qflow.FakeClock(datetime(2026, 10, 5, 9, tzinfo=UTC)),
                        store=qflow.MemoryStore())


@pytest.mark.parametrize(("section", "lines"), [
    ("""    weights: {on_time_respond: 2, speed: 1}
""", ["kpi.yaml:42:35: QF903 unknown KPI or criterion 'speed' (use a KPI name from docs/kpis.md or a criterion "
      "of this section) @ $.assessment.scorecard.weights.speed"]),
    ("""    weights: {first_response_time: 1}
""", ["kpi.yaml:42:15: QF904 duration KPI 'first_response_time' needs a target to be scored (add "
      "scorecard.targets.first_response_time, e.g. 1h) @ $.assessment.scorecard.weights.first_response_time"]),
])
def test_scorecard_weights_are_checked_when_the_ruleset_loads(section, lines):
    text = CLI_RULES.replace(
        "    weights: {on_time_respond: 2, time_to_resolve: 1, reopen_rate: 1, nps: 1, attitude: 2, hygiene: 1}\n"
        "    targets: {time_to_resolve: 4h}\n", section)
    with pytest.raises(RulesetError) as err:
        qflow.load_ruleset_text(text, file="kpi.yaml", plugins=qflow.make_plugin_manager())
    assert [str(d) for d in err.value.diagnostics if d.severity == "error"] == lines
