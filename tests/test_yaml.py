"""The positioned YAML reader: what looks like a date but is none stays text."""

from __future__ import annotations

import datetime

from qflow._yaml import load_yaml


def test_an_impossible_date_is_kept_as_text_for_the_section_to_report():
    doc, problems = load_yaml("days: [2026-13-01, 2026-12-24]\n", "x.yaml")
    assert problems == []
    assert doc["days"] == ["2026-13-01", datetime.date(2026, 12, 24)]
