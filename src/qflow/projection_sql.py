"""SQL for projections, shared by the SQL stores (SQLite and PostgreSQL plugins).

A projection is one table ``qf_proj_<name>`` keyed by ``(qf_incident, qf_n)``; an
aggregate is one grouped scan with every measure as a conditional aggregate (for
several grouping sets, grouped by all their columns and added up here), plus one
plain read of the values behind its percentiles. Column and function names come only
from the projection's declaration (checked by :func:`qflow.store.check_query`);
values are always parameters.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping, Sequence
from itertools import chain, islice
from typing import Any

import attrs

from qflow._frozen import FrozenDict
from qflow.store import Filter, Measure, Projection, check_query, nearest_rank, projection_rows

__all__ = ["COLUMN_CAST", "aggregate", "column_type", "create_statements", "delete_statement", "insert_many_statement",
           "insert_statement", "many_values", "row_values", "select_rows_statement", "table"]

_TYPES = {"sqlite": {"text": "TEXT", "int": "INTEGER", "real": "REAL"},
          "postgresql": {"text": "TEXT", "int": "BIGINT", "real": "DOUBLE PRECISION"}}
_PERCENT = {"median": 50, "p90": 90}
#: What a value becomes in a column of each kind (True in an int column is 1, 3 in a real one 3.0).
COLUMN_CAST: Mapping[str, Any] = {"text": str, "int": int, "real": float}
#: SQLite knows aggregate FILTER clauses from 3.30 (2019); before, a CASE does.
_FILTER = sqlite3.sqlite_version_info >= (3, 30)
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
                row[k] = None if v is None else COLUMN_CAST[kind](v)
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


def select_rows_statement(projection: Projection) -> str:
    """The rows of several incidents as ``row_values`` gives them, in order; ``{marks}``
    is left for the caller's ``?`` list (SQLite)."""
    cols = ", ".join(f'"{c}"' for c in projection.column_names())
    return (f"SELECT qf_incident, qf_n, {cols} FROM {table(projection)} WHERE qf_incident IN ({{marks}})"
            " ORDER BY qf_incident, qf_n")


