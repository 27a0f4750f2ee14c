"""The engine's scenarios through :class:`qflow.aio.AsyncEngine`, on memory, SQLite and
PostgreSQL (its asyncio store): the same answers as the sync engine."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import BASE, T0
from stepplugin import STEP_FIRED, StepPlugin

import qflow
from qflow.aio import AsyncEngine, LoopStore

pytest_plugins = ("pgtools",)

M = timedelta(minutes=1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        pytest.importorskip("qflow_sqlite")
        return f"sqlite:///{tmp_path / 'qflow.sqlite3'}"
    return request.getfixturevalue("pg_url")


def _engine(url: str, steps: int = 1) -> AsyncEngine:
    pm = qflow.make_plugin_manager(autoload=False, plugins=[StepPlugin(steps)])
    ruleset = qflow.load_ruleset_text(BASE, file="base.yaml", plugins=pm)
    return AsyncEngine(ruleset, plugins=pm, store=url, clock=qflow.FakeClock(T0))


GOLD = {"channel": "phone", "category": "complaint", "description": "前台办理入住等待超过30分钟",
        "customer": {"tier": "gold"}}


def test_postgres_gets_the_asyncio_store_and_the_others_a_thread(store_url):
    engine = _engine(store_url)
    if store_url.startswith("postgresql"):
        assert type(engine.store).__name__ == "AsyncPostgresStore"
        assert isinstance(engine.engine.store, LoopStore)
    else:
        assert isinstance(engine.store, qflow.Store)


def test_a_tick_on_the_asyncio_store_reads_its_batch_in_one_call(pg_url):
    async def main() -> None:
        async with _engine(pg_url) as engine:
            for i in range(3):
                await engine.report(dict(GOLD, description=f"room {i}"))
            calls = Counter()
            store = engine.store

            def counting(name):
                method = getattr(store, name)

                def counted(*args):
                    calls[name] += 1
                    return method(*args)
                return counted

            for name in ("get", "events", "read_many"):
                setattr(store, name, counting(name))
            report = await engine.tick(T0 + 3 * M)
            assert (report.incidents, report.effects) == (3, 3)
            assert calls == Counter(read_many=1)

    asyncio.run(main())


def test_an_asyncio_store_without_read_many_is_read_one_incident_at_a_time():
    class Reads:
        def __init__(self, states):
            self.states, self.calls = states, []

        async def get(self, iid):
            self.calls.append(("get", iid))
            return self.states.get(iid)

        async def events(self, iid):
            self.calls.append(("events", iid))
            return ()

    async def main() -> None:
        state = qflow.Engine(qflow.load_ruleset_text(BASE, file="base.yaml"), clock=qflow.FakeClock(T0)).report(GOLD)
        reads = Reads({state.id: state})
        store = LoopStore(reads, asyncio.get_running_loop())
        got = await asyncio.to_thread(store.read_many, [state.id, "INC-404"])
        assert got == {state.id: (state, ())}
        assert reads.calls == [("get", state.id), ("events", state.id), ("get", "INC-404")]

    asyncio.run(main())


def test_report_transition_and_read_back(store_url):
    async def main() -> None:
        async with _engine(store_url) as engine:
            state = await engine.report(GOLD, actor="前台")
            assert state.decision.severity == "high" and state.decision.team == "front-office"
            again = await engine.report(dict(GOLD, external_id="pms-1"))
            retry = await engine.report(dict(GOLD, external_id="pms-1"))
            assert retry == again and retry.id != state.id
            moved = await engine.transition(state.id, "confirmed", actor="值班经理")
            assert moved.stage is qflow.Stage.CONFIRMED
            assert await engine.get(state.id) == moved
            events = await engine.events(state.id)
            assert [e.type for e in events] == ["IncidentReported", "DecisionMade", "StageChanged"]
            assert qflow.events.fold(events) == moved
            assert [s.id for s in await engine.query(stages=(qflow.Stage.CONFIRMED,))] == [state.id]
            assert [d.clock for d in await engine.due(T0 + timedelta(hours=2)) if d.incident_id == state.id] \
                == ["respond"]
            with pytest.raises(qflow.TransitionError) as err:
                await engine.transition(state.id, "closed")
            assert str(err.value).startswith(f"cannot move {state.id} to closed: ")
            with pytest.raises(qflow.IncidentNotFoundError) as err2:
                await engine.get("INC-404")
            assert str(err2.value) == "no incident 'INC-404' in this store"

    asyncio.run(main())


def test_many_concurrent_reports_each_get_their_own_incident(store_url):
    async def main() -> None:
        async with _engine(store_url) as engine:
            states = await asyncio.gather(*(engine.report(dict(GOLD, description=f"room {i}")) for i in range(40)))
            assert len({s.id for s in states}) == 40
            stored = await engine.query()
            assert sorted(s.id for s in stored) == sorted(s.id for s in states)
            for s in states:
                assert [e.seq for e in await engine.events(s.id)] == [1, 2]

    asyncio.run(main())


def test_a_blank_external_id_or_dedup_key_is_no_key(store_url):
    async def main() -> None:
        async with _engine(store_url) as engine:
            states = [await engine.report(dict(GOLD, description=d, external_id="", dedup_key=" "))
                      for d in ("1203房空调不制冷", "厨房起火")]
            states += await engine.report_many([dict(GOLD, external_id=" ", dedup_key="")] * 2)
            assert len({s.id for s in states}) == 4
            assert {(s.incident.external_id, s.incident.dedup_key) for s in states} == {(None, None)}

    asyncio.run(main())


def _pair(store_url: str) -> tuple[AsyncEngine, AsyncEngine]:
    """Two workers on one store, each with its own connection (one memory store shared)."""
    pm = qflow.make_plugin_manager(autoload=False)
    ruleset = qflow.load_ruleset_text(BASE + "intake: {dedup_window: 2h}\n", file="base.yaml", plugins=pm)
    shared = qflow.MemoryStore() if store_url == "memory://" else None
    return tuple(AsyncEngine(ruleset, plugins=pm, store=shared or store_url, clock=qflow.FakeClock(T0))
                 for _ in range(2))  # type: ignore[return-value]


def _meanwhile(engine: AsyncEngine, name: str, run) -> None:  # type: ignore[no-untyped-def]
    """Let the coroutine *run* (another worker reporting) go between the store's next
    answer to the look-up *name* and what *engine* does with it, every time."""
    store = engine.store
    look_up = getattr(store, name)
    loop = asyncio.get_running_loop()
    if asyncio.iscoroutinefunction(look_up):  # the asyncio store: called on the loop
        async def held_async(*args):  # type: ignore[no-untyped-def]
            found = await look_up(*args)
            del store.__dict__[name]
            await run()
            return found

        setattr(store, name, held_async)
        return

    def held(*args):  # type: ignore[no-untyped-def]
        found = look_up(*args)  # in the engine's worker thread
        del store.__dict__[name]
        asyncio.run_coroutine_threadsafe(run(), loop).result()
        return found

    setattr(store, name, held)


@pytest.mark.parametrize("batch", [False, True], ids=["report", "report_many"])
@pytest.mark.parametrize("key", ["external_id", "dedup_key"])
def test_concurrent_repeats_of_one_report_end_as_one_incident(store_url, key, batch):
    first_report = dict(GOLD, **{key: "crm-1" if key == "external_id" else "1512-noise"})
    again = dict(first_report, channel="email")

    async def main() -> None:
        first, second = _pair(store_url)
        async with first, second:
            recorded = []

            async def other_worker() -> None:
                recorded.append(await first.report(first_report))

            _meanwhile(second, "find_external" if key == "external_id" else "find_dedup", other_worker)
            got = (await second.report_many([again]))[0] if batch else await second.report(again)
            assert got.id == recorded[0].id
            assert got.reports == (2 if key == "dedup_key" else 1)
            assert [s.id for s in await second.query()] == [got.id]

    asyncio.run(main())


def test_tick_fires_each_step_once_and_the_loop_keeps_running(store_url):
    async def main() -> None:
        async with _engine(store_url, steps=2) as engine:
            ids = [(await engine.report(dict(GOLD, description=f"room {i}"))).id for i in range(5)]
            beats = 0

            async def heartbeat() -> None:
                nonlocal beats
                while True:
                    beats += 1
                    await asyncio.sleep(0)

            beat = asyncio.create_task(heartbeat())
            first = await engine.tick(T0 + 3 * M, worker="a")
            second = await engine.tick(T0 + 3 * M, worker="b")
            beat.cancel()
            assert (first.incidents, first.effects) == (5, 10)
            assert (second.incidents, second.effects) == (0, 0)
            assert beats > 0  # the loop ran other tasks while the tick worked in its thread
            fired = Counter()
            for iid in ids:
                for e in await engine.events(iid):
                    if e.type == STEP_FIRED:
                        fired[(iid, e.data["key"])] += 1
            assert len(fired) == 10 and set(fired.values()) == {1}

    asyncio.run(main())


def test_other_engine_commands_are_coroutines_too(store_url):
    async def main() -> None:
        async with _engine(store_url) as engine:
            state = await engine.report(GOLD)
            await engine.transition(state.id, "confirmed")
            await engine.transition(state.id, "analysing")
            cause = qflow.Cause(id="C-1", summary="排班不足", method="note")
            after = await engine.record_cause(state.id, cause, actor="质检")
            assert [c.id for c in after.causes] == ["C-1"]
            assert engine.decide(qflow.parse_incident(GOLD), T0).severity == "high"

    asyncio.run(main())


def test_the_store_is_not_called_from_the_loop_thread(store_url):
    if not store_url.startswith("postgresql"):
        pytest.skip("only the asyncio store is bound to a loop")

    async def main() -> None:
        async with _engine(store_url) as engine:
            await engine.report(GOLD)
            with pytest.raises(RuntimeError) as err:
                engine.engine.store.get("INC-1")
            assert str(err.value) == ("Store.get called from the event loop's own thread; "
                                      "await the AsyncEngine method instead")

    asyncio.run(main())


def test_the_library_never_runs_an_event_loop_itself():
    pattern = re.compile(r"asyncio\.run\(|run_until_complete\(|new_event_loop\(")
    found = [str(p.relative_to(ROOT)) for base in ("src", "plugins") for p in (ROOT / base).rglob("*.py")
             if pattern.search(p.read_text(encoding="utf-8"))]
    assert found == []


def test_concurrent_ticks_and_deliveries_claim_under_names_of_their_own():
    async def main() -> list[str]:
        async with _engine("memory://") as engine:
            names: list[str] = []
            engine.engine.tick = lambda now, **kw: names.append(kw["worker"])
            engine.engine.deliver = lambda now, **kw: names.append(kw["worker"])
            await asyncio.gather(engine.tick(), engine.deliver(), engine.deliver(worker="web-1"))
            return sorted(names), engine.engine.worker_name

    names, base = asyncio.run(main())
    assert names == sorted([f"{base}.1", f"{base}.2", "web-1"])


def test_a_large_batch_is_decoded_and_encoded_off_the_event_loop(pg_url):
    import threading

    from qflow_postgres._async import OFFLOAD_AT

    async def main() -> None:
        async with _engine(pg_url) as engine:
            states = await engine.report_many([dict(GOLD, description=f"room {i}") for i in range(OFFLOAD_AT)])
            store, codec = engine.store, engine.store._codec
            loop_thread = threading.get_ident()
            seen: list[tuple[str, bool]] = []
            for name in ("read_state", "event", "state_row", "event_row"):
                method = getattr(codec, name)

                def spy(*args, _method=method, _name=name):
                    seen.append((_name, threading.get_ident() == loop_thread))
                    return _method(*args)

                setattr(codec, name, spy)
            ids = [s.id for s in states]
            got = await store.read_many(ids)
            assert [got[i][0] for i in ids] == [await store.get(i) for i in ids]
            read = [n for n, on_loop in seen if not on_loop]
            assert {"read_state", "event"} <= set(read)
            seen.clear()
            more = [qflow.Write((), got[i][0], None) for i in ids]
            await store.write(more)
            assert {n for n, on_loop in seen if not on_loop} == {"state_row"}
            seen.clear()
            assert (await store.read_many(ids[:1]))[ids[0]][0] == got[ids[0]][0]  # small: on the loop
            assert {on_loop for _, on_loop in seen} == {True}

    asyncio.run(main())


def test_what_the_async_engine_does_not_have_is_named_as_its_own():
    engine = AsyncEngine(qflow.load_ruleset_text(BASE, file="base.yaml"), clock=qflow.FakeClock(T0))
    with pytest.raises(AttributeError) as info:
        engine.swap_rulset  # noqa: B018 - the attribute access is the test
    assert str(info.value) == "'AsyncEngine' object has no attribute 'swap_rulset' (nor has its Engine)"
    with pytest.raises(AttributeError) as info:
        engine.delivery_random  # noqa: B018
    assert str(info.value) == "delivery_random is not a command; read it from AsyncEngine.engine"

