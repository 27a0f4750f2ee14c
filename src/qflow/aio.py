"""qflow for asyncio applications: :class:`AsyncEngine`, the same engine behind ``await``.

The engine's commands (report, transitions, tick, delivery) are one code path, the
sync one in ``qflow.engine``; an async copy of them would drift from it. So each
awaited command runs that code in a worker thread (``asyncio.to_thread``) and the
event loop stays free. Where the store's driver has an asyncio API (PostgreSQL through
psycopg), the store's I/O runs on the application's own event loop: the thread hands
each store call to the loop (:class:`LoopStore`) and waits for it, so the
connection belongs to the loop, as asyncio applications expect. Other stores (memory,
SQLite) are called from the thread directly.

Nothing here starts or runs an event loop (no ``asyncio.run``): the application owns
the loop; qflow only awaits inside it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pluggy

from qflow._manager import make_plugin_manager
from qflow.clock import Clock
from qflow.engine import Engine, open_store
from qflow.model import Decision, Event, Incident, IncidentState, Stage
from qflow.ruleset import Ruleset, load_ruleset
from qflow.store import Due, IncidentQuery, Store

__all__ = ["AsyncEngine", "AsyncStore", "LoopStore"]

_MISSING = object()


@runtime_checkable
class AsyncStore(Protocol):
    """A store whose methods are coroutines: the methods of :class:`qflow.Store`,
    awaited, each one transaction. ``qflow_open_async_store`` returns one."""

    async def write(self, writes: Sequence[Any]) -> None: ...

    async def get(self, incident_id: str) -> IncidentState | None: ...

    async def events(self, incident_id: str) -> tuple[Event, ...]: ...

    async def close(self) -> None: ...


#: The Store methods a LoopStore hands to the loop (all of qflow.Store's public ones).
_STORE_METHODS = (
    "next_id", "next_ids", "write", "append", "get", "events", "find_external", "find_dedup", "query", "count",
    "due", "claim_timers", "release_timers", "timers", "claim_outbox", "record_delivery", "outbox", "attempts",
    "save_document", "document", "documents", "aggregate", "schema_version",
)


class LoopStore(Store):
    """A :class:`qflow.Store` for code running in a worker thread, backed by an
    :class:`AsyncStore` whose connection lives on *loop*.

    Each call is scheduled on the loop and waited for; calling one from the loop's own
    thread would wait for itself, so that raises instead.
    """

    def __init__(self, store: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.async_store = store
        self.loop = loop

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        loop = self.loop
        if loop is None:
            raise RuntimeError("this store is bound to no event loop yet; use it through AsyncEngine")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError(f"Store.{name} called from the event loop's own thread; "
                               "await the AsyncEngine method instead")
        method = getattr(self.async_store, name, None)
        if method is None:
            raise NotImplementedError(f"{type(self.async_store).__name__} has no {name}")
        return asyncio.run_coroutine_threadsafe(method(*args, **kwargs), loop).result()

    def read_many(self, incident_ids: Sequence[str]) -> dict[str, tuple[IncidentState, tuple[Event, ...]]]:
        """One call for a tick's batch where the async store reads it in one go (the
        PostgreSQL one does); else each incident's state and log, one call each."""
        if getattr(self.async_store, "read_many", None) is None:
            return super().read_many(incident_ids)
        return self._call("read_many", incident_ids)  # type: ignore[no-any-return]

    def declare(self, projections: Sequence[Any]) -> None:
        """Hand *projections* to the async store. ``Engine.__init__`` calls this before
        any loop is bound, so it is a plain method there: it records them, and the store
        creates their tables at its first awaited call."""
        declare = getattr(self.async_store, "declare", None)
        if declare is not None:
            declare(projections)

    def close(self) -> None:
        """Closing is the owner's job: ``await AsyncEngine.aclose()``."""

    def __repr__(self) -> str:
        return f"LoopStore({self.async_store!r})"


