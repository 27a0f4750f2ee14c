"""The rule index: per value of the key field, the rules an incident with that value can
meet, in file order — built in one pass, the same as asking of every value every rule."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qflow_rules._chain import _ANY, _index


def _by_asking(rules: list[Any]) -> tuple[str | None, dict[Any, tuple[Any, ...]]]:
    """The index as its definition says: for each value, every rule that does not test
    the key or accepts the value."""
    counts: Counter[str] = Counter()
    for r in rules:
        for path in r.condition.equalities:
            if "." not in path:
                counts[path] += 1
    if not counts or len(rules) < 8:
        return None, {_ANY: tuple(rules)}
    key, n = counts.most_common(1)[0]
    if n < len(rules) // 4:
        return None, {_ANY: tuple(rules)}
    values: set[Any] = set()
    for r in rules:
        values |= set(r.condition.equalities.get(key, ()))
    buckets = {v: tuple(r for r in rules if key not in r.condition.equalities or v in r.condition.equalities[key])
               for v in values}
    buckets[_ANY] = tuple(r for r in rules if key not in r.condition.equalities)
    return key, buckets


_VALUES = st.sampled_from(["a", "b", "c", "d", 1, 1.0, 2, True, None])
_EQUALITIES = st.dictionaries(st.sampled_from(["category", "channel", "customer.tier"]),
                              st.frozensets(_VALUES, min_size=1, max_size=3), max_size=2)


@settings(max_examples=300, deadline=None)
@given(st.lists(_EQUALITIES, max_size=30))
def test_one_pass_builds_the_index_the_definition_gives(equalities):
    rules = [SimpleNamespace(id=f"r{i}", condition=SimpleNamespace(equalities=e)) for i, e in enumerate(equalities)]
    key, buckets = _index(rules)
    want_key, want = _by_asking(rules)
    assert key == want_key
    assert buckets == want
    assert all(type(k) is type(w) for k, w in zip(sorted(buckets, key=repr), sorted(want, key=repr), strict=True))
