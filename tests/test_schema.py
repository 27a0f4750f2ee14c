"""qflow schema: generated from the sections' types, shipped up to date, and the
shipped rulesets validate against it the way an editor would check them."""

from __future__ import annotations

import datetime as dt
import enum
import json
from pathlib import Path
from typing import Literal

import attrs
import jsonschema
import pytest

import qflow
from qflow._schema import ruleset_schema
from qflow._yaml import load_yaml
from qflow.cli import main
from qflow.conditions import ConditionSpec

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "rulesets" / "qflow.schema.json"
RULESETS = sorted(p for p in (ROOT / "rulesets").rglob("*.yaml") if not p.name.endswith(".tests.yaml"))


def plain(value):
    """What the YAML language server sees: string keys, dates as text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return value


def validator():
    schema = ruleset_schema(qflow.make_plugin_manager(autoload=False))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors_of(text: str) -> list[str]:
    doc, problems = load_yaml(text, "x.yaml")
    assert problems == []
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(plain(doc)))


def test_the_shipped_schema_is_up_to_date():
    fresh = json.dumps(ruleset_schema(qflow.make_plugin_manager(autoload=False)), ensure_ascii=False, indent=2) + "\n"
    if SHIPPED.read_text(encoding="utf-8") != fresh:
        SHIPPED.write_text(fresh, encoding="utf-8")
        pytest.fail("rulesets/qflow.schema.json was stale and has been regenerated; commit it")


@pytest.mark.parametrize("path", RULESETS, ids=lambda p: p.name)
def test_shipped_rulesets_reference_and_fit_the_schema(path):
    text = path.read_text(encoding="utf-8")
    target = "../qflow.schema.json" if path.parent.name == "common" else "qflow.schema.json"
    assert text.splitlines()[0] == f"# yaml-language-server: $schema={target}"
    doc, _ = load_yaml(text, str(path))
    assert list(validator().iter_errors(plain(doc))) == []


def test_mistakes_an_editor_flags():
    assert errors_of("qflow: 1\nteams: {a: {nmae: x}}\nroute: [{id: r, assign: {team: a}, whn: {}}]\n") == [
        "route: [{'id': 'r', 'assign': {'team': 'a'}, 'whn': {}}] is not valid under any of the given schemas",
        "teams/a: Additional properties are not allowed ('nmae' was unexpected)",
    ]
    assert errors_of("qflow: 1\nseverities: {high: {respond: 1hr, resolve: 1d}}\n") == [
        "severities/high/respond: '1hr' is not valid under any of the given schemas"]
    assert errors_of("qflow: 1\nclasify: []\n") == [": Additional properties are not allowed ('clasify' was unexpected)"]


def test_conditions_are_recursive_with_fields_operators_and_expressions():
    ok = ("qflow: 1\nclassify:\n"
          "  - {id: a, set: {severity: x}, when: {any: [{category: c}, {not: {impact: {between: [1, 2]}}}]}}\n"
          "  - {id: b, set: {severity: x}, when: 'category == \"c\"'}\n"
          "  - {id: c, set: {severity: x}, when: {extra.room_type: suite, customer.extra.level: {ge: 2}}}\n")
    assert errors_of(ok) == []
    assert errors_of("qflow: 1\nclassify:\n  - {id: a, set: {severity: x}, when: {categry: c}}\n") != []
    assert errors_of("qflow: 1\nclassify:\n  - {id: a, set: {severity: x}, when: {category: {eqq: c}}}\n") != []


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Inner:
    """An inner value."""

    at: dt.datetime
    day: dt.date | None = None


@attrs.frozen
class Spec:
    """A plugin's section."""

    name: str = attrs.field(metadata={"doc": "what it is called"})
    colour: Colour = Colour.RED
    kind: Literal["a", "b"] = "a"
    every: dt.timedelta | None = None
    items: list[Inner] = attrs.field(factory=list)
    by_level: dict[int, str] = attrs.field(factory=dict)
    when: ConditionSpec = None
    pair: tuple[int, str] | None = None


def test_a_plugin_section_is_generated_from_its_attrs_class():
    class Plugin:
        @qflow.hookimpl
        def qflow_ruleset_sections(self):
            return [qflow.Section("gizmo", dict[str, Spec], doc="gizmos by name")]

    pm = qflow.make_plugin_manager(autoload=False, plugins=[(Plugin(), "gizmo")])
    schema = ruleset_schema(pm)
    assert schema["properties"]["gizmo"] == {"description": "gizmos by name", "type": "object",
                                             "additionalProperties": {"$ref": "#/definitions/Spec"}}
    assert schema["definitions"]["Spec"] == {
        "description": "A plugin's section.", "type": "object", "additionalProperties": False, "required": ["name"],
        "properties": {
            "name": {"description": "what it is called", "type": "string"},
            "colour": {"enum": ["red", "blue"]},
            "kind": {"enum": ["a", "b"]},
            "every": {"anyOf": [{"$ref": "#/definitions/duration"}, {"type": "null"}]},
            "items": {"type": "array", "items": {"$ref": "#/definitions/Inner"}},
            "by_level": {"type": "object", "additionalProperties": {"type": "string"},
                         "propertyNames": {"pattern": "^-?\\d+$"}},
            "when": {"$ref": "#/definitions/condition"},
            "pair": {"anyOf": [{"type": "array", "items": [{"type": "integer"}, {"type": "string"}],
                                "minItems": 2, "maxItems": 2}, {"type": "null"}]},
        },
    }
    assert schema["definitions"]["Inner"]["properties"] == {
        "at": {"type": "string", "format": "date-time"},
        "day": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]}}


def test_the_command_writes_the_file(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["--no-plugins", "schema", "-o", str(out)]) == 0
    assert capsys.readouterr().err == f"qflow: wrote {out}\n"
    assert json.loads(out.read_text(encoding="utf-8"))["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert main(["--no-plugins", "schema", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"qflow: error: '{tmp_path}' is a directory\n"
                                       "hint: give a file name, e.g. qflow.schema.json\n")
