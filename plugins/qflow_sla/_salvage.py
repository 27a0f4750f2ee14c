"""Entries the loader could not structure, rebuilt from the keys that can be.

The loader leaves out an entry of ``calendars``, ``severities`` or ``priorities``
that has a value of the wrong shape, and reports that value. (An entry whose only
mistakes are unknown keys is the loader's to structure as if they were absent, in
every section; it is not missing here.) The other keys of the entry can hold
mistakes too (a window that ends before it starts beside a misspelt ``timezone``,
an unknown calendar beside a duration that cannot be read): compiling what is left
of the entry finds them, so that every mistake is reported at once. The ruleset does
not load either way; nothing rebuilt here is used for deciding.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

import attrs

from qflow import CompileContext, make_converter

__all__ = ["salvaged"]


def salvaged(section: str, done: Mapping[str, Any], typ: type, ctx: CompileContext) -> dict[str, tuple[Any, bool]]:
    """The entries of *section* missing from *done* (those that structured), each as
    (*typ* built from the keys that structure, whether some key was left out).

    An entry whose required key is bad, or that is not a mapping, is not rebuilt."""
    raw = ctx.raw((section,))
    if not isinstance(raw, Mapping):
        return {}
    missing = {key: entry for key, entry in raw.items()
               if isinstance(key, str) and key not in done and isinstance(entry, Mapping)}
    conv = make_converter() if missing else None
    out = {}
    for key, entry in missing.items():
        built = _rebuilt(conv, entry, typ)
        if built is not None:
            out[key] = built
    return out


def _rebuilt(conv: Any, entry: Mapping[Any, Any], typ: type) -> tuple[Any, bool] | None:
    hints = typing.get_type_hints(typ)
    kept: dict[str, Any] = {}
    lost = any(key not in hints for key in entry)
    for field in attrs.fields(typ):
        if field.name in entry:
            found = _value(conv, entry[field.name], hints[field.name])
            if found is None:
                lost = True
            else:
                kept[field.name], part = found
                lost = lost or part
    try:
        return typ(**kept), lost
    except TypeError:  # a required key was left out
        return None


def _value(conv: Any, raw: Any, hint: Any) -> tuple[Any, bool] | None:
    """*raw* structured as *hint* (and whether part of it was left out), or None.

    The items of a list of attrs values are rebuilt one by one rather than dropped,
    so that the others keep the positions their mistakes are reported at."""
    try:
        return conv.structure(raw, hint), False
    except Exception:  # noqa: BLE001 - the loader has reported what is wrong
        pass
    args = typing.get_args(hint)
    if typing.get_origin(hint) is not list or len(args) != 1 or not attrs.has(args[0]) or not isinstance(raw, list):
        return None
    items = [_rebuilt(conv, x, args[0]) if isinstance(x, Mapping) else None for x in raw]
    if any(x is None for x in items):
        return None
    return [x[0] for x in items if x is not None], True
