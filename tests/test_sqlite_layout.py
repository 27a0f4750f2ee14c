"""The SQLite store's own layout: schema 3 (events as a rowid table, the decision kept
once), 4 (claims found through an index) and 5 (one timers row per incident), the
upgrades of version-2 and version-4 files, and the codec's fast paths reading back what
the standard JSON encoder would have."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import attrs
import pytest

import qflow
from qflow import events as ev
from qflow.model import Event, IncidentState, Stage, Trace
from qflow.store import IncidentQuery, MemoryStore, Write
from qflow_sqlite import SQLiteStore
from qflow_sqlite import _codec
from qflow_sqlite._schema import MIGRATIONS, SCHEMA_VERSION

from tests.store.builders import CONV, T0, follow, report_write, to_stage

M = timedelta(minutes=1)


# -- a version-2 file, written the way the version-2 store wrote it -------------------

def _v2_dumps(value):
    def default(v):
        if isinstance(v, qflow.FrozenDict):
            return v.as_dict()
        if isinstance(v, datetime):
            return v.isoformat()
        raise TypeError(type(v).__name__)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=default)


def _v2_state(state: IncidentState) -> str:
    """Every state field but the incident, the decision without its trace."""
    out = {}
    for f in attrs.fields(IncidentState):
        if f.name == "incident":
            continue
        value = getattr(state, f.name)
        if f.name == "decision" and value is not None:
            value = attrs.evolve(value, trace=Trace(()))
            data = CONV.unstructure(value)
            data.pop("trace", None)
            out[f.name] = data
        else:
            out[f.name] = CONV.unstructure(value)
    return _v2_dumps(out)


def _v2_file(path, writes: list[Write]) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    for version, script in MIGRATIONS[:2]:
        for statement in script.split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute("INSERT INTO qflow_schema VALUES (?, 'then')", (version,))
    last: dict[str, Write] = {}
    for w in writes:
        for e in w.events:
            con.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)",
                        (e.incident_id, e.seq, e.at.isoformat(), e.type, e.actor, e.source, e.ruleset,
                         _v2_dumps(e.data)))
        last[w.state.id] = w
    for iid, w in last.items():
        s, inc, d = w.state, w.state.incident, w.state.decision
        first_due = min(dl.due for dl in d.deadlines).timestamp() if d and d.deadlines else None
        con.execute("INSERT INTO incidents (id, ord, seq, stage, open, team, severity, category, owner, place,"
                    " reported_ts, first_due_ts, external_id, dedup_key, incident, state)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (iid, int(iid.split("-")[1]), s.seq, s.stage.value, s.stage.value not in ("closed", "rejected"),
                     d.team if d else None, d.severity if d else None, d.category if d else None,
                     d.owner if d else None, inc.place, inc.reported_at.timestamp(), first_due, inc.external_id,
                     inc.dedup_key, None, _v2_state(s)))
    con.close()


def _history() -> list[Write]:
    """Reports, one moved on (its decision changed by a later event), one confirmed."""
    writes = [report_write("INC-1"), report_write("INC-2", external_id="crm-7", dedup_key="room-1512"),
              report_write("INC-3", severity="medium")]
    state = writes[0].state
    evs, after = follow(state, (ev.SEVERITY_CHANGED, {"from": "high", "to": "critical", "reason": "vip"}))
    writes.append(Write(evs, after))
    evs, after = to_stage(writes[2].state, Stage.CONFIRMED)
    writes.append(Write(evs, after))
    return writes


def _same(a, b, ids) -> None:
    for iid in ids:
        assert a.get(iid) == b.get(iid)
        assert a.events(iid) == b.events(iid)
    assert a.query(IncidentQuery()) == b.query(IncidentQuery())
    assert a.query(IncidentQuery(team="front-office", open_only=True)) == \
        b.query(IncidentQuery(team="front-office", open_only=True))
    assert a.due(T0 + timedelta(days=3)) == b.due(T0 + timedelta(days=3))
    assert a.find_external("crm-7") == b.find_external("crm-7") == "INC-2"
    assert a.find_dedup("room-1512", T0 - timedelta(hours=1)) == b.find_dedup("room-1512", T0 - timedelta(hours=1))


def test_a_version_2_file_upgrades_and_reads_back_the_same_incidents(tmp_path):
    writes = _history()
    path = tmp_path / "v2.sqlite3"
    _v2_file(path, writes)
    memory = MemoryStore()
    for w in writes:
        memory.write([w])
    store = SQLiteStore(path)
    assert store.schema_version() == 2
    assert store.upgrade() == (2, SCHEMA_VERSION) == (2, 6)
    ids = ["INC-1", "INC-2", "INC-3"]
    _same(store, memory, ids)
    # Later writes on upgraded incidents and new ones read back as in memory too.
    more = [Write(*follow(memory.get("INC-2"), (ev.STAGE_CHANGED, {"from": "reported", "to": "confirmed",
                                                                   "reason": "ok"}))),
            report_write("INC-4")]
    store.write(more)
    memory.write(more)
    store.close()
    again = SQLiteStore(path)
    _same(again, memory, ids + ["INC-4"])
    again.close()


def test_a_new_file_keeps_events_in_a_rowid_table_with_a_unique_seq(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    sql = store._con.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    assert "WITHOUT ROWID" not in sql and "UNIQUE (incident_id, seq)" in sql
    store.write([report_write("INC-1")])
    with pytest.raises(sqlite3.IntegrityError):
        store._con.execute("INSERT INTO events VALUES ('INC-1', 2, 'x', 'x', NULL, NULL, NULL, '{}')")


def test_the_decision_is_kept_once_until_a_later_event_changes_it(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    w = report_write("INC-1")
    store.write([w])
    row = store._con.execute("SELECT state, decision_seq FROM incidents WHERE id = 'INC-1'").fetchone()
    assert row[1] == 2 and "decision" not in json.loads(row[0])
    assert store.get("INC-1") == w.state and store.get("INC-1").decision == w.state.decision
    evs, after = follow(w.state, (ev.SEVERITY_CHANGED, {"from": "high", "to": "critical", "reason": "vip"}))
    store.write([Write(evs, after)])
    row = store._con.execute("SELECT state, decision_seq FROM incidents WHERE id = 'INC-1'").fetchone()
    assert row[1] is None and json.loads(row[0])["decision"]["severity"] == "critical"
    assert store.get("INC-1") == after
    # A write that changes the decision after DecisionMade in the same batch keeps its own copy.
    events, state = report_write("INC-2").events, report_write("INC-2").state
    late, after2 = follow(state, (ev.REASSIGNED, {"team": "security", "owner": None, "reason": "night"}))
    store.write([Write(events + late, after2)])
    assert store._con.execute("SELECT decision_seq FROM incidents WHERE id = 'INC-2'").fetchone()[0] is None
    assert store.get("INC-2") == after2 and store.get("INC-2").decision.team == "security"


@pytest.mark.parametrize("data", [
    {"text": "邻房深夜喧哗 \"quoted\" \\ \n\t\x01 \u2028", "n": -(2 ** 63), "big": 2 ** 64 - 1, "t": True,
     "none": None, "list": [1, "a", None, {"deep": {"deeper": []}}], "empty": {}},
    {"huge": 2 ** 80 + 1, "list": [-(2 ** 70) - 3]},  # past 64 bits: the standard encoder writes it
    {"at": datetime(2026, 11, 20, 23, 10, 0, 5, tzinfo=ZoneInfo("Asia/Shanghai"))},  # a time: standard, ISO text
    {"ratio": 0.1, "exp": 1e16, "neg": -0.0, "list": [2.5]},
    {"stage": Stage.CLOSED},
])
def test_event_data_reads_back_as_the_standard_encoder_wrote_it(tmp_path, data):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    w = report_write("INC-1")
    extra = Event("INC-1", 3, T0, "PluginNoted", source="plugin:test", data=data)
    store.write([Write(w.events + (extra,), ev.apply(w.state, extra, CONV))])
    got = store.events("INC-1")[2].data
    assert got == Event("INC-1", 3, T0, "x", data=json.loads(_codec.dumps(data))).data
    assert repr(got) == repr(Event("INC-1", 3, T0, "x", data=json.loads(_codec.dumps(data))).data)  # 1 is not 1.0
    assert store.read_many(["INC-1"])["INC-1"][1][2].data == got


def test_fixed_offset_timestamps_are_the_same_numbers():
    zones = [timezone(timedelta(hours=h, minutes=m)) for h in range(-12, 15) for m in (0, 30, 45)]
    zones.append(timezone(timedelta(hours=5, minutes=30, seconds=17, microseconds=3)))
    for i, tz in enumerate(zones):
        for when in (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=tz), datetime(2026, 11, 20, 23, 10, tzinfo=tz),
                     datetime(2038, 1, 19, 3, 14, 8, 123457 + i, tzinfo=tz), datetime(1, 1, 2, tzinfo=tz)):
            assert _codec.timestamp(when) == when.timestamp()
    shanghai = datetime(2026, 11, 20, 23, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert _codec.timestamp(shanghai) == shanghai.timestamp()


def test_releasing_claims_reads_only_the_claimed_rows(tmp_path):
    # Every tick ends with a release; without its index that read the whole timers
    # table (most of a tick among a million open incidents).
    store = SQLiteStore(tmp_path / "s.sqlite3")
    for table in ("timers", "outbox"):
        plan = store._con.execute(f"EXPLAIN QUERY PLAN UPDATE {table} SET worker = NULL, lease_ts = NULL "
                                  "WHERE worker = ?", ("w",)).fetchall()
        assert [row[3] for row in plan] == [f"SEARCH {table} USING INDEX {table}_claimed (worker=?)"]
    store.close()


def test_claiming_finds_due_incidents_through_the_index_on_their_earliest_time(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    plan = store._con.execute("EXPLAIN QUERY PLAN SELECT rowid FROM timers WHERE next_ts <= ?"
                              " AND (worker IS NULL OR worker = ? OR lease_ts <= ?) ORDER BY next_ts, incident_id"
                              " LIMIT ?", (0.0, "w", 0.0, 100)).fetchall()
    assert [row[3] for row in plan] == ["SEARCH timers USING INDEX timers_next (next_ts<?)"]
    store.close()


def test_a_version_4_file_upgrades_to_5_with_its_timers_and_claims_kept(tmp_path):
    path = tmp_path / "v4.sqlite3"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    for version, script in MIGRATIONS[:4]:
        con.executescript(script)
        con.execute("INSERT INTO qflow_schema VALUES (?, ?)", (version, "2026-11-01T00:00:00+00:00"))
    utc = T0.astimezone(timezone.utc)
    for iid, key, at, worker in (("INC-1", "clock:resolve", T0 + timedelta(hours=4), "w1"),
                                 ("INC-1", "clock:respond", T0, "w1"),
                                 ("INC-2", "esc:respond:default/warn", utc + timedelta(minutes=1), None),
                                 ("INC-3", 'action:"A\\1"\t修\n', T0 + timedelta(days=2), None)):
        con.execute("INSERT INTO timers VALUES (?, ?, ?, ?, ?, ?)",
                    (iid, key, at.isoformat(), at.timestamp(), worker,
                     None if worker is None else (T0 + timedelta(days=1)).timestamp()))
    con.close()
    store = SQLiteStore(path)
    assert store.upgrade() == (4, SCHEMA_VERSION)
    assert store.timers()[:3] == [qflow.Timer("INC-1", "clock:respond", T0),
                                  qflow.Timer("INC-2", "esc:respond:default/warn", utc + timedelta(minutes=1)),
                                  qflow.Timer("INC-1", "clock:resolve", T0 + timedelta(hours=4))]
    assert store.timers("INC-2")[0].at.utcoffset() == timedelta(0)
    assert store.timers("INC-3") == [qflow.Timer("INC-3", 'action:"A\\1"\t修\n', T0 + timedelta(days=2))]
    # INC-1's claim holds for others until released.
    assert store.claim_timers(T0 + timedelta(hours=5), worker="w2") == [
        qflow.Timer("INC-2", "esc:respond:default/warn", utc + timedelta(minutes=1))]
    store.release_timers("w1")
    assert store.claim_timers(T0 + timedelta(hours=5), worker="w3") == [
        qflow.Timer("INC-1", "clock:respond", T0), qflow.Timer("INC-1", "clock:resolve", T0 + timedelta(hours=4))]
    store.close()


def test_an_incidents_timers_are_one_row_with_their_earliest_time(tmp_path):
    # One row per incident: intake writes one timers row (and its two index entries)
    # however many steps a ladder sets.
    store = SQLiteStore(tmp_path / "s.sqlite3")
    w = report_write("INC-1", timers=(qflow.Timer("INC-1", "b", T0 + timedelta(hours=2)),
                                      qflow.Timer("INC-1", "a", T0 + timedelta(hours=1))))
    store.write([w])
    assert store._con.execute("SELECT incident_id, next_ts, CAST(timers AS TEXT) FROM timers").fetchall() == [
        ("INC-1", (T0 + timedelta(hours=1)).timestamp(),
         '[["b","2026-11-21T01:10:00+08:00"],["a","2026-11-21T00:10:00+08:00"]]')]
    store.close()


def _with_timers(iid: str, **minutes: int) -> Write:
    """A report of *iid* with a timer per keyword, due that many minutes after T0."""
    return report_write(iid, timers=tuple(qflow.Timer(iid, key, T0 + n * M) for key, n in minutes.items()))


def test_a_claim_cut_at_the_limit_lets_go_of_incidents_it_hands_out_nothing_of(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.write([_with_timers("INC-1", a=1, b=2), _with_timers("INC-2", a=3)])
    assert store.claim_timers(T0 + 10 * M, worker="w1", limit=2) == [
        qflow.Timer("INC-1", "a", T0 + M), qflow.Timer("INC-1", "b", T0 + 2 * M)]
    assert store.claim_timers(T0 + 10 * M, worker="w2", limit=2) == [qflow.Timer("INC-2", "a", T0 + 3 * M)]
    store.close()


def test_an_incidents_due_timers_past_the_limit_stay_with_its_claimer(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.write([_with_timers("INC-1", a=1, c=5), _with_timers("INC-2", b=3)])
    now = T0 + 10 * M
    assert store.claim_timers(now, worker="w1", limit=2, lease_until=now + M) == [
        qflow.Timer("INC-1", "a", T0 + M), qflow.Timer("INC-2", "b", T0 + 3 * M)]
    assert store.claim_timers(now, worker="w2", limit=2) == []
    assert store.claim_timers(now, worker="w1", limit=5, lease_until=now + M) == [
        qflow.Timer("INC-1", "a", T0 + M), qflow.Timer("INC-2", "b", T0 + 3 * M), qflow.Timer("INC-1", "c", T0 + 5 * M)]
    assert store.claim_timers(now + M, worker="w2", limit=5) == [
        qflow.Timer("INC-1", "a", T0 + M), qflow.Timer("INC-2", "b", T0 + 3 * M), qflow.Timer("INC-1", "c", T0 + 5 * M)]
    store.close()


@pytest.mark.parametrize("at", [
    datetime(2026, 3, 8, 3, 30, tzinfo=ZoneInfo("America/New_York")),  # just after the DST change
    datetime(2026, 11, 24, 9, 30, 0, 123, tzinfo=ZoneInfo("Asia/Shanghai")),
    datetime(1890, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")),  # local mean time: +08:05:43
    datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=7))),
    datetime(2026, 1, 1, tzinfo=timezone.utc),
    datetime(2026, 1, 1),
])
def test_timer_times_read_back_with_the_offset_they_were_written_with(at):
    ts, text = _codec.timers_json([qflow.Timer("INC-1", "k", at)])
    back = _codec.timers_from("INC-1", text)[0].at
    assert (back, back.isoformat(), ts) == (at, at.isoformat(), at.timestamp())


def test_projection_rows_the_same_as_stored_are_left_in_place(tmp_path):
    # A row deleted and inserted again gets a new rowid; one left alone keeps it.
    from qflow.store import Projection

    store = SQLiteStore(tmp_path / "p.sqlite3")
    p = Projection("response", (("team", "text"), ("minutes", "real")))
    store.declare([p])
    w, other = report_write("INC-1"), report_write("INC-2")
    store.write([Write(w.events, w.state, (), (), {"response": {"team": "a", "minutes": 1.0}}),
                 Write(other.events, other.state, (), (), {"response": {"team": "b", "minutes": 9.0}})])

    def stored():
        return store._con.execute("SELECT rowid, qf_incident, team, minutes FROM qf_proj_response "
                                  "ORDER BY rowid").fetchall()

    assert stored() == [(1, "INC-1", "a", 1.0), (2, "INC-2", "b", 9.0)]
    more, after = follow(w.state, ("Acknowledged", {"note": ""}))
    store.write([Write(more, after, None, (), {"response": {"team": "a", "minutes": 1.0}})])
    assert stored() == [(1, "INC-1", "a", 1.0), (2, "INC-2", "b", 9.0)]
    again, later = follow(after, ("Acknowledged", {"note": ""}))
    store.write([Write(again, later, None, (), {"response": {"team": "a", "minutes": 2.0}})])
    assert stored() == [(2, "INC-2", "b", 9.0), (3, "INC-1", "a", 2.0)]
    store.close()


def test_batches_past_one_statements_worth_of_ids_are_read_in_chunks(tmp_path):
    from qflow.store import Projection, Timer

    store = SQLiteStore(tmp_path / "c.sqlite3")
    p = Projection("response", (("minutes", "real"),))
    store.declare([p])
    n = 1_100  # more than two chunks of 500
    assert len(set(store.next_ids(n))) == n
    first = [report_write(f"INC-{i}") for i in range(n)]
    store.write([Write(w.events, w.state, (Timer(w.state.id, "a", T0),), (), {"response": {"minutes": 1.0}})
                 for w in first])
    later = []
    for i, w in enumerate(first):
        more, after = follow(w.state, ("Acknowledged", {"note": ""}))
        timers = (Timer(after.id, "a", T0),) if i % 2 else (Timer(after.id, "b", T0 + timedelta(hours=1)),)
        later.append(Write(more, after, timers, (), {"response": {"minutes": float(i % 3 == 0)}}))
    store.write(later)
    assert [t.key for t in store.timers("INC-0")] == ["b"] and [t.key for t in store.timers("INC-1")] == ["a"]
    assert [t.key for t in store.timers("INC-1098")] == ["b"] and [t.key for t in store.timers("INC-1099")] == ["a"]
    got = store._con.execute("SELECT minutes, count(*) FROM qf_proj_response GROUP BY minutes").fetchall()
    assert got == [(0.0, n - (n + 2) // 3), (1.0, (n + 2) // 3)]
    store.close()


def test_a_timer_key_orjson_refuses_is_stored_escaped_and_read_back_as_written(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    odd = qflow.Timer("INC-1", "action:\udc80", T0)  # a lone surrogate: no UTF-8 for it
    store.write([report_write("INC-1", timers=(odd,))])
    assert store.timers("INC-1") == [odd]
    assert store.claim_timers(T0, worker="w") == [odd]
    store.close()


@pytest.mark.parametrize("workers", [2, 4])
def test_handles_racing_over_the_same_due_timers_fire_each_step_once(tmp_path, workers):
    # Schema 5 claims an incident's timers together: each worker (a connection of its
    # own, as a process would have) still fires each step once.
    from tests.test_postgres import _race

    fired = _race(f"sqlite:///{tmp_path / 'race.sqlite3'}", workers, incidents=60, steps=2)
    assert len(fired) == 120 and set(fired.values()) == {1}
