"""Six months of a front desk's history for the demo's report: the shipped incidents
reported again month after month, answered, analysed, acted on, verified, surveyed —
and getting a little better each month, as a quality programme should.

Only the engine's public commands are used, on a virtual clock, so the store ends
up holding exactly what a real site's would after six months.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from qflow.clock import FakeClock
from qflow.engine import Engine
from qflow.errors import QflowError
from qflow.model import Action, Cause, Incident, Verification, VerificationResult

__all__ = ["build_history"]

_BRANCHES = ("man", "man", "method", "method", "method", "machine", "material", "environment", "measurement")
_CAUSES = {
    "man": "员工未按流程操作 staff skipped a step", "method": "交接班流程缺少核对 handover has no check",
    "machine": "设备老化未及时保养 maintenance overdue", "material": "客房用品补货不及时 restocking late",
    "environment": "施工噪音未提前告知 works not announced", "measurement": "巡检标准不清 inspection standard unclear",
}


def build_history(engine_for: Any, incidents: Sequence[Incident], months: int = 6,
                  seed: int = 7) -> tuple[Engine, int, datetime]:
    """Report *incidents* once a month for *months* months up to their own dates and
    take each through the loop; *engine_for(clock)* gives the engine (and its store).
    Returns the engine, how many incidents it holds and when the first was reported."""
    rnd = random.Random(seed)
    steps: list[tuple[datetime, int, int, tuple[Any, ...]]] = []
    n = 0
    for back in range(months - 1, -1, -1):
        quality = 0.55 + 0.08 * (months - 1 - back)  # month by month, answers come sooner
        for inc in incidents:
            if back and rnd.random() < 0.35:
                continue
            assert inc.reported_at is not None
            t = inc.reported_at - timedelta(days=30 * back)
            n += 1
            again = attrs.evolve(inc, id=None, reported_at=t, occurred_at=None, external_id=None, dedup_key=None)
            steps.append((t, 0, n, ("report", again)))
            good = rnd.random() < quality
            answered = t + timedelta(minutes=rnd.choice([5, 10, 20, 40]) if good else rnd.choice([70, 150, 300]))
            steps.append((answered, 1, n, ("respond",)))
            if rnd.random() < 0.06:
                steps.append((answered + timedelta(minutes=5), 2, n, ("reject",)))
                continue
            if back == 0 and rnd.random() < 0.3:
                steps.append((answered + timedelta(hours=1), 2, n, ("analyse", rnd.choice(_BRANCHES), False)))
                continue  # still open at the end
            fixed = answered + timedelta(hours=rnd.choice([1, 2, 3, 5]) if good else rnd.choice([10, 30, 80]))
            steps.append((answered + timedelta(minutes=30), 2, n, ("analyse", rnd.choice(_BRANCHES), True)))
            steps.append((fixed, 3, n, ("finish", rnd.random() < 0.8 + 0.03 * (months - 1 - back))))
            if rnd.random() < 0.5:
                score = rnd.choice([5, 5, 4, 4, 3, 2]) if good else rnd.choice([4, 3, 2, 1])
                steps.append((fixed + timedelta(hours=20), 4, n, ("survey", score, rnd.choice([10, 9, 9, 8, 7, 6, 3]))))
            if rnd.random() < 0.08:
                steps.append((fixed + timedelta(days=2), 5, n, ("reopen",)))
    steps.sort(key=lambda s: (s[0], s[1], s[2]))
    clock = FakeClock(steps[0][0])
    engine = engine_for(clock)
    ids: dict[int, str] = {}
    for when, _order, k, what in steps:
        clock.set(max(when, clock.now()))
        try:
            _step(engine, clock, rnd, ids, k, what)
        except QflowError:
            continue  # a step the loop refuses (e.g. after a reopening) is simply not taken
    return engine, len(ids), steps[0][0]


def _step(engine: Engine, clock: FakeClock, rnd: random.Random, ids: dict[int, str], k: int,
          what: tuple[Any, ...]) -> None:
    if what[0] == "report":
        ids[k] = engine.report(what[1], actor="前台 front desk").id
        return
    iid = ids[k]
    if what[0] == "respond":
        engine.acknowledge(iid, actor="前台 front desk")
        engine.respond(iid, "已安排处理 on its way", actor="前台 front desk")
    elif what[0] == "reject":
        engine.reject(iid, "经核实不属于异常 not an anomaly after all", actor="值班经理 duty manager")
    elif what[0] == "analyse":
        branch, act = what[1], what[2]
        engine.confirm(iid, actor="值班经理 duty manager")
        engine.record_cause(iid, Cause("C-1", _CAUSES[branch], method="fishbone", branch=branch, confirmed=True),
                            actor="质检部 quality")
        if act:
            engine.transition(iid, "acting", actor="值班经理 duty manager")
            due = clock.now() + timedelta(hours=rnd.choice([2, 6, 30]))
            engine.plan_action(iid, Action("A-1", "整改并培训 fix and train", "主管 supervisor", due,
                                           target="30天内不再发生 no repeat in 30 days"), actor="值班经理 duty manager")
    elif what[0] == "finish":
        engine.update_action(iid, "A-1", "done", actor="主管 supervisor")
        result = VerificationResult.EFFECTIVE if what[1] else VerificationResult.INEFFECTIVE
        engine.record_verification(iid, Verification(result, clock.now(), verifier="质检部 quality",
                                                     metrics={"repeats": 0 if what[1] else 2}), actor="质检部 quality")
        if what[1]:
            engine.close(iid, actor="质检部 quality")
    elif what[0] == "survey":
        engine.record_survey(iid, score=what[1], nps=what[2], channel="sms")
    elif what[0] == "reopen":
        engine.reopen(iid, "客人再次投诉 the guest complained again", actor="前台 front desk")
