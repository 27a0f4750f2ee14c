"""The SQLite store's fast reads: ``read_many`` gives what ``get`` and ``events`` give
for each incident, the hand-written decoder gives exactly what cattrs gives for every
row the engine writes (and for version-2 rows), and a state written back with the very
decision or incident it was read with keeps the row's copy instead of a new one."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant

import qflow
from qflow import Engine, Incident
from qflow import events as ev
from qflow.model import IncidentState
from qflow.store import MemoryStore, Write
from qflow_sqlite import SQLiteStore
from qflow_sqlite import _codec
from qflow_sqlite._store import _READ_STATE

from tests import test_loop
from tests.conftest import T0
from tests.store.builders import follow, report_write
from tests.test_loop_props import LOADED, PM, Loop
from tests.test_sqlite_layout import _history, _v2_file


def _cattrs(row) -> IncidentState:
    """A row decoded the way every row was before: all through cattrs."""
    return _codec.state_from(row[0], json.loads(row[1]), row[2], row[3],
                             None if row[4] is None else json.loads(row[4]))


def _same_value(a: IncidentState, b: IncidentState) -> None:
    # Equal, of the same types all the way down (repr shows FrozenDict against dict,
    # tuple against list), and with the same trace (left out of a decision's equality).
    assert a == b
    assert repr(a) == repr(b)
    if a.decision is not None:
        assert a.decision.trace.steps == b.decision.trace.steps


def _check_rows(store: SQLiteStore) -> int:
    """Every stored row decodes to the same value both ways; how many rows."""
    rows = store._con.execute(_READ_STATE).fetchall()
    for row in rows:
        _same_value(_codec.state_from_fast(*row[:5]), _cattrs(row))
    return len(rows)


def _check_read_many(store: SQLiteStore, ids: list[str]) -> None:
    asked = [*ids, "INC-404", *ids[:1]]  # an unknown id and a repeat
    got = store.read_many(asked)
    assert list(got) == list(dict.fromkeys(i for i in asked if store.get(i) is not None))
    for iid, (state, log) in got.items():
        _same_value(state, store.get(iid))
        assert log == store.events(iid)
        assert ev.fold(log) == state
    assert store.read_many([]) == {}
    assert store.read_many(["INC-404"]) == {}


# -- states the engine writes through the improvement loop ------------------------------

@pytest.fixture
def ruleset(pm):
    return qflow.load_ruleset_text(test_loop.LOOP, file="loop.yaml", plugins=pm)


@pytest.fixture
def sqlite_engine(tmp_path, ruleset, pm, clock):
    engine = Engine(ruleset, plugins=pm, clock=clock, store=f"sqlite:///{tmp_path / 'loop.sqlite3'}")
    yield engine
    engine.store.close()


def test_the_full_loop_reads_back_the_same_both_ways(sqlite_engine, clock):
    engine = sqlite_engine
    test_loop.test_full_loop_with_an_ineffective_round_and_a_second_that_passes(engine, clock)
    # Contact and status on top: acknowledged, responded, waiting, reassigned.
    iid = test_loop.dirty(engine, place="808")
    engine.acknowledge(iid, actor="前台")
    engine.respond(iid, "已安排", actor="前台")
    engine.set_status(iid, "waiting_customer", actor="前台", reason="客人外出")
    engine.reassign(iid, team="housekeeping", owner="王芳", reason="换班")
    engine.reject(test_loop.dirty(engine, place="909"), "重复报告")
    clock.advance(timedelta(days=3))
    engine.tick()
    ids = [s.id for s in engine.query()]
    assert _check_rows(engine.store) == len(ids) == 9
    _check_read_many(engine.store, ids)
    for iid in ids:
        assert ev.fold(engine.events(iid)) == engine.get(iid)


def test_the_other_loop_flows_read_back_the_same_both_ways(tmp_path, ruleset, pm):
    flows = [test_loop.test_reminders_at_due_and_overdue_escalate, test_loop.test_closing_with_an_open_action_names_it,
             test_loop.test_rejected_incidents_gather_nothing_and_stay_in_the_archive,
             test_loop.test_reassignment_is_an_event_with_a_reason, test_loop.test_bad_input_is_refused_and_changes_nothing]
    for n, flow in enumerate(flows):
        clock = qflow.FakeClock(T0)
        engine = Engine(ruleset, plugins=pm, clock=clock, store=f"sqlite:///{tmp_path / f'flow{n}.sqlite3'}")
        args = {"engine": engine, "clock": clock}
        flow(**{k: args[k] for k in flow.__code__.co_varnames[:flow.__code__.co_argcount]})
        ids = [s.id for s in engine.query()]
        assert _check_rows(engine.store) == len(ids) > 0
        _check_read_many(engine.store, ids)
        engine.store.close()


class SQLiteLoop(Loop):
    """The random loop of test_loop_props on an SQLite store, checking every row."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.engine = Engine(LOADED, plugins=PM, clock=self.clock, store=f"sqlite:///{Path(self.dir) / 's.sqlite3'}")
        self.iid = self.engine.report(Incident(description="房间没有打扫", category="room_not_clean", place="1203")).id

    @invariant()
    def the_rows_read_back_the_same_both_ways(self):
        _check_rows(self.engine.store)
        _check_read_many(self.engine.store, [self.iid])

    def teardown(self) -> None:
        self.engine.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


