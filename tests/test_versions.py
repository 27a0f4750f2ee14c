"""Ruleset versions in a running engine: atomic swap, last good kept, from several threads."""

from __future__ import annotations

import threading
from pathlib import Path

import qflow
from qflow import SwapResult
from tests.conftest import BASE, T0

HIGH_BASE = BASE.replace("  - id: default\n    set: {severity: normal}", "  - id: default\n    set: {severity: high}")


def test_every_decision_and_event_records_the_ruleset_that_made_it(pm, base_ruleset, clock):
    engine = qflow.Engine(base_ruleset, plugins=pm, clock=clock)
    state = engine.report({"channel": "email", "description": "毛巾不够"})
    assert state.decision.ruleset == base_ruleset.ref == f"test-desk@{base_ruleset.hash}"
    assert [e.ruleset for e in engine.events(state.id)] == [base_ruleset.ref] * 2


def test_a_swap_changes_what_the_next_decision_uses(pm, base_ruleset, clock, tmp_path: Path):
    engine = qflow.Engine(base_ruleset, plugins=pm, clock=clock)
    new_path = tmp_path / "desk.yaml"
    new_path.write_text(HIGH_BASE, encoding="utf-8")
    result = engine.swap_ruleset(new_path)
    new_ref = engine.ruleset.ref
    assert result == SwapResult(True, new_ref, base_ruleset.ref)
    assert bool(result) is True
    assert new_ref != base_ruleset.ref
    incident = qflow.Incident(channel="email", description="毛巾不够", reported_at=T0)
    assert engine.decide(incident, T0).severity == "high"
    assert engine.decide(incident, T0).ruleset == new_ref
    # Swapping to a loaded ruleset works too, and the old one comes back.
    assert engine.swap_ruleset(base_ruleset) == SwapResult(True, base_ruleset.ref, new_ref)
    assert engine.decide(incident, T0).severity == "normal"


def test_a_broken_ruleset_is_refused_and_the_last_good_one_keeps_running(pm, base_ruleset, clock, tmp_path: Path):
    engine = qflow.Engine(base_ruleset, plugins=pm, clock=clock)
    broken = tmp_path / "desk.yaml"
    broken.write_text(BASE.replace("respond: 1h,", "respond: 1hr,"), encoding="utf-8")
    result = engine.swap_ruleset(broken)
    assert not result
    assert result.swapped is False
    assert (result.active, result.previous) == (base_ruleset.ref, base_ruleset.ref)
    assert result.reason == f"{broken} did not load (1 error); still running {base_ruleset.ref}"
    assert [str(d) for d in result.diagnostics] == [
        f"{broken}:10:19: QF105 '1hr' is not a duration (use 15m, 1h, 2d, 1w or a sum like 1h30m)"
        " @ $.severities.high.respond"]
    assert engine.ruleset is base_ruleset
    missing = engine.swap_ruleset(tmp_path / "gone.yaml")
    assert missing.reason == f"{tmp_path / 'gone.yaml'} did not load (1 error); still running {base_ruleset.ref}"
    assert [d.code for d in missing.diagnostics] == ["QF003"]


def test_decisions_in_flight_keep_the_ruleset_they_started_with(pm, base_ruleset, clock):
    """Readers decide while a writer swaps back and forth: every decision is wholly one
    ruleset's (its severity agrees with the ref it records), and both are seen."""
    high = qflow.load_ruleset_text(HIGH_BASE, file="high.yaml", plugins=pm)
    expected = {base_ruleset.ref: "normal", high.ref: "high"}
    engine = qflow.Engine(base_ruleset, plugins=pm, clock=clock)
    incident = qflow.Incident(channel="email", description="毛巾不够", reported_at=T0)
    stop = threading.Event()
    seen: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                d = engine.decide(incident, T0)
                seen.append((d.ruleset, d.severity))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    results = [engine.swap_ruleset(high if i % 2 == 0 else base_ruleset) for i in range(400)]
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert errors == []
    assert all(r.swapped for r in results)
    # Each swap saw the one before it: the chain of previous -> active is unbroken.
    assert all(a.active == b.previous for a, b in zip(results, results[1:], strict=False))
    assert {ref for ref, _ in seen} <= set(expected)
    assert all(expected[ref] == severity for ref, severity in seen)


def test_concurrent_swappers_each_report_their_true_predecessor(pm, base_ruleset, clock):
    high = qflow.load_ruleset_text(HIGH_BASE, file="high.yaml", plugins=pm)
    engine = qflow.Engine(base_ruleset, plugins=pm, clock=clock)
    results: list[SwapResult] = []
    lock = threading.Lock()

    def swapper(target: qflow.Ruleset) -> None:
        for _ in range(200):
            r = engine.swap_ruleset(target)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=swapper, args=(rs,)) for rs in (high, base_ruleset, high)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 600
    # Swaps from A to B and from B to A balance out to the final state.
    flips = sum(1 for r in results if r.previous != r.active)
    changes = {(r.previous, r.active) for r in results if r.previous != r.active}
    assert changes <= {(base_ruleset.ref, high.ref), (high.ref, base_ruleset.ref)}
    start_to_end = 0 if engine.ruleset.ref == base_ruleset.ref else 1
    assert flips % 2 == start_to_end
