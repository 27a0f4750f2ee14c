"""Store URLs: ``postgresql://user@host:5432/db?schema=NAME`` (or ``postgres://``).

Everything but ``schema`` is psycopg's own connection string, passed on as given
(``sslmode``, ``options=-csearch_path=NAME`` ...). ``schema=NAME`` puts qflow's tables
in that schema, creating it when missing: several qflow installations, or tests
running side by side, can share one database. ``synchronous_commit=off`` (opt-in, for
this store's sessions only) lets a COMMIT return before its WAL reaches the disk: a
server crash can lose the last moments of acknowledged reports (never half of one).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

__all__ = ["SCHEMES", "Target", "parse"]

SCHEMES = ("postgresql", "postgres")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}\Z")


_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")


@attrs.frozen
class Target:
    conninfo: str
    schema: str | None
    shown: str  # the URL without a password, for messages and logs
    synchronous_commit: str | None = None  # opt-in per session; the server's setting otherwise


def parse(url: str) -> Target | None:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return None
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    schema = schemas[-1] if schemas else None
    if schema is not None and not _NAME.match(schema):
        raise ValueError(f"schema={schema!r} in the store URL is not a plain SQL name; "
                         "use letters, digits and _ (e.g. schema=qflow)")
    commits = [v for k, v in query if k == "synchronous_commit"]
    commit = commits[-1] if commits else None
    if commit is not None and commit not in _COMMIT:
        raise ValueError(f"synchronous_commit={commit!r} in the store URL is not one of {', '.join(_COMMIT)}; "
                         "leave it out to keep the server's setting")
    rest = urlencode([(k, v) for k, v in query if k not in ("schema", "synchronous_commit")])
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, rest, parts.fragment))
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    shown = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return Target(conninfo, schema, shown, commit)
