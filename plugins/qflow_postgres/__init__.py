"""Built-in plugin: the PostgreSQL store, for several workers on several machines.

``postgresql://user@host:5432/db`` (or ``postgres://``) opens it; ``?schema=NAME``
keeps qflow's tables in their own schema (created when missing), ``?synchronous_commit=off``
(opt-in; the server's setting otherwise) trades the last moments before a server crash
for faster one-at-a-time commits, and every other parameter is psycopg's (``sslmode``, ``connect_timeout``, ``options=-csearch_path=NAME``
...). Put the password in ``PGPASSWORD`` or ``~/.pgpass``, never in a ruleset.

The same tables as the SQLite store: the event log keyed by (incident, seq), the
state query table written in the same transaction, timers indexed by due time,
the outbox with its delivery attempts, documents, and the schema version. Due
timers and outbox messages are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and
a lease, so any number of workers share them without handing one out twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qflow import hookimpl

from qflow_postgres._errors import SchemaVersionError, StoreError
from qflow_postgres._schema import CURRENT as SCHEMA_VERSION
from qflow_postgres._url import SCHEMES, Target, parse

if TYPE_CHECKING:
    from qflow_postgres._async import AsyncPostgresStore
    from qflow_postgres._sync import PostgresStore

__all__ = ["AsyncPostgresStore", "PostgresStore", "SCHEMA_VERSION", "SchemaVersionError", "StoreError", "open_store",
           "parse"]


def __getattr__(name: str) -> Any:
    # psycopg is imported when a postgres store is first wanted, not by every `qflow` run.
    if name == "PostgresStore":
        from qflow_postgres._sync import PostgresStore

        return PostgresStore
    if name == "AsyncPostgresStore":
        from qflow_postgres._async import AsyncPostgresStore

        return AsyncPostgresStore
    raise AttributeError(name)


def open_store(url: str, *, upgrade: bool = False, create: bool = True, **options: Any) -> PostgresStore:
    """Open the store at *url*, creating its schema and tables where there are none
    (with *create* False, such a URL is refused: a mistyped ``?schema=``)."""
    from qflow_postgres._sync import PostgresStore

    return PostgresStore(_target(url), upgrade=upgrade, create=create, **options)


def _target(url: str) -> Target:
    try:
        target = parse(url)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if target is None:
        raise StoreError(f"'{url}' is not a postgresql:// URL")
    return target


def _ours(url: str) -> bool:
    return url.split(":", 1)[0] in SCHEMES


@hookimpl
def qflow_open_store(url: str, create: bool) -> PostgresStore | None:
    return open_store(url, create=create) if _ours(url) else None


@hookimpl
def qflow_open_async_store(url: str) -> AsyncPostgresStore | None:
    if not _ours(url):
        return None
    from qflow_postgres._async import AsyncPostgresStore

    return AsyncPostgresStore(_target(url))
