"""The worker loop (injected clock and wait: no sleeping) and ``qflow worker``."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import BASE, T0
from stepplugin import STEP_FIRED, StepPlugin

import qflow
import qflow_postgres
from qflow import hookimpl
from qflow._worker import IntervalReport, Worker
from qflow.cli import main
from qflow.errors import StoreUnavailableError

pytest_plugins = ("pgtools",)

M = timedelta(minutes=1)
ROOT = Path(__file__).resolve().parents[1]


def _engine(store="memory://", clock=None, steps=2, receiver=None):  # type: ignore[no-untyped-def]
    pm = qflow.make_plugin_manager(autoload=False, plugins=[StepPlugin(steps, receiver)])
    ruleset = qflow.load_ruleset_text(BASE, file="base.yaml", plugins=pm)
    return qflow.Engine(ruleset, plugins=pm, store=store, clock=clock or qflow.FakeClock(T0))


class Pauses:
    """The injected wait: moves the fake clock by the pause and stops after *n* pauses."""

    def __init__(self, clock: qflow.FakeClock, n: int) -> None:
        self.clock, self.n, self.asked = clock, n, []

    def __call__(self, seconds: float) -> bool:
        self.asked.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))
        return len(self.asked) >= self.n


def test_each_interval_fires_what_fell_due_delivers_and_prints_a_line(tmp_path):
    clock = qflow.FakeClock(T0)
    receiver = tmp_path / "received.txt"
    engine = _engine(clock=clock, receiver=str(receiver))
    first = engine.report({"channel": "phone", "category": "complaint", "description": "cold room"})
    out = io.StringIO()
    pauses = Pauses(clock, 3)
    worker = Worker(engine, name="w1", interval=timedelta(seconds=60), wait=pauses, out=out)
    assert worker.run() == 0
    assert pauses.asked == [60.0, 60.0, 60.0]
    assert out.getvalue().splitlines() == [
        "2026-11-20T23:10:00+08:00 w1: 0 effects on 0 incidents, 0 delivered",
        "2026-11-20T23:11:00+08:00 w1: 1 effect on 1 incident, 1 delivered",
        "2026-11-20T23:12:00+08:00 w1: 1 effect on 1 incident, 1 delivered",
    ]
    assert [e.data["key"] for e in engine.events(first.id) if e.type == STEP_FIRED] == ["step:1", "step:2"]
    assert receiver.read_text().split() == [f"{first.id}/step:1", f"{first.id}/step:2"]
    assert {a.worker for m in engine.store.outbox() for a in engine.store.attempts(m.id)} == {"w1"}
    assert worker.intervals == 3


def test_a_batch_larger_than_the_limit_is_drained_in_one_interval():
    clock = qflow.FakeClock(T0)
    engine = _engine(clock=clock, steps=1)
    for i in range(7):
        engine.report({"channel": "phone", "category": "complaint", "description": f"room {i}"})
    report = Worker(engine, name="w1", batch=3).run_once(T0 + 2 * M)
    assert (report.incidents, report.effects) == (7, 7)


def test_stop_finishes_the_batch_and_gives_the_claims_back():
    clock = qflow.FakeClock(T0)
    engine = _engine(clock=clock, steps=1)
    for i in range(4):
        engine.report({"channel": "phone", "category": "complaint", "description": f"room {i}"})
    store = engine.store
    claimed = store.claim_timers(T0 + 2 * M, worker="w1", limit=2, lease_until=T0 + 10 * M)
    assert len(claimed) == 2
    worker = Worker(engine, name="w1", wait=lambda s: False)
    worker.stop()
    assert worker.run() == 0
    assert worker.intervals == 0
    # Released: another worker gets them at once, without waiting for the lease.
    assert len(store.claim_timers(T0 + 2 * M, worker="w2", limit=10)) == 4


class StopDuringTick:
    """Asks the worker to stop from inside a tick, as a signal arriving during the first
    batch would: *times* calls of the worker's stop (1: SIGTERM; 2: SIGTERM twice, through
    the installed handler)."""

    def __init__(self, times: int = 1) -> None:
        self.times, self.worker, self.asked = times, None, []

    @hookimpl
    def qflow_due(self, state, events, timers, now):  # type: ignore[no-untyped-def]
        self.asked.append(state.id)
        if self.times == 1:
            self.worker.stop()
        else:
            handler = signal.getsignal(signal.SIGTERM)
            handler(signal.SIGTERM, None)
            handler(signal.SIGTERM, None)
        return []


def _stopping_engine(store, clock, plugin):  # type: ignore[no-untyped-def]
    pm = qflow.make_plugin_manager(autoload=False, plugins=[StepPlugin(1), plugin])
    ruleset = qflow.load_ruleset_text(BASE, file="base.yaml", plugins=pm)
    return qflow.Engine(ruleset, plugins=pm, store=store, clock=clock)


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        return "memory://"
    pytest.importorskip("qflow_sqlite")
    return f"sqlite:///{tmp_path / 'q.sqlite3'}"


def test_a_stop_during_a_backlog_ends_the_interval_after_the_batch(store_url):
    clock = qflow.FakeClock(T0)
    plugin = StopDuringTick()
    engine = _stopping_engine(store_url, clock, plugin)
    for i in range(7):
        engine.report({"channel": "phone", "category": "complaint", "description": f"room {i}"})
    clock.advance(2 * M)
    out = io.StringIO()
    pauses = Pauses(clock, 3)
    worker = Worker(engine, name="w1", batch=3, wait=pauses, out=out)
    plugin.worker = worker
    assert worker.run() == 0
    assert len(plugin.asked) == 3  # one batch of 3; the other 4 were not claimed
    assert out.getvalue().splitlines() == ["2026-11-20T23:12:00+08:00 w1: 3 effects on 3 incidents, 0 delivered"]
    assert worker.intervals == 1
    assert len(engine.store.outbox(status="pending")) == 3  # no delivery once asked to stop
    # Released: another worker gets the rest at once, without waiting for the lease.
    left = engine.store.claim_timers(clock.now(), worker="w2", limit=10)
    assert sorted(t.incident_id for t in left) == sorted({s.id for s in engine.query()} - set(plugin.asked))
    engine.store.close()


def test_a_second_signal_stops_at_once_and_gives_the_claims_back(store_url):
    clock = qflow.FakeClock(T0)
    plugin = StopDuringTick(times=2)
    engine = _stopping_engine(store_url, clock, plugin)
    for i in range(7):
        engine.report({"channel": "phone", "category": "complaint", "description": f"room {i}"})
    clock.advance(2 * M)
    out = io.StringIO()
    worker = Worker(engine, name="w1", batch=3, wait=Pauses(clock, 3), out=out)
    before = signal.getsignal(signal.SIGTERM)
    restore = worker.install_signal_handlers()
    try:
        assert worker.run() == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is before  # a third signal gets the old handling
    finally:
        restore()
    assert len(plugin.asked) == 1  # left in the middle of the first batch
    assert out.getvalue() == ""
    assert worker.intervals == 0
    assert not [e for s in engine.query() for e in engine.events(s.id) if e.type == STEP_FIRED]
    assert len(engine.store.claim_timers(clock.now(), worker="w2", limit=10)) == 7
    engine.store.close()


class FlakyEngine:
    """An engine whose store is away for the first *down* ticks."""

    def __init__(self, engine: qflow.Engine, down: int) -> None:
        self._engine, self.down, self.store, self.clock = engine, down, engine.store, engine.clock

    def tick(self, now, **kw):  # type: ignore[no-untyped-def]
        if self.down:
            self.down -= 1
            raise StoreUnavailableError("the database at postgresql://db/qflow did not answer after 6 tries "
                                        "(connection refused); nothing was written: check that the server runs "
                                        "and the URL, then try again")
        return self._engine.tick(now, **kw)


def test_a_store_that_goes_away_is_waited_for_with_growing_pauses():
    clock = qflow.FakeClock(T0)
    engine = _engine(clock=clock, steps=1)
    engine.report({"channel": "phone", "category": "complaint", "description": "cold room"})
    out = io.StringIO()
    pauses = Pauses(clock, 4)
    worker = Worker(FlakyEngine(engine, down=2), name="w1", interval=timedelta(seconds=30), wait=pauses, out=out,
                    backoff=timedelta(seconds=2))
    assert worker.run() == 0
    assert pauses.asked == [2.0, 4.0, 30.0, 30.0]
    lines = out.getvalue().splitlines()
    assert lines[0] == ("2026-11-20T23:10:00+08:00 w1: store unavailable, will retry: the database at "
                        "postgresql://db/qflow did not answer after 6 tries (connection refused); nothing was "
                        "written: check that the server runs and the URL, then try again")
    assert lines[2] == "2026-11-20T23:10:06+08:00 w1: 0 effects on 0 incidents, 0 delivered"
    assert lines[3] == "2026-11-20T23:10:36+08:00 w1: 0 effects on 0 incidents, 0 delivered"


def test_the_worker_reconnects_after_the_database_dropped_it(pg_url, pg_admin, tmp_path):
    clock = qflow.FakeClock(T0)
    engine = _engine(pg_url, clock=clock, steps=1, receiver=str(tmp_path / "received.txt"))
    engine.report({"channel": "phone", "category": "complaint", "description": "cold room"})

    def wait(seconds: float) -> bool:
        with pg_admin() as con:  # the database restarts between two intervals
            con.execute("SELECT pg_terminate_backend(%s)", (engine.store.backend_pid,))
        clock.advance(timedelta(seconds=seconds))
        return clock.now() > T0 + 3 * M

    out = io.StringIO()
    worker = Worker(engine, name="w1", interval=timedelta(seconds=60), wait=wait, out=out)
    assert worker.run() == 0
    assert out.getvalue().splitlines()[1] == "2026-11-20T23:11:00+08:00 w1: 1 effect on 1 incident, 1 delivered"
    assert engine.store.reconnects >= 3
    engine.store.close()


def test_the_status_line_is_in_the_rulesets_zone_whatever_the_clock_gives():
    from datetime import timezone

    clock = qflow.FakeClock(T0.astimezone(timezone.utc).replace(microsecond=250))
    out = io.StringIO()
    Worker(_engine(clock=clock), name="w1", out=out).run(once=True)
    assert out.getvalue() == "2026-11-20T23:10:00+08:00 w1: 0 effects on 0 incidents, 0 delivered\n"


def test_interval_lines_say_what_was_done():
    r = IntervalReport(T0, incidents=2, effects=3, conflicts=1, delivered=4, retrying=1, dead=1)
    assert r.line("w2") == ("2026-11-20T23:10:00+08:00 w2: 3 effects on 2 incidents, 1 lost race re-read, "
                            "4 delivered, 1 to retry, 1 dead")


# -- the command ----------------------------------------------------------------------------


HOTEL = str(ROOT / "rulesets" / "hotel-front-desk.yaml")


def _hotel_store(path: Path) -> str:
    """An empty store for the hotel ruleset at *path* (its projection tables made)."""
    pytest.importorskip("qflow_sqlite")
    url = f"sqlite:///{path}"
    qflow.Engine(qflow.load_ruleset(HOTEL), store=url).store.close()
    return url


def test_worker_once_on_a_store(tmp_path, capsys):
    store = _hotel_store(tmp_path / "q.sqlite3")
    status = main(["worker", HOTEL, "--store", store, "--once", "--name", "cron-1"])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0].startswith("qflow worker cron-1: hotel-front-desk@")
    assert out[0].endswith(f" on {store}, every 5s")
    assert out[1].endswith(" cron-1: 0 effects on 0 incidents, 0 delivered")
    # The wall clock's time, in the ruleset's zone (Asia/Shanghai) and to the second.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", out[1].split()[0])
    assert out[2] == "qflow worker cron-1: stopped after 1 interval"


def test_the_worker_takes_the_store_from_the_environment(tmp_path, capsys, monkeypatch):
    store = _hotel_store(tmp_path / "q.sqlite3")
    monkeypatch.setenv("QFLOW_STORE", store)
    assert main(["worker", HOTEL, "--once", "--name", "cron-1"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(f" on {store}, every 5s")


@contextlib.contextmanager
def _write_lock(path: Path):  # type: ignore[no-untyped-def]
    """Another process's long write: a second connection holding BEGIN IMMEDIATE."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    finally:
        if con.in_transaction:
            con.execute("ROLLBACK")
        con.close()


