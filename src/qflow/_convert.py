"""The one converter: plain data (JSON, YAML) to and from qflow's attrs values.

The model knows nothing about this module. Structuring is strict: a number is not
text, text is not a number, an unknown key is an error, a time needs a time zone.
Hooks raise :class:`ShapeError` so that every problem reaches the ops person with a
stable code and a sentence that says what to write instead.
"""

from __future__ import annotations

import collections.abc
import enum
import re
import typing
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import cattrs
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from qflow._frozen import FrozenDict, thaw
from qflow.diagnostics import did_you_mean
from qflow.model import (
    ActionKind,
    ActionStatus,
    Customer,
    Deadline,
    Incident,
    LedgerKind,
    Person,
    Stage,
    Trace,
    TraceStep,
    VerificationResult,
)

__all__ = [
    "FIRST_YEAR",
    "LAST_YEAR",
    "ShapeError",
    "configure_converter",
    "format_duration",
    "lone_surrogate",
    "make_converter",
    "parse_duration",
    "structure_errors",
    "structure_without_unknown_keys",
]


class ShapeError(ValueError):
    """A value of the wrong shape, with its diagnostic code and a hint."""

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
DURATION_HINT = "use 15m, 1h, 2d, 1w or a sum like 1h30m"


def parse_duration(text: object) -> timedelta:
    """Read ``15m``, ``1h30m``, ``2d``, ``1w``.

    :raises ValueError: (a ``ShapeError`` with the diagnostic code QF105 and a hint) for
        anything else: a bare number, a unit it does not know, nothing positive.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        # A bare number has lost its unit, and only the writer knows which it was.
        raise ShapeError("QF105", f"{_show(text)} is not a duration",
                         f"a duration needs its unit: write e.g. {text:g}m or {text:g}h")
    if not isinstance(text, str) or not text.strip():
        raise ShapeError("QF105", f"{_show(text)} is not a duration", DURATION_HINT)
    s = text.strip().replace(" ", "")
    pos, seconds = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ShapeError("QF105", f"{_show(text)} is not a duration", DURATION_HINT)
    if seconds <= 0:
        raise ShapeError("QF105", f"{_show(text)} is not a positive duration", DURATION_HINT)
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Write a duration the way rulesets do: ``1d2h30m``; ``0s`` for nothing."""
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n}{unit}")
    return sign + ("".join(parts) or "0s")


def duration_to_the_minute(seconds: float) -> str:
    """*seconds* as reports show them, to the minute (the seconds of a duration over a
    minute are left off, never rounded up): 45s, 59m, 1h05m, 1d0h05m, 1d23h59m, from
    the largest unit that is there down to the smallest, none rounded away between."""
    s = int(round(seconds))
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m = rest // 60
    if d:
        return f"{d}d" + (f"{h}h" if h or m else "") + (f"{m:02d}m" if m else "")
    if h:
        return f"{h}h{m:02d}m" if m else f"{h}h"
    return f"{m}m" if m else f"{s}s"


