"""The embedded default store: one SQLite file, opened from ``sqlite:///path`` URLs.

``sqlite:///qflow.sqlite3`` is a file relative to the current directory,
``sqlite:////var/lib/qflow/site.sqlite3`` an absolute path. Query parameters:
``synchronous=normal|full|off|extra`` (default normal; full makes every commit
reach the disk before it returns) and ``timeout=SECONDS`` (how long to wait for
another process's write, default 10).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from qflow.hookimpl import hookimpl
from qflow.store import Store, StoreError

from qflow_sqlite._store import SYNCHRONOUS, SQLiteStore

__all__ = ["SQLiteStore", "parse_url"]

_PARAMS = ("synchronous", "timeout")


def parse_url(url: str) -> tuple[str, dict[str, object]]:
    """``(path, options)`` of an ``sqlite:///path?...`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise StoreError(f"'{url}' is not an sqlite: URL; write sqlite:///relative/path or sqlite:////absolute/path")
    if parts.netloc:
        raise StoreError(f"'{url}' names a host ('{parts.netloc}'); SQLite stores are local files: "
                         "write sqlite:///relative/path or sqlite:////absolute/path")
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path:
        raise StoreError(f"'{url}' names no file; write sqlite:///qflow.sqlite3 or sqlite:////absolute/path")
    options: dict[str, object] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "synchronous":
            if value.lower() not in SYNCHRONOUS:
                raise StoreError(f"'{url}': synchronous={value} is not one of {', '.join(SYNCHRONOUS)}")
            options["synchronous"] = value.lower()
        elif key == "timeout":
            try:
                options["timeout"] = float(value)
            except ValueError:
                raise StoreError(f"'{url}': timeout={value} is not a number of seconds") from None
        else:
            raise StoreError(f"'{url}': unknown parameter '{key}'; the parameters are {', '.join(_PARAMS)}")
    return path, options


@hookimpl
def qflow_open_store(url: str, create: bool) -> Store | None:
    if not url.startswith("sqlite:"):
        return None
    path, options = parse_url(url)
    return SQLiteStore(path, create=create, **options)  # type: ignore[arg-type]