TestSQLiteLoop = SQLiteLoop.TestCase
TestSQLiteLoop.settings = settings(max_examples=15, stateful_step_count=25, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow])


# -- version-2 rows, and rows the fast path leaves to cattrs ------------------------------

def test_version_2_rows_read_back_the_same_both_ways(tmp_path):
    writes = _history()
    path = tmp_path / "v2.sqlite3"
    _v2_file(path, writes)
    store = SQLiteStore(path)
    store.upgrade()
    assert _check_rows(store) == 3
    _check_read_many(store, ["INC-1", "INC-2", "INC-3"])
    memory = MemoryStore()
    for w in writes:
        memory.write([w])
    assert store.read_many(["INC-3", "INC-1"]) == memory.read_many(["INC-3", "INC-1"])
    store.close()


@pytest.mark.parametrize("change", [
    {"reports": True},  # cattrs refuses a boolean count
    {"reports": "2"},
    {"surprise": 1},  # an unknown key
    {"status": 7},
    {"updated_at": "yesterday"},
])
def test_rows_of_another_shape_go_through_cattrs_with_the_same_outcome(tmp_path, change):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.write([report_write("INC-1")])
    row = store._con.execute(_READ_STATE).fetchone()
    text = json.dumps({**json.loads(row[0]), **change})
    try:
        expected = _cattrs((text, *row[1:]))
    except Exception as exc:  # noqa: BLE001 - the same error both ways
        with pytest.raises(type(exc)) as got:
            _codec.state_from_fast(text, *row[1:5])
        assert str(got.value) == str(exc)
    else:
        _same_value(_codec.state_from_fast(text, *row[1:5]), expected)
    store.close()


