"""SQLite store speed: batched intake against a bare executemany of the same rows,
reports through the whole engine on the shipped hotel ruleset (what a site sees),
one-at-a-time durable reports (synchronous=FULL), and claiming due timers among a
million open incidents. Medians of several runs; run as a script.

The bare baseline replays exactly the rows the store hands to SQLite (captured from
the store's own write path on a second file), so the ratio is what the store's
Python costs on top of SQLite's own work; the rows and bytes an incident costs are
printed with it.

    python benchmarks/bench_store.py [--quick]
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import qflow
from qflow.store import Timer, Write
from qflow_sqlite import SQLiteStore, _codec

ROOT = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=TZ)
#: The engine's clock for the shipped incidents: after the file's last report, as an
#: intake before a report's reported_at (more than intake.clock_skew) is refused.
INTAKE = datetime(2026, 11, 26, 9, 0, tzinfo=TZ)


def _hotel_reports(n: int) -> list[dict]:
    """*n* reports cycling through the shipped hotel incidents, without their ids (each
    is a new incident)."""
    lines = [json.loads(x) for x in (ROOT / "rulesets/hotel-front-desk.incidents.jsonl").read_text().splitlines()
             if x.strip()]
    for line in lines:
        line.pop("id", None)
        line.pop("external_id", None)
    return [lines[i % len(lines)] for i in range(n)]


def _writes(n: int) -> list[Write]:
    """n realistic report writes: the shipped hotel incidents decided by the shipped ruleset."""
    engine = qflow.Engine.from_path(ROOT / "rulesets/hotel-front-desk.yaml", autoload=False,
                                    clock=qflow.FakeClock(INTAKE))
    batch = _hotel_reports(n)
    states = engine.report_many(batch)
    store = engine.store
    return [Write(store.events(s.id), s, tuple(store.timers(s.id)), ()) for s in states]


class _Recorder:
    """A connection stand-in that keeps the rows the store hands to executemany."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        self.calls: list[tuple[str, list]] = []

    def executemany(self, sql: str, rows):  # noqa: ANN001 - mirrors sqlite3
        rows = list(rows)
        self.calls.append((sql, rows))
        return self.con.executemany(sql, rows)

    def execute(self, *a):  # noqa: ANN002
        return self.con.execute(*a)


def bench_intake(n: int, runs: int) -> None:
    writes = _writes(n)
    store_times, bare_times, floor_times = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            store = SQLiteStore(Path(d) / "a.sqlite3")
            t = time.perf_counter()
            store.write(writes)
            store_times.append(time.perf_counter() - t)
            # The same rows, written bare: capture them on a second store, then replay.
            other = SQLiteStore(Path(d) / "b.sqlite3")
            rec = _Recorder(other._con)
            other._con.execute("BEGIN IMMEDIATE")
            other._write(rec, writes)  # type: ignore[arg-type]
            other._con.execute("ROLLBACK")
            bare_times.append(_replay(Path(d) / "c.sqlite3", rec.calls))
            floor_times.append(_replay(Path(d) / "d.sqlite3", rec.calls, indexes=False))
            for s in (store, other):
                s.close()
    s, b = statistics.median(store_times), statistics.median(bare_times)
    f = statistics.median(floor_times)
    events = sum(len(w.events) for w in writes)
    print(f"batched intake: {n / s:,.0f} incidents/s ({events / n:.0f} events each) through the store; "
          f"bare executemany of the same rows {n / b:,.0f}/s; ratio {b / s:.0%} (target >= 80,000/s and >= 80%)")
    print(f"  written per incident: {_written(rec.calls, n)}")
    print(f"  SQLite's floor here: the same rows into the same tables without a secondary index {n / f:,.0f}/s")


def _replay(path: Path, calls: list[tuple[str, list]], *, indexes: bool = True) -> float:
    """Seconds to write *calls* bare, in one transaction, into a new store; without
    *indexes* its tables keep only their keys: what SQLite itself costs for these bytes
    on this machine, whatever a store indexes or encodes."""
    store = SQLiteStore(path)
    con = store._con
    if not indexes:
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchall():
            con.execute(f'DROP INDEX "{name}"')
    t = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    for sql, rows in calls:
        con.executemany(sql, rows)
    con.execute("COMMIT")
    spent = time.perf_counter() - t
    store.close()
    return spent


