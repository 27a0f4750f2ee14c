"""PostgreSQL store: intake rate, and how tick throughput grows with worker processes.

    python benchmarks/bench_postgres.py [--incidents 2000] [--runs 3]

Intake: ``Engine.report`` one at a time (a transaction each) and ``Store.write`` in
batches of 500 incidents with their events and timers. Workers: N incidents with one
due timer each; 1, 2 and 4 worker processes start together and run ``Engine.tick``
until nothing is due; throughput is steps fired per second (claim with SKIP LOCKED,
``qflow_due``, record the effect, reschedule), checked afterwards to be exactly one
per incident. The server is QFLOW_TEST_PG (default
postgresql://postgres@127.0.0.1:5432/test); each run uses its own schema, dropped after.

Where the server runs on this machine (Linux), each size also prints the CPU a step
costs in the workers and in their server backends, and how idle the machine was: two
workers saturate two cores, and what a step costs then, against one worker, bounds
the ratio.

Each of --runs rounds measures 1, 2 and 4 workers and the machine's ceiling (2
CPU-bound processes against one) back to back; the ratio to one worker is worked out
within a round and the median of the rounds' ratios is printed (target: 2 workers >=
1.7x one), beside the median rates. On this shared machine the load of other programs
changes within a minute: a ratio of medians taken over all 1-worker runs, then all
2-worker runs, compared loads further apart than the runs themselves (one run is about
a second), and one busy phase moved it by half.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import qflow
from qflow import Effect, Timer, hookimpl

BASE = os.environ.get("QFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 20, 15, 10, tzinfo=timezone.utc)
RULESET = """\
qflow: 1
name: bench
timezone: Asia/Shanghai
teams:
  front-office: {name: Front office}
severities:
  normal: {respond: 4h, resolve: 3d}
classify:
  - id: default
    set: {severity: normal}
route:
  - id: default
    assign: {team: front-office}
