"""The SQL the stores run for projections gives what the memory store's Python
reference gives, on random rows and random queries (SQLite here; PostgreSQL too
where a server answers)."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qflow import projection_sql
from qflow.store import Filter, Measure, Projection, aggregate_rows

P = Projection("t", (("team", "text"), ("cat", "text"), ("x", "real"), ("flag", "int")))

rows = st.lists(st.fixed_dictionaries({
    "team": st.sampled_from(["a", "b", "c", None]),
    "cat": st.sampled_from(["k1", "k2", None]),
    "x": st.one_of(st.none(), st.integers(-5, 50).map(float)),
    "flag": st.one_of(st.none(), st.integers(0, 1)),
}), max_size=40)
filters = st.builds(Filter, st.sampled_from(["team", "cat", "x", "flag"]),
                    st.sampled_from(["==", "!=", "<", ">=", "is null", "not null"]),
                    st.sampled_from([0, 1, 10.0, "a", "k1"]))
measures = st.builds(Measure, st.sampled_from(["count", "count_distinct", "sum", "avg", "min", "max", "median", "p90"]),
                     st.sampled_from(["x", "flag", "team"]), st.lists(filters, max_size=2))


def _comparable(filters_: list[Filter]) -> bool:
    # Order comparisons between text and numbers mean nothing in SQL; the stores never ask for them.
    for f in filters_:
        numeric = f.column in ("x", "flag")
        if f.op in ("<", ">=", "==", "!=") and isinstance(f.value, str) == numeric:
            return False
    return True


def _fit(ms: list[Measure]) -> list[Measure]:
    # sum/avg/min/max/percentiles of text are not asked for either
    return [m for m in ms if not (m.column == "team" and m.fn not in ("count", "count_distinct"))]


def _sqlite_run(data):
    con = sqlite3.connect(":memory:")
    for sql in projection_sql.create_statements(P, "sqlite"):
        con.execute(sql)
    for i, r in enumerate(data):
        con.executemany(projection_sql.insert_statement(P, "sqlite"), projection_sql.row_values(P, f"I{i}", r))
    return lambda sql, params: con.execute(sql, params).fetchall()


def _close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) < 1e-9
    return a == b


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, st.lists(measures, min_size=1, max_size=4), st.sampled_from([(), ("team",), ("team", "cat")]),
       st.lists(filters, max_size=2))
def test_sqlite_aggregates_agree_with_the_reference(data, ms, group_by, where):
    ms = _fit(ms)
    if not ms or not _comparable(where) or not all(_comparable(list(m.where)) for m in ms):
        return
    expected = aggregate_rows(data, P, ms, group_by, where)
    got = projection_sql.aggregate(_sqlite_run(data), P, ms, group_by, where, "sqlite")
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert all(_close(a, b) for a, b in zip(g, e, strict=True)), (g, e)


grouping_sets = st.lists(st.sampled_from([(), ("team",), ("cat",), ("team", "cat"), ("cat", "team")]),
                         min_size=1, max_size=4)


def _agree(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert all(_close(a, b) for a, b in zip(g, e, strict=True)), (g, e)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, st.lists(measures, min_size=1, max_size=5), grouping_sets, st.lists(filters, max_size=2))
def test_sqlite_grouping_sets_agree_with_the_reference(data, ms, sets, where):
    ms = _fit(ms)
    if not ms or not _comparable(where) or not all(_comparable(list(m.where)) for m in ms):
        return
    ms = ms + ms[:1]  # a measure asked twice is computed once and given twice
    expected = aggregate_rows(data, P, ms, sets, where)
    got = projection_sql.aggregate(_sqlite_run(data), P, ms, sets, where, "sqlite")
    assert len(got) == len(sets)
    for g, e in zip(got, expected, strict=True):
        _agree(g, e)
    # each set gives what it gives asked alone
    for g, one in zip(got, sets, strict=True):
        _agree(g, aggregate_rows(data, P, ms, one, where))


def test_grouping_sets_add_up_counts_and_take_distinct_counts_and_percentiles_from_the_values():
    data = [{"team": t, "cat": c, "x": float(x), "flag": f} for t, c, x, f in [
        ("a", "k1", 1, 1), ("a", "k1", 5, 0), ("a", "k2", 3, 1), ("b", "k1", 2, None), ("b", "k2", 9, 1),
        (None, "k2", 4, 0), ("b", None, 7, 1)]]
    ms = [Measure("count"), Measure("sum", "x"), Measure("avg", "x", (Filter("flag", "==", 1),)),
          Measure("count_distinct", "cat"), Measure("median", "x"), Measure("p90", "x"), Measure("min", "x"),
          Measure("max", "flag"), Measure("count", "flag")]
    whole, by_team, by_cat = projection_sql.aggregate(_sqlite_run(data), P, ms, [(), ("team",), ("cat",)], (),
                                                      "sqlite")
    assert whole == [(7, 31.0, 20 / 4, 2, 4.0, 9.0, 1.0, 1, 6)]
    assert by_team == [(None, 1, 4.0, None, 1, 4.0, 4.0, 4.0, 0, 1), ("a", 3, 9.0, 2.0, 2, 3.0, 5.0, 1.0, 1, 3),
                       ("b", 3, 18.0, 8.0, 2, 7.0, 9.0, 2.0, 1, 2)]
    assert by_cat == [(None, 1, 7.0, 7.0, 0, 7.0, 7.0, 7.0, 1, 1), ("k1", 3, 8.0, 1.0, 1, 2.0, 5.0, 1.0, 1, 2),
                      ("k2", 3, 16.0, 6.0, 1, 4.0, 9.0, 3.0, 1, 3)]
    assert [whole, by_team, by_cat] == aggregate_rows(data, P, ms, [(), ("team",), ("cat",)], ())


def test_the_whole_of_nothing_is_one_row_and_a_grouping_of_nothing_none():
    ms = [Measure("count"), Measure("sum", "x"), Measure("count_distinct", "team"), Measure("median", "x")]
    got = projection_sql.aggregate(_sqlite_run([]), P, ms, [(), ("team",)], (), "sqlite")
    assert got == [[(0, None, 0, None)], []] == aggregate_rows([], P, ms, [(), ("team",)], ())


def test_a_wide_range_of_a_big_table_is_scanned_and_a_narrow_one_read_through_its_index(monkeypatch):
    monkeypatch.setattr(projection_sql, "SMALL_TABLE", 5)
    wide = Projection("t", (("team", "text"), ("x", "real"), ("done_at", "real")))
    con = sqlite3.connect(":memory:")
    for sql in projection_sql.create_statements(wide, "sqlite"):
        con.execute(sql)
    for i in range(100):
        con.executemany(projection_sql.insert_statement(wide, "sqlite"),
                        projection_sql.row_values(wide, f"I{i}", {"team": "ab"[i % 2], "x": float(i), "done_at": i}))
    asked = []

    def run(sql, params):
        asked.append(sql)
        return con.execute(sql, params).fetchall()

    ms = [Measure("count"), Measure("median", "x")]
    for lo, share in ((50, "wide"), (95, "narrow")):
        asked.clear()
        got = projection_sql.aggregate(run, wide, ms, [(), ("team",)], [Filter("done_at", ">=", lo)], "sqlite")
        rows = [{"team": "ab"[i % 2], "x": float(i), "done_at": i} for i in range(100)]
        assert got == aggregate_rows(rows, wide, ms, [(), ("team",)], [Filter("done_at", ">=", lo)])
        plans = [con.execute(f"EXPLAIN QUERY PLAN {sql}", [lo]).fetchall() for sql in asked[2:]]
        uses_index = all("USING INDEX" in " ".join(str(r) for r in plan) for plan in plans)
        assert uses_index == (share == "narrow"), (share, asked, plans)


def test_a_percentile_is_the_nearest_rank():
    data = [{"team": "a", "x": float(v), "cat": None, "flag": None} for v in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]
    got = projection_sql.aggregate(_sqlite_run(data), P, [Measure("median", "x"), Measure("p90", "x")], (), (),
                                   "sqlite")
    assert got == [(5.0, 9.0)]


def test_an_unknown_column_is_refused_before_any_sql():
    with pytest.raises(ValueError) as err:
        projection_sql.aggregate(lambda *_: [], P, [Measure("sum", "x; DROP TABLE t")], (), (), "sqlite")
    assert str(err.value) == "projection t has no column 'x; DROP TABLE t'; it has: cat, flag, team, x"


# -- PostgreSQL: the same SQL with dialect="postgresql", in a schema of its own ----------


@pytest.fixture(scope="module")
def pg_con():
    """One connection for the module, its tables in a fresh schema dropped afterwards
    (no server: one loud skip; under CI=true a failure)."""
    import uuid

    from pgtools import pg_base, require_pg

    require_pg()
    import psycopg

    schema = f"qflow_psql_{uuid.uuid4().hex[:10]}"
    con = psycopg.connect(pg_base(), autocommit=True)
    con.execute(f'CREATE SCHEMA "{schema}"')
    con.execute(f'SET search_path TO "{schema}"')
    try:
        yield con
    finally:
        con.execute(f'DROP SCHEMA "{schema}" CASCADE')
        con.close()


def _pg_run(con, data):
    for sql in projection_sql.create_statements(P, "postgresql"):
        con.execute(sql)
    con.execute(f"TRUNCATE {projection_sql.table(P)}")
    values = [v for i, r in enumerate(data) for v in projection_sql.row_values(P, f"I{i}", r)]
    if values:
        con.execute(projection_sql.insert_many_statement(P, "postgresql"),
                    projection_sql.many_values(P, values, "postgresql"))
    return lambda sql, params: con.execute(sql, params).fetchall()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(rows, st.lists(measures, min_size=1, max_size=4), st.sampled_from([(), ("team",), ("team", "cat")]),
       st.lists(filters, max_size=2))
def test_postgresql_aggregates_agree_with_the_reference(pg_con, data, ms, group_by, where):
    ms = _fit(ms)
    if not ms or not _comparable(where) or not all(_comparable(list(m.where)) for m in ms):
        return
    expected = aggregate_rows(data, P, ms, group_by, where)
    got = projection_sql.aggregate(_pg_run(pg_con, data), P, ms, group_by, where, "postgresql")
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert all(_close(a, b) for a, b in zip(g, e, strict=True)), (g, e)
        assert all(type(a) is type(b) or a is None or b is None for a, b in zip(g, e, strict=True)), (g, e)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows, st.lists(measures, min_size=1, max_size=5), grouping_sets, st.lists(filters, max_size=2))
def test_postgresql_grouping_sets_agree_with_the_reference(pg_con, data, ms, sets, where):
    ms = _fit(ms)
    if not ms or not _comparable(where) or not all(_comparable(list(m.where)) for m in ms):
        return
    expected = aggregate_rows(data, P, ms, sets, where)
    got = projection_sql.aggregate(_pg_run(pg_con, data), P, ms, sets, where, "postgresql")
    assert len(got) == len(sets)
    for rows_, expected_rows in zip(got, expected, strict=True):
        _agree(rows_, expected_rows)
        for g, e in zip(rows_, expected_rows, strict=True):
            assert all(type(a) is type(b) or a is None or b is None for a, b in zip(g, e, strict=True)), (g, e)


def test_postgresql_percentiles_are_the_nearest_rank(pg_con):
    data = [{"team": "a", "x": float(v), "cat": None, "flag": None} for v in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]
    got = projection_sql.aggregate(_pg_run(pg_con, data), P, [Measure("median", "x"), Measure("p90", "x")], (), (),
                                   "postgresql")
    assert got == [(5.0, 9.0)]


def test_a_name_that_is_not_plain_is_refused_before_any_sql():
    with pytest.raises(ValueError) as err:
        projection_sql.table(Projection("facts; DROP", (("x", "real"),)))
    assert str(err.value) == ("projection name 'facts; DROP' is not a plain SQL name; "
                              "use lower-case letters, digits and _ (e.g. incident_facts)")
    with pytest.raises(ValueError) as err:
        projection_sql.create_statements(Projection("facts", (('x" text); --', "real"),)), "postgresql")
    assert str(err.value) == ("projection facts: column name 'x\" text); --' is not a plain SQL name; "
                              "use lower-case letters, digits and _ (not qf_incident or qf_n)")