def _forward(name: str) -> Callable[..., Any]:
    def method(self: LoopStore, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = getattr(Store, name).__doc__ if hasattr(Store, name) else None
    return method


for _name in _STORE_METHODS:
    setattr(LoopStore, _name, _forward(_name))
LoopStore.__abstractmethods__ = frozenset()


class AsyncEngine:
    """The :class:`qflow.Engine` API with coroutines for everything that touches the
    store: ``await engine.report(...)``, ``await engine.transition(...)``,
    ``await engine.tick(now)``, ``await engine.query(...)``.

    *store* is a URL, a :class:`qflow.Store`, an :class:`AsyncStore` or None (memory).
    A URL whose plugin has an asyncio store (``qflow_open_async_store``) gets it; any
    other gets the sync store, called from worker threads. ``decide`` is pure and
    stays a plain method. Commands of the engine not listed here (``record_cause``,
    ``plan_action`` ...) are available too, as coroutines of the same name.

    Use ``async with`` or ``await engine.aclose()`` to release the store.
    """

    def __init__(self, ruleset: Ruleset, *, plugins: pluggy.PluginManager | None = None,
                 store: Store | AsyncStore | str | None = None, clock: Clock | None = None) -> None:
        pm = plugins or make_plugin_manager()
        self._async_store: Any = None
        sync_store: Store | None
        if isinstance(store, str):
            self._async_store = pm.hook.qflow_open_async_store(url=store)
            sync_store = None if self._async_store is not None else open_store(store, pm)
        elif store is None or isinstance(store, Store):
            sync_store = store
        else:
            self._async_store = store
            sync_store = None
        if self._async_store is not None:
            sync_store = LoopStore(self._async_store)
        self.engine = Engine(ruleset, plugins=pm, store=sync_store, clock=clock)
        self._calls = itertools.count(1)

    @classmethod
    def from_path(cls, path: str, *, plugins: Iterable[object] = (), blocked: Iterable[str] = (),
                  autoload: bool = True, store: Store | AsyncStore | str | None = None,
                  clock: Clock | None = None) -> AsyncEngine:
        """Load the ruleset at *path* with the installed plugins plus *plugins*."""
        pm = make_plugin_manager(autoload=autoload, blocked=blocked, plugins=plugins)
        return cls(load_ruleset(path, plugins=pm), plugins=pm, store=store, clock=clock)

    # -- plumbing ----------------------------------------------------------------------

    @property
    def ruleset(self) -> Ruleset:
        return self.engine.ruleset

    @property
    def plugins(self) -> pluggy.PluginManager:
        return self.engine.plugins

    @property
    def clock(self) -> Clock:
        return self.engine.clock

    @property
    def store(self) -> Any:
        """The store: the :class:`AsyncStore` when there is one, else the sync store."""
        return self._async_store if self._async_store is not None else self.engine.store

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        store = self.engine.store
        if isinstance(store, LoopStore):
            loop = asyncio.get_running_loop()
            if store.loop is None:
                store.loop = loop
            elif store.loop is not loop:
                raise RuntimeError("this AsyncEngine's store belongs to another event loop; "
                                   "make one AsyncEngine per loop")
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def aclose(self) -> None:
        """Close the store (the async one on this loop, a sync one in a thread)."""
        if self._async_store is not None:
            await self._async_store.close()
        else:
            await asyncio.to_thread(self.engine.store.close)

    async def __aenter__(self) -> AsyncEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the engine's API --------------------------------------------------------------

    def decide(self, incident: Incident | Mapping[str, Any], now: datetime | None = None) -> Decision:
        """Pure, as :meth:`qflow.Engine.decide`: nothing to await."""
        return self.engine.decide(incident, now)

    async def report(self, incident: Incident | Mapping[str, Any], *, actor: str | None = None) -> IncidentState:
        return await self._run(self.engine.report, incident, actor=actor)

    async def transition(self, incident_id: str, target: Stage | str, *, actor: str | None = None,
                         reason: str | None = None) -> IncidentState:
        return await self._run(self.engine.transition, incident_id, target, actor=actor, reason=reason)

    async def tick(self, now: datetime | None = None, **options: Any) -> Any:
        options.setdefault("worker", self._call_name())
        return await self._run(self.engine.tick, now, **options)

    async def deliver(self, now: datetime | None = None, **options: Any) -> Any:
        deliver = getattr(self.engine, "deliver", None)
        if deliver is None:
            raise NotImplementedError("this qflow's engine has no outbox delivery")
        options.setdefault("worker", self._call_name())
        return await self._run(deliver, now, **options)

    def _call_name(self) -> str:
        # Awaited ticks and deliveries may run at once (asyncio.gather), each in its
        # own thread: under one name they would take each other's claims and send
        # messages twice, and a tick's release would drop another call's claims.
        return f"{self.engine.worker_name}.{next(self._calls)}"

    async def get(self, incident_id: str) -> IncidentState:
        return await self._run(self.engine.get, incident_id)

    async def events(self, incident_id: str) -> tuple[Event, ...]:
        return await self._run(self.engine.events, incident_id)

    async def query(self, query: IncidentQuery | None = None, **filters: Any) -> list[IncidentState]:
        return await self._run(self.engine.query, query, **filters)

    async def due(self, until: datetime) -> list[Due]:
        return await self._run(self.engine.due, until)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        # Every other public command of the engine, awaited the same way.
        if name.startswith("_") or name == "engine":
            raise AttributeError(name)
        target = getattr(self.engine, name, _MISSING)
        if target is _MISSING:
            raise AttributeError(f"'AsyncEngine' object has no attribute '{name}' (nor has its Engine)")
        if not callable(target):
            raise AttributeError(f"{name} is not a command; read it from AsyncEngine.engine")

        @functools.wraps(target)
        async def command(*args: Any, **kwargs: Any) -> Any:
            return await self._run(target, *args, **kwargs)

        return command

