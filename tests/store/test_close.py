"""A closed store: every store refuses every call the same way, saying what happened."""

from __future__ import annotations

from datetime import timedelta


from qflow.store import IncidentQuery, Measure, Projection, StoreError

from tests.store.builders import T0, reported


RESPONSE = Projection("response", (("team", "text"), ("minutes", "real")))


def _calls(store):  # type: ignore[no-untyped-def]
    events, state = reported("INC-2")
    p = RESPONSE
    return {
        "next_id": lambda: store.next_id(),
        "next_ids": lambda: store.next_ids(2),
        "append": lambda: store.append(events, state),
        "get": lambda: store.get("INC-1"),
        "events": lambda: store.events("INC-1"),
        "read_many": lambda: store.read_many(["INC-1"]),
        "find_external": lambda: store.find_external("ext-1"),
        "find_dedup": lambda: store.find_dedup("key", T0),
        "query": lambda: store.query(IncidentQuery()),
        "count": lambda: store.count(IncidentQuery()),
        "due": lambda: store.due(T0 + timedelta(days=1)),
        "claim_timers": lambda: store.claim_timers(T0, worker="w"),
        "release_timers": lambda: store.release_timers("w"),
        "timers": lambda: store.timers(),
        "claim_outbox": lambda: store.claim_outbox(T0, worker="w"),
        "outbox": lambda: store.outbox(),
        "attempts": lambda: store.attempts("m-1"),
        "save_document": lambda: store.save_document("problem", "P-1", {"a": 1}, version=1),
        "document": lambda: store.document("problem", "P-1"),
        "documents": lambda: store.documents("problem"),
        "schema_version": lambda: store.schema_version(),
        "declare": lambda: store.declare([p]),
        "aggregate": lambda: store.aggregate(p, measures=[Measure("count")]),
    }


def test_a_closed_store_refuses_every_call_saying_it_was_closed(store_factory, tmp_path):
    store = store_factory.open()
    events, state = reported("INC-1")
    store.append(events, state)
    store.declare([RESPONSE])  # aggregate reads a declared projection without declaring it again
    store.close()
    store.close()  # closing again is harmless
    name = {"memory": "memory://", "sqlite": str(tmp_path / "store.sqlite3"),
            "postgresql": store_factory.url}[store_factory.kind]
    refused = {}
    for call, run in _calls(store).items():
        try:
            run()
        except StoreError as exc:
            refused[call] = str(exc)
        else:
            refused[call] = "(not refused)"
    said = (f"the store {name} is closed: close() was called on it (by the application, or AsyncEngine.aclose()); "
            "open the store again (a new Engine) to go on")
    assert refused == dict.fromkeys(_calls(store), said)
    if store_factory.durable:  # the data is there for a store opened again
        assert store_factory.open().get("INC-1") == state