"""


class OneStep:
    """One timer per incident, one minute after the report, fired once."""

    @hookimpl
    def qflow_schedule(self, state: Any, events: Any) -> list[Timer]:
        if any(e.type == "StepFired" for e in events):
            return []
        return [Timer(state.id, "step", state.incident.reported_at + timedelta(minutes=1))]

    @hookimpl
    def qflow_due(self, state: Any, events: Any, timers: Any) -> list[Effect]:
        if any(e.type == "StepFired" for e in events):
            return []
        return [Effect("StepFired", "bench", {"key": "step"}) for t in timers if t.key == "step"]


def _engine(store: Any, clock: qflow.Clock | None = None) -> qflow.Engine:
    pm = qflow.make_plugin_manager(autoload=False, plugins=[OneStep()])
    ruleset = qflow.load_ruleset_text(RULESET, file="bench.yaml", plugins=pm)
    return qflow.Engine(ruleset, plugins=pm, store=store, clock=clock or qflow.FakeClock(T0))


def _url() -> str:
    schema = f"qflow_bench_{uuid.uuid4().hex[:10]}"
    return f"{BASE}{'&' if '?' in BASE else '?'}schema={schema}"


def _drop(url: str) -> None:
    import psycopg

    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(BASE, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _writes(n: int) -> list[qflow.Write]:
    """n reported incidents as the writes that record them (made in memory once)."""
    engine = _engine("memory://")
    for i in range(n):
        engine.report({"channel": "phone", "category": "complaint", "description": f"room {i} is cold"})
    store = engine.store
    return [qflow.Write(store.events(s.id), s, tuple(store.timers(s.id))) for s in store.query(qflow.IncidentQuery())]


def bench_intake(n: int) -> tuple[float, float]:
    url = _url()
    try:
        engine = _engine(url)
        start = time.perf_counter()
        for i in range(n):
            engine.report({"channel": "phone", "category": "complaint", "description": f"room {i} is cold"})
        one = n / (time.perf_counter() - start)
        engine.store.close()
    finally:
        _drop(url)
    writes = _writes(n)
    url = _url()
    try:
        store = _engine(url).store
        start = time.perf_counter()
        for k in range(0, n, 500):
            store.write(writes[k:k + 500])
        batched = n / (time.perf_counter() - start)
        store.close()
    finally:
        _drop(url)
    return one, batched


def _backend_pid() -> Any:
    from qflow_postgres._ops import Q

    rows = yield Q("SELECT pg_backend_pid()")
    return rows[0][0]


def _cpu_seconds(pid: int) -> float | None:
    """User and system CPU of a process on this machine (Linux), None where unknown
    (another machine's server, another system)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker(url: str, name: str, ready: Any, go: Any, done: Any) -> None:
    engine = _engine(url)
    engine.store.timers("none")  # connected, tables checked
    backend = engine.store._run(lambda retry: _backend_pid())
    now = T0 + timedelta(minutes=5)
    ready.put(name)
    go.wait()
    fired = 0
    own, server = time.process_time(), _cpu_seconds(backend)
    while True:
        r = engine.tick(now, worker=name, limit=50)
        fired += r.effects
        if not r.incidents:
            break
    own = time.process_time() - own
    after = _cpu_seconds(backend)
    engine.store.close()
    done.put((fired, own, None if server is None or after is None else after - server))


def _machine_busy() -> tuple[int, int]:
    """(all, idle) clock ticks of this machine so far (Linux /proc/stat), or zeros."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return (0, 0)
    return (sum(ticks), ticks[3] + ticks[4])


def _spin(n: int, go: Any, done: Any) -> None:
    go.wait()
    start = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i % 7
    done.put(time.perf_counter() - start)


def machine_parallelism(processes: int, n: int = 3_000_000) -> float:
    """Work per second of *processes* pure-Python processes started together, in units
    of one process alone: what this machine gives a second worker right now (other
    programs, and the database server, share the same cores)."""
    ctx = mp.get_context("spawn")

    def rate(k: int) -> float:
        go, done = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_spin, args=(n, go, done)) for _ in range(k)]
        for p in procs:
            p.start()
        time.sleep(0.5)  # let them import before the clock starts (a benchmark, not a test)
        start = time.perf_counter()
        go.set()
        for _ in procs:
            done.get(timeout=120)
        elapsed = time.perf_counter() - start
        for p in procs:
            p.join(timeout=30)
        return k * n / elapsed

    return rate(processes) / rate(1)


class _LockSampler:
    """Samples the server's backends while workers run: how often one waits on a lock.
    Ten times a second: each sample is a query the server answers on the cores the
    workers are measured on (fifty a second took a few percent of them)."""

    def __init__(self) -> None:
        import threading

        self.samples = self.waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(BASE, autocommit=True) as con:
            while not self._stop.wait(0.1):
                rows = con.execute("SELECT wait_event_type FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND state = 'active' AND pid <> pg_backend_pid()").fetchall()
                self.samples += len(rows)
                self.waiting += sum(1 for (w,) in rows if w == "Lock")

    def __enter__(self) -> _LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def bench_workers(writes: list[qflow.Write], workers: int, locks: list[float] | None = None,
                  cpu: list[tuple[float, float, float]] | None = None) -> float:
    """Steps fired per second by *workers* processes; *cpu* gets (worker CPU per step,
    server backend CPU per step, share of the machine idle) where this machine shows them."""
    url = _url()
    ctx = mp.get_context("spawn")
    try:
        store = _engine(url).store
        for k in range(0, len(writes), 500):
            store.write(writes[k:k + 500])
        ready, go, done = ctx.Queue(), ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(url, f"w{i}", ready, go, done)) for i in range(workers)]
        for p in procs:
            p.start()
        for _ in procs:  # every process has imported qflow and connected before the clock starts
            ready.get(timeout=120)
        with _LockSampler() as sampler:
            machine = _machine_busy()
            start = time.perf_counter()
            go.set()
            results = [done.get(timeout=600) for _ in procs]
            elapsed = time.perf_counter() - start
            machine = tuple(b - a for a, b in zip(machine, _machine_busy(), strict=True))
        fired = sum(r[0] for r in results)
        if cpu is not None and machine[0] and all(r[2] is not None for r in results):
            cpu.append((sum(r[1] for r in results) / fired, sum(r[2] for r in results) / fired,
                        machine[1] / machine[0]))
        if locks is not None:
            locks.append(sampler.waiting / max(sampler.samples, 1))
        for p in procs:
            p.join(timeout=60)
        once = store._run(lambda retry: _count_steps())
        assert fired == len(writes) == once, (fired, len(writes), once)
        store.close()
        return len(writes) / elapsed
    finally:
        _drop(url)


def _count_steps() -> Any:
    from qflow_postgres._ops import Q

    rows = yield Q("SELECT count(DISTINCT incident_id) FROM qflow_events WHERE type = 'StepFired' "
                   "HAVING count(*) = count(DISTINCT incident_id)")
    return rows[0][0] if rows else -1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--incidents", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    try:
        import psycopg

        psycopg.connect(BASE, connect_timeout=3).close()
    except Exception as exc:
        print(f"bench_postgres: no PostgreSQL at QFLOW_TEST_PG ({type(exc).__name__}); skipped")
        return 0
    print(f"PostgreSQL store, qflow {qflow.__version__} on Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores; median of {args.runs}")
    intake = [bench_intake(min(args.incidents, 1000)) for _ in range(args.runs)]
    print(f"  intake, one report per transaction  {statistics.median(r[0] for r in intake):>9,.0f} incidents/s")
    print(f"  intake, batches of 500               {statistics.median(r[1] for r in intake):>9,.0f} incidents/s")
    writes = _writes(args.incidents)
    sizes = (1, 2, 4)
    rates: dict[int, list[float]] = {n: [] for n in sizes}
    locks: dict[int, list[float]] = {n: [] for n in sizes}
    cpu: dict[int, list[tuple[float, float, float]]] = {n: [] for n in sizes}
    ceilings = []
    for _ in range(args.runs):  # a round: every size and the ceiling, back to back
        for n in sizes:
            rates[n].append(bench_workers(writes, n, locks[n], cpu[n]))
        ceilings.append(machine_parallelism(2))
    for n in sizes:
        ratios = [r / one for r, one in zip(rates[n], rates[1], strict=True)]
        target = "  (target >= 1.70x)" if n == 2 else ""
        each = f" (rounds: {', '.join(f'{x:.2f}' for x in ratios)})" if n > 1 else ""
        print(f"  tick, {n} worker process{'es' if n > 1 else '  '}            {statistics.median(rates[n]):>9,.0f} "
              f"steps/s   {statistics.median(ratios):.2f}x one worker{target}{each}; a backend waited on a lock in "
              f"{100 * statistics.median(locks[n]):.1f}% of samples")
        if cpu[n]:
            print(f"      CPU per step: worker {statistics.median(c[0] for c in cpu[n]) * 1e6:,.0f} µs, server "
                  f"{statistics.median(c[1] for c in cpu[n]) * 1e6:,.0f} µs; machine idle "
                  f"{statistics.median(c[2] for c in cpu[n]):.0%}")
    print(f"  this machine now: 2 CPU-bound Python processes do {statistics.median(ceilings):.2f}x the work of one "
          f"(rounds: {', '.join(f'{x:.2f}' for x in ceilings)}; the ceiling for 2 workers, before the server's "
          "own CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