def row_values(projection: Projection, incident_id: str, rows: Any,
               names: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """The parameter tuples for one incident's rows, however ``qflow_project`` gave them.
    *names* is ``projection.column_names()`` when the caller has it already (a store
    writing a batch works it out once per projection)."""
    if names is None:
        names = projection.column_names()
    out = []
    for i, r in enumerate(projection_rows(rows)):
        # A FrozenDict's or dict's own get, mapped in C: the write path of every command.
        get = r.as_dict().get if type(r) is FrozenDict else r.get
        out.append((incident_id, i, *map(get, names)))
    return out


def _condition(f: Filter, mark: str, params: list[Any], bare: frozenset[str] = frozenset()) -> str:
    # "+col" is the same value with the column's index out of the planner's reach (see _bare).
    col = f'+"{f.column}"' if f.column in bare else f'"{f.column}"'
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


def _all(filters: Sequence[Filter], mark: str, params: list[Any], bare: frozenset[str] = frozenset()) -> str:
    return " AND ".join(_condition(f, mark, params, bare) for f in filters) if filters else "1 = 1"


def _indexed(projection: Projection) -> frozenset[str]:
    """The columns :func:`create_statements` indexes."""
    return frozenset(c for c, t in projection.columns
                     if (t == "real" and (c.endswith("_at") or c == "due")) or (t == "int" and c.startswith("is_")))


#: Above this share of the table, reading it from end to end beats an index: each row
#: an index finds is one more B-tree descent into the table, each row of a scan a few
#: bytes more of a page already read (a tenth of the time, or less, on a million rows).
SCAN_SHARE = 0.1
#: Tables this small are read the planner's way: any plan takes a few milliseconds.
SMALL_TABLE = 20_000


def _bare(run: Any, projection: Projection, where: Sequence[Filter]) -> frozenset[str]:
    """The indexed columns of *where* whose index the query should not use (SQLite).

    Without statistics SQLite takes an index on any range, and a quarter of a table
    read through one is several times slower than the whole table read in order. So
    the rows each index would select are counted first (from the index alone, a few
    milliseconds); when even the most selective one keeps more than ``SCAN_SHARE`` of
    the table, the query scans it instead."""
    indexed = _indexed(projection)
    usable = list(dict.fromkeys(f.column for f in where if f.column in indexed and f.op not in ("!=", "not null")))
    if not usable:
        return frozenset()
    name = table(projection)
    total = run(f"SELECT COUNT(*) FROM {name}", [])[0][0]
    if total < SMALL_TABLE:
        return frozenset()
    for c in usable:
        params: list[Any] = []
        cond = _all([f for f in where if f.column == c], "?", params)
        if run(f"SELECT COUNT(*) FROM {name} WHERE {cond}", params)[0][0] <= SCAN_SHARE * total:
            return frozenset()  # this index selects few rows: the planner's choice is a good one
    return indexed


def grouping_sets(group_by: Sequence[Any]) -> tuple[tuple[str, ...], ...] | None:
    """The grouping sets of *group_by* when it lists them (``[(), ("team",), ...]``),
    None when it is one grouping (``["team"]``)."""
    if not group_by or isinstance(group_by[0], str):
        return None
    return tuple(tuple(g) for g in group_by)


Statement = tuple[str, Sequence[Any]]


def aggregate(run: Any, projection: Projection, measures: Sequence[Measure], group_by: Sequence[Any],
              where: Sequence[Filter], dialect: str, *, run_all: Any = None) -> list[Any]:
    """Run the aggregate with ``run(sql, params) -> rows``; the result has the shape of
    :meth:`qflow.Store.aggregate` (groups sorted, None first).

    *group_by* is one grouping (column names) or several grouping sets (a sequence of
    column-name sequences, ``()`` for the whole); with sets the result is one such list
    per set, all from one grouped scan (and one read for the percentiles): the scan
    groups by every column of every set, and the sets are added up from those groups
    here (counts and sums add up; distinct counts and percentiles are taken from the
    finest groups' values, not added).

    The statements of one aggregate do not depend on each other's answers: given
    ``run_all(statements) -> answers``, they are handed over together (a store may run
    them side by side); otherwise *run* runs them one after the other."""
    sets = grouping_sets(group_by)
    check_query(projection, measures, [c for g in sets for c in g] if sets is not None else group_by, where)
    bare = _bare(run, projection, where) if dialect == "sqlite" else frozenset()
    # A condition the whole query has already is no condition of a measure.
    effective = [attrs.evolve(m, where=tuple(f for f in m.where if f not in where)) if m.where else m
                 for m in measures]
    unique = _unique(effective)
    if sets is None or len(sets) == 1:  # one grouping: nothing to add up
        one = tuple(group_by) if sets is None else sets[0]
        statements, assemble = _plain(projection, unique, one, where, dialect, bare)
    else:
        statements, assemble = _sets(projection, unique, sets, where, dialect, bare)
    answers = run_all(statements) if run_all is not None else [run(sql, params) for sql, params in statements]
    results = assemble(answers)
    at = [unique.index(m) for m in effective]
    if at != list(range(len(unique))):
        for rows in results:
            n = len(rows[0]) - len(unique) if rows else 0
            rows[:] = [r[:n] + tuple(r[n + i] for i in at) for r in rows]
    return results[0] if sets is None else results


def _unique(measures: Sequence[Measure]) -> list[Measure]:
    """*measures* without repeats: several KPIs ask for the same count, computed once."""
    try:
        return list(dict.fromkeys(measures))
    except TypeError:  # a condition on a list of values: no repeats looked for
        return list(measures)


def _order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is not None, v) for v in key)


def _measure_sql(projection: Projection, m: Measure, mark: str, params: list[Any], dialect: str,
                 bare: frozenset[str]) -> str:
    cond = _all(m.where, mark, params, bare) if m.where else None
    col = f'"{m.column}"' if m.column else "*"
    fn = {"count": "COUNT", "count_distinct": "COUNT", "sum": "SUM", "avg": "AVG", "min": "MIN",
          "max": "MAX"}[m.fn]
    distinct = "DISTINCT " if m.fn == "count_distinct" else ""
    if cond is None:
        expr = f"{fn}({distinct}{col})"
    elif dialect == "postgresql" or _FILTER:
        # FILTER skips the aggregate for a row its conditions leave out (a CASE feeds it a NULL).
        expr = f"{fn}({distinct}{col}) FILTER (WHERE {cond})"
    elif col == "*":
        expr = f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"
    else:
        expr = f"{fn}({distinct}CASE WHEN {cond} THEN {col} END)"
    if dialect == "postgresql" and m.fn in ("sum", "avg"):
        # PostgreSQL sums and averages integers as numeric (Decimal); the reference gives int and float.
        kind = dict(projection.columns)[m.column]
        expr = f"CAST({expr} AS {'BIGINT' if m.fn == 'sum' and kind == 'int' else 'DOUBLE PRECISION'})"
    return expr


def _by_conditions(measures: Sequence[Measure]) -> dict[tuple[Filter, ...], list[int]]:
    """The percentile measures by their conditions (the positions of each group's)."""
    by: dict[tuple[Filter, ...], list[int]] = {}
    for i, m in enumerate(measures):
        if m.fn in _PERCENT:
            by.setdefault(tuple(m.where), []).append(i)
    return by


