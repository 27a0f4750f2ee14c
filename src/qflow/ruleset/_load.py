"""Read a ruleset: files and includes, the format version, sections, names.

Every problem in every file is collected and reported at once, sorted by position.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import types
import typing
import zoneinfo
from collections.abc import Sequence
from pathlib import Path as FsPath
from typing import Any

import pluggy
from cattrs.errors import BaseValidationError

from qflow._convert import ShapeError, make_converter
from qflow._frozen import FrozenDict
from qflow._yaml import Mark, YMap, YSeq, load_yaml
from qflow.conditions import ConditionFunction
from qflow.diagnostics import Diagnostic, RulesetError, did_you_mean, json_path, sort_diagnostics
from qflow.errors import PluginError
from qflow.ruleset._model import CompileContext, Ruleset, Section

__all__ = ["FORMAT_VERSION", "load_ruleset", "load_ruleset_text"]

#: The ruleset format this qflow reads (the ``qflow:`` key).
FORMAT_VERSION = 1
_CORE_KEYS = ("qflow", "include", "name", "description", "timezone")


def load_ruleset(path: str | os.PathLike[str], *, plugins: pluggy.PluginManager | None = None) -> Ruleset:
    """Load, check and compile the ruleset at *path*.

    :raises RulesetError: with every problem found, sorted by position.
    """
    display = os.fspath(path)
    with _collector_paused():
        return _Loader(plugins).load(display, None)


def load_ruleset_text(text: str, *, file: str = "<ruleset>", plugins: pluggy.PluginManager | None = None) -> Ruleset:
    """Load a ruleset from *text*; includes are read relative to the current directory."""
    with _collector_paused():
        return _Loader(plugins).load(file, text)


@contextlib.contextmanager
def _collector_paused() -> Any:
    """No cyclic garbage collection while loading: a load makes a few hundred thousand
    objects that all live on (the YAML tree, then the compiled rules), so the
    collector's passes over them free nothing and cost a third of a 1,000-rule load.
    Collection resumes after; one already paused by the caller is left so."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Loader:
    def __init__(self, plugins: pluggy.PluginManager | None) -> None:
        if plugins is None:
            from qflow._manager import make_plugin_manager

            plugins = make_plugin_manager()
        self.pm = plugins
        self.diags: list[Diagnostic] = []
        self.files: list[str] = []
        self.digest = hashlib.sha256()
        #: Where each include that could not be read is named (its names are unknown).
        self.lost: list[tuple[Mark, tuple[str | int, ...]]] = []

    # -- files -----------------------------------------------------------------------

    def _read(self, display: str, text: str | None, at: Mark | None, at_path: tuple[str | int, ...]) -> YMap | None:
        if text is None:
            try:
                raw = FsPath(display).read_bytes()
                text = raw.decode("utf-8")
            except FileNotFoundError:
                return self._fail_read(display, at, at_path, "does not exist", "check the path; include paths are relative to the including file")
            except IsADirectoryError:
                return self._fail_read(display, at, at_path, "is a directory", "name a .yaml file")
            except UnicodeDecodeError as exc:
                return self._fail_read(display, at, at_path, f"is not UTF-8 text ({exc.reason} at byte {exc.start})", "save the file as UTF-8")
            except OSError as exc:
                return self._fail_read(display, at, at_path, f"cannot be read ({exc.strerror})", None)
        # The hash names a version of the content: the main file counts by content
        # alone and includes by their path relative to it, so the same ruleset has
        # the same hash whatever directory it is loaded from.
        name = os.path.relpath(display, self.base) if self.files else ""
        self.files.append(display)
        self.digest.update(name.encode() + b"\0" + text.encode("utf-8") + b"\0")
        doc, problems = load_yaml(text, display)
        self.diags.extend(problems)
        if doc is None:
            if not problems:
                self.diags.append(Diagnostic(display, 1, 1, "QF005", "the file is empty", hint="start it with 'qflow: 1'"))
            return None
        if not isinstance(doc, YMap):
            self.diags.append(Diagnostic(display, 1, 1, "QF103", "a ruleset must be a mapping of sections",
                                         hint="start it with 'qflow: 1' and one key per section"))
            return None
        if "qflow" not in doc:
            self.diags.append(Diagnostic(display, doc.start.line + 1, doc.start.col + 1, "QF005",
                                         "missing format version", hint=f"add 'qflow: {FORMAT_VERSION}' as the first line"))
            return None
        version = doc["qflow"]
        if version != FORMAT_VERSION or isinstance(version, bool):
            m = doc.value_marks["qflow"]
            if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
                msg = f"this ruleset is format {version} but this qflow reads format {FORMAT_VERSION}"
                hint = "run 'pip install -U qflow'"
            else:
                msg = f"unsupported format version {version!r}"
                hint = f"use 'qflow: {FORMAT_VERSION}'"
            self.diags.append(Diagnostic(display, m.line + 1, m.col + 1, "QF005", msg, "$.qflow", hint))
            return None
        return doc

    def _fail_read(self, display: str, at: Mark | None, at_path: tuple[str | int, ...], what: str, hint: str | None) -> None:
        where = at or Mark(display, 0, 0)
        self.diags.append(Diagnostic(where.file, where.line + 1, where.col + 1, "QF003",
                                     f"file '{display}' {what}", json_path(at_path), hint))
        return None

    def _collect(self, display: str, text: str | None, stack: tuple[str, ...],
                 at: Mark | None = None, at_path: tuple[str | int, ...] = ()) -> list[YMap]:
        """The documents to merge, includes first, depth first."""
        doc = self._read(display, text, at, at_path)
        if doc is None:
            return []
        key = os.path.realpath(display) if text is None else display
        stack = stack + (key,)
        docs: list[YMap] = []
        includes = doc.get("include")
        if includes is not None:
            if isinstance(includes, str):
                includes, marks = [includes], [doc.value_marks["include"]]
            elif isinstance(includes, YSeq):
                marks = includes.item_marks
            else:
                m = doc.value_marks["include"]
                self.diags.append(Diagnostic(display, m.line + 1, m.col + 1, "QF103",
                                             "include must be a file name or a list of file names", "$.include"))
                includes, marks = [], []
            base = os.path.dirname(display)
            for i, (inc, m) in enumerate(zip(includes, marks, strict=True)):
                ipath = ("include", i) if isinstance(doc["include"], YSeq) else ("include",)
                if not isinstance(inc, str):
                    self.diags.append(Diagnostic(m.file, m.line + 1, m.col + 1, "QF103",
                                                 "an include must be a file name", json_path(ipath)))
                    continue
                child = os.path.normpath(os.path.join(base, inc))
                if os.path.realpath(child) in stack:
                    chain = " -> ".join([os.path.basename(s) for s in stack] + [os.path.basename(child)])
                    self.diags.append(Diagnostic(m.file, m.line + 1, m.col + 1, "QF004",
                                                 f"include cycle: {chain}", json_path(ipath),
                                                 "remove one of the includes"))
                    continue
                found = self._collect(child, None, stack, m, ipath)
                if not found:
                    self.lost.append((m, ipath))
                docs.extend(found)
        docs.append(doc)
        return docs

    def _merge(self, docs: Sequence[YMap]) -> YMap:
        root = YMap()
        root.start = docs[-1].start
        root.key_marks, root.value_marks = {}, {}
        for doc in docs:
            for key, value in doc.items():
                if key in ("qflow", "include"):
                    continue
                if key not in root:
                    root[key] = value
                    root.key_marks[key] = doc.key_marks[key]
                    root.value_marks[key] = doc.value_marks[key]
                    continue
                old = root[key]
                if isinstance(old, YSeq) and isinstance(value, YSeq):
                    merged = YSeq(old + value)
                    merged.start, merged.item_marks = old.start, old.item_marks + value.item_marks
                    root[key] = merged
                elif isinstance(old, YMap) and isinstance(value, YMap):
                    merged_map = YMap(old)
                    merged_map.start = old.start
                    merged_map.key_marks, merged_map.value_marks = dict(old.key_marks), dict(old.value_marks)
                    for k, v in value.items():
                        if k in merged_map:
                            first, m = merged_map.key_marks[k], value.key_marks[k]
                            self.diags.append(Diagnostic(
                                m.file, m.line + 1, m.col + 1, "QF202", f"'{k}' is defined twice",
                                json_path((str(key), str(k))), f"first defined at {first.file}:{first.line + 1}"))
                            continue
                        merged_map[k] = v
                        merged_map.key_marks[k] = value.key_marks[k]
                        merged_map.value_marks[k] = value.value_marks[k]
                    root[key] = merged_map
                elif old != value:
                    first, m = root.key_marks[key], doc.key_marks[key]
                    self.diags.append(Diagnostic(
                        m.file, m.line + 1, m.col + 1, "QF202", f"'{key}' is set in two files",
                        json_path((str(key),)), f"first set at {first.file}:{first.line + 1}; keep one"))
        return root

    # -- sections --------------------------------------------------------------------

    def _sections(self) -> dict[str, tuple[Section, str]]:
        found: dict[str, tuple[Section, str]] = {}
        for impl in self.pm.hook.qflow_ruleset_sections.get_hookimpls():
            for section in hook_items(impl, "qflow_ruleset_sections", Section, "qflow.Section"):
                if section.name in found or section.name in _CORE_KEYS:
                    other = found[section.name][1] if section.name in found else "qflow"
                    raise PluginError(
                        f"plugins '{other}' and '{impl.plugin_name}' both claim the ruleset section "
                        f"'{section.name}'; block one with QFLOW_BLOCKED_PLUGINS={impl.plugin_name}")
                found[section.name] = (section, impl.plugin_name)
        return found

    def _functions(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for impl in self.pm.hook.qflow_condition_functions.get_hookimpls():
            for fn in hook_items(impl, "qflow_condition_functions", ConditionFunction,
                                "qflow.conditions.ConditionFunction"):
                if fn.name in found:
                    raise PluginError(
                        f"plugins '{owner[fn.name]}' and '{impl.plugin_name}' both define the "
                        f"condition function '{fn.name}'; block one with QFLOW_BLOCKED_PLUGINS")
                found[fn.name] = fn
                owner[fn.name] = impl.plugin_name
        return found

    def _structure(self, ctx: CompileContext, conv: Any, name: str, raw: Any, typ: Any) -> Any:
        """Structure *raw* into *typ*; entries of a list or mapping one by one, so one bad
        entry neither hides the others nor the names they define."""
        origin = typing.get_origin(typ)
        args = typing.get_args(typ)
        if origin in (typing.Union, types.UnionType) and raw is not None:
            # A section with two forms (a plain list, or a mapping with options):
            # the YAML's shape picks the form, which is then structured as usual.
            # A mapping picks an attrs form only when it uses one of its keys, so a
            # single rule written where a list belongs still reads "expected a list".
            for option in args:
                shape = typing.get_origin(option) or option
                if isinstance(raw, list) if shape in (list, tuple) else (
                        isinstance(raw, dict) and (shape is dict or (
                            _is_attrs(option) and any(a.name in raw for a in option.__attrs_attrs__)))):
                    return self._structure(ctx, conv, name, raw, option)
            return self._structure(ctx, conv, name, raw, args[0])
        if origin in (list, tuple) and args and raw is not None:
            if not isinstance(raw, list):
                ctx.error((name,), "QF103", "expected a list", hint="write one '- ' item per line")
                return None
            out, kept = [], []
            for i, item in enumerate(raw):
                value = self._structure_one(ctx, conv, (name, i), item, args[0])
                if value is not _FAILED:
                    out.append(value)
                    kept.append(i)
            ctx._kept[name] = tuple(kept)
            return tuple(out) if origin is tuple else out
        if origin is dict and len(args) == 2 and raw is not None:
            if not isinstance(raw, dict):
                ctx.error((name,), "QF103", "expected a mapping", hint="write one 'name: value' per line")
                return None
            result = {}
            for key, item in raw.items():
                key_value = self._structure_one(ctx, conv, (name, key), key, args[0], at="key")
                value = self._structure_one(ctx, conv, (name, key), item, args[1])
                if value is not _FAILED and key_value is not _FAILED:
                    result[key_value] = value
                else:
                    ctx._broken.add(key)
            return result
        value = self._structure_one(ctx, conv, (name,), raw, typ)
        return None if value is _FAILED else value

    def _structure_one(self, ctx: CompileContext, conv: Any, path: tuple[str | int, ...], raw: Any, typ: Any, at: str = "value") -> Any:
        if raw is None and _is_attrs(typ):
            raw = {}
        if _is_attrs(typ) and not isinstance(raw, dict):
            ctx.error(path, "QF103", f"expected a mapping, got {_kind(raw)}", at=at,
                      hint="write the keys on the lines below, indented")
            return _FAILED
        try:
            return conv.structure(raw, typ)
        except (BaseValidationError, ShapeError, ValueError, TypeError, KeyError, AttributeError) as exc:
            rule = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
            value = ctx.salvage(conv, exc, path, raw, typ, rule=rule, at=at)
            return _FAILED if value is None else value

    # -- the whole -------------------------------------------------------------------

    def load(self, display: str, text: str | None) -> Ruleset:
        self.base = os.path.dirname(display) or "."
        docs = self._collect(display, text, ())
        if not docs:
            raise RulesetError(self.diags)
        root = self._merge(docs)
        main = docs[-1]
        sections = self._sections()
        functions = self._functions()

        name = self._core_text(main, "name", display) or FsPath(display).stem
        description = self._core_text(main, "description", display)
        tzname = self._core_text(main, "timezone", display) or "UTC"
        try:
            tz = zoneinfo.ZoneInfo(tzname)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            m = main.value_marks.get("timezone", main.start)
            self.diags.append(Diagnostic(m.file, m.line + 1, m.col + 1, "QF106", f"unknown time zone '{tzname}'",
                                         "$.timezone", did_you_mean(tzname, zoneinfo.available_timezones())
                                         or "use an IANA name such as Asia/Shanghai"))
            tz = zoneinfo.ZoneInfo("UTC")

        for key in root:
            if key not in sections and key not in _CORE_KEYS:
                m = root.key_marks[key]
                self.diags.append(Diagnostic(
                    m.file, m.line + 1, m.col + 1, "QF101", f"unknown section '{key}'", json_path((str(key),)),
                    did_you_mean(key, list(sections) + list(_CORE_KEYS))
                    or "no installed plugin reads it; check the spelling or install the plugin"))

        ctx = CompileContext(root=root, main_file=display, timezone=tz, functions=functions, diagnostics=self.diags,
                             hook=self.pm.hook)
        conv = make_converter()
        structured: dict[str, Any] = {}
        compiled: dict[str, Any] = {}
        # Structure every section first, so that compile may read any other section.
        for sname, (section, _plugin) in sections.items():
            if sname in root:
                structured[sname] = self._structure(ctx, conv, sname, root[sname], section.type)
            elif section.required:
                ctx.error((), "QF102", f"missing section '{sname}'", hint=section.doc or None)
            else:
                structured[sname] = section.default() if section.default else None
        ctx._sections = structured
        for sname, (section, plugin) in sections.items():
            if sname not in structured:
                continue
            value = structured[sname]
            if section.compile is None:
                compiled[sname] = value
                continue
            try:
                compiled[sname] = section.compile(value, ctx)
            except Exception as exc:  # a plugin bug must not hide the ops person's errors
                ctx.error((sname,), "QF501", f"plugin '{plugin}' failed on this section: {type(exc).__name__}: {exc}",
                          hint="this is a bug in the plugin; report it to its authors")
        self._fold(ctx._check_references(fold=bool(self.lost)))
        errors = [d for d in self.diags if d.severity == "error"]
        if errors:
            raise RulesetError(self.diags)
        return Ruleset(
            name=name, hash=self.digest.hexdigest()[:12], timezone=tzname, files=tuple(self.files),
            sections=FrozenDict(structured), compiled_sections=FrozenDict(compiled),
            symbols=ctx._symbols(), used=ctx._used(), warnings=sort_diagnostics(self.diags),
            definitions=ctx._definitions(),
            description=description,
        )

    def _fold(self, unknown: Sequence[tuple[str, Any]]) -> None:
        """One line for the references to names not defined while an include could
        not be read: it may define them, and one error each (26 unknown teams for a
        misnamed teams file) would bury the reason under its consequences."""
        if not unknown:
            return
        kinds: dict[str, dict[Any, None]] = {}
        for kind, name in unknown:
            kinds.setdefault(kind, {})[name] = None
        shown = "; ".join(f"{kind} " + ", ".join(f"'{n}'" for n in list(names)[:_FOLD_NAMES])
                          + (f" and {len(names) - _FOLD_NAMES} more" if len(names) > _FOLD_NAMES else "")
                          for kind, names in kinds.items())
        what = ("1 reference to an undefined name follows" if len(unknown) == 1
                else f"{len(unknown)} references to undefined names follow")
        whence = "the include that could not be read" if len(self.lost) == 1 else "the includes that could not be read"
        m, ipath = self.lost[0]
        self.diags.append(Diagnostic(
            m.file, m.line + 1, m.col + 1, "QF201", f"{what} from {whence}: {shown}", json_path(ipath),
            "each is checked once it is read; one it does not define is then reported where it is used"))

    def _core_text(self, doc: YMap, key: str, display: str) -> str | None:
        if key not in doc:
            return None
        value = doc[key]
        if isinstance(value, str) and value.strip():
            return value
        m = doc.value_marks[key]
        self.diags.append(Diagnostic(m.file, m.line + 1, m.col + 1, "QF103",
                                     f"{key} must be non-empty text", json_path((key,))))
        return None


_FAILED = object()
_FOLD_NAMES = 8  # names shown per kind in the line for an include that could not be read


def hook_items(impl: Any, hook: str, kind: type, what: str) -> Sequence[Any]:
    """What a load-time hook implementation (sections, condition functions) returns,
    checked: a list of *kind*. Its failure or anything else is a :class:`PluginError`
    naming the plugin and the hook."""
    try:
        found = impl.function()
    except Exception as exc:
        raise PluginError(f"plugin {impl.plugin_name} failed in {hook}: {type(exc).__name__}: {exc}") from exc
    if found is None:
        return ()
    if not isinstance(found, (list, tuple)) or not all(isinstance(x, kind) for x in found):
        shown = repr(found) if len(repr(found)) <= 60 else repr(found)[:57] + "..."
        raise PluginError(f"plugin {impl.plugin_name} returned {type(found).__name__} {shown} from {hook}; "
                          f"return a list of {what} (empty for none)")
    return found


def _is_attrs(typ: Any) -> bool:
    return hasattr(typ, "__attrs_attrs__")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text '{value}'"
    if value is None:
        return "nothing"
    return f"the value {value!r}"
