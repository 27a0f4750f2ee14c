"""PostgreSQL for the worker, async and fault tests: each test gets its own schema.

The server is ``QFLOW_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
the same as the store contract suite in ``tests/store``); the store keeps its tables
in ``?schema=NAME``. Without a server these tests skip with one line saying how to
enable them; under ``CI=true`` an unreachable server fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
_WHY: dict[str, str | None] = {}


def pg_base() -> str:
    return os.environ.get("QFLOW_TEST_PG", PG_DEFAULT)


def require_pg() -> None:
    if "why" not in _WHY:
        try:
            import psycopg

            with psycopg.connect(pg_base(), connect_timeout=3) as con:
                con.execute("SELECT 1")
            _WHY["why"] = None
        except Exception as exc:  # any failure to reach it means: skip (or fail under CI)
            parts = urlsplit(pg_base())
            _WHY["why"] = (f"PostgreSQL at {parts.hostname}:{parts.port or 5432} does not answer "
                           f"({type(exc).__name__}); start one or set QFLOW_TEST_PG=postgresql://... "
                           "to run the postgresql tests")
    why = _WHY["why"]
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI=true: the postgresql tests must run)")
        pytest.skip(why)


def admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(pg_base(), autocommit=True, connect_timeout=3)


class Schemas:
    """Hands out store URLs with fresh schemas and drops them afterwards."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def url(self) -> str:
        name = f"qflow_t_{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        base = pg_base()
        return f"{base}{'&' if '?' in base else '?'}schema={name}"

    def drop(self) -> None:
        with admin() as con:
            for name in self.names:
                con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_schemas() -> Iterator[Schemas]:
    require_pg()
    schemas = Schemas()
    try:
        yield schemas
    finally:
        schemas.drop()


@pytest.fixture
def pg_url(pg_schemas: Schemas) -> str:
    return pg_schemas.url()


@pytest.fixture
def pg_admin(pg_schemas: Schemas):  # type: ignore[no-untyped-def]
    """Opens a connection to the test server (beside the store's own), for the test to
    look at tables or terminate backends."""
    return admin
