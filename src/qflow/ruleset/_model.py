"""What plugins declare (Section), what they compile with (CompileContext) and the
result everyone reads (Ruleset)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from qflow._frozen import FrozenDict
from qflow._yaml import Mark, locate
from qflow.diagnostics import Diagnostic, json_path

__all__ = ["CompileContext", "Ruleset", "Section"]

Path = tuple[str | int, ...]


@attrs.frozen
class Section:
    """A top-level ruleset key owned by one plugin.

    ``type`` is what the YAML is structured into (an attrs class, ``list[Rule]``,
    ``dict[str, Team]`` ...). ``default`` builds the value used when the key is absent
    (None: the section is optional and ``compile`` sees None). ``compile`` turns the
    structured value into what the plugin runs per incident; it reports problems
    through the :class:`CompileContext`, never by raising.
    """

    name: str
    type: Any
    compile: Callable[[Any, CompileContext], Any] | None = None
    default: Callable[[], Any] | None = None
    required: bool = False
    doc: str = ""


@attrs.define
class _Reference:
    kind: str
    name: Any
    path: Path
    rule: str | None


class CompileContext:
    """Given to a section's ``compile``: report problems, declare names, compile conditions."""

    def __init__(
        self,
        *,
        root: Any,
        main_file: str,
        timezone: ZoneInfo,
        functions: Mapping[str, Any],
        diagnostics: list[Diagnostic],
        hook: Any = None,
    ) -> None:
        self._root = root
        self._main_file = main_file
        self.timezone = timezone
        self._functions = functions
        self._diagnostics = diagnostics
        #: The plugin manager's hook relay, for a section that gathers what other
        #: plugins contribute (the notify section checks channels against every
        #: plugin's ``qflow_backends``). Call hooks with keyword arguments.
        self.hook = hook
        self._defined: dict[str, dict[Any, Path]] = {}
        self._closed: set[str] = set()
        self._refs: list[_Reference] = []
        self._sections: Mapping[str, Any] = {}
        self._kept: dict[str, tuple[int, ...]] = {}  # list section -> indices that structured
        self._broken: set[Any] = set()  # names whose definition did not structure
        # Mappings structured as if their unknown keys were absent: what is said about
        # one as a whole (it lacks something, it does nothing) may be the misspelt key.
        self._pruned: set[Path] = set()

    def index(self, section: str, position: int) -> int:
        """Where item *position* of a structured list section stood in the YAML.

        Items that failed to structure are left out of the value (their errors are
        already reported), so positions and YAML indices can differ.
        """
        kept = self._kept.get(section)
        return kept[position] if kept is not None and position < len(kept) else position

    def section(self, name: str) -> Any:
        """The structured value of any section (None when absent), for sections that
        build on another one."""
        return self._sections.get(name)

    def sections(self) -> Mapping[str, Any]:
        """Every section's structured value (None when absent), read-only: for a hook
        that asks the other plugins about the whole ruleset."""
        return MappingProxyType(dict(self._sections))

    def partial(self, path: Path) -> bool:
        """Whether the value at *path*, or a part of it, was structured as if its
        unknown keys were absent. Such a value is checked for its other mistakes, but
        what it seems to lack may be written under a misspelt key: a section that
        builds on it should not report that lack (a severity's target spelt
        ``repond:`` is not a ladder step that can never fire)."""
        n = len(path)
        return any(p[:n] == path for p in self._pruned)

    # -- positions ---------------------------------------------------------------

    def raw(self, path: Path) -> Any:
        """The YAML node at *path* (YMap, YSeq or a scalar), or None."""
        node = self._root
        for step in path:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def structure(self, path: Path, raw: Any, typ: Any, *, rule: str | None = None) -> Any:
        """Structure *raw* (plain data from the YAML at *path*) into *typ* with qflow's
        strict converter; every problem is reported located under *path* and the
        result is None. For sections whose parts are typed by other plugins (a
        channel's options by its backend's config class)."""
        from cattrs.errors import BaseValidationError

        from qflow._convert import ShapeError, make_converter

        conv = make_converter()
        try:
            return conv.structure(raw, typ)
        except (BaseValidationError, ShapeError, ValueError, TypeError, KeyError, AttributeError) as exc:
            return self.salvage(conv, exc, path, raw, typ, rule=rule)

    def salvage(self, conv: Any, exc: Exception, path: Path, raw: Any, typ: Any, *, rule: str | None = None,
                at: str = "value") -> Any:
        """Report, located under *path*, every problem *exc* found structuring *raw* into
        *typ*; then structure it again without its unknown keys, so that the rest of it
        is still checked (None when other problems remain)."""
        from qflow._convert import structure_errors, structure_without_unknown_keys

        problems = structure_errors(exc, typ) or [((), "QF104", str(exc), None, "value")]
        for sub, code, msg, hint, where in problems:
            full = path + sub
            if where == "parent":
                self.error(full[:-1], code, msg, hint=hint, rule=rule)
            else:
                self.error(full, code, msg, hint=hint, rule=rule, at=where if sub else at)
        salvaged = structure_without_unknown_keys(conv, raw, typ, problems)
        if salvaged is None:
            return None
        value, pruned = salvaged
        self._pruned.update(path + sub for sub in pruned)
        return value

    def mark(self, path: Path, *, at: str = "value") -> Mark:
        found = locate(self._root, path, at=at)
        return found if found is not None else Mark(self._main_file, 0, 0)

    # -- problems ----------------------------------------------------------------

    def error(
        self,
        path: Path,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        rule: str | None = None,
        at: str = "value",
        severity: str = "error",
    ) -> None:
        """Report a problem at *path* (``at="key"`` points at the key itself).

        A problem with a mapping as a whole that has an unknown key is not reported:
        the unknown key, reported with the key it likely means, may be what it lacks."""
        if path in self._pruned and at == "value":
            return
        m = self.mark(path, at=at)
        self._diagnostics.append(
            Diagnostic(m.file, m.line + 1, m.col + 1, code, message, json_path(path), hint,
                       rule, severity)  # type: ignore[arg-type]
        )

    def warn(self, path: Path, code: str, message: str, **kw: Any) -> None:
        self.error(path, code, message, severity="warning", **kw)

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self._diagnostics)

    # -- names -------------------------------------------------------------------

    def declare(self, kind: str) -> None:
        """Say that every name of *kind* must be defined: references are then checked."""
        self._closed.add(kind)

    def define(self, kind: str, name: Any, path: Path) -> None:
        """Define *name* of *kind* (``team``, ``severity`` ...) at *path*; order is kept."""
        self._closed.add(kind)
        seen = self._defined.setdefault(kind, {})
        if name in seen:
            first = self.mark(seen[name])
            self.error(path, "QF202", f"{kind} '{name}' is defined twice",
                       hint=f"first defined at {first.file}:{first.line + 1}")
            return
        seen[name] = path

    def refer(self, kind: str, name: Any, path: Path, *, rule: str | None = None) -> None:
        """Note a reference to *name* of *kind*; checked once every section is compiled."""
        self._refs.append(_Reference(kind, name, path, rule))

    def defined(self, kind: str) -> tuple[Any, ...]:
        """Names of *kind* defined so far, in order (compile order is the section order)."""
        return tuple(self._defined.get(kind, ()))

    # -- conditions --------------------------------------------------------------

    def condition(self, path: Path, *, rule: str | None = None) -> Any:
        """Compile the condition at *path*; absent means always true.

        Problems are reported here; a broken condition compiles to "never" so the
        section can still be compiled and every other problem found.
        """
        from qflow.conditions import ALWAYS, NEVER, compile_condition

        node = self.raw(path)
        if node is None:
            return ALWAYS
        m = self.mark(path)
        compiled = compile_condition(node, at=m, path=path, functions=self._functions,
                                     errors=self._diagnostics, rule=rule, file=m.file)
        return NEVER if compiled is None else compiled

    # -- after all sections --------------------------------------------------------

    def _check_references(self, *, fold: bool = False) -> list[tuple[str, Any]]:
        """Report every reference to a name not defined; with *fold*, return them as
        (kind, name) instead, for the loader to say in one line (an include that
        could not be read may define them)."""
        from qflow.diagnostics import did_you_mean

        folded = []
        for ref in self._refs:
            if ref.kind not in self._closed:
                continue
            names = self._defined.get(ref.kind, {})
            if ref.name in names or ref.name in self._broken:
                continue
            if fold:
                folded.append((ref.kind, ref.name))
                continue
            hint = did_you_mean(ref.name, [str(n) for n in names])
            if hint is None:
                hint = (f"define it or use one of: {', '.join(map(str, names))}" if names
                        else f"no {ref.kind} is defined yet; define one first")
            self.error(ref.path, "QF201", f"unknown {ref.kind} '{ref.name}'", hint=hint, rule=ref.rule)
        return folded

    def _symbols(self) -> FrozenDict:
        return FrozenDict({k: tuple(v) for k, v in self._defined.items()})

    def _definitions(self) -> FrozenDict:
        out = {}
        for kind, names in self._defined.items():
            where = {}
            for name, path in names.items():
                m = self.mark(path)
                where[name] = (m.file, m.line + 1, m.col + 1, json_path(path))
            out[kind] = FrozenDict(where)
        return FrozenDict(out)

    def _used(self) -> FrozenDict:
        used: dict[str, set[Any]] = {}
        for ref in self._refs:
            used.setdefault(ref.kind, set()).add(ref.name)
        return FrozenDict({k: tuple(sorted(v, key=str)) for k, v in used.items()})


