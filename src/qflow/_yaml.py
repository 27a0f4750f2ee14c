"""YAML to plain containers that remember where each key, value and item stood.

ruamel's round-trip loader keeps positions but is pure Python (1.8 s for 1,000 rules
here); its safe loader runs the C parser (0.3 s). We run the C parser and attach the
marks ourselves in a small constructor, so positions cost almost nothing. Duplicate
keys are collected as diagnostics instead of stopping at the first one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from qflow.diagnostics import Diagnostic, json_path

__all__ = ["Mark", "YMap", "YSeq", "load_yaml", "locate"]


class Mark(NamedTuple):
    """A position in a source file; ``line`` and ``col`` are 0-based."""

    file: str
    line: int
    col: int


class YMap(dict):  # type: ignore[type-arg]
    """A mapping read from YAML; ``key_marks``/``value_marks`` say where each entry was."""

    __slots__ = ("start", "key_marks", "value_marks")
    start: Mark
    key_marks: dict[Any, Mark]
    value_marks: dict[Any, Mark]


class YSeq(list):  # type: ignore[type-arg]
    """A sequence read from YAML; ``item_marks[i]`` says where item *i* was."""

    __slots__ = ("start", "item_marks")
    start: Mark
    item_marks: list[Mark]


def _mark(file: str, node: Any) -> Mark:
    m = node.start_mark
    return Mark(file, m.line, m.column)


class _Constructor(SafeConstructor):
    # Set per load; the C loader builds the constructor itself so we cannot pass it in.
    qflow_file = "<string>"
    qflow_duplicates: list[tuple[YMap, Any, Mark, Mark]]

    def construct_yaml_map(self, node: Any) -> Iterator[YMap]:
        data = YMap()
        data.start = _mark(self.qflow_file, node)
        data.key_marks = {}
        data.value_marks = {}
        yield data
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                key = str(key)
            where = _mark(self.qflow_file, key_node)
            if key in data:
                self.qflow_duplicates.append((data, key, where, data.key_marks[key]))
                continue
            data[key] = self.construct_object(value_node, deep=True)
            data.key_marks[key] = where
            data.value_marks[key] = _mark(self.qflow_file, value_node)

    def construct_yaml_seq(self, node: Any) -> Iterator[YSeq]:
        data = YSeq()
        data.start = _mark(self.qflow_file, node)
        data.item_marks = [_mark(self.qflow_file, n) for n in node.value]
        yield data
        data.extend(self.construct_object(n, deep=True) for n in node.value)


    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        # `2026-13-01` looks like a date but is none: keep the text, so the section
        # that expects a date reports it where it stands instead of the parser crashing.
        try:
            return super().construct_yaml_timestamp(node, values)
        except ValueError:
            return self.construct_scalar(node)


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)
_Constructor.add_constructor("tag:yaml.org,2002:map", _Constructor.construct_yaml_map)
_Constructor.add_constructor("tag:yaml.org,2002:seq", _Constructor.construct_yaml_seq)
_Constructor.add_constructor("tag:yaml.org,2002:omap", _Constructor.construct_yaml_map)


def load_yaml(text: str, file: str) -> tuple[Any, list[Diagnostic]]:
    """Parse *text* safely; return the document and the problems found.

    A syntax error returns ``(None, [QF001 ...])``; duplicate keys are reported and the
    first value is kept, so the rest of the document can still be checked.
    """
    duplicates: list[tuple[YMap, Any, Mark, Mark]] = []

    class Constructor(_Constructor):
        qflow_file = file
        qflow_duplicates = duplicates

    yaml = YAML(typ="safe", pure=False)
    yaml.Constructor = Constructor
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{what} ({exc.context})"
        return None, [
            Diagnostic(file, line, col, "QF001", f"not valid YAML: {what}",
                       hint="check the indentation and quoting on this line")
        ]
    except YAMLError as exc:  # e.g. a reader error on a control character
        return None, [Diagnostic(file, 1, 1, "QF001", f"not valid YAML: {exc}")]
    paths = _container_paths(doc, {id(d[0]) for d in duplicates}) if duplicates else {}
    problems = [
        Diagnostic(
            where.file, where.line + 1, where.col + 1, "QF002", f"duplicate key '{key}'",
            json_path(paths.get(id(parent), ()) + (str(key),)),
            hint=f"first defined at line {first.line + 1}; keep one",
        )
        for parent, key, where, first in duplicates
    ]
    return doc, problems


def _container_paths(root: Any, wanted: set[int]) -> dict[int, tuple[str | int, ...]]:
    found: dict[int, tuple[str | int, ...]] = {}
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in wanted:
            found[id(node)] = path
        if isinstance(node, YMap):
            stack.extend((v, path + (str(k),)) for k, v in node.items() if isinstance(v, (YMap, YSeq)))
        elif isinstance(node, YSeq):
            stack.extend((v, path + (i,)) for i, v in enumerate(node) if isinstance(v, (YMap, YSeq)))
    return found


def locate(root: Any, path: tuple[str | int, ...], *, at: str = "value") -> Mark | None:
    """Find where *path* points in the document *root*.

    ``at="key"`` gives the position of the last key rather than its value. A path that
    leaves the document (a missing key) gives the position of the deepest container it
    reached, which is where the missing key belongs.
    """
    node = root
    here: Mark | None = getattr(root, "start", None)
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, YMap) and step in node:
            here = node.key_marks[step] if (last and at == "key") else node.value_marks[step]
            node = node[step]
        elif isinstance(node, YSeq) and isinstance(step, int) and 0 <= step < len(node):
            here = node.item_marks[step]
            node = node[step]
        else:
            break
    return here
