"""``qflow notify test`` and ``qflow notify preview``."""

from __future__ import annotations

import io
from datetime import datetime

from escalation_helpers import one_step_desk
from notify_support import Receiver, ruleset_text
from qflow.cli import main

NOTIFY = """\
notify:
  channels:
    front-chat: {backend: wecom, url: "${env:WECOM_FRONT_URL}", fallback: quality-log}
    quality-log: {backend: log, lang: en}
  routes:
    - {topics: ["escalation.*"], channels: [front-chat]}
  templates:
    - topic: escalation.*
      lang: en
      subject: "[{{ severity }}] {{ id }} is about to be late"
      body: "{{ description }} at {{ place }}; respond by {{ respond_by }}"
"""
NOW = "2026-11-20T23:10:00+08:00"


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def test_simulate_prints_the_request_with_the_reference_not_the_secret(tmp_path, monkeypatch):
    path = tmp_path / "r.yaml"
    path.write_text(ruleset_text(NOTIFY), encoding="utf-8")
    monkeypatch.setenv("WECOM_FRONT_URL", "http://127.0.0.1:9/send?key=SECRET-KEY")
    status, out, err = run("notify", "test", "front-chat", str(path), "--simulate", "--now", NOW, "--no-plugins")
    assert status == 0, err
    assert out.startswith("POST ${env:WECOM_FRONT_URL}\n\n{\n  \"msgtype\": \"markdown\",")
    assert "**qflow notify test: front-chat**" in out and "SECRET-KEY" not in out


def test_a_test_message_goes_to_a_real_receiver_and_failures_exit_1(tmp_path, monkeypatch):
    path = tmp_path / "r.yaml"
    path.write_text(ruleset_text(NOTIFY), encoding="utf-8")
    r = Receiver(reply=b'{"errcode":0}')
    try:
        monkeypatch.setenv("WECOM_FRONT_URL", r.url("/send?key=SECRET-KEY"))
        status, out, err = run("notify", "test", "front-chat", str(path), "--now", NOW, "--no-plugins")
        assert status == 0, err
        assert out.startswith("sent a test message through front-chat (wecom), id ")
        assert r.requests[0].json()["markdown"]["content"].startswith("**qflow notify test: front-chat**")
        r.fail_with(500)
        status, out, err = run("notify", "test", "front-chat", str(path), "--now", NOW, "--no-plugins")
        assert status == 1
        assert err == ("qflow: sending through front-chat (wecom) failed: DeliveryError: HTTP 500 from "
                       f"http://127.0.0.1:{r.port}/send?key=***: {{\"error\": \"told to fail\"}}\n")
    finally:
        r.close()


def test_a_backend_that_needs_options_names_the_channels_that_use_it(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(ruleset_text(NOTIFY), encoding="utf-8")
    status, out, err = run("notify", "test", "wecom", str(path), "--no-plugins")
    assert status == 2
    assert err == ("qflow: error: backend 'wecom' needs its options (a URL, a server ...)\n"
                   "hint: test a channel that uses it: front-chat\n")
    status, out, err = run("notify", "test", "wcom", str(path), "--no-plugins")
    assert err.startswith(f"qflow: error: 'wcom' is neither a channel of {path} nor an installed backend\n")
    status, out, err = run("notify", "test", "log", str(path), "--simulate", "--now", NOW, "--no-plugins")
    assert (status, out) == (0, "log -> test-log\nsubject: qflow notify test: test-log\n\n这是一条测试消息 / "
                                "This is a test message from qflow, ruleset notify-desk, at 2026-11-20T23:10:00+08:00.\n")


def test_preview_renders_the_templates_per_channel_in_the_asked_language(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(ruleset_text(NOTIFY), encoding="utf-8")
    status, out, err = run("notify", "preview", str(path), "--topic", "escalation.warning", "--lang", "en",
                           "--now", NOW, "--no-plugins", "--incident",
                           '{"category": "complaint", "description": "等待超过30分钟", "place": "lobby"}')
    assert status == 0, err
    head = out.split("-- as sent:")[0]
    assert head.startswith("== front-chat (wecom, en) id ")
    assert head.endswith(", falls back to quality-log\nto:      王芳, 李强\n"
                         "subject: [normal] PREVIEW-1 is about to be late\n"
                         "  等待超过30分钟 at lobby; respond by 2026-11-21 03:10 +08:00\n")
    status, out, err = run("notify", "preview", str(path), "--topic", "incident.reported", "--now", NOW,
                           "--no-plugins", "--incident", '{"description": "x"}')
    assert (status, out) == (0, "no route sends 'incident.reported' for this incident; nothing would be sent\n")


def _examples(text: str) -> list[list[str]]:
    import shlex

    lines = text.replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True)[1:] for line in lines if line.strip().startswith("qflow notify ")]


def test_every_notify_example_of_the_help_and_the_docs_runs(monkeypatch, tmp_path):
    from pathlib import Path

    import qflow
    from qflow._cli_notify import _EPILOG
    from qflow_sqlite import SQLiteStore

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    docs = (root / "docs" / "notify.md").read_text(encoding="utf-8")
    examples = _examples(_EPILOG) + _examples(docs)
    assert [" ".join(e[:3]) for e in examples] == [
        "notify test duty-log", "notify test console", "notify preview rulesets/hotel-front-desk.yaml",  # help
        "notify preview rulesets/hotel-front-desk.yaml",
        "notify preview rulesets/hotel-front-desk.yaml", "notify test duty-log", "notify test duty-log",  # docs
        "notify test console"]
    # The examples naming a store get one in which INC-1 is reported.
    store = tmp_path / "qflow.sqlite3"
    engine = qflow.Engine(qflow.load_ruleset(root / "rulesets/hotel-front-desk.yaml"), store=SQLiteStore(store),
                          clock=qflow.FakeClock(datetime.fromisoformat("2026-11-20T20:00:00+08:00")))
    engine.report({"channel": "phone", "category": "complaint", "description": "等待超过30分钟"})
    engine.store.close()
    for argv in examples:
        argv = [f"sqlite:///{store}" if a == "sqlite:///qflow.sqlite3" else a for a in argv]
        status, out, err = run(*argv, "--now", NOW)
        assert (status, err) == (0, ""), argv