def _written(calls: list[tuple[str, list]], n: int) -> str:
    """Rows and bytes per incident by table, as the store hands them to SQLite (text
    counted in UTF-8, numbers as 8 bytes, NULL as none)."""
    tables: dict[str, list[int]] = {}
    for sql, rows in calls:
        table = sql.split(" INTO ")[1].split()[0]
        count = tables.setdefault(table, [0, 0])
        count[0] += len(rows)
        count[1] += sum(len(v.encode()) if isinstance(v, str) else len(v) if isinstance(v, (bytes, bytearray))
                        else 0 if v is None else 8 for r in rows for v in r)
    return "; ".join(f"{table} {c[0] / n:.2g} row{'' if c[0] == n else 's'}, {c[1] / n:,.0f} B"
                     for table, c in tables.items())


def bench_engine(n: int, runs: int) -> None:
    """What a site sees: the shipped hotel ruleset deciding, scheduling its escalation
    ladders, looking for groups and suppressions among the open incidents, planning
    notifications and writing it all, through ``Engine.report_many`` (batches of 500,
    as ``qflow import``) and ``Engine.report`` (one transaction each), with *n*
    incidents open already."""
    batch = _hotel_reports(n)
    many, one = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            engine = qflow.Engine.from_path(ROOT / "rulesets/hotel-front-desk.yaml", autoload=False,
                                            clock=qflow.FakeClock(INTAKE), store=f"sqlite:///{Path(d) / 'e.sqlite3'}")
            engine.report_many(batch)
            t = time.perf_counter()
            for k in range(0, n, 500):
                engine.report_many(batch[k:k + 500])
            many.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            for line in batch[:200]:
                engine.report(line)
            one.append(200 / (time.perf_counter() - t))
            engine.store.close()
    print(f"reports through the engine, hotel ruleset, {n:,} open: report_many {statistics.median(many):,.0f}/s, "
          f"report one at a time {statistics.median(one):,.0f}/s (no target; what a site sees)")


def bench_durable(n: int, runs: int) -> None:
    writes = _writes(n)
    rates = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            store = SQLiteStore(Path(d) / "a.sqlite3", synchronous="full")
            t = time.perf_counter()
            for w in writes:
                store.write([w])
            rates.append(n / (time.perf_counter() - t))
            store.close()
    print(f"one-at-a-time durable reports (synchronous=FULL): {statistics.median(rates):,.0f}/s (target >= 3,000/s)")


def bench_claim(open_incidents: int, due: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteStore(Path(d) / "a.sqlite3")
        con = store._con
        future = T0 + timedelta(days=30)

        def row(i: int) -> tuple[str, float, bytearray]:
            iid = f"INC-{i}"
            timers = [Timer(iid, "clock:resolve", future + timedelta(seconds=i))]
            if i < due:
                timers.append(Timer(iid, "clock:respond", T0 - timedelta(seconds=i)))
            return (iid, *_codec.timers_json(timers))

        con.execute("BEGIN")  # the rows the store writes (one per incident), without its Python
        con.executemany("INSERT INTO timers (incident_id, next_ts, timers) VALUES (?,?,?)",
                        (row(i) for i in range(open_incidents)))
        con.execute("COMMIT")
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            got = store.claim_timers(T0, worker="bench", limit=500, lease_until=T0 + timedelta(minutes=5))
            times.append(time.perf_counter() - t)
            assert len(got) == due and all(isinstance(x, Timer) for x in got)
            store.release_timers("bench")
        store.close()
    print(f"claim {due} due timers among {open_incidents:,} open incidents: "
          f"{statistics.median(times) * 1000:.2f} ms median (target < 5 ms)")


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    print(f"SQLite {sqlite3.sqlite_version}")
    bench_intake(5_000 if quick else 20_000, 3 if quick else 5)
    bench_engine(500 if quick else 2_000, 3)
    bench_durable(500 if quick else 2_000, 3)
    bench_claim(100_000 if quick else 1_000_000, 100, 5 if quick else 9)


if __name__ == "__main__":
    main(sys.argv[1:])
