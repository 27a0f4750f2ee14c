"""A rule section with its routing mode stated: ``{mode: first|all, rules: [...], default: {...}}``.

- ``mode: first`` — rules are tried in file order and the first that matches decides;
  with ``continue: true`` the walk goes on, and later matching rules fill only the
  fields still unset.
- ``mode: all`` — every matching rule applies in file order, a later one overriding
  what an earlier one set; ``continue: false`` on a rule stops the walk after it.

A rule without ``when`` matches everything, in its place. ``default`` fills what is
still unset at the end. (The plain list form, ``route: [...]``, is :class:`Chain`:
first match per field, rules without ``when`` last.)

Speed: the same buckets as the plain form, and with ``mode: first`` and no
``continue`` each rule's result is built once at load, so ``run`` is a lookup plus a
scan, exactly like the fastest plain chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qflow import TraceStep
from qflow_rules._chain import Build, Decided, Extra, Rule, _fixed_run, _index, bucket_of, sets, shadow_steps

__all__ = ["ModeChain"]

_MODE_TEXT = {
    "first": "mode first: rules in file order, the first that matches decides "
             "('continue: true' lets later rules fill what is still unset)",
    "all": "mode all: every matching rule applies in file order, a later one overriding an earlier one "
           "('continue: false' stops after that rule)",
}


class ModeChain:
    """The compiled form of a section written with ``mode:``; same interface as Chain."""

    def __init__(self, section: str, mode: str, rules: Sequence[Rule], fields: Sequence[str], build: Build,
                 default: Sequence[tuple[str, Any]] = (),
                 extra: tuple[str, Extra, Callable[[Mapping[str, Any]], str]] | None = None,
                 shadows: Sequence[Rule] = ()) -> None:
        self.section = section
        self.mode = mode
        self.rules = tuple(rules)
        self.fields = tuple(fields)
        self.default = tuple(default)
        self.shadows = tuple(shadows)
        self._build = build
        self._extra = extra
        self._default_source = f"{section}:default"
        self._key, buckets = _index(self.rules)
        self._buckets = {k: tuple((r.condition.test, r) for r in rs) for k, rs in buckets.items()}
        if mode == "first" and extra is None and not any(r.cont for r in self.rules):
            made = {}
            for r in self.rules:
                out = {f: (v, r.source) for f, v in r.values}
                made[r.source] = self._finish(out, [r.source])
            fixed = {k: tuple((r.condition.test, made[r.source]) for r in rs) for k, rs in buckets.items()}
            self.run = _fixed_run(self._key, fixed, self._finish({}, []))  # type: ignore[method-assign]

    def _finish(self, out: dict[str, tuple[Any, str]], matched: list[str]) -> Any:
        added = False
        for f, v in self.default:
            if f not in out:
                out[f] = (v, self._default_source)
                added = True
        if added:
            matched = [*matched, self._default_source]
        return self._build(out, matched) if out else None

    def _candidates(self, view: Mapping[str, Any]) -> tuple[tuple[Callable[[Any], bool], Rule], ...]:
        return bucket_of(self._buckets, self._key, view)

    def _walk(self, hits: Sequence[Rule]) -> tuple[dict[str, tuple[Any, str]], list[str]]:
        """Apply the matching rules (*hits*, in order) by the mode; the rules that
        still set a field, in order."""
        out: dict[str, tuple[Any, str]] = {}
        first = self.mode == "first"
        for rule in hits:
            for f, v in rule.values:
                if not first or f not in out:
                    out[f] = (v, rule.source)
        sources = {src for _, src in out.values()}
        return out, [r.source for r in hits if r.source in sources]

    def _hits(self, view: Mapping[str, Any]) -> list[Rule]:
        hits = []
        first = self.mode == "first"
        for test, rule in self._candidates(view):
            if test(view):
                hits.append(rule)
                if (first and not rule.cont) or (not first and rule.cont is False):
                    break
        return hits

    def run(self, view: Mapping[str, Any]) -> Any:
        """What the section decides for *view*: ``build``'s result, or None."""
        out, matched = self._walk(self._hits(view))
        if self._extra is not None and len(out) < len(self.fields):
            found = self._extra[1](view)
            if found is not None:
                values, source = found
                before = len(out)
                for f, v in values:
                    if f not in out:
                        out[f] = (v, source)
                if len(out) > before:
                    matched.append(f"{self.section}:{self._extra[0]}")
        return self._finish(out, matched)

    def explain(self, view: Mapping[str, Any], decided: Decided | None = None) -> list[TraceStep]:
        """The same walk as :meth:`run` over every rule in file order, with reasons
        (*decided*: see :meth:`Chain.explain`)."""
        section = self.section
        steps = [TraceStep(section, None, "info", _MODE_TEXT[self.mode])]
        first = self.mode == "first"
        hits: list[Rule] = []
        reasons: dict[str, str] = {}
        stopped_at: Rule | None = None
        walked: list[tuple[Rule, bool, str]] = []
        for i, rule in enumerate(self.rules):
            ok, why = rule.condition.explain(view)
            walked.append((rule, ok, why))
            if ok:
                hits.append(rule)
                reasons[rule.source] = why
                if (first and not rule.cont) or (not first and rule.cont is False):
                    stopped_at = rule
                    rest = len(self.rules) - i - 1
                    break
        out, matched = self._walk(hits)
        for rule, ok, why in walked:
            if not ok:
                steps.append(TraceStep(section, rule.id, "no match", why))
                continue
            mine = [(f, v) for f, v in rule.values if out.get(f, (None, ""))[1] == rule.source]
            if mine:
                steps.append(TraceStep(section, rule.id, "matched", sets(why, mine, rule.source, decided)))
            else:
                by = "earlier rules already set" if first else "later rules override"
                steps.append(TraceStep(section, rule.id, "no effect",
                                       f"{why}; but {by} {', '.join(f for f, _ in rule.values)}"))
        if stopped_at is not None and rest:
            how = ("it does not say 'continue: true'" if first else "it says 'continue: false'")
            steps.append(TraceStep(section, None, "not reached",
                                   f"{rest} later rule(s) not considered: '{stopped_at.id}' matched and {how}"))
        if self._extra is not None and len(out) < len(self.fields):
            name, run, why_extra = self._extra
            found = run(view)
            if found is None:
                steps.append(TraceStep(section, name, "no match", why_extra(view)))
            else:
                values, source = found
                took = [(f, v) for f, v in values if f not in out]
                for f, v in values:
                    out.setdefault(f, (v, name))
                steps.append(TraceStep(section, name, "matched" if took else "no effect",
                                       sets(why_extra(view), took, source, decided) if took
                                       else f"{why_extra(view)}; but earlier rules already set what it gives"))
        if self.default:
            took = [(f, v) for f, v in self.default if f not in out]
            for f, v in self.default:
                out.setdefault(f, (v, self._default_source))
            if took:
                steps.append(TraceStep(section, "default", "matched", sets("default", took, self._default_source,
                                                                            decided)))
            else:
                steps.append(TraceStep(section, "default", "not needed", "default; every field it sets is already set"))
        missing = [f for f in self.fields if f not in out and f != "priority"]
        if missing:
            steps.append(TraceStep(section, None, "unset",
                                   f"no rule set {', '.join(missing)}; add 'default:' to set it"))
        steps += shadow_steps(section, self.shadows, view, out if decided is None else decided)
        return steps
