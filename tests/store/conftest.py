"""The one store contract suite runs against every store: ``memory``, ``sqlite`` and
``postgresql``.

How each store is opened, and what a store plugin must accept:

- ``sqlite``: a fresh file in the test's tmp directory, ``sqlite:///<tmp>/store.sqlite3``.
- ``postgresql``: ``QFLOW_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
  plus ``?schema=<fresh name>`` (``&schema=`` when the URL has a query already). The
  store creates the schema when it is missing and keeps every table in it; the suite
  drops the schema after the test. Without a server the postgresql tests skip with one
  reason (how to enable them); under ``CI=true`` an unreachable server is a failure.
  Until the postgres plugin opens ``postgresql://`` URLs they skip, saying so.

Every store is opened through ``qflow.engine.open_store(url, pm)`` with a plugin
manager holding only that store's plugin, so a half-written other plugin cannot break
this suite. ``StoreFactory.open()`` gives another handle on the same data (a second
connection, as a second worker would have); for the memory store it is the same object.

Error messages are part of the contract and asserted as full strings: a lost append
race says ``"INC-1: event seq 3 does not follow 4; reload the incident and try again"``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

import qflow
from qflow.engine import open_store
from qflow.store import Store

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
STORES = ("memory", "sqlite", "postgresql")


def pg_base() -> str:
    return os.environ.get("QFLOW_TEST_PG", PG_DEFAULT)


_PG_STATE: dict[str, str | None] = {}


def pg_unreachable() -> str | None:
    """Why the test server cannot be used, or None; asked once per run."""
    if "why" not in _PG_STATE:
        url = pg_base()
        try:
            import psycopg

            with psycopg.connect(url, connect_timeout=3) as con:
                con.execute("SELECT 1")
            _PG_STATE["why"] = None
        except Exception as exc:  # any failure to reach it means: skip (or fail under CI)
            parts = urlsplit(url)
            _PG_STATE["why"] = (f"PostgreSQL at {parts.hostname}:{parts.port or 5432} does not answer "
                                f"({type(exc).__name__}); start one or set QFLOW_TEST_PG=postgresql://... "
                                "to run the postgresql store tests")
    return _PG_STATE["why"]


def _pm_for(kind: str) -> object:
    if kind == "sqlite":
        import qflow_sqlite as plugin
    else:
        import qflow_postgres as plugin
    return qflow.make_plugin_manager(autoload=False, builtins=False, plugins=[(plugin, f"qflow_{kind}")])


class StoreFactory:
    """Opens handles on one test's store; closes them (and drops PG schemas) at the end."""

    def __init__(self, kind: str, url: str | None) -> None:
        self.kind = kind
        self.url = url
        self.durable = kind != "memory"
        self._handles: list[Store] = []
        self._memory: Store | None = None

    def open(self) -> Store:
        if self.kind == "memory":
            if self._memory is None:
                self._memory = qflow.MemoryStore()
            return self._memory
        assert self.url is not None
        store = open_store(self.url, _pm_for(self.kind))  # type: ignore[arg-type]
        self._handles.append(store)
        return store

    def close(self) -> None:
        for store in self._handles:
            try:
                store.close()
            except Exception:  # a test that broke the store must not hide its own failure
                pass


@pytest.fixture(params=STORES)
def store_factory(request: pytest.FixtureRequest, tmp_path) -> Iterator[StoreFactory]:
    kind = request.param
    schema = None
    if kind == "memory":
        factory = StoreFactory(kind, None)
    elif kind == "sqlite":
        factory = StoreFactory(kind, f"sqlite:///{tmp_path / 'store.sqlite3'}")
    else:
        why = pg_unreachable()
        if why is not None:
            if os.environ.get("CI") == "true":
                pytest.fail(why + " (CI=true: the postgresql tests must run)")
            pytest.skip(why)
        schema = f"qflow_test_{uuid.uuid4().hex[:12]}"
        base = pg_base()
        factory = StoreFactory(kind, f"{base}{'&' if '?' in base else '?'}schema={schema}")
    try:
        yield factory
    finally:
        factory.close()
        if schema is not None:
            import psycopg

            with psycopg.connect(pg_base(), autocommit=True, connect_timeout=3) as con:
                con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    return store_factory.open()


@pytest.fixture
def pm() -> object:
    """For the tests that run the engine over every store: only the plugins intake and
    the clocks need (rules, sla), so other plugins being rewritten cannot break them."""
    import qflow_rules
    import qflow_sla

    return qflow.make_plugin_manager(autoload=False, builtins=False,
                                     plugins=[(qflow_rules, "rules"), (qflow_sla, "sla")])