def test_an_unknown_target_names_only_what_can_be_tested_by_name(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(ruleset_text(NOTIFY), encoding="utf-8")
    status, out, err = run("notify", "test", "wcom", str(path), "--no-plugins")
    assert (status, err) == (2, f"qflow: error: 'wcom' is neither a channel of {path} nor an installed backend\n"
                                "hint: use a channel (front-chat, quality-log) or a backend that needs no options "
                                "(console, log); dingtalk, email, feishu, lark, slack, teams, webhook, wecom are "
                                "tested through a channel that uses them\n")


def test_preview_refuses_a_language_without_templates(tmp_path):
    from qflow._cli_notify import LANGS
    from qflow_notify._templates import LANGS as TEMPLATE_LANGS

    assert LANGS == TEMPLATE_LANGS
    path = tmp_path / "r.yaml"
    path.write_text(ruleset_text(NOTIFY), encoding="utf-8")
    status, out, err = run("notify", "preview", str(path), "--lang", "fr", "--now", NOW, "--no-plugins",
                           "--incident", '{"description": "x"}')
    assert (status, out, err) == (2, "", "qflow: error: --lang: unknown language 'fr'\nhint: use one of: zh, en\n")


STORED = one_step_desk("preview-desk") + """\
  suppress:
    - id: outage
      source: {category: power_outage}
      target: {category: equipment_fault}
      equal: [place]
notify:
  channels:
    duty-log: {backend: log}
"""


def _stored(tmp_path, monkeypatch):
    """A ruleset file and a store at it: INC-1 a power outage at B1, INC-2 a fault
    there that the outage holds, both reported at 10:00 in Shanghai."""
    from datetime import datetime, timedelta, timezone

    import qflow
    from qflow_sqlite import SQLiteStore

    monkeypatch.delenv("QFLOW_STORE", raising=False)
    path = tmp_path / "r.yaml"
    path.write_text(STORED, encoding="utf-8")
    store_path = tmp_path / "site.sqlite3"
    clock = qflow.FakeClock(datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8))))
    engine = qflow.Engine(qflow.load_ruleset(path), store=SQLiteStore(store_path), clock=clock)
    for category in ("power_outage", "equipment_fault"):
        engine.report({"channel": "phone", "category": category, "place": "B1", "description": f"B1 {category}"})
    engine.store.close()
    return str(path), f"sqlite:///{store_path}"


def test_preview_of_a_stored_incident_renders_its_next_step(tmp_path, monkeypatch):
    path, url = _stored(tmp_path, monkeypatch)
    status, out, err = run("notify", "preview", path, "--incident", "INC-1", "--store", url, "--lang", "en")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[:5] == [
        "INC-1 at 2026-11-20T12:00:00+08:00: esc:respond:standard/warn",
        "",
        f"== duty-log (log, en) id {lines[2].split()[-1]}",
        "to:      王芳",
        "subject: [normal] INC-1 50% of respond used",
    ]
    # The fault is held by the outage: the preview says so and shows no message.
    assert run("notify", "preview", path, "--incident", "INC-2", "--store", url,
               "--now", "2026-11-20T12:00:00+08:00") == (0, (
        "INC-2 at 2026-11-20T12:00:00+08:00: esc:release, esc:respond:standard/warn\n"
        "held: escalation.warning to team.lead held: suppressed by INC-1 (rule outage)\n"
        "nothing would be sent\n"), "")
    # Before anything is due, it says when the next thing is.
    assert run("notify", "preview", path, "--incident", "INC-1", "--store", url,
               "--now", "2026-11-20T11:00:00+08:00") == (0, (
        "nothing of INC-1 is due at 2026-11-20T11:00:00+08:00; its next timer, esc:respond:standard/warn, "
        "is due at 2026-11-20T12:00:00+08:00\n"), "")


def test_preview_of_a_stored_incident_with_a_topic_and_from_the_environment(tmp_path, monkeypatch):
    path, url = _stored(tmp_path, monkeypatch)
    monkeypatch.setenv("QFLOW_STORE", url)
    status, out, err = run("notify", "preview", path, "--incident", "INC-1", "--topic", "incident.reported",
                           "--now", NOW)
    assert (status, err) == (0, "")
    assert out.splitlines()[1:3] == ["to:      王芳", "subject: 【normal】INC-1 power_outage"]


def test_preview_of_an_unknown_or_missing_store_is_a_usage_error(tmp_path, monkeypatch):
    path, url = _stored(tmp_path, monkeypatch)
    assert run("notify", "preview", path, "--incident", "INC-9", "--store", url) == (2, "", (
        f"qflow: error: no incident 'INC-9' in {url}\n"
        f"hint: list them with 'qflow ls --store {url}'\n"))
    missing = tmp_path / "typo.sqlite3"
    status, out, err = run("notify", "preview", path, "--incident", "INC-1", "--store", f"sqlite:///{missing}")
    assert (status, out) == (2, "")
    assert err.splitlines()[0] == (f"qflow: error: no store at {missing} (the file does not exist); check the path, "
                                   "or create the store with 'qflow import' (or 'qflow demo')")
    assert not missing.exists()
