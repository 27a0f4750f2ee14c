"""Engine.deliver against a real local HTTP receiver: retries with backoff and
jitter on a fake clock, dead letters on the incident, fallback, idempotency keys,
secrets kept out of the outbox, the log and the events."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta, timezone

import pytest

import qflow
from notify_support import Receiver, refused_url, ruleset_text
from qflow_notify import RecordingBackend

T0 = datetime(2026, 11, 20, 15, 10, tzinfo=timezone.utc)
WECOM_OK = b'{"errcode":0,"errmsg":"ok"}'


@pytest.fixture
def receiver():
    r = Receiver(reply=WECOM_OK)
    yield r
    r.close()


def make(notify: str, *plugins, env=None, start=T0):
    pm = qflow.make_plugin_manager(autoload=False, plugins=plugins)
    rs = qflow.load_ruleset_text(ruleset_text(notify), file="notify.yaml", plugins=pm)
    clock = qflow.FakeClock(start)
    engine = qflow.Engine(rs, plugins=pm, clock=clock)
    engine.delivery_env = env if env is not None else {}
    engine.delivery_random = random.Random(7)
    return engine, clock


def chat_and_mail(url_var="WECOM_FRONT_URL", attempts=3, timeout="10s"):
    return f"""\
        notify:
          channels:
            front-chat: {{backend: wecom, url: "${{env:{url_var}}}", fallback: backup, timeout: {timeout},
                         retry: {{attempts: {attempts}, backoff: 30s, max: 1h}}}}
            backup: {{backend: rec}}
          routes:
            - {{topics: ["*"], channels: [front-chat]}}
        """


def test_a_reported_incident_is_delivered_once_with_its_idempotency_key(receiver):
    engine, clock = make(chat_and_mail(), RecordingBackend("rec").plugin(),
                         env={"WECOM_FRONT_URL": receiver.url("/cgi-bin/webhook/send?key=s3cr3tKEY")})
    state = engine.report({"channel": "phone", "category": "complaint", "description": "前台等待超过30分钟",
                           "place": "lobby"})
    [message] = engine.store.outbox(incident_id=state.id)
    assert message.channel == "front-chat" and message.status == "pending"
    assert message.id == qflow_notify_key(engine, state)
    report = engine.deliver()
    assert report == qflow.DeliveryReport(claimed=1, delivered=1)
    [req] = receiver.requests
    assert req.query == {"key": "s3cr3tKEY"}
    body = req.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["content"] == (
        f"**【normal】{state.id} complaint**\n前台等待超过30分钟\n地点：lobby\n团队：前厅部 Front office，负责人：李强\n"
        "响应期限：2026-11-21 03:10 +08:00\n解决期限：2026-11-23 23:10 +08:00\n事件：incident.reported")
    assert engine.store.outbox(incident_id=state.id)[0].status == "delivered"
    assert [(a.number, a.ok) for a in engine.store.attempts(message.id)] == [(1, True)]
    assert engine.deliver() == qflow.DeliveryReport()  # nothing left: sent once


def qflow_notify_key(engine, state):
    import hashlib
    import json

    note = qflow.Notification(state.id, "incident.reported", T0, ("front-office", "李强"),
                              f"[normal] {state.id} complaint", "")
    # The report's own identity goes in: ids restart at INC-1 in every store.
    report = [T0.isoformat(), None, "phone", "complaint", "lobby", None, None, "前台等待超过30分钟", None, None,
              None, None]
    raw = json.dumps([state.id, 2, note.topic, "front-chat", sorted(note.recipients), note.subject, {},
                      T0.isoformat(), report], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def test_first_incidents_of_two_stores_have_different_keys_and_a_retry_keeps_its_key(receiver):
    # Two hotels (or one store, then a fresh or restored one) both start at INC-1 with
    # the same seq and subject: the report itself tells their messages apart.
    hook = """\
        notify:
          channels:
            hook: {backend: webhook, url: "${env:HOOK_URL}", retry: {attempts: 3, backoff: 30s, max: 1h}}
        """
    env = {"HOOK_URL": receiver.url("/in")}
    one, _ = make(hook, env=env)
    a = one.report({"channel": "phone", "category": "complaint", "description": "空调不制冷", "place": "1512"})
    two, clock = make(hook, env=env, start=T0 + timedelta(days=11))
    b = two.report({"channel": "phone", "category": "complaint", "description": "浴室有蟑螂", "place": "0808"})
    three, _ = make(hook, env=env, start=T0 + timedelta(days=11))
    c = three.report({"channel": "phone", "category": "complaint", "description": "空调不制冷", "place": "1512"})
    [ma], [mb], [mc] = one.store.outbox(), two.store.outbox(), three.store.outbox()
    assert a.id == b.id == c.id == "INC-1" and ma.payload["subject"] == mb.payload["subject"]
    assert len({ma.id, mb.id, mc.id}) == 3  # c: the same words on another day are another report
    receiver.fail_with(500)
    assert two.deliver() == qflow.DeliveryReport(claimed=1, retrying=1)
    again = two.report({"channel": "phone", "category": "complaint", "description": "浴室有蟑螂", "place": "0808",
                        "id": "INC-1", "reported_at": clock.now().isoformat()})
    assert again.seq == b.seq and [m.id for m in two.store.outbox()] == [mb.id]  # a retried report adds nothing
    clock.advance(timedelta(hours=1))
    assert two.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)
    [req] = receiver.requests
    assert req.headers["webhook-id"] == mb.id


def test_failures_are_retried_with_exponential_backoff_and_seeded_jitter(receiver):
    engine, clock = make(chat_and_mail(attempts=4), RecordingBackend("rec").plugin(), env={"WECOM_FRONT_URL": receiver.url()})
    state = engine.report({"category": "complaint", "description": "x"})
    receiver.fail_with(500, 503)
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, retrying=1)
    [m] = engine.store.outbox(incident_id=state.id)
    rng = random.Random(7)
    first = timedelta(seconds=30) * (1 - 0.2 * rng.random())
    assert m.next_attempt_at == T0 + first
    assert m.last_error == 'DeliveryError: HTTP 500 from ${env:WECOM_FRONT_URL}: {"error": "told to fail"}'
    clock.advance(first - timedelta(seconds=1))
    assert engine.deliver() == qflow.DeliveryReport()  # not due yet
    clock.advance(timedelta(seconds=1))
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, retrying=1)
    [m] = engine.store.outbox(incident_id=state.id)
    second = timedelta(seconds=60) * (1 - 0.2 * rng.random())
    assert m.next_attempt_at == clock.now() + second
    clock.advance(second)
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)
    assert [(a.number, a.ok, a.at) for a in engine.store.attempts(m.id)] == [
        (1, False, T0), (2, False, T0 + first), (3, True, T0 + first + second)]
    assert len(receiver.requests) == 1


def test_the_delay_grows_to_its_maximum_and_jitter_only_shortens_it():
    policy = qflow.RetryPolicy(attempts=20, backoff=timedelta(seconds=30), max=timedelta(minutes=10), jitter=0.2)
    rng = random.Random(3)
    delays = [policy.delay(n, rng) for n in range(1, 12)]
    for n, d in enumerate(delays, 1):
        base = min(timedelta(minutes=10), timedelta(seconds=30) * 2 ** (n - 1))
        assert base * 0.8 <= d <= base
    assert delays[-1] > timedelta(minutes=8)


def test_after_the_last_try_the_message_is_dead_on_the_incident_and_falls_back(receiver):
    rec = RecordingBackend("rec")
    engine, clock = make(chat_and_mail(attempts=3), rec.plugin(), env={"WECOM_FRONT_URL": receiver.url()})
    state = engine.report({"category": "complaint", "description": "空调坏了"})
    receiver.fail_with(500, 500, 500)
    for _ in range(3):
        engine.deliver()
        clock.advance(timedelta(hours=1))
    [dead] = engine.store.outbox(incident_id=state.id, status="dead")
    assert (dead.channel, dead.attempts) == ("front-chat", 3)
    last = engine.events(state.id)[-1]
    assert last.type == "NotificationDeadLettered"
    assert dict(last.data) == {
        "message": dead.id, "channel": "front-chat", "backend": "wecom", "topic": "incident.reported",
        "attempts": 3, "error": dead.last_error, "fallback": "backup",
        "fallback_message": last.data["fallback_message"]}
    [fallback] = engine.store.outbox(incident_id=state.id, status="pending")
    assert fallback.id == last.data["fallback_message"] and fallback.channel == "backup"
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)
    [sent] = rec.sent
    assert sent.payload["subject"] == dead.payload["subject"]
    assert sent.payload["fallback_of"] == ("front-chat",)
    assert engine.get(state.id).seq == 3  # the dead letter is the only event added


def test_refused_connections_and_timeouts_are_failed_tries_not_crashes(receiver):
    rec = RecordingBackend("rec")
    engine, clock = make(chat_and_mail(attempts=2, timeout="0.3s"), rec.plugin(), env={"WECOM_FRONT_URL": refused_url()})
    a = engine.report({"category": "complaint", "description": "a"})
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, retrying=1)
    [m] = engine.store.outbox(incident_id=a.id)
    assert m.last_error == "DeliveryError: cannot reach ${env:WECOM_FRONT_URL}: [Errno 111] Connection refused"
    engine.delivery_env = {"WECOM_FRONT_URL": receiver.url()}
    receiver.fail_with("timeout")
    clock.advance(timedelta(minutes=5))
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, dead=1, fallbacks=1)
    [m] = engine.store.outbox(incident_id=a.id, status="dead")
    assert m.last_error == "DeliveryError: no answer from ${env:WECOM_FRONT_URL} within 0.3s"
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)


def test_a_backend_that_raises_anything_never_stops_delivery_of_the_others():
    class Broken(RecordingBackend):
        def send(self, message, config, *, env, now):
            raise RuntimeError("bug in a plugin")

    bad, good = Broken("bad"), RecordingBackend("good")
    engine, clock = make("""\
        notify:
          channels:
            one: {backend: bad, retry: {attempts: 1}}
            two: {backend: good}
        """, bad.plugin(), good.plugin())
    state = engine.report({"description": "x"})
    assert engine.deliver() == qflow.DeliveryReport(claimed=2, delivered=1, dead=1)
    assert len(good.sent) == 1
    assert engine.events(state.id)[-1].data["error"] == "RuntimeError: bug in a plugin"
    assert engine.report({"description": "y"}).seq == 2  # the engine goes on


def test_a_missing_secret_is_a_failed_try_that_says_which_variable(receiver):
    engine, clock = make(chat_and_mail(), RecordingBackend("rec").plugin())
    state = engine.report({"description": "x"})
    engine.deliver()
    [m] = engine.store.outbox(incident_id=state.id)
    assert m.last_error == ("MissingSecretError: environment variable WECOM_FRONT_URL is not set; "
                            "export WECOM_FRONT_URL for the delivery worker")


def test_secrets_never_reach_the_outbox_the_events_or_the_log(receiver, caplog):
    secret_url = receiver.url("/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa")
    engine, clock = make(chat_and_mail(attempts=2), RecordingBackend("rec").plugin(),
                         env={"WECOM_FRONT_URL": secret_url})
    state = engine.report({"description": "x"})
    receiver.fail_with(500, 500)
    with caplog.at_level(logging.DEBUG):
        engine.deliver()
        clock.advance(timedelta(hours=1))
        engine.deliver()
    text = repr(engine.store.outbox()) + repr(engine.events(state.id)) + caplog.text + repr(
        [engine.store.attempts(m.id) for m in engine.store.outbox()])
    assert "693a91f6" not in text
    # urllib's error names the URL; the token in it is taken out
    assert engine.events(state.id)[-1].data["error"] == (
        f'DeliveryError: HTTP 500 from http://127.0.0.1:{receiver.port}/cgi-bin/webhook/send?key=***: '
        '{"error": "told to fail"}')
    assert len(receiver.requests) == 0 and len(caplog.records) >= 2


def test_secrets_of_the_url_a_receiver_echoes_in_its_error_body_are_taken_out(receiver, caplog):
    import base64

    path = "/hook/T0A1B2C3D4E5F6G7H8I9J0K/in"
    engine, clock = make("""\
        notify:
          channels:
            hook: {backend: webhook, url: "${env:HOOK_URL}", fallback: backup,
                   retry: {attempts: 2, backoff: 30s, max: 1h}}
            backup: {backend: rec}
          routes:
            - {topics: ["*"], channels: [hook]}
        """, RecordingBackend("rec").plugin(),
        env={"HOOK_URL": f"http://qflow:pa55w0rdSECRET@127.0.0.1:{receiver.port}{path}?token=TOKSECRET123&site=1"})
    state = engine.report({"description": "x"})
    receiver.fail_with("echo", "echo")
    with caplog.at_level(logging.DEBUG):
        engine.deliver()
        clock.advance(timedelta(hours=1))
        engine.deliver()
    error = (f"DeliveryError: HTTP 500 from http://qflow:***@127.0.0.1:{receiver.port}/hook/***/in?token=***&site=1: "
             "bad request to /hook/***/in?token=***&site=1 (authorization: Basic ***)")
    dead = engine.events(state.id)[-1]
    assert (dead.type, dead.data["error"]) == ("NotificationDeadLettered", error)
    hook = [m for m in engine.store.outbox() if m.channel == "hook"]
    assert [m.last_error for m in hook] == [error]
    assert [a.error for a in engine.store.attempts(hook[0].id)] == [error, error]
    assert [r.getMessage().endswith(error + ("; falling back to backup" if r.levelname == "ERROR" else ""))
            for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == [True, True]
    text = repr(engine.store.outbox()) + repr(engine.events(state.id)) + caplog.text + repr(
        [engine.store.attempts(m.id) for m in engine.store.outbox()])
    for secret in ("TOKSECRET123", "pa55w0rd", "T0A1B2C3D4E5F6G7H8I9J0K", base64.b64encode(b"qflow:pa55w0rdSECRET").decode()):
        assert secret not in text


def test_redact_takes_tokens_out_of_urls():
    assert qflow.redact("POST https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=1&sign=xyz") == (
        "POST https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=1&sign=***")
    assert qflow.redact("https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D/abcdEFGH1234ijkl5678MNOP failed") == (
        "https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D/*** failed")
    assert qflow.redact("https://open.feishu.cn/open-apis/bot/v2/hook/2d5a3c1e-9f7b-4c2a-8e1d-0b6f4a9c7e21") == (
        "https://open.feishu.cn/open-apis/bot/v2/hook/***")
    assert qflow.redact("smtp://user:pa55word@mail.example.com/") == "smtp://user:***@mail.example.com/"
    assert qflow.redact("plain text with no url") == "plain text with no url"
    # a channel's error echoing a query without its URL: the sign DingTalk adds at send time is in no option
    assert qflow.redact("bad request to /robot/send?access_token=abc123&timestamp=1&sign=xyz", config={},
                        env={}) == "bad request to /robot/send?access_token=***&timestamp=1&sign=***"


def test_escalation_notifications_from_tick_reach_recipients_by_role_and_lead():
    rec = RecordingBackend("rec", kind="email")

    class Ladder:
        @qflow.hookimpl
        def qflow_schedule(self, state, events):
            fired = any(e.type == "EscalationFired" for e in events)
            return [] if fired else [qflow.Timer(state.id, "clock:respond", state.incident.reported_at + timedelta(hours=2))]

        @qflow.hookimpl
        def qflow_due(self, state, timers, now):
            note = qflow.Notification(state.id, "escalation.warning", now,
                                      ("assignee", "team.lead", "role:quality-manager", "ops@hotel.example"),
                                      data={"step": 1, "clock": "respond"})
            return [qflow.Effect("EscalationFired", "plugin:ladder", {"step": 1}, (note,))]

    engine, clock = make("""\
        notify:
          channels:
            mail: {backend: rec}
          routes:
            - {topics: ["escalation.*"], channels: [mail]}
          recipients:
            quality-manager: [张敏, team.lead]
          people:
            张敏: {email: zhangmin@hotel.example, mobile: "13800000003"}
            王芳: {email: wangfang@hotel.example}
          templates:
            - topic: escalation.*
              subject: "【预警】{{ id }} 第{{ data.step }}级 {{ data.clock }}"
              body: "{{ team_name }}：{{ description }}，响应期限 {{ respond_by }}"
        """, rec.plugin(), Ladder())
    state = engine.report({"category": "complaint", "description": "等待超过30分钟"})
    assert engine.store.outbox() == []  # incident.reported has no route here
    clock.advance(timedelta(hours=2))
    engine.tick()
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)
    [sent] = rec.sent
    assert sent.payload["subject"] == f"【预警】{state.id} 第1级 respond"
    assert sent.payload["body"] == "前厅部 Front office：等待超过30分钟，响应期限 2026-11-21 03:10 +08:00"
    assert [dict(r) for r in sent.payload["recipients"]] == [
        {"name": "李强"}, {"name": "王芳", "email": "wangfang@hotel.example"},
        {"name": "张敏", "email": "zhangmin@hotel.example", "mobile": "13800000003"},
        {"email": "ops@hotel.example"}]


def test_an_integrator_resolves_recipients_from_its_own_directory():
    rec = RecordingBackend("rec")

    class OnCall:
        @qflow.hookimpl
        def qflow_recipients(self, name, state):
            return ["oncall@hotel.example"] if name == "team.lead" else None

    engine, clock = make("notify:\n  channels:\n    chat: {backend: rec}\n", rec.plugin(), OnCall())
    engine.report({"description": "x"})
    engine.deliver()
    # incident.reported goes to the team (its lead, 王芳) and the owner; the hook answers only for team.lead
    assert [dict(r) for r in rec.sent[0].payload["recipients"]] == [{"name": "王芳"}, {"name": "李强"}]
    note = qflow.Notification("INC-1", "escalation.warning", T0, ("team.lead",))
    [m] = engine._hooks.plan_delivery(note, engine.get("INC-1"), engine.ruleset, T0)
    assert [dict(r) for r in m.payload["recipients"]] == [{"email": "oncall@hotel.example"}]


def test_team_colon_and_person_colon_name_a_team_or_a_person(caplog):
    rec = RecordingBackend("rec")
    engine, clock = make("""\
        notify:
          channels:
            chat: {backend: rec}
          recipients:
            night: ["team:front-office"]
        """, rec.plugin())
    state = engine.report({"description": "x"})
    note = qflow.Notification(state.id, "escalation.warning", T0,
                              ("team:housekeeping", "role:night", "team:nosuch", "person: 赵六"))
    with caplog.at_level(logging.WARNING, logger="qflow.notify"):
        [m] = engine._hooks.plan_delivery(note, state, engine.ruleset, T0)
    assert [dict(r) for r in m.payload["recipients"]] == [{"name": "李娜"}, {"name": "赵六"}, {"name": "王芳"}]
    assert caplog.messages == [f"notification for {state.id} names team 'nosuch', which teams does not define"]


def test_the_same_notification_planned_twice_has_the_same_key_and_is_stored_once():
    rec = RecordingBackend("rec")
    engine, clock = make("notify:\n  channels:\n    chat: {backend: rec}\n    mail: {backend: log}\n", rec.plugin())
    state = engine.report({"description": "x"})
    note = qflow.Notification(state.id, "escalation.warning", T0, ("assignee",), data={"step": 1})
    first = engine._hooks.plan_delivery(note, state, engine.ruleset, T0)
    again = engine._hooks.plan_delivery(note, state, engine.ruleset, T0 + timedelta(minutes=1))
    assert [m.id for m in first] == [m.id for m in again] and len({m.id for m in first}) == 2
    other = engine._hooks.plan_delivery(qflow.Notification(state.id, "escalation.warning", T0, ("assignee",),
                                                           data={"step": 2}), state, engine.ruleset, T0)
    assert not {m.id for m in other} & {m.id for m in first}
    before = len(engine.store.outbox())
    engine.store.write([qflow.Write((), state, None, tuple(first) + tuple(again))])
    assert len(engine.store.outbox()) == before + 2


def test_a_template_that_fails_at_render_time_falls_back_to_the_built_in_one():
    rec = RecordingBackend("rec")
    engine, clock = make("""\
        notify:
          channels:
            chat: {backend: rec, lang: en}
          templates:
            - body: "{{ data.items | sum }}"
        """, rec.plugin())
    state = engine.report({"description": "broken template"})
    engine.deliver()
    [sent] = rec.sent
    assert sent.payload["render_error"].startswith("TypeError")
    assert sent.payload["subject"] == f"[normal] {state.id}"
    assert sent.payload["body"].startswith("broken template\nTeam: 前厅部 Front office, owner: 李强")


def test_a_url_with_user_and_password_sends_basic_auth_and_the_password_never_shows(receiver, caplog):
    import base64

    engine, clock = make("""\
        notify:
          channels:
            hook: {backend: webhook, url: "${env:HOOK_URL}", retry: {attempts: 2, backoff: 30s, max: 1h}}
        """, env={"HOOK_URL": f"http://qflow:pa55%40word@127.0.0.1:{receiver.port}/in?site=1"})
    token = base64.b64encode(b"qflow:pa55@word").decode()
    failed = engine.report({"description": "x"})
    receiver.fail_with(500, 500)
    with caplog.at_level(logging.DEBUG):
        engine.deliver()
        clock.advance(timedelta(hours=1))
        engine.deliver()
    assert engine.events(failed.id)[-1].data["error"] == (
        f'DeliveryError: HTTP 500 from http://qflow:***@127.0.0.1:{receiver.port}/in?site=1: '
        '{"error": "told to fail"}')
    text = repr(engine.store.outbox()) + repr(engine.events(failed.id)) + caplog.text + repr(
        [engine.store.attempts(m.id) for m in engine.store.outbox()])
    assert "pa55" not in text and token not in text
    engine.report({"description": "y"})
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)
    [req] = receiver.requests
    assert (req.path, req.query, req.headers["authorization"]) == ("/in", {"site": "1"}, f"Basic {token}")


class _HangsThenFails(RecordingBackend):
    """Its first send outlives the lease: meanwhile worker B takes the message and
    delivers it; then the send fails."""

    def __init__(self, engine_box: list, at: datetime) -> None:
        super().__init__("hang")
        self.engine_box, self.at, self.hung, self.inner = engine_box, at, False, None

    def send(self, message, config, *, env, now):
        if not self.hung:
            self.hung = True
            self.inner = self.engine_box[0].deliver(self.at, worker="B")
            raise ConnectionError("HTTP 500")
        super().send(message, config, env=env, now=now)


def test_a_try_that_outlived_its_lease_does_not_dead_letter_what_another_worker_delivered():
    box: list = []
    hang = _HangsThenFails(box, T0 + timedelta(minutes=6))
    backup = RecordingBackend("rec")
    engine, clock = make("""\
        notify:
          channels:
            hook: {backend: hang, retry: {attempts: 1}, fallback: backup}
            backup: {backend: rec}
          routes:
            - {topics: ["*"], channels: [hook]}
        """, hang.plugin(), backup.plugin())
    box.append(engine)
    state = engine.report({"category": "complaint", "description": "x"})
    report = engine.deliver(worker="A", lease=timedelta(minutes=5))
    assert hang.inner == qflow.DeliveryReport(claimed=1, delivered=1)
    assert report == qflow.DeliveryReport(claimed=1, stale=1)
    [m] = engine.store.outbox(incident_id=state.id)
    assert (m.status, m.attempts) == ("delivered", 1)
    assert [(a.number, a.worker, a.ok, a.stale) for a in engine.store.attempts(m.id)] == [
        (1, "B", True, False), (2, "A", False, True)]
    assert [e.type for e in engine.store.events(state.id)][-1] != "NotificationDeadLettered"
    assert backup.sent == [] and len(hang.sent) == 1


class _Interleaves(RecordingBackend):
    """Runs *other*'s ``deliver`` in the middle of its first send, as a second
    process delivering at the same moment would."""

    def __init__(self) -> None:
        super().__init__("rec")
        self.other = None
        self.report = None

    def send(self, message, config, *, env, now):
        other, self.other = self.other, None
        if other is not None:
            self.report = other.deliver(now)
        super().send(message, config, env=env, now=now)


def test_two_engines_delivering_at_once_never_get_the_same_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'qflow.sqlite3'}"
    notify = """\
        notify:
          channels:
            desk: {backend: rec}
          routes:
            - {topics: ["*"], channels: [desk]}
        """
    first, second = _Interleaves(), RecordingBackend("rec")
    engines = []
    for backend in (first, second):
        pm = qflow.make_plugin_manager(autoload=False, plugins=[backend.plugin()])
        rs = qflow.load_ruleset_text(ruleset_text(notify), file="notify.yaml", plugins=pm)
        engines.append(qflow.Engine(rs, plugins=pm, store=url, clock=qflow.FakeClock(T0)))
    one, two = engines
    assert one.worker_name != two.worker_name
    for i in range(4):
        one.report({"category": "complaint", "description": f"room {i}"})
    first.other = two
    assert one.deliver(limit=2) == qflow.DeliveryReport(claimed=2, delivered=2)
    assert first.report == qflow.DeliveryReport(claimed=2, delivered=2)  # the two one had not claimed
    sent = [m.id for m in first.sent + second.sent]
    assert len(sent) == 4 and len(set(sent)) == 4
    assert {a.worker for m in one.store.outbox() for a in one.store.attempts(m.id)} == {
        one.worker_name, two.worker_name}


def test_a_recipients_plugin_answering_with_text_is_a_plugin_error_not_one_recipient_per_character(caplog):
    rec = RecordingBackend("rec")

    class OnCall:
        @qflow.hookimpl
        def qflow_recipients(self, name):
            return "oncall@hotel.example" if name == "team.lead" else None

    engine, clock = make("notify:\n  channels:\n    chat: {backend: rec}\n", rec.plugin(), OnCall())
    state = engine.report({"description": "x"})
    note = qflow.Notification(state.id, "escalation.warning", T0, ("team.lead",))
    with caplog.at_level(logging.ERROR, logger="qflow.notify"):
        [m] = engine._hooks.plan_delivery(note, state, engine.ruleset, T0)
    # As any failure to resolve recipients: logged, and the message still goes to the channel.
    assert list(m.payload["recipients"]) == []
    [record] = caplog.records
    assert record.getMessage() == ("resolving the recipients of escalation.warning for INC-1 failed; sending to the "
                                   "channels alone")
    assert str(record.exc_info[1]) == (
        "a plugin returned str 'oncall@hotel.example' from qflow_recipients for 'team.lead'; return a list of "
        "people or addresses (['oncall@hotel.example'] for one), or None to let the next plugin decide")