def _plain(projection: Projection, measures: Sequence[Measure], group_by: Sequence[str], where: Sequence[Filter],
           dialect: str, bare: frozenset[str]) -> tuple[list[Statement], Any]:
    """One grouping: every measure but the percentiles in one query."""
    mark = "?" if dialect == "sqlite" else "%s"
    name = table(projection)
    groups = ", ".join(f'"{g}"' for g in group_by)
    params: list[Any] = []
    select = [("NULL" if m.fn in _PERCENT else _measure_sql(projection, m, mark, params, dialect, bare))
              for m in measures]
    where_sql = _all(where, mark, params, bare)
    sql = f"SELECT {groups + ', ' if groups else ''}{', '.join(select)} FROM {name} WHERE {where_sql}"
    if groups:
        sql += f" GROUP BY {groups}"
    by_conditions = _by_conditions(measures)
    reads = [_percentile_read(name, conditions, [measures[i] for i in members], group_by, where, mark, bare)
             for conditions, members in by_conditions.items()]

    def assemble(answers: Sequence[Sequence[Any]]) -> list[list[tuple[Any, ...]]]:
        found = {tuple(r[: len(group_by)]): list(r[len(group_by):]) for r in answers[0]}
        if not group_by and not found:
            found[()] = [0 if m.fn.startswith("count") else None for m in measures]
        for members, (_sql, _params, columns), rows in zip(by_conditions.values(), reads, answers[1:], strict=True):
            got = _percentiles(rows, columns, [measures[i] for i in members], (tuple(group_by),), group_by)[0]
            for key, values in got.items():
                if key in found:
                    for i, value in zip(members, values, strict=True):
                        found[key][i] = value
        out = []
        for key in sorted(found, key=_order):
            values = found[key]
            for j, m in enumerate(measures):
                if m.fn.startswith("count") and values[j] is None:
                    values[j] = 0  # SUM over no rows is NULL in SQL; a count of nothing is 0
            out.append(key + tuple(values))
        return [out]

    return [(sql, params), *((sql_, params_) for sql_, params_, _c in reads)], assemble


def _sets(projection: Projection, measures: Sequence[Measure], sets: Sequence[tuple[str, ...]],
          where: Sequence[Filter], dialect: str, bare: frozenset[str]) -> tuple[list[Statement], Any]:
    """Grouping sets: one query grouped by every column of every set, added up here."""
    mark = "?" if dialect == "sqlite" else "%s"
    name = table(projection)
    union = list(dict.fromkeys(c for g in sets for c in g))
    # A distinct count is read off the finest groups: its column joins the grouping.
    key = union + [c for c in dict.fromkeys(m.column for m in measures if m.fn == "count_distinct")
                   if c not in union]
    # Each measure as parts that add up across groups: avg is a sum and a count, a
    # distinct count the rows with a value under its conditions, per finest group.
    parts: dict[tuple[str, tuple[Any, ...]], int] = {}
    plans: list[tuple[str, tuple[int, ...]]] = []

    def part(m: Measure) -> int:
        params: list[Any] = []
        sql = _measure_sql(projection, m, mark, params, dialect, bare)
        return parts.setdefault((sql, tuple(params)), len(parts))  # the same part for several measures: once

    for m in measures:
        if m.fn in _PERCENT:
            plans.append((m.fn, ()))
        elif m.fn == "avg":
            plans.append(("avg", (part(attrs.evolve(m, fn="sum")), part(attrs.evolve(m, fn="count")))))
        elif m.fn == "count_distinct":
            plans.append(("count_distinct", (part(attrs.evolve(m, fn="count")), key.index(m.column or ""))))
        else:
            plans.append((m.fn, (part(m),)))
    params = [p for (_sql, ps) in parts for p in ps]
    cols = ", ".join(f'"{c}"' for c in key)
    select = ", ".join([*(f'"{c}"' for c in key), *(sql for sql, _ in parts)]) or "COUNT(*)"
    sql = f"SELECT {select} FROM {name} WHERE {_all(where, mark, params, bare)}" + (f" GROUP BY {cols}" if key else "")
    by_conditions = _by_conditions(measures)
    reads = [_percentile_read(name, conditions, [measures[i] for i in members], union, where, mark, bare)
             for conditions, members in by_conditions.items()]

    def assemble(answers: Sequence[Sequence[Any]]) -> list[list[tuple[Any, ...]]]:
        finest = [(tuple(r[: len(key)]), r[len(key):]) for r in answers[0]]
        pct: dict[int, tuple[list[dict[tuple[Any, ...], list[Any]]], int]] = {}
        for members, (_sql, _params, columns), rows in zip(by_conditions.values(), reads, answers[1:], strict=True):
            got = _percentiles(rows, columns, [measures[i] for i in members], sets, union)
            pct.update({i: (got, n) for n, i in enumerate(members)})
        out = []
        for s, g in enumerate(sets):
            at = [key.index(c) for c in g]
            groups: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], Sequence[Any]]]] = {}
            for k, values in finest:
                groups.setdefault(tuple(k[i] for i in at), []).append((k, values))
            if not g and not groups:
                groups[()] = []
            rows_ = []
            for gk in sorted(groups, key=_order):
                members_ = groups[gk]
                columns_ = list(zip(*(v for _, v in members_), strict=True)) if members_ else [()] * len(parts)
                added = [_add(c) for c in columns_]
                values: list[Any] = []
                for i, (fn, ps) in enumerate(plans):
                    if fn in _PERCENT:
                        got, n = pct[i]
                        values.append(got[s][gk][n] if gk in got[s] else None)
                    elif fn == "avg":
                        total, count = added[ps[0]], added[ps[1]]
                        values.append(total / count if count else None)
                    elif fn == "count_distinct":
                        values.append(len({k[ps[1]] for k, v in members_ if v[ps[0]]}))
                    elif fn in ("min", "max"):
                        present = [v for v in columns_[ps[0]] if v is not None]
                        values.append((min if fn == "min" else max)(present) if present else None)
                    elif fn == "count":
                        values.append(added[ps[0]] or 0)
                    else:
                        values.append(added[ps[0]])
                rows_.append(gk + tuple(values))
            out.append(rows_)
        return out

    return [(sql, params), *((sql_, params_) for sql_, params_, _c in reads)], assemble