def parse_time(value: object) -> datetime:
    """An aware datetime from ISO-8601 text (or a YAML timestamp)."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ShapeError(
                "QF106", f"{_show(value)} is not a date and time",
                "use ISO 8601 such as 2026-11-20T23:10:00+08:00",
            ) from None
    else:
        raise ShapeError("QF103", f"expected a date and time, got {_show(value)}",
                         "use ISO 8601 such as 2026-11-20T23:10:00+08:00")
    if dt.utcoffset() is None:
        raise ShapeError("QF106", f"{_show(value)} has no time zone",
                         "add an offset such as +08:00 or Z")
    if not FIRST_YEAR <= dt.year <= LAST_YEAR:
        raise ShapeError("QF106", f"{_show(value)} is out of range",
                         f"use a time from the year {FIRST_YEAR} to {LAST_YEAR}: deadlines and time zones "
                         "need room before the calendar ends")
    return dt


#: The years a time may fall in. Python's calendar ends with the year 9999 (and starts
#: with 1); a time near either end makes the deadlines counted from it, or its
#: conversion to the ruleset's time zone, fall off the calendar (OverflowError).
FIRST_YEAR, LAST_YEAR = 2, 9998


def lone_surrogate(data: Any) -> tuple[str | int, ...] | None:
    """Where in JSON-like *data* a text holds a lone surrogate (``"\\ud800"``, which
    JSON can write and UTF-8 cannot), or None: such text cannot be stored or sent.
    A key holding one is named by the path of the mapping it is in."""
    # Every report is looked through: the exact types JSON gives are tested first (an
    # ABC check costs more than the test), and ASCII text needs no encoding.
    cls = data.__class__
    if cls is str:
        return None if data.isascii() or _encodes(data) else ()
    if cls is dict or (cls is not list and isinstance(data, Mapping)):
        for key, value in data.items():
            if key.__class__ is str and not key.isascii() and not _encodes(key):
                return ()
            if value.__class__ is str:
                if value.isascii() or _encodes(value):
                    continue
                return (key,)
            if value is None or value.__class__ in _SCALARS:
                continue
            found = lone_surrogate(value)
            if found is not None:
                return (key, *found)
    elif cls is list or isinstance(data, tuple):
        for i, value in enumerate(data):
            found = lone_surrogate(value)
            if found is not None:
                return (i, *found)
    elif isinstance(data, str):
        return lone_surrogate(str(data))
    return None


_SCALARS = frozenset((int, float, bool))


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(value: object) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _text(value: object, _: Any = None) -> str:
    if isinstance(value, str):
        return value
    raise ShapeError("QF103", f"expected text, got {_show(value)}",
                     "put the value in quotes" if isinstance(value, (int, float)) else None)


def _int(value: object, _: Any = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ShapeError("QF103", f"expected a whole number, got {_show(value)}")


def _float(value: object, _: Any = None) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ShapeError("QF103", f"expected a number, got {_show(value)}")


def _bool(value: object, _: Any = None) -> bool:
    if isinstance(value, bool):
        return value
    raise ShapeError("QF103", f"expected true or false, got {_show(value)}")


def _enum(value: object, cls: type[enum.Enum]) -> enum.Enum:
    try:
        return cls(value)
    except ValueError:
        choices = [str(m.value) for m in cls]
        raise ShapeError(
            "QF104", f"{_show(value)} is not one of: {', '.join(choices)}",
            did_you_mean(value, choices),
        ) from None


def _enum_value(member: enum.Enum) -> Any:
    return member.value


def _timedelta(value: object, _: Any = None) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


def _date(value: object, _: Any = None) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ShapeError("QF106", f"{_show(value)} is not a date", "use YYYY-MM-DD, e.g. 2026-12-24")


def _frozendict(value: object, _: Any = None) -> FrozenDict:
    if isinstance(value, Mapping):
        return FrozenDict(value)
    raise ShapeError("QF103", f"expected a mapping, got {_show(value)}")


#: What a list of items in YAML or JSON is structured into: the type's origin -> the
#: collection made (cattrs's own choices for these).
_COLLECTIONS: dict[Any, Any] = {
    list: list, tuple: tuple, collections.abc.Sequence: list, collections.abc.MutableSequence: list,
    set: set, collections.abc.MutableSet: set, frozenset: frozenset, collections.abc.Set: frozenset,
}


def _is_collection(t: Any) -> bool:
    """``list[X]``, ``tuple[X, ...]``, ``Sequence[X]``, ``set[X]`` ...: one item type."""
    origin = typing.get_origin(t)
    if origin not in _COLLECTIONS:
        return False
    args = typing.get_args(t)
    return len(args) == 2 and args[1] is Ellipsis if origin is tuple else len(args) == 1


def _collection_hook(c: cattrs.Converter) -> Any:
    """Structure a list of items, refusing text and mappings: cattrs would take the
    text ``王芳`` for a list of two names and a mapping for a list of its keys (a
    ruleset's ``members: 王芳`` or ``notify: assignee``, silently wrong)."""

    def factory(t: Any) -> Any:
        origin = typing.get_origin(t)
        make, item = _COLLECTIONS[origin], typing.get_args(t)[0]
        handler = c.get_structure_hook(item)

        def structure(value: Any, _: Any = None) -> Any:
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, collections.abc.Iterable):
                hint = (f"write [{value}] for a list of one" if isinstance(value, str) and value
                        else "write one '- ' item per line, or [a, b]")
                raise ShapeError("QF103", f"expected a list, got {_show(value)}", hint)
            out, errors = [], []
            for i, x in enumerate(value):
                try:
                    out.append(handler(x, item))
                except Exception as exc:  # noqa: BLE001 - collected, as cattrs does, with the index
                    exc.__notes__ = [*getattr(exc, "__notes__", []),
                                     IterableValidationNote(f"Structuring {t} @ index {i}", i, item)]
                    errors.append(exc)
            if errors:
                raise IterableValidationError(f"While structuring {t!r}", errors, t)
            return out if make is list else make(out)

        return structure

    return factory


