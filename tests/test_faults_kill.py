"""A worker killed with SIGKILL at random points of intake, tick and delivery.

Each round runs ``fault_child.py`` against a fresh store (an SQLite file, a PostgreSQL
schema), kills it after a random number of its progress lines plus a random few
milliseconds (so the kill lands inside a report, a tick batch or a delivery), then
runs it again to the end, as a restarted worker would. Afterwards:

- every acknowledged report is there, with all its events, its state the fold of them;
- every report retried after the kill exists exactly once (its external id);
- no step fired twice (one ``StepFired`` per incident and timer key);
- no notification was lost: every outbox message is delivered and its idempotency key
  reached the receiver at least once (repeats are allowed: at-least-once).

``make test`` runs a few rounds per store; ``make stress`` (``-m slow``) runs 50.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import fault_child
import pytest
from stepplugin import STEP_FIRED

import qflow
from qflow.engine import open_store

pytest_plugins = ("pgtools",)

HERE = Path(__file__).resolve().parent
CHILD = HERE / "fault_child.py"
COUNT = 6
STEPS = 2
SHORT, LONG = 5, 50


def _child(url: str, receiver: Path, minutes: int, name: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(CHILD), url, str(receiver), str(COUNT), str(minutes), name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _round(url: str, receiver: Path, rng: random.Random) -> dict[str, int]:
    lines_before_kill = rng.randint(0, COUNT + 10)
    proc = _child(url, receiver, 3, "doomed")
    acked: dict[str, str] = {}
    seen = 0
    assert proc.stdout is not None
    while seen < lines_before_kill:
        line = proc.stdout.readline()
        if not line:
            break
        seen += 1
        if line.startswith("ACK "):
            _, ext, iid = line.split()
            acked[ext] = iid
    try:
        proc.wait(timeout=rng.uniform(0, 0.03))  # a bounded wait on the child: where the kill lands
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    # The restarted worker, after the dead one's leases (5 minutes) have run out; in
    # this process (a fresh engine and connection), which halves the cost of a round.
    out = io.StringIO()
    fault_child.main(url, str(receiver), COUNT, 20, "restarted", out)
    assert out.getvalue().rstrip().endswith("DONE")
    _check(url, receiver, acked)
    return {"lines": seen, "acked": len(acked)}


def _check(url: str, receiver: Path, acked: dict[str, str]) -> None:
    pm = qflow.make_plugin_manager(autoload=False)
    store = open_store(url, pm)
    try:
        states = store.query(qflow.IncidentQuery())
        assert sorted(s.incident.external_id for s in states) == sorted(f"ext-{i}" for i in range(COUNT))
        for ext, iid in acked.items():
            assert store.find_external(ext) == iid
        fired: Counter[tuple[str, str]] = Counter()
        for s in states:
            events = store.events(s.id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert [e.type for e in events[:2]] == ["IncidentReported", "DecisionMade"]
            assert store.get(s.id) == qflow.events.fold(events)
            for e in events:
                if e.type == STEP_FIRED:
                    fired[(s.id, e.data["key"])] += 1
        assert len(fired) == COUNT * STEPS, "every step fired"
        assert set(fired.values()) == {1}, f"a step fired twice: {fired}"
        assert store.timers() == []
        messages = store.outbox()
        assert sorted(m.id for m in messages) == sorted(f"{iid}/{key}" for iid, key in fired)
        assert {m.status for m in messages} == {"delivered"}
        received = Counter(receiver.read_text().split()) if receiver.exists() else Counter()
        assert set(received) == {m.id for m in messages}, "a notification was lost"
    finally:
        store.close()


def _sqlite(tmp_path: Path, n: int) -> str:
    pytest.importorskip("qflow_sqlite")
    return f"sqlite:///{tmp_path / f'round{n}.sqlite3'}"


def _run(make_url, tmp_path: Path, rounds: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    for n in range(rounds):
        _round(make_url(n), tmp_path / f"received{n}.txt", rng)


def test_sqlite_worker_killed_at_random_points_loses_nothing(tmp_path):
    _run(lambda n: _sqlite(tmp_path, n), tmp_path, SHORT, seed=5)


def test_postgres_worker_killed_at_random_points_loses_nothing(tmp_path, pg_schemas):
    _run(lambda n: pg_schemas.url(), tmp_path, SHORT, seed=7)


@pytest.mark.slow
def test_sqlite_worker_killed_50_times(tmp_path):
    _run(lambda n: _sqlite(tmp_path, n), tmp_path, LONG, seed=50)


@pytest.mark.slow
def test_postgres_worker_killed_50_times(tmp_path, pg_schemas):
    _run(lambda n: pg_schemas.url(), tmp_path, LONG, seed=51)
