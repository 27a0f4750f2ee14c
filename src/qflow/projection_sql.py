"""SQL for projections, shared by the SQL stores (SQLite and PostgreSQL plugins).

A projection is one table ``qf_proj_<name>`` keyed by ``(qf_incident, qf_n)``; an
aggregate is one grouped scan with every measure as a conditional aggregate, plus
one window query per percentile measure. Column and function names come only from
the projection's declaration (checked by :func:`qflow.store.check_query`); values
are always parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from qflow.store import Filter, Measure, Projection, check_query, nearest_rank, projection_rows

__all__ = ["aggregate", "column_type", "create_statements", "delete_statement", "insert_many_statement",
           "insert_statement", "many_values", "row_values", "table"]

_TYPES = {"sqlite": {"text": "TEXT", "int": "INTEGER", "real": "REAL"},
          "postgresql": {"text": "TEXT", "int": "BIGINT", "real": "DOUBLE PRECISION"}}
_PERCENT = {"median": 50, "p90": 90}
_CAST: Mapping[str, Any] = {"text": str, "int": int, "real": float}
# Names go into SQL unquoted (tables) or double-quoted (columns): only plain ones.
_PLAIN = re.compile(r"[a-z_][a-z0-9_]{0,40}\Z")


def table(projection: Projection) -> str:
    if not _PLAIN.match(projection.name):
        raise ValueError(f"projection name {projection.name!r} is not a plain SQL name; "
                         "use lower-case letters, digits and _ (e.g. incident_facts)")
    return f"qf_proj_{projection.name}"


def column_type(kind: str, dialect: str) -> str:
    """The SQL type of a projection column of *kind* (one of ``COLUMN_TYPES``)."""
    return _TYPES[dialect][kind]


def insert_many_statement(projection: Projection, dialect: str) -> str:
    """One INSERT for any number of rows, given as one JSON array of objects (its one
    parameter is :func:`many_values`): one parameter however wide the projection, so
    psycopg caches and prepares the statement, and one JSON encoding per batch."""
    if dialect != "postgresql":
        raise ValueError(f"insert_many_statement is for postgresql, not {dialect}; use insert_statement")
    name = table(projection)
    return f"INSERT INTO {name} SELECT * FROM json_populate_recordset(NULL::{name}, %s::json)"


def many_values(projection: Projection, values: Sequence[tuple[Any, ...]], dialect: str) -> tuple[str]:
    """:func:`row_values` tuples as the parameter of :func:`insert_many_statement`, each
    value of its column's type (True in an int column is 1, 3 in a real one 3.0)."""
    names = ("qf_incident", "qf_n", *projection.column_names())
    kinds = ("text", "int", *(t for _, t in projection.columns))
    rows = []
    for r in values:
        row = {}
        for k, kind, v in zip(names, kinds, r, strict=True):
            try:
                row[k] = None if v is None else _CAST[kind](v)
            except (TypeError, ValueError):
                raise ValueError(f"projection {projection.name}: {r[0]} gave {v!r} for {k}, which is {kind}; "
                                 "fix the plugin's qflow_project") from None
        rows.append(row)
    return (json.dumps(rows, ensure_ascii=False, separators=(",", ":")),)


def delete_statement(projection: Projection, dialect: str) -> str:
    """Removes one incident's rows (before its new ones are inserted)."""
    mark = "?" if dialect == "sqlite" else "%s"
    return f"DELETE FROM {table(projection)} WHERE qf_incident = {mark}"


def create_statements(projection: Projection, dialect: str) -> list[str]:
    """CREATE TABLE and its indexes (on every time column, where periods select)."""
    types = _TYPES[dialect]
    for c, _t in projection.columns:
        if not _PLAIN.match(c) or c in ("qf_incident", "qf_n"):
            raise ValueError(f"projection {projection.name}: column name {c!r} is not a plain SQL name; "
                             "use lower-case letters, digits and _ (not qf_incident or qf_n)")
    cols = ", ".join(f'"{c}" {types[t]}' for c, t in projection.columns)
    name = table(projection)
    # The key columns carry a prefix: a projection may have its own incident_id column.
    out = [f'CREATE TABLE IF NOT EXISTS {name} (qf_incident TEXT NOT NULL, qf_n INTEGER NOT NULL, {cols}, '
           f'PRIMARY KEY (qf_incident, qf_n))']
    for c, t in projection.columns:
        # Periods select on the time columns, the backlog on the open flag.
        if (t == "real" and (c.endswith("_at") or c == "due")) or (t == "int" and c.startswith("is_")):
            out.append(f'CREATE INDEX IF NOT EXISTS {name}_{c} ON {name} ("{c}")')
    return out


def insert_statement(projection: Projection, dialect: str) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    cols = ", ".join(f'"{c}"' for c in projection.column_names())
    marks = ", ".join([mark] * (len(projection.columns) + 2))
    return f"INSERT INTO {table(projection)} (qf_incident, qf_n, {cols}) VALUES ({marks})"


def row_values(projection: Projection, incident_id: str, rows: Any) -> list[tuple[Any, ...]]:
    """The parameter tuples for one incident's rows, however ``qflow_project`` gave them."""
    names = projection.column_names()
    return [(incident_id, i, *(r.get(c) for c in names)) for i, r in enumerate(projection_rows(rows))]


