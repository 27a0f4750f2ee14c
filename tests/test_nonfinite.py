"""NaN and the infinities in free-form data: JSON has no words for them, and the fast
encoder of the SQLite store would write them as null. A FrozenDict knows whether it
holds one, so the store hands such data to the standard encoder and reads back what
was written, not a silent None."""

from __future__ import annotations

import math

import pytest

from qflow import FrozenDict
from qflow import events as ev
from qflow.model import Event
from qflow.store import Write
from qflow_sqlite import SQLiteStore


from tests.store.builders import CONV, T0, report_write

pytest_plugins = ("pgtools",)  # the pg_url fixture

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(("data", "finite"), [
    ({}, True),
    ({"a": 1.5, "b": "x", "c": None}, True),
    ({"a": NAN}, False),
    ({"a": -INF}, False),
    ({"a": [1, (2.0, [INF])]}, False),
    ({"a": {"b": NAN}}, True),  # the nested mapping says so for itself
    ({"a": [{"b": NAN}]}, True),
])
def test_a_frozen_dict_knows_whether_it_holds_a_float_json_cannot_write(data, finite):
    assert FrozenDict(data).finite is finite


def test_nested_mappings_carry_their_own_answer():
    outer = FrozenDict({"a": {"b": NAN}, "c": [{"d": INF}]})
    assert outer["a"].finite is False and outer["c"][0].finite is False


def test_the_sqlite_store_reads_back_nan_and_the_infinities_as_written(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    w = report_write("INC-1")
    data = {"reading": NAN, "limits": [-INF, INF, 2.5], "nested": {"x": NAN, "ok": 1.0}, "text": "门锁故障"}
    extra = Event("INC-1", 3, T0, "PluginNoted", source="plugin:test", data=data)
    store.write([Write(w.events + (extra,), ev.apply(w.state, extra, CONV))])
    got = store.events("INC-1")[2].data
    assert math.isnan(got["reading"])
    assert got["limits"] == (-INF, INF, 2.5)
    assert math.isnan(got["nested"]["x"]) and got["nested"]["ok"] == 1.0
    assert got["text"] == "门锁故障"
    store.close()


def test_the_postgresql_store_refuses_them_plainly_and_keeps_nothing(pg_url):
    from qflow.engine import open_store
    from qflow.store import StoreError

    import qflow

    store = open_store(pg_url, qflow.make_plugin_manager())
    w = report_write("INC-1")
    extra = Event("INC-1", 3, T0, "PluginNoted", source="plugin:test", data={"reading": NAN})
    with pytest.raises(StoreError) as err:
        store.write([Write(w.events + (extra,), ev.apply(w.state, extra, CONV))])
    assert str(err.value) == ("INC-1: event 3 (PluginNoted) holds NaN or an infinity, which PostgreSQL's json "
                              "type cannot keep; give a number or null")
    assert store.get("INC-1") is None and store.events("INC-1") == ()
    store.close()
