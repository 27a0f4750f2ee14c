"""``read_many`` gives, for every store, what ``get`` and ``events`` give for each
incident: known ones in the order asked (each once), unknown ones left out; states
with a decision copy of their own (changed after DecisionMade) and plain ones alike."""

from __future__ import annotations

from qflow import events as ev
from qflow.store import MemoryStore, Store, Write

from qflow.model import Stage
from tests.store.builders import follow, report_write, to_stage

pytest_plugins = ("pgtools",)  # the pg_url fixture


def _history() -> list[Write]:
    writes = [report_write(f"INC-{n}") for n in range(1, 6)]
    evs, after = follow(writes[0].state, (ev.SEVERITY_CHANGED, {"from": "high", "to": "critical", "reason": "vip"}))
    writes.append(Write(evs, after))  # a decision copy of its own
    evs, after = to_stage(writes[2].state, Stage.CONFIRMED)
    writes.append(Write(evs, after))
    evs, again = follow(after, ("PluginNoted", {"n": [1, {"deep": None}]}))
    writes.append(Write(evs, again))
    return writes


def _check(store: Store) -> None:
    for w in _history():
        store.write([w])
    asked = ["INC-3", "INC-404", "INC-1", "INC-5", "INC-3", "INC-2", "INC-4"]
    got = store.read_many(asked)
    assert list(got) == ["INC-3", "INC-1", "INC-5", "INC-2", "INC-4"]
    for iid, (state, log) in got.items():
        assert state == store.get(iid) and log == store.events(iid)
        assert ev.fold(log) == state
    assert got["INC-1"][0].decision.severity == "critical"
    memory = MemoryStore()
    for w in _history():
        memory.write([w])
    assert got == memory.read_many(asked)
    assert store.read_many([]) == {} and store.read_many(["INC-404"]) == {}


def test_sqlite_read_many_is_get_and_events(tmp_path):
    from qflow_sqlite import SQLiteStore
    store = SQLiteStore(tmp_path / "s.sqlite3")
    _check(store)
    store.close()


def test_postgres_read_many_is_get_and_events(pg_url):
    import qflow_postgres
    store = qflow_postgres.open_store(pg_url)
    _check(store)
    store.close()