@attrs.frozen
class Ruleset:
    """A loaded, checked and compiled ruleset. Immutable: share it between threads.

    ``hash`` is the content hash of every file read (the main file and its includes);
    ``ref`` (``name@hash``) is recorded with every decision.
    """

    name: str
    hash: str
    timezone: str
    files: tuple[str, ...]
    sections: FrozenDict  # section name -> structured value
    compiled_sections: FrozenDict = attrs.field(repr=False)  # section name -> compiled value
    symbols: FrozenDict = attrs.field(repr=False)  # kind -> names, in definition order
    used: FrozenDict = attrs.field(repr=False)  # kind -> names referred to
    warnings: tuple[Diagnostic, ...] = ()
    description: str | None = None
    #: kind -> {name: (file, line, col, json path)}: where each name is defined
    definitions: FrozenDict = attrs.field(factory=FrozenDict, repr=False, eq=False)

    ref: str = attrs.field(init=False, repr=False, eq=False)
    # compiled_sections' own lookup: plugins call compiled() several times a decision
    _compiled: Any = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # Read with every decision: computed once.
        object.__setattr__(self, "ref", f"{self.name}@{self.hash}")
        sections = self.compiled_sections
        object.__setattr__(self, "_compiled",
                           sections.as_dict().get if isinstance(sections, FrozenDict) else sections.get)

    def compiled(self, name: str, default: Any = None) -> Any:
        """The compiled form of section *name* (what its plugin's ``compile`` returned)."""
        return self._compiled(name, default)

    def names(self, kind: str) -> tuple[Any, ...]:
        """The names of *kind* the ruleset defines (teams, severities ...), in order."""
        return self.symbols.get(kind, ())