def test_a_locked_sqlite_store_is_waited_for_like_an_unavailable_database(tmp_path):
    pytest.importorskip("qflow_sqlite")
    path = tmp_path / "q.sqlite3"
    clock = qflow.FakeClock(T0)
    engine = _engine(f"sqlite:///{path}?timeout=0", clock=clock, steps=1, receiver=str(tmp_path / "received.txt"))
    engine.report({"channel": "phone", "category": "complaint", "description": "cold room"})
    clock.advance(2 * M)
    out = io.StringIO()
    with _write_lock(path) as holder:
        pauses = Pauses(clock, 4)

        def wait(seconds: float) -> bool:
            if len(pauses.asked) == 1:
                holder.execute("COMMIT")  # the other process is done during the second pause
            return pauses(seconds)

        worker = Worker(engine, name="w1", interval=timedelta(seconds=60), wait=wait, out=out,
                        backoff=timedelta(seconds=2))
        assert worker.run() == 0
    assert pauses.asked == [2.0, 4.0, 60.0, 60.0]
    busy = (f"store unavailable, will retry: the store {path} failed: database is locked; another process holds "
            "the store for too long; retry")
    assert out.getvalue().splitlines() == [
        f"2026-11-20T23:12:00+08:00 w1: {busy}",
        f"2026-11-20T23:12:02+08:00 w1: {busy}",
        "2026-11-20T23:12:06+08:00 w1: 1 effect on 1 incident, 1 delivered",
        "2026-11-20T23:13:06+08:00 w1: 0 effects on 0 incidents, 0 delivered",
    ]
    engine.store.close()