def _condition(f: Filter, mark: str, params: list[Any]) -> str:
    col = f'"{f.column}"'
    if f.op == "is null" or (f.op == "==" and f.value is None):
        return f"{col} IS NULL"
    if f.op == "not null" or (f.op == "!=" and f.value is None):
        return f"{col} IS NOT NULL"
    if f.op == "in":
        values = list(f.value)
        if not values:
            return "1 = 0"
        params.extend(values)
        return f"{col} IN ({', '.join([mark] * len(values))})"
    params.append(f.value)
    if f.op == "!=":
        return f"({col} IS NULL OR {col} <> {mark})"  # as in Python: None differs from any value
    return f"{col} {'=' if f.op == '==' else f.op} {mark}"


def _all(filters: Sequence[Filter], mark: str, params: list[Any]) -> str:
    return " AND ".join(_condition(f, mark, params) for f in filters) if filters else "1 = 1"


def aggregate(run: Any, projection: Projection, measures: Sequence[Measure], group_by: Sequence[str],
              where: Sequence[Filter], dialect: str) -> list[tuple[Any, ...]]:
    """Run the aggregate with ``run(sql, params) -> rows``; the result has the shape of
    :meth:`qflow.Store.aggregate` (groups sorted, None first)."""
    check_query(projection, measures, group_by, where)
    mark = "?" if dialect == "sqlite" else "%s"
    name = table(projection)
    groups = ", ".join(f'"{g}"' for g in group_by)
    select: list[str] = []
    params: list[Any] = []
    percentiles: list[tuple[int, Measure]] = []
    for i, m in enumerate(measures):
        if m.fn in _PERCENT:
            select.append("NULL")
            percentiles.append((i, m))
            continue
        cond = _all(m.where, mark, params) if m.where else None
        col = f'"{m.column}"' if m.column else None
        if m.fn == "count" and col is None:
            select.append(f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)" if cond else "COUNT(*)")
            continue
        inner = f"CASE WHEN {cond} THEN {col} END" if cond else col
        fn = {"count": "COUNT", "count_distinct": "COUNT", "sum": "SUM", "avg": "AVG", "min": "MIN",
              "max": "MAX"}[m.fn]
        distinct = "DISTINCT " if m.fn == "count_distinct" else ""
        expr = f"{fn}({distinct}{inner})"
        if dialect == "postgresql" and m.fn in ("sum", "avg"):
            # PostgreSQL sums and averages integers as numeric (Decimal); the reference gives int and float.
            kind = dict(projection.columns)[m.column]
            expr = f"CAST({expr} AS {'BIGINT' if m.fn == 'sum' and kind == 'int' else 'DOUBLE PRECISION'})"
        select.append(expr)
    where_sql = _all(where, mark, params)
    sql = f"SELECT {groups + ', ' if groups else ''}{', '.join(select)} FROM {name} WHERE {where_sql}"
    if groups:
        sql += f" GROUP BY {groups}"
    found = {tuple(r[: len(group_by)]): list(r[len(group_by):]) for r in run(sql, params)}
    if not group_by and not found:
        found[()] = [0 if m.fn.startswith("count") else None for m in measures]
    # Percentiles under the same conditions come back in one plain read of the rows
    # those conditions select (the group values and every percentile column), and the
    # nearest ranks are picked here: one scan for all of them, where a window query
    # per column sorted the selection again and again.
    by_conditions: dict[tuple[Filter, ...], list[tuple[int, Measure]]] = {}
    for i, m in percentiles:
        by_conditions.setdefault(tuple(m.where), []).append((i, m))
    for conditions, members in by_conditions.items():
        got = _percentiles(run, name, conditions, [m for _, m in members], group_by, where, mark)
        for key, values in got.items():
            if key in found:
                for (i, _m), value in zip(members, values, strict=True):
                    found[key][i] = value
    out = []
    for key in sorted(found, key=lambda k: tuple((v is not None, v) for v in k)):
        values = found[key]
        for j, m in enumerate(measures):
            if m.fn.startswith("count") and values[j] is None:
                values[j] = 0  # SUM over no rows is NULL in SQL; a count of nothing is 0
        out.append(key + tuple(values))
    return out


def _percentiles(run: Any, name: str, conditions: Sequence[Filter], measures: Sequence[Measure],
                 group_by: Sequence[str], where: Sequence[Filter],
                 mark: str) -> Mapping[tuple[Any, ...], Sequence[Any]]:
    """Nearest rank: the value at rank ceil(p * n) among the non-null values of a group,
    for every percentile of *measures*, from one read of the selected rows."""
    params: list[Any] = []
    cond = _all([*where, *conditions], mark, params)
    columns = list(dict.fromkeys(m.column or "" for m in measures))
    picked = ", ".join(f'"{c}"' for c in [*group_by, *columns])
    rows = run(f"SELECT {picked} FROM {name} WHERE {cond}", params)
    n = len(group_by)
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        groups.setdefault(tuple(r[:n]), []).append(r)
    index = {c: j for j, c in enumerate(columns)}
    out: dict[tuple[Any, ...], list[Any]] = {}
    for key, members in groups.items():
        by_column = list(zip(*members, strict=True))[n:]
        ordered = [sorted(v for v in values if v is not None) for values in by_column]
        out[key] = [nearest_rank(ordered[index[m.column or ""]], _PERCENT[m.fn] / 100) for m in measures]
    return out