def test_read_many_reads_in_chunks_past_the_parameter_limit(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    ids = [f"INC-{n}" for n in range(1, 1203)]
    store.write([report_write(iid) for iid in ids])
    got = store.read_many(list(reversed(ids)))
    assert list(got) == list(reversed(ids))
    assert got["INC-1200"] == (store.get("INC-1200"), store.events("INC-1200"))
    store.close()


def test_event_data_that_orjson_refuses_reads_as_the_standard_decoder_does(tmp_path):
    assert _codec.event_data('{"x":NaN,"y":[Infinity]}') == json.loads('{"x":NaN,"y":[Infinity]}') != {}
    assert _codec.event_data('{"s":"\\ud800"}') == {"s": "\ud800"}
    assert _codec.event_data(b'{"a":[1,2.5,null,true],"b":{"c":"\xe6\x88\xbf"}}') == {
        "a": [1, 2.5, None, True], "b": {"c": "房"}}


# -- writing back what was read ----------------------------------------------------------

def test_a_state_written_back_with_the_decision_it_was_read_with_keeps_naming_its_event(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.write([report_write("INC-1"), report_write("INC-2")])
    before = store._con.execute("SELECT id, decision_seq, incident FROM incidents ORDER BY id").fetchall()
    assert [r[1] for r in before] == [2, 2] and [r[2] for r in before] == [None, None]
    read = store.read_many(["INC-1"])["INC-1"][0]
    got = store.get("INC-2")
    writes = [Write(*follow(read, ("PluginNoted", {"n": 1}))), Write(*follow(got, ("PluginNoted", {"n": 2})))]
    store.write(writes)
    rows = store._con.execute("SELECT id, decision_seq, incident, state FROM incidents ORDER BY id").fetchall()
    assert [(r[1], r[2]) for r in rows] == [(2, None), (2, None)]  # no copy of the decision, nor of the incident
    assert all("decision" not in json.loads(r[3]) for r in rows)
    for w in writes:
        assert store.get(w.state.id) == w.state
    _check_rows(store)
    store.close()


def test_an_equal_but_new_decision_or_incident_is_written_as_before(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.write([report_write("INC-1")])
    read = store.get("INC-1")
    copy = attrs.evolve(read, decision=attrs.evolve(read.decision), incident=attrs.evolve(read.incident))
    evs, after = follow(copy, ("PluginNoted", {}))
    store.write([Write(evs, after)])
    seq, incident, state = store._con.execute("SELECT decision_seq, incident, state FROM incidents").fetchone()
    assert seq is None and incident is not None and "decision" in json.loads(state)
    assert store.get("INC-1") == after
    # Read with one incident's decision, written for another: that one's own copy.
    store.write([report_write("INC-2")])
    other = store.get("INC-2")
    evs, after = follow(other, ("PluginNoted", {}))
    store.write([Write(evs, attrs.evolve(after, decision=read.decision))])
    assert store._con.execute("SELECT decision_seq FROM incidents WHERE id = 'INC-2'").fetchone()[0] is None
    assert store.get("INC-2").decision == read.decision
    store.close()


def test_a_changed_decision_after_a_read_gets_its_own_copy(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.write([report_write("INC-1")])
    read = store.get("INC-1")
    evs, after = follow(read, (ev.SEVERITY_CHANGED, {"from": "high", "to": "critical", "reason": "vip"}))
    assert after.decision is not read.decision
    store.write([Write(evs, after)])
    assert store._con.execute("SELECT decision_seq FROM incidents").fetchone()[0] is None
    assert store.get("INC-1") == after and store.get("INC-1").decision.severity == "critical"
    store.close()


ESCALATING = """\
qflow: 1
name: escalating
timezone: Asia/Shanghai
teams:
  front-office: {name: Front office}
severities:
  normal: {respond: 10d}
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
        at: {clock: respond, used: 10%}
        notify: [assignee]
      - id: late
        at: {clock: respond, used: 50%}
        notify: [assignee]
"""


def test_a_tick_on_sqlite_keeps_the_decision_named_and_reads_back_as_in_memory(tmp_path, pm, clock):
    rs = qflow.load_ruleset_text(ESCALATING, file="escalating.yaml", plugins=pm)
    engines = [Engine(rs, plugins=pm, clock=clock, store=url)
               for url in ("memory://", f"sqlite:///{tmp_path / 't.sqlite3'}")]
    for e in engines:
        for _ in range(3):
            test_loop.dirty(e)
    for days in (2, 4):  # the warning, then the second step
        clock.advance(timedelta(days=days))
        reports = [e.tick() for e in engines]
        assert reports[0] == reports[1] and reports[0].effects == 3
    memory, sqlite = engines
    ids = [s.id for s in memory.query()]
    assert [s.id for s in sqlite.query()] == ids
    for iid in ids:
        assert sqlite.get(iid) == memory.get(iid) and sqlite.events(iid) == memory.events(iid)
    seqs = sqlite.store._con.execute("SELECT decision_seq FROM incidents").fetchall()
    assert seqs == [(2,)] * len(ids)  # the tick's writes name the DecisionMade event still
    _check_rows(sqlite.store)
    sqlite.store.close()
    assert T0  # the shared start


def test_read_many_of_a_state_stored_without_events(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    state = attrs.evolve(report_write("INC-7").state, seq=0)
    store.write([Write((), state)])  # allowed at seq 0, as in memory: the row holds its own incident
    assert store.read_many(["INC-7"]) == {"INC-7": (store.get("INC-7"), ())}
    assert store.get("INC-7") == state
    store.close()


def test_a_row_read_again_gives_the_state_decoded_the_first_time_and_a_changed_row_a_new_one(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    other = SQLiteStore(tmp_path / "s.sqlite3")  # a second process, as far as the first can tell
    w = report_write("INC-1")
    store.write([w])
    first = store.get("INC-1")
    assert store.get("INC-1") is first and store.query(qflow.IncidentQuery())[0] is first
    # The same seq, other contents (a write without events): the row differs, so does the state.
    changed = attrs.evolve(w.state, status="等待客人回电")
    other.write([Write((), changed)])
    again = store.get("INC-1")
    assert again is not first and again == changed and again.status == "等待客人回电"
    store.close()
    other.close()
