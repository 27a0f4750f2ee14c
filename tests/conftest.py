from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import qflow

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 20, 23, 10, tzinfo=CST)

BASE = """\
qflow: 1
name: test-desk
timezone: Asia/Shanghai
teams:
  front-office: {name: 前厅部 Front office, lead: 王芳}
  housekeeping: {name: 客房部 Housekeeping, lead: 李娜}
  engineering: {name: 工程部 Engineering}
severities:
  critical: {respond: 15m, resolve: 4h}
  high: {respond: 1h, resolve: 1d}
  normal: {respond: 4h, resolve: 3d}
classify:
  - id: safety
    when:
      any:
        - category: safety
        - description: {matches: "(?i)fire|smoke|火|烟"}
    set: {category: safety, severity: critical}
  - id: vip-complaint
    when: {channel: [phone, onsite], category: complaint, customer.tier: {in: [gold, platinum]}}
    set: {severity: high}
  - id: default
    set: {severity: normal}
route:
  - id: cleanliness
    when: {category: [hygiene, room_not_clean]}
    assign: {team: housekeeping, responsibility: human}
  - id: broken-equipment
    when: {category: equipment}
    assign: {team: engineering, responsibility: equipment}
  - id: default
    assign: {team: front-office}
"""


@pytest.fixture
def pm():
    """A fresh plugin manager with the built-ins only (no third-party plugins)."""
    return qflow.make_plugin_manager(autoload=False)


@pytest.fixture
def write(tmp_path: Path):
    """Write a dedented YAML file under tmp_path and return its path as a string."""

    def _write(name: str, text: str) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    return _write


@pytest.fixture
def base_ruleset(pm):
    return qflow.load_ruleset_text(BASE, file="base.yaml", plugins=pm)


@pytest.fixture
def clock():
    return qflow.FakeClock(T0)
