"""``qflow schema``: a JSON Schema (draft-07) of the ruleset format, for editors.

Generated, never written by hand: from the kernel's keys and the attrs classes of
every section every installed plugin declares (``Section.type``), so a plugin's
section is completed and checked in the editor like a built-in one. cattrs cannot
emit JSON Schema (see ARCHITECTURE.md), so this is a small generator over the same
types the loader structures into:

- attrs classes become ``definitions`` with ``properties``, ``required`` (fields
  without a default) and ``additionalProperties: false`` (the loader forbids
  unknown keys); descriptions come from ``metadata={"doc": ...}`` and docstrings;
- ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``, unions, ``Enum``, ``Literal``;
- ``timedelta`` is the duration text (``15m``, ``1h30m``), ``datetime``/``date``/
  ``time`` the ISO formats;
- a condition (:data:`qflow.conditions.ConditionSpec`, or any untyped field named
  ``when``) is ``#/definitions/condition``: recursive, the structured form with the
  incident's field names and every operator (plugins' included), or an expression
  string.

The schema is permissive where the loader is cleverer than a schema can say (a type
it does not know becomes ``{}``), never stricter: a ruleset that loads is valid.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from qflow.conditions import CONDITION, OPERATORS, ConditionFunction
from qflow.ruleset import FORMAT_VERSION, Section
from qflow.ruleset._load import hook_items

__all__ = ["SCHEMA_ID", "ruleset_schema"]

SCHEMA_ID = "https://qflow.invalid/schema/ruleset.json"
_DURATION = r"^\s*(\d+(\.\d+)?\s*[wdhms]\s*)+$"

_CORE = {
    "qflow": {"const": FORMAT_VERSION, "description": f"the format version: {FORMAT_VERSION}"},
    "include": {"description": "other ruleset files merged into this one, relative to this file",
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "name": {"type": "string", "minLength": 1, "description": "the ruleset's name (default: the file name)"},
    "description": {"type": "string", "minLength": 1, "description": "what the ruleset is for"},
    "timezone": {"type": "string", "minLength": 1,
                 "description": "the IANA time zone of the site, e.g. Asia/Shanghai (default UTC)"},
}

_OPERATOR_SCHEMAS: dict[str, dict[str, Any]] = {
    "eq": {"$ref": "#/definitions/value", "description": "equal to"},
    "ne": {"$ref": "#/definitions/value", "description": "not equal to (holds for a missing value)"},
    "in": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/value"}, "description": "one of"},
    "not_in": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/value"},
               "description": "none of (holds for a missing value)"},
    "lt": {"$ref": "#/definitions/bound", "description": "less than"},
    "le": {"$ref": "#/definitions/bound", "description": "at most"},
    "gt": {"$ref": "#/definitions/bound", "description": "more than"},
    "ge": {"$ref": "#/definitions/bound", "description": "at least"},
    "between": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"$ref": "#/definitions/bound"},
                "description": "[low, high], both included"},
    "matches": {"type": "string", "description": "a regular expression found in the text"},
    "contains": {"$ref": "#/definitions/value", "description": "text containing it, or a list with it"},
    "not_contains": {"$ref": "#/definitions/value", "description": "the negation of contains"},
    "icontains": {"type": "string", "description": "text containing it, ignoring case"},
    "startswith": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
    "endswith": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
    "exists": {"type": "boolean", "description": "true: the field has a value; false: it is missing"},
    "empty": {"type": "boolean", "description": "true: missing, empty text or an empty list"},
}


def _doc(obj: Any) -> str | None:
    text = getattr(obj, "__doc__", None)
    if not text or text is getattr(type(obj), "__doc__", None) and not isinstance(obj, type):
        return None
    if isinstance(obj, type) and obj.__doc__ in (object.__doc__, enum.Enum.__doc__):
        return None
    return " ".join(text.strip().split("\n\n")[0].split())


class _Builder:
    def __init__(self) -> None:
        self.definitions: dict[str, Any] = {}
        self._names: dict[type, str] = {}

    def schema(self, typ: Any, *, field: str | None = None) -> dict[str, Any]:
        if typ is Any or typ is object:
            return {"$ref": "#/definitions/condition"} if field == "when" else {}
        origin = typing.get_origin(typ)
        args = typing.get_args(typ)
        if origin is typing.Annotated:
            if any(m is CONDITION for m in args[1:]):
                return {"$ref": "#/definitions/condition"}
            return self.schema(args[0], field=field)
        if typ is type(None) or typ is None:
            return {"type": "null"}
        if typ is str:
            return {"type": "string"}
        if typ is bool:
            return {"type": "boolean"}
        if typ is int:
            return {"type": "integer"}
        if typ is float:
            return {"type": "number"}
        if typ is _dt.timedelta:
            return {"$ref": "#/definitions/duration"}
        if typ is _dt.datetime:
            return {"type": "string", "format": "date-time"}
        if typ is _dt.date:
            return {"type": "string", "format": "date"}
        if typ is _dt.time:
            return {"type": "string", "pattern": r"^\d{1,2}:\d{2}(:\d{2})?$"}
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin in (typing.Union, _union_type()):
            options = [self.schema(a, field=field) for a in args if a is not type(None)]
            if type(None) in args:
                options.append({"type": "null"})
            return options[0] if len(options) == 1 else {"anyOf": options}
        if origin in (list, tuple, set, frozenset, Sequence, typing.Sequence) or typ in (list, tuple):
            if origin is tuple and args and args[-1] is not Ellipsis:
                return {"type": "array", "items": [self.schema(a) for a in args],
                        "minItems": len(args), "maxItems": len(args)}
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if origin in (dict, Mapping, typing.Mapping) or typ is dict:
            out: dict[str, Any] = {"type": "object"}
            if len(args) == 2:
                out["additionalProperties"] = self.schema(args[1])
                if args[0] is int:
                    out["propertyNames"] = {"pattern": r"^-?\d+$"}
            return out
        if isinstance(typ, type) and issubclass(typ, enum.Enum):
            return {"enum": [m.value for m in typ]}
        if isinstance(typ, type) and attrs.has(typ):
            return {"$ref": f"#/definitions/{self._define(typ)}"}
        if isinstance(typ, type) and issubclass(typ, Mapping):
            return {"type": "object"}
        return {}

    def _define(self, cls: type) -> str:
        if cls in self._names:
            return self._names[cls]
        name = cls.__name__
        if name in self.definitions or name in ("condition", "duration", "value", "bound", "field_test"):
            name = f"{cls.__module__}.{cls.__qualname__}"
        self._names[cls] = name
        self.definitions[name] = {}  # placeholder: recursive classes refer to themselves
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to what attrs kept
            hints = {}
        props: dict[str, Any] = {}
        required = []
        for a in attrs.fields(cls):
            typ = hints.get(a.name, a.type)
            if isinstance(typ, str):
                typ = Any
            prop = dict(self.schema(typ, field=a.name))
            doc = a.metadata.get("doc") if a.metadata else None
            if doc:
                prop = {"description": doc, **prop} if "$ref" not in prop else {"description": doc, "allOf": [prop]}
            props[a.name] = prop
            if a.default is attrs.NOTHING:
                required.append(a.name)
        body: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            body["required"] = required
        doc = _doc(cls)
        if doc:
            body = {"description": doc, **body}
        self.definitions[name] = body
        return name


def _union_type() -> Any:
    import types

    return types.UnionType


def _condition_definitions(functions: Mapping[str, Any]) -> dict[str, Any]:
    from qflow._view import FIELDS

    field_ops = {n: f for n, f in functions.items() if not getattr(f, "whole_incident", False) and n not in OPERATORS}
    predicates = {n: f for n, f in functions.items() if getattr(f, "whole_incident", False)}
    ops = dict(_OPERATOR_SCHEMAS)
    for name, fn in sorted(field_ops.items()):
        ops[name] = {"description": fn.doc or f"plugin operator '{name}'"}
    field_test = {
        "description": "a test of one field: a value (equal to), a list (one of), or operators (all hold)",
        "anyOf": [
            {"$ref": "#/definitions/value"},
            {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/value"}},
            {"type": "object", "minProperties": 1, "properties": ops, "additionalProperties": False},
        ],
    }
    fields = {name: {"$ref": "#/definitions/field_test"} for name in FIELDS if not name.endswith("*")}
    wildcards = {"^" + re.escape(name[:-1]) + r"[^.]+(\..+)?$": {"$ref": "#/definitions/field_test"}
                 for name in FIELDS if name.endswith(".*")}
    fn_props = {name: {"description": f.doc or f"plugin predicate '{name}'"} for name, f in sorted(predicates.items())}
    structured = {
        "type": "object",
        "description": "all of these hold: field tests, and any:/all:/not:/fn:",
        "properties": {
            "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/condition"},
                    "description": "at least one of these holds"},
            "all": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/condition"},
                    "description": "every one of these holds"},
            "not": {"$ref": "#/definitions/condition", "description": "this does not hold"},
            "fn": {"description": "plugin predicates over the whole incident: fn: name or fn: {name: argument}",
                   "anyOf": [{"type": "string", "enum": sorted(predicates)} if predicates else {"type": "string"},
                             {"type": "object", "minProperties": 1, "properties": fn_props,
                              "additionalProperties": False}]},
            **fields,
        },
        "patternProperties": wildcards,
        "additionalProperties": False,
    }
    return {
        "condition": {
            "description": "a condition: a mapping (all hold), or an expression string such as "
                           "'category == \"complaint\" and impact >= 3'",
            "anyOf": [
                structured,
                {"type": "string", "minLength": 1,
                 "description": "an expression: and/or/not, ( ), == != < <= > >=, in [..], not in [..], "
                                "matches, contains, exists(field), plugin functions"},
            ],
        },
        "field_test": field_test,
        "value": {"type": ["string", "number", "boolean", "null"]},
        "bound": {"type": ["string", "number"], "description": "a number, text, or a date-time with a zone"},
        "duration": {"type": "string", "pattern": _DURATION,
                     "description": "a duration: 15m, 1h, 2d, 1w or a sum like 1h30m"},
    }


def _sections(pm: Any) -> list[Any]:
    found = []
    for impl in pm.hook.qflow_ruleset_sections.get_hookimpls():
        found.extend(hook_items(impl, "qflow_ruleset_sections", Section, "qflow.Section"))
    return sorted(found, key=lambda s: s.name)


def _functions(pm: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for impl in pm.hook.qflow_condition_functions.get_hookimpls():
        for fn in hook_items(impl, "qflow_condition_functions", ConditionFunction,
                            "qflow.conditions.ConditionFunction"):
            found.setdefault(fn.name, fn)
    return found


def ruleset_schema(pm: Any) -> dict[str, Any]:
    """The JSON Schema (draft-07) of rulesets read with the plugins of *pm*."""
    builder = _Builder()
    properties: dict[str, Any] = dict(_CORE)
    for section in _sections(pm):
        prop = dict(builder.schema(section.type))
        if section.doc:
            prop = {"description": section.doc, **prop} if "$ref" not in prop else {
                "description": section.doc, "allOf": [prop]}
        properties[section.name] = prop
    definitions = _condition_definitions(_functions(pm))
    definitions.update(builder.definitions)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "qflow ruleset",
        "description": "A qflow ruleset: one section per plugin. Generated by 'qflow schema'; do not edit.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "definitions": dict(sorted(definitions.items())),
    }
