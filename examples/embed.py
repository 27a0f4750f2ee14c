"""Embedding qflow in an existing service system, in a few lines.

Run from the repository root::

    python examples/embed.py

It loads the shipped hotel front-desk ruleset, reports two incidents at a fixed
moment (a FakeClock: examples and tests never read the wall clock), prints what the
ruleset decided and why, and moves one incident through the first stages of the loop.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import qflow

RULESET = Path(__file__).resolve().parent.parent / "rulesets" / "hotel-front-desk.yaml"
CST = timezone(timedelta(hours=8))


def main() -> None:
    clock = qflow.FakeClock(datetime(2026, 11, 24, 23, 10, tzinfo=CST))
    engine = qflow.Engine.from_path(RULESET, clock=clock)

    # What the front-desk system already has: plain data, as it would come from a form.
    noise = engine.report({
        "channel": "phone", "place": "15楼 1512房",
        "description": "隔壁房间有人聚会，大声喧哗，无法入睡",
        "customer": {"id": "M-20318876", "name": "孙涛", "tier": "gold"},
        "extra": {"shift": "night", "room": "1512"},
    }, actor="赵磊")
    sparks = engine.report({
        "channel": "phone", "place": "10楼 1011房",
        "description": "床头插座打火花，房间里有烧焦味",
        "external_id": "PBX-20261124-2310", "extra": {"shift": "night", "room": "1011"},
    }, actor="赵磊")

    for state in (noise, sparks):
        d = state.decision
        assert d is not None
        print(f"{state.id}: {d.category}/{d.severity} -> {d.team} ({d.owner}), "
              f"respond by {d.respond_by:%H:%M}, resolve by {d.resolve_by:%m-%d %H:%M}")

    # Why: the trace lists every rule considered, in order (worked out only when read);
    # here the ones that decided something.
    print(f"why {sparks.id}:")
    for step in sparks.decision.trace:  # type: ignore[union-attr]
        if step.outcome == "matched":
            evidence, _, sets = step.reason.rpartition("; ")
            print(f"  {step.section}/{step.rule}: {sets} (because {evidence[:36]}...)")

    # The duty manager confirms the noise complaint ten minutes later, and the security
    # supervisor starts the analysis.
    clock.advance(timedelta(minutes=10))
    engine.transition(noise.id, qflow.Stage.CONFIRMED, actor="高峰")
    state = engine.transition(noise.id, qflow.Stage.ANALYSING, actor="高峰")
    print(f"{state.id} is now {state.stage} ({len(engine.events(state.id))} events)")


if __name__ == "__main__":
    main()
