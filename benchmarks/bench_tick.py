"""tick with N open incidents of which 100 are due (target with a durable store: < 5 ms).

    python benchmarks/bench_tick.py [--incidents 1000000] [--store memory|sqlite|both]

The open incidents all have escalation timers, far in the future; each round, 100
others have their warning step due. Reported per store:

claim   ``claim_timers`` alone for the 100 due timers (the index on the due time),
        against a full scan-and-sort of every timer in the same run (the baseline)
tick    a whole ``Engine.tick``: claim, read each incident and its log, ask the
        escalation plugin, write the 100 incidents' events, timers and (empty) outbox
        in one transaction

On SQLite the time spent inside SQLite's own calls (execute, executemany, fetching)
is summed per tick too: what the store's SQL costs, whatever the Python around it.

Medians over the rounds, after one warm-up round.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs

import qflow

RULESET = """\
qflow: 1
name: bench-tick
timezone: Asia/Shanghai
teams:
  front-office: {name: Front office}
severities:
  normal: {respond: 100d}
classify:
  - id: default
    set: {severity: normal}
route:
  - id: default
    assign: {team: front-office}
escalation:
  ladders:
    default:
      - id: warn
        at: {clock: respond, used: 1%}
        notify: [assignee]
"""

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))
DUE = 100
ROUNDS = 12
BATCH = 20_000


def _background(store: qflow.Store, template: qflow.IncidentState, events: tuple[qflow.Event, ...], n: int) -> None:
    """*n* open incidents with a timer a year out, written straight to the store."""
    far = T0 + timedelta(days=365)
    writes = []
    for i in range(n):
        iid = f"BG-{i}"
        state = attrs.evolve(template, incident=attrs.evolve(template.incident, id=iid))
        evs = tuple(attrs.evolve(e, incident_id=iid) for e in events)
        writes.append(qflow.Write(evs, state, (qflow.Timer(iid, "esc:respond:default/warn", far),)))
        if len(writes) >= BATCH:
            store.write(writes)
            writes = []
    if writes:
        store.write(writes)


class _Rows(list):
    """Rows fetched inside the timing, handed on like a cursor."""

    def fetchall(self) -> list:
        return self

    def fetchone(self) -> object:
        return self[0] if self else None


class _Timed:
    """A connection stand-in that sums the time spent inside SQLite's calls."""

    def __init__(self, con: object) -> None:
        self._con = con
        self.spent = 0.0

    def __getattr__(self, name: str) -> object:
        return getattr(self._con, name)

    def execute(self, *args: object) -> list:
        t = time.perf_counter()
        try:
            return _Rows(self._con.execute(*args).fetchall())  # type: ignore[attr-defined]
        finally:
            self.spent += time.perf_counter() - t

    def executemany(self, *args: object) -> object:
        t = time.perf_counter()
        try:
            return self._con.executemany(*args)  # type: ignore[attr-defined]
        finally:
            self.spent += time.perf_counter() - t


def run(store_url: str, n: int) -> dict[str, float]:
    pm = qflow.make_plugin_manager(autoload=False)
    rs = qflow.load_ruleset_text(RULESET, file="bench.yaml", plugins=pm)
    clock = qflow.FakeClock(T0)
    eng = qflow.Engine(rs, plugins=pm, clock=clock, store=store_url)
    first = eng.report({"category": "complaint"})
    t = time.perf_counter()
    _background(eng.store, first, eng.events(first.id), n - DUE)
    load = time.perf_counter() - t
    # Round r: 100 incidents reported at T0 + r minutes, due one day (1% of 100d) later.
    for r in range(ROUNDS + 1):
        clock.set(T0 + timedelta(minutes=r))
        for _ in range(DUE):
            eng.report({"category": "complaint"})
    timed = None
    if hasattr(eng.store, "_con"):
        timed = eng.store._con = _Timed(eng.store._con)  # after loading: the ticks alone are timed
    claims, scans, ticks, inside = [], [], [], []
    for r in range(ROUNDS + 1):
        now = T0 + timedelta(days=1, minutes=r, seconds=30)
        gc.collect()
        t = time.perf_counter()
        claimed = eng.store.claim_timers(now, worker="probe", limit=500)
        claims.append(time.perf_counter() - t)
        eng.store.release_timers("probe")
        if isinstance(eng.store, qflow.MemoryStore):
            t = time.perf_counter()
            scanned = sorted((x for ts in eng.store._timers.values() for x in ts if x.at <= now),
                             key=lambda x: (x.at, x.incident_id, x.key))[:500]
            scans.append(time.perf_counter() - t)
            assert scanned == claimed
        before = timed.spent if timed is not None else 0.0
        t = time.perf_counter()
        report = eng.tick(now)
        ticks.append(time.perf_counter() - t)
        if timed is not None:
            inside.append(timed.spent - before)
        assert report.incidents == DUE + (1 if r == 0 else 0) and report.failed == 0, report
    eng.store.close()
    out = {"load_s": load, "claim_ms": statistics.median(claims[1:]) * 1e3,
           "tick_ms": statistics.median(ticks[1:]) * 1e3}
    if scans:
        out["scan_ms"] = statistics.median(scans[1:]) * 1e3
    if inside:
        out["sql_ms"] = statistics.median(inside[1:]) * 1e3
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--incidents", type=int, default=1_000_000)
    p.add_argument("--store", choices=["memory", "sqlite", "both"], default="both")
    args = p.parse_args(argv)
    stores = ["memory", "sqlite"] if args.store == "both" else [args.store]
    print(f"tick: {args.incidents:,} open incidents, {DUE} due per tick, median of {ROUNDS} rounds")
    for name in stores:
        with tempfile.TemporaryDirectory() as tmp:
            url = "memory://" if name == "memory" else f"sqlite:///{Path(tmp) / 'bench.db'}"
            r = run(url, args.incidents)
        line = f"  {name:<7} claim {r['claim_ms']:7.3f} ms"
        if "scan_ms" in r:
            line += f" (full scan {r['scan_ms']:8.1f} ms, {r['scan_ms'] / r['claim_ms']:,.0f}x)"
        line += f"   tick {r['tick_ms']:6.1f} ms ({r['tick_ms'] * 1e3 / DUE:.0f} µs per fired step)" \
                f"  {'ok' if r['tick_ms'] < 5 else 'over'} vs 5 ms"
        if "sql_ms" in r:
            line += f", of which inside SQLite {r['sql_ms']:.1f} ms"
        line += f"   (loading took {r['load_s']:.0f} s)"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
