"""Synthetic rulesets and incidents for the benchmarks: the same rules in three forms
(qflow YAML, hand-written lambdas, rule-engine expressions) so that each run compares
like with like."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

CHANNELS = ["phone", "email", "online", "onsite", "inspection"]
TIERS = ["basic", "silver", "gold", "platinum"]
WORDS = ["wait", "dirty", "noise", "broken", "smoke", "cold", "slow", "rude", "等待", "噪音"]
CATEGORIES = [f"cat{i}" for i in range(50)]
SEVERITIES = ["critical", "high", "normal", "low"]
TEAMS = [f"team{i}" for i in range(12)]


def make_rules(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """*n* classify rules of realistic shape: a category plus one or two more tests."""
    rnd = random.Random(seed)
    rules = []
    for i in range(n - 1):
        cond: dict[str, Any] = {"category": rnd.choice(CATEGORIES)}
        shape = i % 4
        if shape == 0:
            cond["channel"] = sorted(rnd.sample(CHANNELS, 2))
        elif shape == 1:
            cond["customer.tier"] = {"in": sorted(rnd.sample(TIERS, 2))}
        elif shape == 2:
            cond["description"] = {"contains": rnd.choice(WORDS)}
        else:
            cond["impact"] = {"ge": rnd.randint(2, 4)}
        rules.append({"id": f"r{i}", "when": cond, "set": {"severity": rnd.choice(SEVERITIES)}})
    rules.append({"id": "default", "set": {"severity": "normal"}})
    return rules


def ruleset_yaml(rules: list[dict[str, Any]]) -> str:
    import json

    lines = [
        "qflow: 1", "name: bench", "timezone: Asia/Shanghai",
        "teams: {" + ", ".join(f"{t}: {{}}" for t in TEAMS) + "}",
        "severities:",
        "  critical: {respond: 15m, resolve: 4h}",
        "  high: {respond: 1h, resolve: 1d}",
        "  normal: {respond: 4h, resolve: 3d}",
        "  low: {respond: 1d, resolve: 10d}",
        "classify:",
    ]
    for r in rules:
        lines.append(f"  - id: {r['id']}")
        if "when" in r:
            lines.append(f"    when: {json.dumps(r['when'], ensure_ascii=False)}")
        lines.append(f"    set: {json.dumps(r['set'])}")
    lines.append("route:")
    for i, cat in enumerate(CATEGORIES):
        lines.append(f"  - {{id: route{i}, when: {{category: {cat}}}, assign: {{team: {TEAMS[i % len(TEAMS)]}}}}}")
    lines.append("  - {id: default, assign: {team: team0}}")
    return "\n".join(lines) + "\n"


def as_lambda(cond: dict[str, Any]):
    """The rule written by hand as a Python lambda over the same plain-data view."""
    parts = []
    for field, spec in cond.items():
        if field == "category":
            parts.append(lambda v, x=spec: v.get("category") == x)
        elif field == "channel":
            parts.append(lambda v, xs=frozenset(spec): v.get("channel") in xs)
        elif field == "customer.tier":
            parts.append(lambda v, xs=frozenset(spec["in"]): (v.get("customer") or {}).get("tier") in xs)
        elif field == "description":
            parts.append(lambda v, w=spec["contains"]: w in (v.get("description") or ""))
        elif field == "impact":
            parts.append(lambda v, n=spec["ge"]: (v.get("impact") or 0) >= n)
    if len(parts) == 2:
        a, b = parts
        return lambda v: a(v) and b(v)
    return lambda v: all(p(v) for p in parts)


def as_rule_engine(cond: dict[str, Any]) -> str:
    parts = []
    for field, spec in cond.items():
        if field == "category":
            parts.append(f"category == '{spec}'")
        elif field == "channel":
            parts.append(f"channel in {spec!r}")
        elif field == "customer.tier":
            parts.append(f"customer.tier in {spec['in']!r}")
        elif field == "description":
            parts.append(f"'{spec['contains']}' in description")
        elif field == "impact":
            parts.append(f"impact >= {spec['ge']}")
    return " and ".join(parts)


def make_incidents(n: int, seed: int = 11) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    out = []
    for i in range(n):
        out.append({
            "reported_at": (t0 + timedelta(seconds=37 * i)).isoformat(),
            "channel": rnd.choice(CHANNELS),
            "category": rnd.choice(CATEGORIES),
            "place": f"room {rnd.randint(100, 999)}",
            "description": " ".join(rnd.sample(WORDS, 3)),
            "impact": rnd.randint(1, 5),
            "urgency": rnd.randint(1, 3),
            "customer": {"id": f"c{rnd.randint(1, 5000)}", "tier": rnd.choice(TIERS)},
        })
    return out