def _add(values: Sequence[Any]) -> Any:
    """The sum of the values that are not None (None when all are)."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _percentile_read(name: str, conditions: Sequence[Filter], measures: Sequence[Measure], union: Sequence[str],
                     where: Sequence[Filter], mark: str, bare: frozenset[str]) -> tuple[str, list[Any], list[str]]:
    """The plain read behind percentiles under the same conditions: the group values
    (every column of *union*) and every percentile column of the rows they select,
    and those columns' names."""
    params: list[Any] = []
    cond = _all([*where, *conditions], mark, params, bare)
    columns = list(dict.fromkeys(m.column or "" for m in measures))
    picked = ", ".join(f'"{c}"' for c in [*union, *columns])
    return f"SELECT {picked} FROM {name} WHERE {cond}", params, columns


def _percentiles(rows: Sequence[Sequence[Any]], columns: Sequence[str], measures: Sequence[Measure],
                 sets: Sequence[Sequence[str]], union: Sequence[str]) -> list[dict[tuple[Any, ...], list[Any]]]:
    """Nearest rank: the value at rank ceil(p * n) among the non-null values of a group,
    for every percentile of *measures* and every grouping set, from one read of the
    rows (:func:`_percentile_read`): the values of each finest group (by every column
    of *union*) are sorted once, and a set's group merges the sorted runs of its
    finest groups. One scan for all of them, where a window query per column sorted
    the selection again and again."""
    n = len(union)
    finest: dict[tuple[Any, ...], list[Any]] = {}
    if n:
        for r in rows:
            finest.setdefault(r[:n], []).append(r)  # a row is a tuple (psycopg's too), so is its slice
    elif rows:
        finest[()] = list(rows)
    ordered: dict[tuple[Any, ...], list[list[Any]]] = {}
    for key, members in finest.items():
        lists = []
        for values in islice(zip(*members, strict=True), n, None):
            nulls = values.count(None)  # counted in C: most columns have none, or only nulls
            present = list(values) if not nulls else [] if nulls == len(values) else \
                [v for v in values if v is not None]
            present.sort()
            lists.append(present)
        ordered[key] = lists
    index = {c: j for j, c in enumerate(columns)}
    # Each set's lists from the smallest set already merged whose columns hold its
    # columns (the whole from the three teams, not from every finest group): fewer
    # and longer runs to merge.
    done: dict[tuple[str, ...], dict[tuple[Any, ...], list[list[Any]]]] = {tuple(union): ordered}
    for g in sorted(dict.fromkeys(tuple(g) for g in sets), key=len, reverse=True):
        if g in done:
            continue
        source = min((d for d in done if set(g) <= set(d)), key=lambda d: len(done[d]))
        at = [source.index(c) for c in g]
        runs: dict[tuple[Any, ...], list[list[list[Any]]]] = {}
        for key, lists in done[source].items():
            runs.setdefault(tuple(key[i] for i in at), []).append(lists)
        done[g] = {k: [_merge([lists[j] for lists in members]) for j in range(len(columns))]
                   for k, members in runs.items()}
    return [{key: [nearest_rank(lists[index[m.column or ""]], _PERCENT[m.fn] / 100) for m in measures]
             for key, lists in done[tuple(g)].items()} for g in sets]


def _merge(runs: Sequence[list[Any]]) -> list[Any]:
    """Sorted runs as one sorted list (the sort finds the runs and merges them)."""
    if len(runs) == 1:
        return runs[0]
    out = list(chain.from_iterable(runs))
    out.sort()
    return out