def configure_converter(c: cattrs.Converter) -> cattrs.Converter:
    """Install qflow's hooks on *c* (strict scalars, times, durations, enums, lists)."""
    c.register_structure_hook_factory(_is_collection, _collection_hook(c))
    c.register_structure_hook(str, _text)
    c.register_structure_hook(int, _int)
    c.register_structure_hook(float, _float)
    c.register_structure_hook(bool, _bool)
    c.register_structure_hook(datetime, lambda v, _: parse_time(v))
    c.register_unstructure_hook(datetime, lambda d: d.isoformat())
    c.register_structure_hook(date, _date)
    c.register_unstructure_hook(date, lambda d: d.isoformat())
    c.register_structure_hook(timedelta, _timedelta)
    c.register_unstructure_hook(timedelta, format_duration)
    c.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _enum
    )
    # str-based enums would otherwise be caught by cattrs's str handling and come
    # out as members; register each model enum directly.
    for cls in (Stage, ActionKind, ActionStatus, LedgerKind, VerificationResult):
        c.register_unstructure_hook(cls, _enum_value)
        c.register_structure_hook(cls, _enum)
    c.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _enum_value
    )
    # Optional scalars directly: cattrs's generic Optional handling costs more than the
    # rest of an incident's structuring, and every report goes through it.
    for typ, hook in ((str, _text), (int, _int), (float, _float), (bool, _bool)):
        c.register_structure_hook(typ | None, lambda v, _, hook=hook: None if v is None else hook(v))
    c.register_structure_hook(datetime | None, lambda v, _: None if v is None else parse_time(v))
    c.register_structure_hook(FrozenDict, _frozendict)
    c.register_unstructure_hook(FrozenDict, thaw)
    c.register_structure_hook(
        Trace, lambda v, _: Trace(tuple(c.structure(s, TraceStep) for s in v or ()))
    )
    c.register_unstructure_hook(Trace, lambda t: [c.unstructure(s) for s in t.steps])
    c.register_structure_hook(Incident, _incident_hook(c))
    # Most deadlines are no estimate: stored decisions keep their shape without an
    # empty list in each.
    c.register_unstructure_hook(Deadline, make_dict_unstructure_fn(
        Deadline, c, warnings=override(omit_if_default=True)))
    return c


# -- incidents, the common shape first ---------------------------------------------------
#
# Every replayed, decided or reported incident is structured, and cattrs's generated
# function (with its per-field error collection) costs more than deciding it. The
# plain shape (text, whole numbers, ISO times, a customer and a reporter with text
# fields, a list of tags, a free-form extra) is built here directly, with the same
# checks giving the same values; anything else, and every mistake, goes the generated
# way, which says what is wrong exactly as before.

_TEXT, _INT, _TIME, _TAGS, _MAP, _PERSON, _CUSTOMER, _NO_ATTACHMENTS = range(8)
_INCIDENT_KEYS = {
    **dict.fromkeys(("id", "channel", "category", "place", "asset", "title", "description", "scope",
                     "external_id", "dedup_key"), _TEXT),
    "impact": _INT, "urgency": _INT, "reported_at": _TIME, "occurred_at": _TIME, "tags": _TAGS,
    "extra": _MAP, "reporter": _PERSON, "customer": _CUSTOMER, "attachments": _NO_ATTACHMENTS,
}
_PERSON_KEYS = frozenset(("id", "name", "contact"))
_CUSTOMER_KEYS = frozenset(("id", "name", "tier", "contact"))


def _incident_hook(c: cattrs.Converter) -> Any:
    generated: list[Any] = []

    def structure_incident(value: Any, cl: Any) -> Incident:
        if value.__class__ is dict:
            made = _plain_incident(value)
            if made is not None:
                return made
        if not generated:  # made on first need, with every hook registered by then
            generated.append(c.gen_structure_attrs_fromdict(Incident))
        return generated[0](value, cl)

    return structure_incident