def test_worker_once_on_a_locked_store_starts_and_exits_1(tmp_path, capsys):
    path = tmp_path / "q.sqlite3"
    store = _hotel_store(path) + "?timeout=0"
    with _write_lock(path):
        status = main(["worker", HOTEL, "--store", store, "--once", "--name", "cron-1"])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out[1].endswith(f" cron-1: store unavailable, will retry: the store {path} failed: database is locked; "
                           "another process holds the store for too long; retry")
    assert out[2] == "qflow worker cron-1: stopped after 1 interval"


@pytest.mark.parametrize(("args", "message"), [
    (["--interval", "soon"], ["qflow: error: argument --interval: 'soon' is not a duration",
                              "hint: use 15m, 1h, 2d, 1w or a sum like 1h30m"]),
    (["--interval", "0s"], ["qflow: error: argument --interval: '0s' is not a positive duration",
                            "hint: use 15m, 1h, 2d, 1w or a sum like 1h30m"]),
    (["--batch", "0"], ["qflow: error: argument --batch must be at least 1", "hint: use e.g. --batch 500"]),
])
def test_worker_usage_errors(args, message, capsys):
    status = main(["worker", str(ROOT / "rulesets" / "hotel-front-desk.yaml"), "--store", "memory://", *args])
    assert status == 2
    assert capsys.readouterr().err.splitlines() == message


def test_sigterm_stops_the_worker_after_its_batch(tmp_path, pg_url):
    """A real `qflow worker` process: it runs intervals until SIGTERM, then says so and exits 0."""
    qflow_postgres.open_store(pg_url).close()  # a worker works on a store that is there
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qflow", "worker", str(ROOT / "rulesets" / "hotel-front-desk.yaml"),
         "--store", pg_url, "--interval", "1h", "--name", "svc-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    header = proc.stdout.readline()
    first = proc.stdout.readline()  # the first interval is done; the worker now waits an hour
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert header.startswith("qflow worker svc-1: hotel-front-desk@")
    assert first.rstrip().endswith(" svc-1: 0 effects on 0 incidents, 0 delivered")
    assert rest.splitlines() == ["qflow worker svc-1: stopped after 1 interval"]
    assert "claims released" in err
    assert "effects on" not in err  # the interval line is printed once, not logged to stderr as well
