"""The converter's direct way for plainly shaped incidents gives what cattrs's generated
structuring gives, value for value and type for type, and leaves every mistake to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qflow
from qflow._convert import _plain_incident, make_converter
from qflow._frozen import FrozenDict
from qflow.errors import InputError
from qflow.model import Incident

_CONV = make_converter()
_GENERATED = _CONV.gen_structure_attrs_fromdict(Incident)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (a tuple is not a list, a str not a subclass)."""
    if type(a) is not type(b):
        return False
    if attrs.has(type(a)):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
    if isinstance(a, FrozenDict):
        return _same(a.as_dict(), b.as_dict())
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset() and a.tzinfo == b.tzinfo
    return bool(a == b)


def _generated(data: dict[str, Any]) -> tuple[Any, BaseException | None]:
    try:
        return _GENERATED(dict(data), Incident), None
    except Exception as exc:  # noqa: BLE001 - what the generated way says is the reference
        return None, exc


class _Text(str):
    pass


_TIMES = st.sampled_from(["2026-11-20T09:00:00+08:00", "2026-11-20T09:00:00Z", " 2026-11-20T01:00:00+00:00 ",
                          "2026-11-20T09:00:00", "2026-11-20", "yesterday", "", "2026-02-30T09:00:00+08:00"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.floats(allow_nan=False), st.text(max_size=4),
                     _TIMES, st.builds(_Text, st.text(max_size=3)))
_FREE = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)
_PERSONISH = st.one_of(_SCALARS, st.dictionaries(
    st.sampled_from(["id", "name", "tier", "contact", "extra", "bogus"]),
    st.one_of(_SCALARS, st.dictionaries(st.text(max_size=3), _SCALARS, max_size=2)), max_size=5))
_VALUES = {
    **dict.fromkeys(["id", "channel", "category", "place", "asset", "title", "description", "scope",
                     "external_id", "dedup_key"], _SCALARS),
    "impact": _SCALARS, "urgency": _SCALARS, "reported_at": st.one_of(_TIMES, _SCALARS),
    "occurred_at": st.one_of(_TIMES, _SCALARS),
    "tags": st.one_of(_SCALARS, st.lists(_SCALARS, max_size=3), st.lists(st.text(max_size=3), max_size=3)),
    "extra": st.one_of(_SCALARS, _FREE, st.dictionaries(st.text(max_size=3), _FREE, max_size=3)),
    "reporter": _PERSONISH, "customer": _PERSONISH,
    "attachments": st.one_of(_SCALARS, st.just([]), st.lists(st.fixed_dictionaries({"ref": st.text(max_size=3)}),
                                                            max_size=2)),
    "unknown": _SCALARS,
}
_INCIDENTS = st.lists(st.sampled_from(sorted(_VALUES)), unique=True, max_size=12).flatmap(
    lambda keys: st.fixed_dictionaries({k: _VALUES[k] for k in keys}))


@settings(max_examples=1500, deadline=None)
@given(_INCIDENTS)
def test_the_direct_way_agrees_with_the_generated_one(data):
    made = _plain_incident(dict(data))
    reference, error = _generated(data)
    if made is not None:  # taken only where the generated way succeeds, with the same value
        assert error is None, (data, error)
        assert _same(made, reference), (data, made, reference)
    # Either way the converter answers what the generated way answers.
    try:
        got = _CONV.structure(dict(data), Incident)
    except Exception as exc:  # noqa: BLE001
        assert error is not None and type(exc) is type(error) and str(exc) == str(error)
    else:
        assert error is None and _same(got, reference)


@pytest.mark.parametrize("data", [
    {"id": "A", "reported_at": "2026-11-20T09:00:00+08:00", "channel": "phone", "category": "noise",
     "description": "loud", "impact": 2, "urgency": 3, "tags": ["night"], "extra": {"room": "1512", "n": [1, {}]},
     "reporter": {"id": "E1", "name": "Li"}, "customer": {"id": "C1", "tier": "gold", "extra": {"vip": True}},
     "attachments": []},
    {"description": "", "reported_at": None, "customer": None, "reporter": None},
    {},
])
def test_plain_incidents_take_the_direct_way(data):
    made = _plain_incident(dict(data))
    assert made is not None and _same(made, _generated(data)[0])


@pytest.mark.parametrize(("data", "message"), [
    ({"id": 7}, "expected text, got the number 7 (put the value in quotes) @ $.id"),
    ({"description": None}, "expected text, got nothing @ $.description"),
    ({"reported_at": "2026-11-20T09:00:00"}, "'2026-11-20T09:00:00' has no time zone (add an offset such as +08:00 "
                                             "or Z) @ $.reported_at"),
    ({"impact": True}, "expected a whole number, got the boolean true @ $.impact"),
    ({"customer": {"tier": "gold", "bogus": 1}}, "unknown key 'bogus' @ $.customer.bogus"),
    ({"tags": ["a", 3]}, "expected text, got the number 3 (put the value in quotes) @ $.tags[1]"),
])
def test_mistakes_are_reported_as_before(data, message):
    assert _plain_incident(dict(data)) is None
    with pytest.raises(InputError) as info:
        qflow.parse_incident(data)
    assert str(info.value) == message