def _plain_incident(data: dict[str, Any]) -> Incident | None:
    """*data* as an Incident when it has the plain shape, else None: the generated
    hook then structures it, or says what is wrong."""
    fields: dict[str, Any] = {}
    for key, v in data.items():
        kind = _INCIDENT_KEYS.get(key)
        if kind is None:
            return None
        if kind == _TEXT:
            if v.__class__ is not str and (v is not None or key == "description"):
                return None  # description is the one text field that cannot be null
        elif kind == _INT:
            if v.__class__ is not int and v is not None:
                return None
        elif kind == _TIME:
            if v is not None:
                if v.__class__ is not str:
                    return None
                try:
                    v = parse_time(v)
                except ShapeError:
                    return None
        elif kind == _TAGS:
            if v.__class__ is not list:
                return None
            for tag in v:
                if tag.__class__ is not str:
                    return None
            v = tuple(v)
        elif kind == _MAP:
            if v.__class__ is not dict:
                return None
            v = FrozenDict(v)
        elif kind == _NO_ATTACHMENTS:
            if v.__class__ is not list or v:
                return None
            v = ()
        elif v is not None:  # reporter, customer
            if v.__class__ is not dict:
                return None
            keys = _PERSON_KEYS if kind == _PERSON else _CUSTOMER_KEYS
            for k, x in v.items():
                if k not in keys:
                    if k != "extra" or kind == _PERSON or x.__class__ is not dict:
                        return None
                elif x.__class__ is not str and x is not None:
                    return None
            v = Person(**v) if kind == _PERSON else Customer(**v)
        fields[key] = v
    try:
        return Incident(**fields)
    except Exception:  # noqa: BLE001 - the generated hook reports it properly
        return None


def make_converter() -> cattrs.Converter:
    """A fresh strict converter; each caller gets its own (no global state)."""
    return configure_converter(cattrs.Converter(forbid_extra_keys=True, detailed_validation=True))


# One item per problem: (path inside the structured value, code, message, hint, at)
# where *at* is "key" when the problem is the key itself (an unknown key).
Problem = tuple[tuple[str | int, ...], str, str, "str | None", str]


def structure_errors(exc: BaseException, cls: Any = None) -> list[Problem]:
    """Flatten a cattrs validation error into located problems (walking its notes)."""
    out: list[Problem] = []
    _walk(exc, (), out, cls)
    return out


def structure_without_unknown_keys(
    conv: cattrs.Converter, raw: Any, typ: Any, problems: list[Problem],
) -> tuple[Any, list[tuple[str | int, ...]]] | None:
    """*raw* structured as *typ* as if its unknown keys were absent, with the paths of
    the mappings that had them; None unless every one of *problems* (those of
    structuring *raw*) is an unknown key, or when it still does not structure.

    The value is for checking the rest of what was written, so that one unknown key
    does not hide the other mistakes beside it; the unknown keys are errors, so
    nothing structured this way is used for deciding."""
    if not problems or any(code != "QF101" or where != "key" or not sub for sub, code, _, _, where in problems):
        return None
    unknown = [sub for sub, *_ in problems]
    try:
        return conv.structure(_without(raw, unknown), typ), [sub[:-1] for sub in unknown]
    except Exception:  # noqa: BLE001 - what is wrong was reported from the first try
        return None


def _without(raw: Any, paths: list[tuple[str | int, ...]]) -> Any:
    """A copy of plain data *raw* without the keys at *paths*: the mappings and lists
    on the way to them are copied, the rest is shared."""
    if not paths:
        return raw
    here = {p[0] for p in paths if len(p) == 1}
    below: dict[Any, list[tuple[str | int, ...]]] = {}
    for p in paths:
        if len(p) > 1:
            below.setdefault(p[0], []).append(p[1:])
    if isinstance(raw, Mapping):
        return {k: _without(v, below.get(k, [])) for k, v in raw.items() if k not in here}
    if isinstance(raw, list):
        return [_without(v, below.get(i, [])) for i, v in enumerate(raw)]
    return raw


def _walk(exc: BaseException, path: tuple[str | int, ...], out: list[Problem], cls: Any) -> None:
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            step = getattr(note, "name", None)
            if step is None:
                step = getattr(note, "index", None)
            sub_cls = getattr(note, "type", None)
            if isinstance(sub, KeyError):
                out.append((path + (step,), "QF102", f"missing required key '{step}'", None, "parent"))
            else:
                _walk(sub, path + (step,), out, sub_cls)
        for sub in without:
            _walk(sub, path, out, getattr(exc, "cl", cls))
        return
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [a.name for a in getattr(exc.cl, "__attrs_attrs__", ())]
        for key in sorted(exc.extra_fields, key=str):
            out.append((path + (key,), "QF101", f"unknown key '{key}'", did_you_mean(key, known), "key"))
        return
    if isinstance(exc, ShapeError):
        out.append((path, exc.code, exc.message, exc.hint, "value"))
        return
    if isinstance(exc, KeyError):
        out.append((path, "QF102", f"missing required key {exc}", None, "parent"))
        return
    if isinstance(exc, (TypeError, AttributeError)):
        out.append((path, "QF103", "value has the wrong shape for this key", _expected(cls), "value"))
        return
    out.append((path, "QF104", str(exc), None, "value"))


def _expected(cls: Any) -> str | None:
    name = getattr(cls, "__name__", None)
    return f"expected {name}" if name else None
