"""FrozenDict's shortcuts (values frozen in place, tuples of scalars kept, ``finite``
worked out when first asked) give what freezing everything value by value gives."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qflow import FrozenDict
from qflow._frozen import freeze, thaw

_SCALARS = (str, int, float, bool, type(None))


def _reference(value: Any) -> Any:
    """Deep-freeze the slow, obvious way (what FrozenDict did before its shortcuts)."""
    if type(value) in _SCALARS or isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return {k: _reference(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_reference(v) for v in value)
    return value


def _finite(values: Any) -> bool:
    for v in values:
        if isinstance(v, float) and not isinstance(v, bool) and not math.isfinite(v):
            return False
        if isinstance(v, tuple) and not _finite(v):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN included, and of the same container kinds."""
    if isinstance(b, dict):
        return type(a) is FrozenDict and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    if isinstance(b, tuple):
        return type(a) is tuple and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(b, float) and b != b:
        return isinstance(a, float) and a != a
    return type(a) is type(b) and a == b


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3))
data = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
                            st.dictionaries(st.text(max_size=3), inner, max_size=4)),
    max_leaves=20,
)
mappings = st.dictionaries(st.text(max_size=3), data, max_size=6)


@given(mappings)
def test_a_frozen_dict_holds_what_freezing_each_value_gives(raw):
    frozen = FrozenDict(raw)
    assert _same(frozen, _reference(raw))
    assert frozen.finite is _finite(frozen.values())
    assert frozen.finite is frozen.finite  # kept once asked


@given(data)
def test_freeze_gives_the_reference_and_thaw_undoes_it(raw):
    frozen = freeze(raw)
    assert _same(frozen, _reference(raw))
    assert _same(freeze(thaw(frozen)), _reference(raw))


def test_a_tuple_of_scalars_is_kept_and_a_list_becomes_one():
    names = ("a", "b")
    assert freeze(names) is names
    assert freeze(["a", 1, None]) == ("a", 1, None)
    assert type(freeze(["a"])) is tuple


def test_the_source_mapping_is_not_changed():
    raw = {"a": [1, {"b": [2]}], "c": "x"}
    FrozenDict(raw)
    assert raw == {"a": [1, {"b": [2]}], "c": "x"} and type(raw["a"]) is list and type(raw["a"][1]) is dict


@given(mappings, mappings)
def test_or_gives_what_freezing_the_merged_mapping_gives(left, right):
    merged = FrozenDict(left) | right
    assert type(merged) is FrozenDict
    assert _same(merged, _reference({**left, **right}))
    assert list(merged) == list({**left, **right})  # dict's order: left's keys, then right's new ones
    assert _same(FrozenDict(left) | FrozenDict(right), _reference({**left, **right}))


def test_or_leaves_both_sides_as_they_were_and_refuses_what_is_not_a_mapping():
    left, right = FrozenDict({"a": 1}), {"a": 2, "b": [3]}
    assert left | right == {"a": 2, "b": (3,)}
    assert left == {"a": 1} and right == {"a": 2, "b": [3]}
    with pytest.raises(TypeError):
        left | [("a", 1)]


json_data = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=4)),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=3), json_data, max_size=6))
def test_adopt_plain_gives_what_a_frozen_dict_of_the_same_data_gives(raw):
    # What a JSON decoder returns: dicts, lists and scalars only.
    expected = FrozenDict(raw)
    got = FrozenDict.adopt_plain(json.loads(json.dumps(raw)))
    assert _same(got, _reference(raw)) and got == expected and hash(got) == hash(expected)
    assert got.finite is True


@given(mappings)
def test_adopt_gives_what_a_copy_gives(raw):
    expected = FrozenDict(raw)
    adopted = FrozenDict.adopt(thaw(expected))
    assert _same(adopted, _reference(raw))
    assert adopted == expected and adopted.finite is expected.finite


def test_adopt_takes_the_dict_itself_and_freezes_its_values_there():
    raw = {"row": 1, "names": ["a", "b"]}
    adopted = FrozenDict.adopt(raw)
    assert adopted.as_dict() is raw and raw["names"] == ("a", "b")
