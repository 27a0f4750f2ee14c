"""Each backend against a real server on 127.0.0.1: the receiver checks the
signature the way the service (or the Standard Webhooks library) does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from standardwebhooks import Webhook

import qflow
from notify_support import Receiver, free_port, ruleset_text
from qflow_notify import DeliveryError

T0 = datetime(2026, 11, 20, 15, 10, tzinfo=timezone.utc)
WHSEC = "whsec_" + base64.b64encode(b"a test key of thirty-two bytes!!").decode()


def engine_for(notify: str, env: dict[str, str], start: datetime = T0):
    pm = qflow.make_plugin_manager(autoload=False)
    rs = qflow.load_ruleset_text(ruleset_text(notify), file="notify.yaml", plugins=pm)
    clock = qflow.FakeClock(start)
    engine = qflow.Engine(rs, plugins=pm, clock=clock)
    engine.delivery_env, engine.delivery_random = env, random.Random(1)
    return engine, clock


def report(engine):
    return engine.report({"category": "complaint", "description": "前台等待超过30分钟\n客人很生气", "place": "lobby"})


# -- Standard Webhooks -------------------------------------------------------------------


def test_the_generic_webhook_verifies_with_the_standard_webhooks_library():
    # The library checks the timestamp against the real clock (5 minutes either
    # way), so this one engine starts at the real time; nothing waits on it.
    now = qflow.SystemClock().now()
    checked = []

    def check(req):
        checked.append(Webhook(WHSEC).verify(req.body, req.headers))

    r = Receiver(check=check)
    try:
        engine, _ = engine_for("""\
            notify:
              channels:
                hook: {backend: webhook, url: "${env:HOOK_URL}", secret: "${env:HOOK_SECRET}",
                       headers: {X-Site: hotel-1}}
            """, {"HOOK_URL": r.url(), "HOOK_SECRET": WHSEC}, start=now)
        state = report(engine)
        assert engine.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)
        [req] = r.requests
        [message] = engine.store.outbox()
        assert req.headers["webhook-id"] == message.id
        assert req.headers["webhook-timestamp"] == str(int(now.timestamp()))
        assert req.headers["x-site"] == "hotel-1"
        [payload] = checked
        assert payload["type"] == "incident.reported"
        assert payload["data"]["incident_id"] == state.id
        assert payload["data"]["incident"]["team"] == "front-office"
        assert payload["data"]["recipients"] == [{"name": "王芳"}, {"name": "李强"}]
    finally:
        r.close()


def test_a_wrong_webhook_secret_is_refused_by_the_receiver_and_retried():
    def check(req):
        # the library's own signing, at the timestamp the request carries
        ts = datetime.fromtimestamp(int(req.headers["webhook-timestamp"]), tz=timezone.utc)
        expected = Webhook(WHSEC).sign(req.headers["webhook-id"], ts, req.body.decode())
        if not hmac.compare_digest(expected, req.headers["webhook-signature"]):
            raise ValueError("bad signature")

    r = Receiver(check=check)
    try:
        wrong = "whsec_" + base64.b64encode(b"not the receiver's key").decode()
        engine, clock = engine_for("""\
            notify:
              channels:
                hook: {backend: webhook, url: "${env:HOOK_URL}", secret: "${env:HOOK_SECRET}"}
            """, {"HOOK_URL": r.url(), "HOOK_SECRET": wrong})
        report(engine)
        assert engine.deliver() == qflow.DeliveryReport(claimed=1, retrying=1)
        assert engine.store.outbox()[0].last_error == "DeliveryError: HTTP 401 from ${env:HOOK_URL}: bad signature"
        assert "not the receiver" not in repr(engine.store.outbox())
        engine.delivery_env = {"HOOK_URL": r.url(), "HOOK_SECRET": WHSEC}
        clock.advance(timedelta(minutes=1))
        assert engine.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)
        assert len(r.requests) == 1 and len(r.refused) == 1
    finally:
        r.close()


# -- chat services -----------------------------------------------------------------------


def _one(notify: str, env_name: str, reply: bytes, path: str = "/hook", check=None, extra_env=None):
    r = Receiver(reply=reply, check=check)
    try:
        engine, _ = engine_for(notify, {env_name: r.url(path), **(extra_env or {})})
        state = report(engine)
        outcome = engine.deliver()
        return r.requests, outcome, engine, state
    finally:
        r.close()


def test_dingtalk_signs_timestamp_and_secret_and_mentions_by_mobile():
    secret = "SECabc123def456"

    def check(req):
        ts = req.query["timestamp"]
        mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
        if req.query["sign"] != base64.b64encode(mac).decode():
            raise ValueError("sign mismatch")

    requests, outcome, engine, state = _one("""\
        notify:
          channels:
            ding: {backend: dingtalk, url: "${env:DING_URL}", secret: "${env:DING_SECRET}"}
          people:
            李强: {mobile: "13800000002"}
        """, "DING_URL", b'{"errcode":0,"errmsg":"ok"}', "/robot/send?access_token=tok123", check,
        {"DING_SECRET": secret})
    assert outcome.delivered == 1
    [req] = requests
    assert req.query["access_token"] == "tok123" and req.query["timestamp"] == str(int(T0.timestamp() * 1000))
    body = req.json()
    assert body["msgtype"] == "markdown" and body["at"] == {"atMobiles": ["13800000002"], "isAtAll": False}
    assert body["markdown"]["title"] == f"【normal】{state.id} complaint"
    assert body["markdown"]["text"].startswith(f"### 【normal】{state.id} complaint\n\n前台等待超过30分钟\n客人很生气\n")
    assert body["markdown"]["text"].endswith("\n\n@13800000002")


def test_feishu_signs_with_the_timestamp_and_secret_as_key_and_posts_rich_text():
    secret = "feishu-secret"

    def check(req):
        body = req.json()
        mac = hmac.new(f"{body['timestamp']}\n{secret}".encode(), b"", hashlib.sha256).digest()
        if body["sign"] != base64.b64encode(mac).decode():
            raise ValueError("sign mismatch")

    requests, outcome, engine, state = _one("""\
        notify:
          channels:
            fs: {backend: feishu, url: "${env:FS_URL}", secret: "${env:FS_SECRET}"}
        """, "FS_URL", b'{"code":0,"msg":"success"}', "/open-apis/bot/v2/hook/abc", check, {"FS_SECRET": secret})
    assert outcome.delivered == 1
    body = requests[0].json()
    assert body["timestamp"] == str(int(T0.timestamp())) and body["msg_type"] == "post"
    post = body["content"]["post"]["zh_cn"]
    assert post["title"] == f"【normal】{state.id} complaint"
    assert post["content"][:2] == [[{"tag": "text", "text": "前台等待超过30分钟"}], [{"tag": "text", "text": "客人很生气"}]]


def test_wecom_text_messages_mention_mobiles_and_an_errcode_is_a_failure():
    requests, outcome, engine, state = _one("""\
        notify:
          channels:
            wc: {backend: wecom, url: "${env:WC_URL}", markdown: false, retry: {attempts: 1}}
          people:
            李强: {mobile: "13800000002"}
        """, "WC_URL", b'{"errcode":93000,"errmsg":"invalid webhook url"}')
    assert outcome == qflow.DeliveryReport(claimed=1, dead=1)
    assert requests[0].json() == {"msgtype": "text", "text": {
        "content": f"【normal】{state.id} complaint\n前台等待超过30分钟\n客人很生气\n地点：lobby\n团队：前厅部 Front office，"
                   "负责人：李强\n响应期限：2026-11-21 03:10 +08:00\n解决期限：2026-11-23 23:10 +08:00\n事件：incident.reported",
        "mentioned_mobile_list": ["13800000002"]}}
    assert engine.events(state.id)[-1].data["error"] == (
        "DeliveryError: WeCom refused the message: errcode 93000 invalid webhook url")


def test_slack_gets_a_header_and_a_mrkdwn_section_and_a_refusal_text_fails():
    requests, outcome, engine, state = _one("""\
        notify:
          lang: en
          channels:
            sl: {backend: slack, url: "${env:SLACK_URL}", retry: {attempts: 1}}
        """, "SLACK_URL", b"invalid_payload")
    body = requests[0].json()
    assert body["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": f"[normal] {state.id} complaint"}}
    assert body["blocks"][1]["type"] == "section" and body["blocks"][1]["text"]["type"] == "mrkdwn"
    assert body["text"].startswith(f"[normal] {state.id} complaint\n前台等待超过30分钟")
    assert engine.events(state.id)[-1].data["error"] == "DeliveryError: Slack refused the message: invalid_payload"


def test_teams_gets_an_adaptive_card():
    requests, outcome, engine, state = _one("""\
        notify:
          lang: en
          channels:
            tm: {backend: teams, url: "${env:TEAMS_URL}"}
        """, "TEAMS_URL", b"1")
    assert outcome.delivered == 1
    body = requests[0].json()
    assert body["type"] == "message"
    [att] = body["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert att["content"]["type"] == "AdaptiveCard"
    assert att["content"]["body"][0]["text"] == f"[normal] {state.id} complaint"
    assert att["content"]["body"][1]["text"].startswith("前台等待超过30分钟\n客人很生气\nPlace: lobby")


def test_a_preview_shows_the_request_without_any_secret():
    engine, _ = engine_for("""\
        notify:
          channels:
            ding: {backend: dingtalk, url: "${env:DING_URL}", secret: "${env:DING_SECRET}"}
        """, {"DING_URL": "http://127.0.0.1:9/robot/send?access_token=tok123", "DING_SECRET": "SECxyz"})
    report(engine)
    [m] = engine.store.outbox()
    channel = engine.channels()["ding"]
    text = engine.backends()["dingtalk"].preview(m, channel.config, now=T0)
    assert text.startswith(f"POST ${{env:DING_URL}}?timestamp={int(T0.timestamp() * 1000)}&sign=%3Csigned+at+send+time%3E\n")
    assert "tok123" not in text and "SECxyz" not in text


# -- e-mail ------------------------------------------------------------------------------


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode("utf-8")))
        return "250 OK"


def _auth(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"qflow" and auth_data.password == b"s3cret-pw"
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def smtp():
    inbox = _Inbox()
    c = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=_auth, auth_require_tls=False)
    c.start()
    yield c, inbox
    c.stop()


def _mail_channel(port: int, extra: str = "") -> str:
    return f"""\
        notify:
          channels:
            mail: {{backend: email, host: 127.0.0.1, port: {port}, security: none, sender: qflow@hotel.example,
                    to: [quality@hotel.example], username: "${{env:SMTP_USER}}", password: "${{env:SMTP_PASSWORD}}",
                    timeout: 5s, retry: {{attempts: 2}}{extra}}}
          people:
            李强: {{email: liqiang@hotel.example}}
        """


def test_email_over_smtp_with_login_from_the_environment(smtp):
    controller, inbox = smtp
    engine, _ = engine_for(_mail_channel(controller.port),
                           {"SMTP_USER": "qflow", "SMTP_PASSWORD": "s3cret-pw"})
    state = report(engine)
    assert engine.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)
    [(sender, rcpts, content)] = inbox.messages
    [m] = engine.store.outbox()
    assert sender == "qflow@hotel.example" and rcpts == ["quality@hotel.example", "liqiang@hotel.example"]
    assert f"Message-ID: <{m.id}@hotel.example>" in content
    assert f"X-Qflow-Incident: {state.id}" in content
    assert "Subject: =?utf-8?b?" in content  # the Chinese subject is encoded, not mangled


def test_a_wrong_smtp_password_is_a_failed_try_and_never_logged(smtp, caplog):
    controller, inbox = smtp
    port = controller.port
    engine, clock = engine_for(_mail_channel(port), {"SMTP_USER": "qflow", "SMTP_PASSWORD": "wrong-pw"})
    state = report(engine)
    engine.deliver()
    clock.advance(timedelta(minutes=5))
    engine.deliver()
    assert inbox.messages == []
    error = engine.events(state.id)[-1].data["error"]
    assert error == (f"DeliveryError: SMTP login to 127.0.0.1:{port} refused (535); "
                     "check the username and password variables")
    assert "wrong-pw" not in caplog.text


def test_email_with_starttls_against_a_server_with_its_own_certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    inbox = _Inbox()
    c = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=ctx, require_starttls=True,
                   authenticator=_auth, auth_require_tls=True)
    c.start()
    try:
        port = c.port
        notify = _mail_channel(port, f", ca_file: {cert}").replace("security: none", "security: starttls")
        engine, _ = engine_for(notify, {"SMTP_USER": "qflow", "SMTP_PASSWORD": "s3cret-pw"})
        report(engine)
        assert engine.deliver() == qflow.DeliveryReport(claimed=1, delivered=1)
        assert len(inbox.messages) == 1
    finally:
        c.stop()


def test_an_unreachable_smtp_server_is_a_clear_failure():
    from notify_support import refused_url

    port = int(refused_url().rsplit(":", 1)[1].split("/")[0])
    engine, _ = engine_for(_mail_channel(port), {"SMTP_USER": "qflow", "SMTP_PASSWORD": "x"})
    report(engine)
    engine.deliver()
    assert engine.store.outbox()[0].last_error == (
        f"DeliveryError: cannot reach SMTP server 127.0.0.1:{port}: [Errno 111] Connection refused")


def test_delivery_error_is_exported_for_third_party_backends():
    assert issubclass(DeliveryError, Exception)
