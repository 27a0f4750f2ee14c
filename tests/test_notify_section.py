"""The notify section: every mistake is a located error, reported all at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

import qflow
from notify_support import ruleset_text


def load(notify: str, pm=None):
    return qflow.load_ruleset_text(ruleset_text(notify), file="notify.yaml",
                                   plugins=pm or qflow.make_plugin_manager(autoload=False))


def errors(notify: str) -> list[str]:
    with pytest.raises(qflow.RulesetError) as info:
        load(notify)
    return [str(d) for d in info.value.diagnostics]


def test_a_good_section_compiles_its_channels_with_their_backends_and_policies():
    rs = load("""\
        notify:
          channels:
            front-chat: {backend: wecom, url: "${env:WECOM_FRONT_URL}", fallback: quality-mail,
                         retry: {attempts: 5, backoff: 30s, max: 1h}}
            quality-mail: {backend: email, host: smtp.example.com, sender: qflow@hotel.example,
                           to: [quality@hotel.example], username: "${env:SMTP_USER}", password: "${env:SMTP_PASSWORD}"}
          routes:
            - {topics: ["escalation.*"], severities: [critical], channels: [front-chat]}
          recipients:
            quality-manager: [张敏, quality@hotel.example]
        """)
    engine = qflow.Engine(rs, plugins=qflow.make_plugin_manager(autoload=False))
    chat = engine.channels()["front-chat"]
    assert (chat.backend, chat.fallback, chat.config.url) == ("wecom", "quality-mail", "${env:WECOM_FRONT_URL}")
    assert chat.retry == qflow.RetryPolicy(attempts=5, backoff=timedelta(seconds=30), max=timedelta(hours=1))
    assert engine.channels()["quality-mail"].config.to == ("quality@hotel.example",)
    assert {"log", "console", "email", "webhook", "wecom", "dingtalk", "feishu", "lark", "slack",
            "teams"} <= set(engine.backends())


def test_backend_configuration_mistakes_are_located():
    assert errors("""\
        notify:
          channels:
            chat: {backend: wecom}
            hook: {backend: webhok, url: "${env:HOOK}"}
            mail: {backend: email, host: smtp.example.com, sender: qflow, to: [quality@example.com, boss]}
            web: {backend: webhook, url: "ftp://127.0.0.1/x"}
            slow: {backend: webhook, url: "${env:HOOK}", timeout: 10x}
            bare: {fallback: chat}
        """) == [
        "notify.yaml:24:11: QF102 missing required key 'url' @ $.notify.channels.chat",
        "notify.yaml:25:21: QF770 unknown backend 'webhok' (did you mean 'webhook'?) @ $.notify.channels.hook.backend",
        "notify.yaml:26:60: QF771 sender 'qflow' is not an e-mail address (write an address such as "
        "qflow@hotel.example) @ $.notify.channels.mail.sender",
        "notify.yaml:26:93: QF771 'boss' is not an e-mail address (write an address such as quality@hotel.example)"
        " @ $.notify.channels.mail.to[1]",
        "notify.yaml:27:34: QF771 'ftp://127.0.0.1/x' is not an http or https URL (write the full webhook URL, "
        "e.g. https://..., or '${env:NAME}') @ $.notify.channels.web.url",
        "notify.yaml:28:59: QF105 '10x' is not a duration (use 15m, 1h, 2d, 1w or a sum like 1h30m) "
        "@ $.notify.channels.slow.timeout",
        "notify.yaml:29:11: QF102 missing required key 'backend' (one of: console, dingtalk, email, feishu, lark, "
        "log, slack, teams, webhook, wecom) @ $.notify.channels.bare",
    ]


def test_secrets_must_come_from_the_environment():
    assert errors("""\
        notify:
          channels:
            mail: {backend: email, host: smtp.example.com, sender: q@example.com, to: [a@example.com],
                   username: u, password: hunter2}
            slack: {backend: slack, url: "https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D/abcdEFGH1234ijkl5678MNOP"}
            wecom: {backend: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"}
            ding: {backend: dingtalk, url: "${env:DING_URL}", secret: "${ENV:DING}"}
            internal: {backend: webhook, url: "http://127.0.0.1:8080/hook"}
        """) == [
        "notify.yaml:25:35: QF776 the password of this channel is written into the ruleset (put it in an "
        "environment variable and write '${env:NAME}'; rulesets are not secret) @ $.notify.channels.mail.password",
        "notify.yaml:26:34: QF776 the url of this channel is written into the ruleset (put it in an environment "
        "variable and write '${env:NAME}'; rulesets are not secret) @ $.notify.channels.slack.url",
        "notify.yaml:27:34: QF776 the url of this channel is written into the ruleset (put it in an environment "
        "variable and write '${env:NAME}'; rulesets are not secret) @ $.notify.channels.wecom.url",
        "notify.yaml:28:63: QF777 '${ENV:DING}' is not an environment reference (write '${env:NAME}' with NAME in "
        "letters, digits and _) @ $.notify.channels.ding.secret",
    ]


def test_retry_fallback_and_route_mistakes_are_located():
    assert errors("""\
        notify:
          channels:
            ding: {backend: log, retry: {attempts: 0, backoff: 2h, max: 1h, jitter: 1.5}}
            loop1: {backend: log, fallback: loop2}
            loop2: {backend: log, fallback: loop1}
            lost: {backend: log, fallback: mial}
            mail: {backend: log}
          routes:
            - id: all
              topics: ["escalation.*"]
              severities: [critcal]
              teams: [front-ofice]
              channels: [mail, mali]
        """) == [
        "notify.yaml:24:44: QF779 attempts is 0, so nothing would ever be sent (give 1 or more tries in all, "
        "e.g. attempts: 5) @ $.notify.channels.ding.retry.attempts",
        "notify.yaml:24:56: QF779 backoff (2h) is longer than max (1h) (the first wait cannot exceed the longest; "
        "shorten backoff or raise max) @ $.notify.channels.ding.retry.backoff",
        "notify.yaml:24:77: QF779 jitter 1.5 is outside 0..1 (a fraction of each wait, e.g. 0.2) "
        "@ $.notify.channels.ding.retry.jitter",
        "notify.yaml:25:37: QF774 fallbacks go round in a circle: loop1 -> loop2 -> loop1 (end the chain at a "
        "channel without a fallback) @ $.notify.channels.loop1.fallback",
        "notify.yaml:26:37: QF774 fallbacks go round in a circle: loop2 -> loop1 -> loop2 (end the chain at a "
        "channel without a fallback) @ $.notify.channels.loop2.fallback",
        "notify.yaml:27:36: QF774 unknown fallback channel 'mial' (did you mean 'mail'?) "
        "@ $.notify.channels.lost.fallback",
        "notify.yaml:32:20: QF201 unknown severity 'critcal' (did you mean 'critical'?) "
        "@ $.notify.routes[0].severities[0] (rule 'all')",
        "notify.yaml:33:15: QF201 unknown team 'front-ofice' (did you mean 'front-office'?) "
        "@ $.notify.routes[0].teams[0] (rule 'all')",
        "notify.yaml:34:24: QF775 unknown channel 'mali' (did you mean 'mail'?) "
        "@ $.notify.routes[0].channels[1] (rule 'all')",
    ]


def test_template_mistakes_are_located():
    assert errors("""\
        notify:
          channels:
            mail: {backend: log}
          templates:
            - topic: escalation.*
              kind: chatt
              subject: "【{{ severty }}】{{ id }}"
              body: "{{ description }} {% if %}"
            - topic: incident.*
              body: "{{ customer.tier }} {{ data.step }} {{ incident.__class__ }}"
            - topic: "*"
        """) == [
        "notify.yaml:27:13: QF104 'chatt' is not one of: log, email, webhook, chat (did you mean 'chat'?) "
        "@ $.notify.templates[0].kind",
        "notify.yaml:28:16: QF772 the subject template names an unknown field 'severty' (did you mean "
        "'severity'?) @ $.notify.templates[0].subject",
        "notify.yaml:29:13: QF773 the body template does not compile: Expected an expression, got 'end of "
        "statement block' (template line 1) (check the {{ }} and {% %} pairs) @ $.notify.templates[0].body",
        "notify.yaml:31:13: QF772 the body template names an unknown field 'incident' (see 'qflow notify "
        "preview --help' for the fields) @ $.notify.templates[1].body",
        "notify.yaml:32:7: QF102 the template has neither subject nor body (give at least one of them) "
        "@ $.notify.templates[2]",
    ]


def test_two_plugins_with_one_backend_name_are_an_error():
    class Twin:
        name, kind = "wecom", "chat"
        config_type = dict

        def check(self, config):
            return ()

    class Plugin:
        @qflow.hookimpl
        def qflow_backends(self):
            return [Twin()]

    pm = qflow.make_plugin_manager(autoload=False, plugins=[Plugin()])
    with pytest.raises(qflow.RulesetError) as info:
        load("notify:\n  channels:\n    log: {backend: log}\n", pm)
    assert [str(d) for d in info.value.diagnostics] == [
        "notify.yaml:22:1: QF778 two plugins provide a backend named 'wecom' (block one of them with "
        "QFLOW_BLOCKED_PLUGINS) @ $.notify"]


def test_qflow_check_reports_a_webhook_without_its_url(tmp_path):
    from qflow.cli import main

    path = tmp_path / "r.yaml"
    path.write_text(ruleset_text("notify:\n  channels:\n    hook: {backend: webhook, secret: \"${env:S}\"}\n"),
                    encoding="utf-8")
    import io
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["check", "--no-plugins", str(path)])
    assert status == 1
    assert out.getvalue() == (f"{path}:24:11: QF102 missing required key 'url' @ $.notify.channels.hook\n"
                              "1 error in 1 file\n")


def warnings(notify: str, pm=None) -> list[str]:
    return [str(d) for d in load(notify, pm).warnings]


def test_a_route_or_template_topic_no_plugin_raises_is_a_located_warning():
    assert warnings("""\
        escalation:
          ladders:
            default:
              - {id: vip, at: {clock: respond, used: 50%}, notify: [assignee], topic: escalation.vip}
        notify:
          channels:
            mgr: {backend: log}
          routes:
            - id: breaches
              topics: ["escalation.breached", "escalaton.*", "incident.report", "escalation.nope"]
              channels: [mgr]
            - topics: ["*", "escalation.*", "escalation.vip", "action.overdue", "verification.*", "problem.opened",
                       "incident.released", "mycorp.paged", "*.breach"]
              channels: [mgr]
          templates:
            - {topic: escalation.warnig, body: x}
            - {topic: incident.*, body: y}
        """) == [
        "notify.yaml:31:16: QF780 no installed plugin raises a topic matching 'escalation.breached' "
        "(did you mean 'escalation.breach'?) @ $.notify.routes[0].topics[0] (rule 'breaches')",
        "notify.yaml:31:39: QF780 no installed plugin raises a topic matching 'escalaton.*' "
        "(did you mean 'escalation.*'?) @ $.notify.routes[0].topics[1] (rule 'breaches')",
        "notify.yaml:31:54: QF780 no installed plugin raises a topic matching 'incident.report' "
        "(did you mean 'incident.reported'?) @ $.notify.routes[0].topics[2] (rule 'breaches')",
        "notify.yaml:31:73: QF780 no installed plugin raises a topic matching 'escalation.nope' "
        "(the escalation topics are: escalation.breach, escalation.vip, escalation.warning) "
        "@ $.notify.routes[0].topics[3] (rule 'breaches')",
        "notify.yaml:37:15: QF780 no installed plugin raises a topic matching 'escalation.warnig' "
        "(did you mean 'escalation.warning'?) @ $.notify.templates[0].topic",
    ]


def test_topics_a_third_party_plugin_declares_are_known_and_undeclared_prefixes_are_taken_as_written():
    class Paging:
        @qflow.hookimpl
        def qflow_notification_topics(self, sections):
            return ["escalation.paged"]

    notify = """\
        notify:
          channels:
            mgr: {backend: log}
          routes:
            - {topics: ["escalation.paged", "pagerduty.incident.acknowledged"], channels: [mgr]}
        """
    assert warnings(notify, qflow.make_plugin_manager(autoload=False, plugins=[Paging()])) == []
    assert warnings(notify) == [
        "notify.yaml:26:17: QF780 no installed plugin raises a topic matching 'escalation.paged' "
        "(the escalation topics are: escalation.breach, escalation.warning) @ $.notify.routes[0].topics[0]"]


def test_a_language_without_built_in_templates_is_a_located_error():
    assert errors("""\
        notify:
          lang: fr
          channels:
            mgr: {backend: log, lang: EN}
          templates:
            - {topic: "*", lang: english, body: x}
        """) == [
        "notify.yaml:23:9: QF104 unknown language 'fr' (use one of: zh, en) @ $.notify.lang",
        "notify.yaml:25:31: QF104 unknown language 'EN' (did you mean 'en'?) @ $.notify.channels.mgr.lang",
        "notify.yaml:27:26: QF104 unknown language 'english' (use one of: zh, en) @ $.notify.templates[0].lang",
    ]


def test_a_literal_scheme_is_checked_even_when_the_rest_of_the_url_comes_from_the_environment():
    assert errors("""\
        notify:
          channels:
            ftp: {backend: wecom, url: "ftp://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=${env:WK}"}
            bare: {backend: webhook, url: "hooks.example.com/${env:HOOK_PATH}"}
            whole: {backend: wecom, url: "${env:WK_URL}"}
            https: {backend: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=${env:WK}"}
            scheme: {backend: webhook, url: "http${env:TLS}://hooks.example.com/"}
        """) == [
        "notify.yaml:24:32: QF771 'ftp://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***' is not an http or "
        "https URL (write the full webhook URL, e.g. https://..., or '${env:NAME}') @ $.notify.channels.ftp.url",
        "notify.yaml:25:35: QF771 'hooks.example.com/${env:HOOK_PATH}' is not an http or https URL (write the "
        "full webhook URL, e.g. https://..., or '${env:NAME}') @ $.notify.channels.bare.url",
    ]
