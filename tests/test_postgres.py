"""The postgres store beyond the shared contract (tests/store): schema versions, URLs,
connections dropped mid-transaction, and several workers racing over due timers."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from conftest import BASE, T0
from stepplugin import STEP_FIRED, StepPlugin

import qflow
import qflow_postgres
from qflow._shapes import plain_event, plain_state
from qflow.errors import StoreUnavailableError
from qflow_postgres import SCHEMA_VERSION as SCHEMA
from qflow_postgres import SchemaVersionError, StoreError

from tests import test_loop

pytest_plugins = ("pgtools",)  # the pg_url and pg_schemas fixtures

M = timedelta(minutes=1)


def _engine(url: str, *, steps: int = 1, store: qflow.Store | None = None) -> qflow.Engine:
    pm = qflow.make_plugin_manager(autoload=False, plugins=[StepPlugin(steps)])
    ruleset = qflow.load_ruleset_text(BASE, file="base.yaml", plugins=pm)
    return qflow.Engine(ruleset, plugins=pm, store=store or url, clock=qflow.FakeClock(T0))


def _schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


# -- schema versions ---------------------------------------------------------------------


def test_a_newer_schema_is_refused_with_what_to_do(pg_url, pg_admin):
    qflow_postgres.open_store(pg_url).close()
    with pg_admin() as con:
        con.execute(f"UPDATE {_schema_of(pg_url)}.qflow_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError) as err:
        qflow_postgres.open_store(pg_url)
    assert str(err.value) == (
        f"the store {pg_url} has schema version 99, newer than the 4 this qflow knows; "
        "upgrade qflow (pip install -U qflow) or open a backup made before the newer qflow touched it")


def test_an_older_schema_is_used_only_after_upgrade_which_keeps_the_data(pg_url, pg_admin):
    engine = _engine(pg_url)
    state = engine.report({"channel": "phone", "category": "complaint", "description": "no hot water"})
    logged = engine.events(state.id)
    engine.store.close()
    schema = _schema_of(pg_url)
    with pg_admin() as con:  # what version 1 looked like
        con.execute(f"ALTER TABLE {schema}.qflow_incidents DROP COLUMN dedup_key")
        con.execute(f"ALTER TABLE {schema}.qflow_incidents DROP COLUMN clock_dues")
        con.execute(f"DROP INDEX {schema}.qflow_timers_claimed")
        con.execute(f"DROP INDEX {schema}.qflow_outbox_claimed")
        con.execute(f"UPDATE {schema}.qflow_meta SET value = '1' WHERE key = 'schema_version'")
    store = qflow_postgres.open_store(pg_url)
    assert store.schema_version() == 1
    with pytest.raises(SchemaVersionError) as err:
        store.get(state.id)
    assert str(err.value) == (
        f"the store {pg_url} has schema version 1, older than the 4 this qflow needs; "
        f"run 'qflow db upgrade --store {pg_url}' (after a pg_dump of the database)")
    assert store.upgrade() == (1, 4)
    assert store.upgrade() == (4, 4)
    assert store.get(state.id) == state
    assert store.events(state.id) == logged
    assert store.find_dedup("anything", T0) is None
    # Written before the clocks' due moments were recorded: read by its decision's deadlines.
    assert store.without_dues() == 1
    assert [d.clock for d in store.due(T0 + timedelta(days=30))] == ["respond", "resolve"]
    store.close()


def test_a_failed_upgrade_is_one_line_and_changes_nothing(pg_url, pg_admin, capsys):
    from qflow.cli import main

    qflow_postgres.open_store(pg_url).close()
    schema = _schema_of(pg_url)
    with pg_admin() as con:  # a version set back by hand: step 3 finds no table of step 2
        con.execute(f"UPDATE {schema}.qflow_meta SET value = '2' WHERE key = 'schema_version'")
    assert main(["db", "upgrade", "--store", pg_url]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"qflow: error: the upgrade from schema version 2 to 4 of {pg_url} failed (relation "
        '"qflow_projection_rows" does not exist); it was rolled back and nothing changed; the tables do not match '
        "the schema version qflow_meta records (edited by hand, or restored in part): restore the pg_dump taken "
        "before, or ask the person who changed them"]
    with pg_admin() as con:
        assert con.execute(f"SELECT value FROM {schema}.qflow_meta").fetchall() == [("2",)]


def test_commands_that_read_refuse_a_mistyped_schema_and_make_none(pg_url, pg_admin, capsys):
    from qflow.cli import main

    schema = _schema_of(pg_url)
    assert main(["ls", "--store", pg_url]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"qflow: error: no store at {pg_url} (schema {schema} does not exist); check ?schema=, or create the "
        "store with 'qflow import' (or 'qflow demo')")
    with pg_admin() as con:
        assert con.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchall() == []
        con.execute(f"CREATE SCHEMA {schema}")  # there, but empty: still no store, and nothing made in it
    assert main(["db", "upgrade", "--store", pg_url]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"qflow: error: no store at {pg_url} (no qflow tables there); check ?schema=, or create the store with "
        "'qflow import' (or 'qflow demo')")
    with pg_admin() as con:
        assert con.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall() == [(0,)]


def test_tables_that_qflow_did_not_make_are_refused(pg_url, pg_admin):
    with pg_admin() as con:
        schema = _schema_of(pg_url)
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(f"CREATE TABLE {schema}.qflow_incidents (id text)")
    with pytest.raises(StoreError) as err:
        qflow_postgres.open_store(pg_url)
    assert str(err.value) == (
        f"{pg_url} has a qflow_incidents table but no qflow schema version: it is not a qflow store; "
        "give ?schema=NAME of a qflow store or of a new schema")


def test_workers_starting_together_create_the_schema_once(pg_url):
    stores, errors = [], []

    def open_one() -> None:
        try:
            stores.append(qflow_postgres.open_store(pg_url))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and len(stores) == 4
    assert sorted(s.found_version for s in stores) == [0, SCHEMA, SCHEMA, SCHEMA]
    for s in stores:
        s.close()


# -- URLs --------------------------------------------------------------------------------


def test_a_schema_that_is_not_a_plain_name_is_refused():
    with pytest.raises(StoreError) as err:
        qflow_postgres.open_store("postgresql://qflow@db.invalid/qflow?schema=a;drop")
    assert str(err.value) == ("schema='a;drop' in the store URL is not a plain SQL name; "
                              "use letters, digits and _ (e.g. schema=qflow)")


def test_a_database_that_does_not_exist_is_a_configuration_error_at_once(pg_schemas):
    from urllib.parse import urlsplit, urlunsplit

    from pgtools import pg_base
    from qflow_postgres._sync import PostgresStore

    url = urlunsplit(urlsplit(pg_base())._replace(path="/qflow_no_such_db", query=""))
    pauses: list[float] = []
    with pytest.raises(StoreError) as err:
        PostgresStore(qflow_postgres.parse(url), sleep=pauses.append)
    assert str(err.value) == (
        f'the database server of {url} refused the connection (database "qflow_no_such_db" does not exist); it '
        "answers, so waiting will not help: check the database name and the user in the URL, the password "
        "(PGPASSWORD or ~/.pgpass) and the server's pg_hba.conf, then try again")
    assert pauses == []  # not retried


def test_passwords_stay_out_of_messages():
    with pytest.raises(StoreUnavailableError) as err:
        qflow_postgres.open_store("postgresql://qflow:s3cret@127.0.0.1:1/qflow?connect_timeout=1", retries=0)
    assert "s3cret" not in str(err.value)
    assert str(err.value).startswith("the database at postgresql://qflow:***@127.0.0.1:1/qflow?connect_timeout=1 "
                                     "did not answer after 1 tries (")
    assert str(err.value).endswith("); nothing was written: check that the server runs and the URL, then try again")


def test_search_path_in_options_is_honoured(pg_schemas, pg_admin):
    url = pg_schemas.url()
    schema = _schema_of(url)
    with pg_admin() as con:
        con.execute(f"CREATE SCHEMA {schema}")
    base = url.split("?")[0]
    store = qflow_postgres.open_store(f"{base}?options=-csearch_path%3D{schema}")
    assert store.next_id() == "INC-1"
    with pg_admin() as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
                           "AND table_name = 'qflow_events'", (schema,)).fetchone() == (1,)
    store.close()


# -- connections dropped mid-transaction ---------------------------------------------------


def _block_timers_and_wait(admin, url: str, incident_id: str, store: qflow_postgres.PostgresStore, action):  # type: ignore[no-untyped-def]
    """Run *action* (which writes the incident) in a thread while another connection
    holds the incident's timer rows, so the store's transaction stops half-way (its
    events inserted, not committed); return the blocker, the thread and the pid."""
    schema = _schema_of(url)
    blocker = psycopg.connect(url.split("?")[0], connect_timeout=3)
    blocker.execute(f"SELECT * FROM {schema}.qflow_timers WHERE incident_id = %s FOR UPDATE", (incident_id,))
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except Exception as exc:  # asserted by the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    pid = store.backend_pid
    thread.start()
    with admin() as con:
        for _ in range(1000):  # bounded wait on the server, not on the domain's time
            row = con.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row and row[0] == "Lock":
                break
            threading.Event().wait(0.01)
        else:
            raise AssertionError("the store's transaction never reached the blocked row")
        half = con.execute(f"SELECT count(*) FROM {schema}.qflow_events WHERE incident_id = %s",
                           (incident_id,)).fetchone()[0]
        con.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return blocker, thread, outcome, half


def test_a_connection_killed_mid_transaction_is_retried_and_nothing_is_half_written(pg_url, pg_admin):
    engine = _engine(pg_url)
    state = engine.report({"channel": "phone", "category": "complaint", "description": "cold room"})
    store = engine.store
    blocker, thread, outcome, half = _block_timers_and_wait(
        pg_admin, pg_url, state.id, store, lambda: engine.transition(state.id, "confirmed", actor="值班经理"))
    assert half == 2  # the killed transaction's event was never visible
    blocker.rollback()
    thread.join(timeout=30)
    blocker.close()
    assert "error" not in outcome
    assert store.reconnects == 1
    events = engine.events(state.id)
    assert [e.seq for e in events] == [1, 2, 3] and events[2].type == "StageChanged"
    assert engine.get(state.id) == qflow.events.fold(events)
    assert engine.get(state.id).stage.value == "confirmed"


def test_a_connection_that_stays_away_leaves_nothing_written(pg_url, pg_admin):
    engine = _engine(pg_url)
    state = engine.report({"channel": "phone", "category": "complaint", "description": "cold room"})
    store = engine.store
    store.retries = 0
    blocker, thread, outcome, _ = _block_timers_and_wait(
        pg_admin, pg_url, state.id, store, lambda: engine.transition(state.id, "confirmed"))
    blocker.rollback()
    thread.join(timeout=30)
    blocker.close()
    assert isinstance(outcome.get("error"), StoreUnavailableError)
    assert str(outcome["error"]).startswith(f"the database at {pg_url} did not answer after 1 tries (")
    store.retries = 5
    assert [e.seq for e in engine.events(state.id)] == [1, 2]
    assert engine.get(state.id) == state


def test_a_commit_whose_answer_was_lost_is_not_applied_twice(pg_url):
    engine = _engine(pg_url)
    state = engine.report({"channel": "phone", "category": "complaint", "description": "cold room"})
    before = engine.events(state.id)
    after = engine.transition(state.id, "confirmed")
    store = engine.store
    new = engine.events(state.id)[len(before):]
    # The same write again, as the retry after a lost COMMIT answer would send it.
    write = qflow.Write(new, after, None)
    store._run(lambda retry: qflow_postgres._ops.write(store._codec, [write], store._projections, retry=True))
    assert engine.events(state.id) == before + new
    with pytest.raises(qflow.ConcurrencyError) as err:
        store.write([write])
    assert str(err.value) == f"{state.id}: event seq 3 does not follow 3; reload the incident and try again"


def test_the_async_store_reconnects_too(pg_url, pg_admin):
    import asyncio

    async def main() -> None:
        store = qflow_postgres.open_store(pg_url)  # creates the tables
        store.close()
        astore = qflow_postgres.AsyncPostgresStore(qflow_postgres.parse(pg_url))
        assert await astore.next_id() == "INC-1"
        with pg_admin() as con:
            con.execute("SELECT pg_terminate_backend(%s)", (astore.backend_pid,))
        assert await astore.next_id() == "INC-2"
        assert astore.reconnects == 1
        await astore.close()

    asyncio.run(main())


def test_a_closed_async_store_refuses_as_every_store_does_instead_of_reconnecting(pg_url):
    import asyncio

    async def main() -> list[str]:
        qflow_postgres.open_store(pg_url).close()  # creates the tables
        astore = qflow_postgres.AsyncPostgresStore(qflow_postgres.parse(pg_url))
        assert await astore.next_id() == "INC-1"
        await astore.close()
        await astore.close()  # closing again is harmless
        said = []
        for call in (astore.next_id(), astore.get("INC-1"), astore.schema_version()):
            with pytest.raises(StoreError) as info:
                await call
            said.append(str(info.value))
        with pytest.raises(StoreError) as info:
            astore.declare([])
        said.append(str(info.value))
        assert astore.reconnects == 0
        return said

    assert asyncio.run(main()) == 4 * [
        f"the store {pg_url} is closed: close() was called on it (by the application, or AsyncEngine.aclose()); "
        "open the store again (a new Engine) to go on"]


def test_the_async_store_reads_a_batch_in_one_go_as_the_sync_one(pg_url):
    import asyncio

    from tests.store.builders import follow, report_write

    from qflow import events as ev

    writes = [report_write(f"INC-{n}") for n in range(1, 4)]
    more, after = follow(writes[0].state, (ev.SEVERITY_CHANGED, {"from": "high", "to": "critical", "reason": "vip"}))
    store = qflow_postgres.open_store(pg_url)
    store.write(writes)
    store.write([qflow.Write(more, after)])
    asked = ["INC-3", "INC-404", "INC-1", "INC-3", "INC-2"]

    async def main() -> dict:
        astore = qflow_postgres.AsyncPostgresStore(qflow_postgres.parse(pg_url))
        try:
            assert await astore.read_many([]) == {}
            return await astore.read_many(asked)
        finally:
            await astore.close()

    got = asyncio.run(main())
    assert list(got) == ["INC-3", "INC-1", "INC-2"]
    assert got == store.read_many(asked)
    assert got["INC-1"] == (store.get("INC-1"), store.events("INC-1"))
    assert got["INC-1"][0].decision.severity == "critical"
    store.close()


# -- several workers ---------------------------------------------------------------------


def _race(url: str, workers: int, incidents: int, steps: int) -> Counter[tuple[str, str]]:
    seed = _engine(url, steps=steps)
    for i in range(incidents):
        seed.report({"channel": "phone", "category": "complaint", "description": f"room {i}"})
    engines = [_engine(url, steps=steps) for _ in range(workers)]
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []
    now = T0 + (steps + 1) * M

    def work(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            while engines[n].tick(now, worker=f"w{n}", limit=7).incidents:
                pass
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    fired: Counter[tuple[str, str]] = Counter()
    for s in seed.query():
        events = seed.events(s.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert seed.get(s.id) == qflow.events.fold(events)
        for e in events:
            if e.type == STEP_FIRED:
                fired[(s.id, e.data["key"])] += 1
    assert seed.store.timers() == []
    assert sorted(m.id for m in seed.store.outbox()) == sorted(f"{i}/{k}" for i, k in fired)
    for e in [seed, *engines]:
        e.store.close()
    return fired


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_racing_over_the_same_due_timers_fire_each_step_once(pg_url, workers):
    fired = _race(pg_url, workers, incidents=60, steps=2)
    assert len(fired) == 120
    assert set(fired.values()) == {1}


def test_claims_are_shared_between_workers_without_overlap(pg_url):
    seed = _engine(pg_url)
    for i in range(20):
        seed.report({"channel": "phone", "category": "complaint", "description": f"room {i}"})
    a, b = qflow_postgres.open_store(pg_url), qflow_postgres.open_store(pg_url)
    now = T0 + 2 * M
    first = a.claim_timers(now, worker="a", limit=12, lease_until=now + 5 * M)
    second = b.claim_timers(now, worker="b", limit=12, lease_until=now + 5 * M)
    assert len(first) == 12 and len(second) == 8
    assert not {(t.incident_id, t.key) for t in first} & {(t.incident_id, t.key) for t in second}
    a.release_timers("a")
    assert len(b.claim_timers(now, worker="b", limit=50, lease_until=now + 5 * M)) == 20
    for s in (a, b, seed.store):
        s.close()


# -- what a write leaves as it is --------------------------------------------------------


def _rows(pg_admin, url: str, sql: str, iid: str) -> list[tuple]:
    """*sql* (``{schema}`` standing for the store's) over one incident's rows. Select
    ``xmin::text`` with them: it names the transaction that wrote a row, so the same
    xmin is the same row, untouched."""
    with pg_admin() as con:
        return con.execute(sql.format(schema=_schema_of(url)), (iid,)).fetchall()


def _deadline_rows(pg_admin, url: str, iid: str) -> list[tuple[str, object, str]]:
    return _rows(pg_admin, url, "SELECT clock, due, xmin::text FROM {schema}.qflow_deadlines "
                                "WHERE incident_id = %s ORDER BY clock", iid)


def test_a_write_keeps_the_deadline_rows_whose_due_moments_it_does_not_change(pg_url, pg_admin):
    eng = _engine(pg_url)
    iid = eng.report({"channel": "phone", "category": "complaint", "description": "cold room"}).id
    reported = _deadline_rows(pg_admin, pg_url, iid)
    assert [r[0] for r in reported] == ["resolve", "respond"]
    assert eng.tick(T0 + 2 * M).effects == 1  # the step's events are written, the clocks unmoved
    assert _deadline_rows(pg_admin, pg_url, iid) == reported
    eng.reassign(iid, team="housekeeping", reason="the room's heating", actor="王芳")  # a new decision
    assert _deadline_rows(pg_admin, pg_url, iid) == reported  # the same clocks
    eng.set_status(iid, "waiting_customer", actor="王芳")  # resolve pauses: its row goes
    moved = _deadline_rows(pg_admin, pg_url, iid)
    assert [r[:2] for r in moved] == [r[:2] for r in reported[1:]] and moved[0][2] != reported[1][2]
    eng.reject(iid, "a duplicate", actor="王芳")
    assert _deadline_rows(pg_admin, pg_url, iid) == []
    eng.store.close()


def _fact_rows(pg_admin, url: str, iid: str) -> list[tuple[int, int, str]]:
    return _rows(pg_admin, url, "SELECT qf_n, is_open, xmin::text FROM {schema}.qf_proj_incident_facts "
                                "WHERE qf_incident = %s ORDER BY qf_n", iid)


def test_a_write_leaves_projection_rows_that_it_does_not_change(pg_url, pg_admin):
    eng = _engine(pg_url)
    iid = eng.report({"channel": "phone", "category": "complaint", "description": "cold room"}).id
    reported = _fact_rows(pg_admin, pg_url, iid)
    assert [r[:2] for r in reported] == [(0, 1)]
    assert eng.tick(T0 + 2 * M).effects == 1  # a step fired: no fact changed, the row stays as it was
    assert _fact_rows(pg_admin, pg_url, iid) == reported
    eng.reject(iid, "a duplicate", actor="王芳")  # closed: the row is written again, and says so
    rejected = _fact_rows(pg_admin, pg_url, iid)
    assert [r[:2] for r in rejected] == [(0, 0)] and rejected[0][2] != reported[0][2]
    eng.store.close()


def test_deadline_rows_follow_a_decision_another_writer_changed(pg_url, pg_admin):
    a, b = _engine(pg_url), _engine(pg_url)
    iid = a.report({"channel": "phone", "category": "complaint", "description": "cold room"}).id
    state, events = a.store.read_many([iid])[iid]  # a remembers this decision ...
    b.reject(iid, "a duplicate", actor="王芳")  # ... whose clocks b's write ends
    assert _deadline_rows(pg_admin, pg_url, iid) == []
    ack = qflow.Event(iid, state.seq + 1, T0, "Acknowledged", actor="王芳")
    with pytest.raises(qflow.ConcurrencyError):
        a.store.write([qflow.Write((ack,), qflow.events.apply(state, ack, a._conv), ())])
    assert _deadline_rows(pg_admin, pg_url, iid) == []
    for e in (a, b):
        e.store.close()


# -- typed projection tables -------------------------------------------------------------

FACTS = qflow.store.Projection("facts", (("team", "text"), ("minutes", "real"), ("late", "int")))


def _facts_write(incident_id: str, rows: object) -> qflow.Write:
    from tests.store.builders import report_write

    w = report_write(incident_id)
    return qflow.Write(w.events, w.state, (), (), {"facts": rows})


def _columns(pg_admin, url: str, table: str) -> list[tuple[str, str]]:
    with pg_admin() as con:
        return con.execute("SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                           (_schema_of(url), table)).fetchall()


def test_declared_projections_are_typed_tables_written_with_the_events(pg_url, pg_admin):
    store = qflow_postgres.open_store(pg_url)
    store.declare([FACTS])
    store.declare([FACTS])  # idempotent, as every worker's engine declares them again
    assert _columns(pg_admin, pg_url, "qf_proj_facts") == [
        ("qf_incident", "text"), ("qf_n", "integer"), ("team", "text"), ("minutes", "double precision"),
        ("late", "bigint")]
    store.write([_facts_write("INC-1", {"team": "a", "minutes": 3, "late": True}),
                 _facts_write("INC-2", [{"team": "a", "minutes": 4.5, "late": 0}, {"team": "b", "minutes": None}])])
    with pg_admin() as con:
        assert con.execute(f"SELECT * FROM {_schema_of(pg_url)}.qf_proj_facts ORDER BY 1, 2").fetchall() == [
            ("INC-1", 0, "a", 3.0, 1), ("INC-2", 0, "a", 4.5, 0), ("INC-2", 1, "b", None, None)]
    # The rows are in the events' transaction: rows that cannot be stored take the events with them.
    with pytest.raises(ValueError) as err:
        store.write([_facts_write("INC-3", {"team": "z", "minutes": "a while", "late": 1})])
    assert str(err.value) == ("projection facts: INC-3 gave 'a while' for minutes, which is real; "
                              "fix the plugin's qflow_project")
    assert store.get("INC-3") is None and store.events("INC-3") == ()
    Measure = qflow.store.Measure
    got = store.aggregate(FACTS, measures=[Measure("count"), Measure("sum", "minutes"), Measure("sum", "late"),
                                           Measure("avg", "late"), Measure("p90", "minutes")], group_by=["team"])
    assert got == [("a", 2, 7.5, 1, 0.5, 4.5), ("b", 1, None, None, None, None)]
    assert [type(v) for v in got[0]] == [str, int, float, int, float, float]
    store.close()


def test_a_newer_declaration_adds_its_columns_and_a_changed_type_is_refused(pg_url, pg_admin):
    store = qflow_postgres.open_store(pg_url)
    store.declare([FACTS])
    store.write([_facts_write("INC-1", {"team": "a", "minutes": 3.0, "late": 0})])
    wider = qflow.store.Projection("facts", (*FACTS.columns, ("place", "text")))
    other = qflow_postgres.open_store(pg_url)
    other.declare([wider])
    assert _columns(pg_admin, pg_url, "qf_proj_facts")[-1] == ("place", "text")
    Measure = qflow.store.Measure
    assert other.aggregate(wider, measures=[Measure("count", "place"), Measure("count")]) == [(0, 1)]
    changed = qflow.store.Projection("facts", (("team", "text"), ("minutes", "int")))
    with pytest.raises(StoreError) as err:
        qflow_postgres.open_store(pg_url).declare([changed])
    assert str(err.value) == (
        "projection facts: column minutes is double precision in the database but declared int; drop the table "
        "qf_proj_facts (its rows are rebuilt as incidents change) or keep the type")
    for s in (store, other):
        s.close()


def test_projection_rows_of_schema_2_move_into_the_typed_table(pg_url, pg_admin):
    store = qflow_postgres.open_store(pg_url)
    store.close()
    schema = _schema_of(pg_url)
    with pg_admin() as con:  # a version 2 store that kept a projection's rows as JSON
        con.execute(f"""CREATE TABLE {schema}.qflow_projection_rows (projection text NOT NULL,
                        incident_id text NOT NULL, n integer NOT NULL, body json NOT NULL,
                        PRIMARY KEY (projection, incident_id, n))""")
        con.execute(f"INSERT INTO {schema}.qflow_projection_rows VALUES "
                    """('facts', 'INC-7', 0, '{"team": "a", "minutes": 2.5, "late": 1}'),
                       ('facts', 'INC-8', 0, '{"team": "b", "minutes": null, "late": 0}'),
                       ('other', 'INC-8', 0, '{"x": 1}')""")
        con.execute(f"ALTER TABLE {schema}.qflow_incidents DROP COLUMN clock_dues")
        con.execute(f"DROP INDEX {schema}.qflow_timers_claimed")
        con.execute(f"DROP INDEX {schema}.qflow_outbox_claimed")
        con.execute(f"UPDATE {schema}.qflow_meta SET value = '2' WHERE key = 'schema_version'")
    store = qflow_postgres.open_store(pg_url)
    store.declare([FACTS])  # waits for the upgrade: the tables of an old schema are not touched
    assert _columns(pg_admin, pg_url, "qf_proj_facts") == []
    assert store.upgrade() == (2, SCHEMA)
    Measure = qflow.store.Measure
    assert store.aggregate(FACTS, measures=[Measure("count"), Measure("sum", "late")], group_by=["team"]) == [
        ("a", 1, 1), ("b", 1, 0)]
    with pg_admin() as con:  # what no declaration claims stays where it was
        assert con.execute(f"SELECT projection FROM {schema}.qflow_projection_rows").fetchall() == [("other",)]
    store.close()


def test_the_async_store_declares_writes_and_aggregates_the_same(pg_url):
    import asyncio

    Measure = qflow.store.Measure

    async def main() -> list[tuple[object, ...]]:
        qflow_postgres.open_store(pg_url).close()
        astore = qflow_postgres.AsyncPostgresStore(qflow_postgres.parse(pg_url))
        astore.declare([FACTS])  # as LoopStore hands it on from Engine.__init__: nothing awaited
        await astore.write([_facts_write("INC-1", [{"team": "a", "minutes": 1.0, "late": 1},
                                                   {"team": "a", "minutes": 9.0, "late": 0}])])
        got = await astore.aggregate(FACTS, measures=[Measure("median", "minutes"), Measure("max", "minutes")])
        await astore.close()
        return got

    assert asyncio.run(main()) == [(1.0, 9.0)]
    sync = qflow_postgres.open_store(pg_url)
    assert sync.aggregate(FACTS, measures=[Measure("median", "minutes"), Measure("max", "minutes")]) == [(1.0, 9.0)]
    sync.close()


def test_synchronous_commit_off_is_an_opt_in_of_the_url_for_its_own_sessions(pg_url):
    store = qflow_postgres.open_store(pg_url + "&synchronous_commit=off")
    plain = qflow_postgres.open_store(pg_url)
    assert store._run(lambda retry: _show_commit(), tx=False) == "off"
    assert plain._run(lambda retry: _show_commit(), tx=False) == "on"
    for s in (store, plain):
        s.close()
    with pytest.raises(StoreError) as err:
        qflow_postgres.open_store(pg_url + "&synchronous_commit=maybe")
    assert str(err.value) == ("synchronous_commit='maybe' in the store URL is not one of on, off, local, "
                              "remote_write, remote_apply; leave it out to keep the server's setting")


def _show_commit():  # type: ignore[no-untyped-def]
    rows = yield qflow_postgres._ops.Q("SHOW synchronous_commit")
    return rows[0][0]


# -- reading bodies directly (qflow._shapes) gives what cattrs gives ----------------------

def test_the_full_loop_reads_back_the_same_directly_and_through_cattrs(pg_url, pg_admin, clock):
    pm = qflow.make_plugin_manager(autoload=False)
    ruleset = qflow.load_ruleset_text(test_loop.LOOP, file="loop.yaml", plugins=pm)
    engine = qflow.Engine(ruleset, plugins=pm, clock=clock, store=pg_url)
    test_loop.test_full_loop_with_an_ineffective_round_and_a_second_that_passes(engine, clock)
    iid = test_loop.dirty(engine, place="808")
    engine.acknowledge(iid, actor="前台")
    engine.set_status(iid, "waiting_customer", actor="前台", reason="客人外出")
    engine.reassign(iid, team="housekeeping", owner="王芳", reason="换班")
    engine.reject(test_loop.dirty(engine, place="909"), "重复报告")
    clock.advance(timedelta(days=3))
    engine.tick()
    store = engine.store
    codec, conv = store._codec, store._codec.conv
    with pg_admin() as con:
        schema = _schema_of(pg_url)
        states = [r[0] for r in con.execute(f'SELECT body FROM "{schema}".qflow_incidents ORDER BY id')]
        events = [r[0] for r in con.execute(f'SELECT body FROM "{schema}".qflow_events ORDER BY incident_id, seq')]
    assert len(states) == 9 and len(events) == 43
    # The direct builders raise rather than fall back: each body here takes the fast way.
    for body in states:
        copy = json.loads(json.dumps(body))
        direct = plain_state(copy, copy["incident"], copy["stage"], copy["seq"], None)
        slow = conv.structure(body, qflow.IncidentState)
        assert direct == slow and repr(direct) == repr(slow) == repr(codec.state(json.dumps(body)))
    for body in events:
        direct, slow = plain_event(json.loads(json.dumps(body))), conv.structure(body, qflow.Event)
        assert direct == slow and repr(direct) == repr(slow) == repr(codec.event(json.dumps(body)))
    engine.store.close()


def test_stored_projection_rows_count_as_the_same_only_when_each_value_would_be_stored_the_same():
    from qflow.store import Projection
    from qflow_postgres._ops import _same_rows

    p = Projection("facts", (("team", "text"), ("n", "int"), ("minutes", "real")))
    stored = [[0, "a", 1, 3]]  # PostgreSQL writes the double 3.0 as 3
    assert _same_rows(p, stored, [("INC-1", 0, "a", True, 3.0)])
    assert _same_rows(p, stored, [("INC-1", 0, "a", 1, 3)])
    assert not _same_rows(p, stored, [("INC-1", 0, "a", 1, 3.5)])
    assert not _same_rows(p, stored, [("INC-1", 0, None, 1, 3)])
    assert not _same_rows(p, stored, [("INC-1", 1, "a", 1, 3)])
    assert not _same_rows(p, stored, [("INC-1", 0, "a", 1, 3), ("INC-1", 1, "b", 2, 4)])
    assert not _same_rows(p, [[0, "a", 1, "NaN"]], [("INC-1", 0, "a", 1, float("nan"))])
    assert not _same_rows(p, stored, [("INC-1", 0, "a", "x", 3)])  # would not even be stored
    assert _same_rows(p, [], [])


def test_event_data_past_64_bits_reads_back_as_written(pg_url):
    # Read with the standard decoder: orjson would read 2**80 + 1 as a float.
    eng = _engine(pg_url)
    state = eng.report({"channel": "phone", "category": "complaint", "description": "cold room"})
    extra = qflow.Event(state.id, state.seq + 1, T0, "PluginNoted", source="plugin:test",
                        data={"huge": 2 ** 80 + 1, "list": [-(2 ** 70) - 3]})
    eng.store.write([qflow.Write((extra,), qflow.events.apply(state, extra, eng._conv))])
    for log in (eng.store.events(state.id), eng.store.read_many([state.id])[state.id][1]):
        assert log[-1].data == {"huge": 2 ** 80 + 1, "list": (-(2 ** 70) - 3,)}
        assert type(log[-1].data["huge"]) is int
    eng.store.close()


def test_two_workers_recording_one_anomaly_queue_on_its_dedup_key(pg_url, pg_admin):
    # The first worker's write holds the key's lock, its incident inserted, not yet
    # committed; the second worker, which found no incident for the key, must wait for
    # it and then attach to it. Without the lock both would commit an incident.
    from qflow_postgres import _ops
    from qflow_postgres._codec import Codec
    from qflow_postgres._schema import DEDUP_LOCK
    from qflow_postgres._sync import _drive

    from tests.store.builders import report_write

    pm = qflow.make_plugin_manager(autoload=False)
    ruleset = qflow.load_ruleset_text(BASE + "intake: {dedup_window: 2h}\n", file="base.yaml", plugins=pm)
    second = qflow.Engine(ruleset, plugins=pm, store=pg_url, clock=qflow.FakeClock(T0 + 5 * M))
    schema = _schema_of(pg_url)
    first = psycopg.connect(pg_url.split("?")[0], connect_timeout=3)
    first.execute(f'SET search_path TO "{schema}"')
    first.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (DEDUP_LOCK, f"{schema}:1512-noise"))
    with first.cursor() as cur:
        _drive(cur, _ops.write(Codec(), [report_write("INC-900", dedup_key="1512-noise")], {}), None, [])
    outcome: dict[str, object] = {}

    def report() -> None:
        try:
            outcome["state"] = second.report({"channel": "email", "category": "complaint",
                                              "description": "邮件投诉：1514房噪音", "dedup_key": "1512-noise"})
        except Exception as exc:  # asserted below
            outcome["error"] = exc

    thread = threading.Thread(target=report)
    pid = second.store.backend_pid
    thread.start()
    with pg_admin() as con:
        for _ in range(1000):  # bounded wait on the server, not on the domain's time
            row = con.execute("SELECT wait_event_type, query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row and row[0] == "Lock" and "pg_advisory_xact_lock" in row[1]:
                break
            threading.Event().wait(0.01)
        else:
            raise AssertionError("the second worker's write never waited for the dedup key")
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert "error" not in outcome
    state = outcome["state"]
    assert (state.id, state.reports) == ("INC-900", 2)
    assert second.store.count(qflow.IncidentQuery()) == 1
