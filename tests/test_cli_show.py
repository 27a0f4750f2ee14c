"""qflow show: the timeline read in one time zone, escalation steps and dead letters
spelled out, and the outbox with every delivery attempt."""

from __future__ import annotations

import random
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

import qflow
from qflow_notify import RecordingBackend
from qflow_sqlite import SQLiteStore
from escalation_helpers import one_step_desk
from test_cli_store import RULESET, run

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=CST)

RULES = one_step_desk("show-desk") + textwrap.dedent("""\
    notify:
      channels:
        chat: {backend: rec, fallback: duty-log, retry: {attempts: 2, backoff: 1m, max: 1h}}
        duty-log: {backend: log}
      routes:
        - {topics: ["*"], channels: [chat]}
    """)


@pytest.fixture
def url(tmp_path, monkeypatch):
    """A store with one incident: its report dead-lettered on chat and delivered on the
    fallback, then its first escalation step fired by a worker whose clock is in UTC."""
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    path = tmp_path / "site.sqlite3"
    rec = RecordingBackend("rec")
    pm = qflow.make_plugin_manager(plugins=[rec.plugin()])
    rs = qflow.load_ruleset_text(RULES, file="show.yaml", plugins=pm)
    clock = qflow.FakeClock(T0)
    store = SQLiteStore(path)
    engine = qflow.Engine(rs, plugins=pm, store=store, clock=clock)
    engine.delivery_random = random.Random(7)
    engine.report({"channel": "phone", "category": "complaint", "place": "1512", "description": "空调不制冷"})
    rec.fail(2, ConnectionError("chat is down"))
    engine.deliver(worker="desk")
    clock.advance(timedelta(minutes=5))
    engine.deliver(worker="desk")  # the second and last try: dead, and the fallback is planned
    engine.deliver(worker="desk")
    utc = qflow.FakeClock(datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc))  # 12:00 in Shanghai
    qflow.Engine(rs, plugins=pm, store=store, clock=utc).tick()
    store.close()
    return f"sqlite:///{path}"


def test_show_spells_out_steps_dead_letters_and_the_outbox_in_the_reported_zone(url):
    status, out, err = run("show", "INC-1", "--store", url)
    assert (status, err) == (0, "")
    ref = out.splitlines()[3].split("ruleset ")[1]
    assert ref.startswith("show-desk@")
    lines = out.replace(ref, "REF").splitlines()
    dead_id, fallback_id, warn_id = (line.split()[1] for line in lines[11:] if line.startswith("       id "))
    assert lines == [
        "INC-1  reported  normal  team front-office  owner -  reports 1",
        "  空调不制冷",
        "timeline (times in UTC+08:00):",
        "    1  2026-11-20T10:00:00+08:00  IncidentReported         by -  source report  ruleset REF",
        "       channel phone, category complaint, place 1512",
        "    2  2026-11-20T10:00:00+08:00  DecisionMade             by -  source classify:default,route:default"
        "  ruleset REF",
        "       category complaint, severity normal, team front-office, owner -",
        "    3  2026-11-20T10:05:00+08:00  NotificationDeadLettered by -  source delivery  ruleset REF",
        f"       incident.reported on chat (rec) dead after 2 attempts, message {dead_id}: "
        f"ConnectionError: chat is down; falls back to duty-log, message {fallback_id}",
        "    4  2026-11-20T12:00:00+08:00  EscalationStepFired      by -  source escalation:standard/warn"
        "  ruleset REF",
        "       standard/warn (level 1, respond clock): 50% of respond used; occurrence 0, skipped 0; to team.lead",
        "outbox (3 messages):",
        "  2026-11-20T10:00:00+08:00  incident.reported  on chat (rec)  to 王芳  dead after 2 attempts, "
        "fell back to duty-log",
        f"       id {dead_id}  subject 【normal】INC-1 complaint",
        "       attempt 1  2026-11-20T10:00:00+08:00  by desk  failed: ConnectionError: chat is down",
        "       attempt 2  2026-11-20T10:05:00+08:00  by desk  failed: ConnectionError: chat is down",
        "  2026-11-20T10:05:00+08:00  incident.reported  on duty-log (log)  to 王芳  delivered (1 attempt)",
        f"       id {fallback_id}  subject 【normal】INC-1 complaint",
        "       attempt 1  2026-11-20T10:05:00+08:00  by desk  ok",
        "  2026-11-20T12:00:00+08:00  escalation.warning  on chat (rec)  to 王芳  pending",
        f"       id {warn_id}  subject 【normal】INC-1 响应时限已用 50%",
    ]
    assert len({dead_id, fallback_id, warn_id}) == 3 and all(len(i) == 12 for i in (dead_id, fallback_id, warn_id))


def test_show_takes_the_zone_from_tz_or_from_a_ruleset(url):
    _, out, _ = run("show", "INC-1", "--store", url, "--tz", "UTC")
    lines = out.splitlines()
    assert lines[2] == "timeline (times in UTC):"
    assert lines[9].startswith("    4  2026-11-20T04:00:00+00:00  EscalationStepFired ")
    _, out, _ = run("show", "INC-1", "--store", url, "--tz=-05:30")
    assert out.splitlines()[3].startswith("    1  2026-11-19T20:30:00-05:30  IncidentReported ")
    _, out, _ = run("show", "INC-1", RULESET, "--store", url)
    lines = out.splitlines()
    assert lines[2] == "timeline (times in Asia/Shanghai):"
    assert lines[9].startswith("    4  2026-11-20T12:00:00+08:00  EscalationStepFired ")


def test_show_refuses_an_unknown_zone(url):
    status, out, err = run("show", "INC-1", "--store", url, "--tz", "Mars/Olympus")
    assert (status, out) == (2, "")
    assert err == ("qflow: error: argument --tz: unknown time zone 'Mars/Olympus'\n"
                   "hint: give an IANA name such as Asia/Shanghai, UTC, or an offset such as +08:00\n")


def test_events_show_their_data_whole():
    from qflow._show import _summary

    data = {"fingerprint": "complaint/1512/" + "x" * 120, "count": 3, "problem": None}
    assert _summary("ProblemLinked", data, CST) == (
        '{"count": 3, "fingerprint": "complaint/1512/' + "x" * 120 + '", "problem": null}')
