"""An immutable, hashable mapping for the free-form parts of frozen values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["FrozenDict", "freeze", "frozen_map", "thaw"]


class FrozenDict(Mapping[str, Any]):
    """A read-only dict. Nested dicts and lists inside are frozen too (see :func:`freeze`)."""

    __slots__ = ("_data", "_finite", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._hash: int | None = None
        self._data: dict[str, Any] = dict(data) if data else {}
        # The types alone, at hand here, may tell the encoder's question (see ``finite``).
        self._finite: bool | None = True if _freeze_values(self._data) else None

    @classmethod
    def adopt(cls, data: dict[str, Any]) -> FrozenDict:
        """A FrozenDict over *data* itself rather than a copy, its values frozen in
        place: for a dict just built to be frozen (a projection row of fifty columns),
        which its maker hands over and never touches again."""
        return _over(data, True if _freeze_values(data) else None)

    @classmethod
    def adopt_plain(cls, data: dict[str, Any]) -> FrozenDict:
        """:meth:`adopt` all the way down, for plain data: dicts, lists and scalars
        only, as a JSON decoder returns them or a plugin just built them (a message's
        payload, a row of an event's data). Nested dicts are taken over too and lists
        become tuples, with no other test; nothing of *data* may be held elsewhere
        (a dict in two places would be frozen in both). Reading a batch of logs is
        mostly this."""
        return _adopt_plain(data)

    @property
    def finite(self) -> bool:
        """False when a float held here, directly or in a list, is NaN or infinite
        (nested mappings say so for themselves): JSON has no words for those, so a
        fast encoder that would write them as null must hand this one on.

        Only an encoder asks, and most FrozenDicts (a notification's data, a facts
        row, a decision's sources) never meet one: the answer is worked out when first
        asked and kept, as the contents never change."""
        found = self._finite
        if found is None:
            found = self._finite = _all_finite(self._data.values())
        return found

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    # Direct versions of what Mapping would derive: these run on the hot path.
    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def as_dict(self) -> dict[str, Any]:
        """The contents themselves, not a copy, for serialisers (a JSON encoder takes
        it as it is): read it, never change it. ``thaw`` gives a copy to change."""
        return self._data

    def __or__(self, other: object) -> FrozenDict:
        """This mapping with *other*'s items added (as ``dict | dict``); this one's
        values are frozen already, so only *other*'s are looked at."""
        if not isinstance(other, Mapping):
            return NotImplemented
        if type(other) is FrozenDict:
            extra = other._data
        else:
            extra = dict(other)
            _freeze_values(extra)
        return _over({**self._data, **extra}, None)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


_SCALARS = frozenset({str, int, float, bool, type(None)})
_MAY_HOLD_FLOATS = frozenset({float, tuple, list})  # nested mappings say so for themselves
_INF = float("inf")


def _over(data: dict[str, Any], finite: bool | None) -> FrozenDict:
    """A FrozenDict holding *data* itself, whose values are frozen already."""
    out = FrozenDict.__new__(FrozenDict)
    out._data, out._hash, out._finite = data, None, finite
    return out


def _freeze_values(data: dict[str, Any]) -> bool:
    """Freeze in place the values of *data* that are not scalars (a list of
    recipients, a nested mapping); the types, looked at in C, tell when there is
    nothing to do, the common case. True when they also rule out a float."""
    kinds = set(map(type, data.values()))
    if not kinds <= _SCALARS:
        for key, value in data.items():
            kind = type(value)
            if kind in _SCALARS or (kind is tuple and set(map(type, value)) <= _SCALARS):
                continue  # a tuple of scalars is frozen already
            data[key] = freeze(value)  # a new value for a key there already: the dict keeps its size
    return kinds.isdisjoint(_MAY_HOLD_FLOATS)


def _all_finite(values: Any) -> bool:
    for v in values:
        if type(v) is float:
            if v != v or v == _INF or v == -_INF:
                return False
        elif type(v) is tuple and not _all_finite(v):
            return False
    return True


def frozen_map(value: Mapping[str, Any] | None) -> FrozenDict:
    """The attrs converter of free-form mapping fields: a FrozenDict as it is, else one made."""
    # FrozenDict is a Mapping, so isinstance goes through the ABC machinery: the exact
    # type, by far the most common, is asked about first.
    return value if type(value) is FrozenDict or isinstance(value, FrozenDict) else FrozenDict(value or {})


def _adopt_plain(data: dict[str, Any]) -> FrozenDict:
    for key, value in data.items():
        kind = type(value)
        if kind is dict:
            data[key] = _adopt_plain(value)
        elif kind is list:
            data[key] = _adopt_plain_list(value)
    return _over(data, None)


def _adopt_plain_list(values: list[Any]) -> tuple[Any, ...]:
    if set(map(type, values)) <= _SCALARS:
        return tuple(values)
    return tuple(_adopt_plain(v) if type(v) is dict else _adopt_plain_list(v) if type(v) is list else v
                 for v in values)


def freeze(value: Any) -> Any:
    """Deep-freeze plain data: dicts become FrozenDict, lists and sets become tuples."""
    kind = type(value)
    if kind in _SCALARS or kind is FrozenDict:
        return value
    if kind is tuple or kind is list:
        if set(map(type, value)) <= _SCALARS:
            # A list of names, a tuple frozen before: nothing inside to freeze, and a
            # plain tuple is immutable already, so it is kept rather than copied.
            return value if kind is tuple else tuple(value)
        return tuple(freeze(v) for v in value)
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(freeze(v) for v in value))
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`: fresh dicts and lists that a caller may change."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value
