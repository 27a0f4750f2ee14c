"""Lint for rule sections: rules that can never take effect, sections without a default.

Uses only the public condition analysis (:func:`qflow.conditions.implies`), which is
sound: a rule reported here really never changes a decision; some that never do may
go unreported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from qflow import Diagnostic
from qflow.conditions import implies, never_holds
from qflow_rules._chain import Chain, Rule

__all__ = ["lint_section"]


def _warn(rule: Rule, code: str, message: str, hint: str) -> Diagnostic:
    file, line, col, path = rule.where or ("<ruleset>", 1, 1, "$")
    return Diagnostic(file, line, col, code, message, path, hint, rule.id, "warning")


def _line(rule: Rule) -> str:
    return f"line {rule.where[1]}" if rule.where else "earlier"


def _fields(rule: Rule) -> set[str]:
    return {f for f, _ in rule.values}


def _shown(fields: Sequence[str] | set[str]) -> str:
    return ", ".join(sorted(fields))


def lint_section(chain: Any) -> list[Diagnostic]:
    """Warnings for one compiled rule section (a Chain or a ModeChain)."""
    if isinstance(chain, Chain):
        return list(_plain(chain))
    return list(_moded(chain))


def _no_default(chain: Any, has_default: bool, how: str) -> Iterator[Diagnostic]:
    if has_default or not chain.rules:
        return
    where = getattr(chain, "where", None) or ("<ruleset>", 1, 1, f"$.{chain.section}")
    fields = sorted({f for r in chain.rules for f, _ in r.values})
    yield Diagnostic(where[0], where[1], where[2], "QF651",
                     f"{chain.section} has no default: when no rule matches, {', '.join(fields)} "
                     f"{'stays' if len(fields) == 1 else 'stay'} unset",
                     where[3], how, None, "warning")


def _plain(chain: Chain) -> Iterator[Diagnostic]:
    """First match per field: a rule is dead when earlier rules whose conditions it
    implies already set every field it sets. Defaults (no ``when``) come last."""
    conditional = [r for r in chain.rules if not r.condition.always]
    defaults = [r for r in chain.rules if r.condition.always]
    yield from _no_default(chain, bool(defaults),
                           "add a last rule without 'when' that sets a value for each")
    for j, b in enumerate(conditional):
        if never_holds(b.condition):
            continue  # the kernel reports it (QF653)
        covering = [a for a in conditional[:j] if implies(b.condition, a.condition)]
        covered: set[str] = set().union(*(_fields(a) for a in covering)) if covering else set()
        if covering and _fields(b) <= covered:
            names = ", ".join(f"'{a.id}' ({_line(a)})" for a in covering if _fields(a) & _fields(b))
            yield _warn(b, "QF650", f"rule '{b.id}' can never take effect: whenever it matches, "
                        f"{names} already set {_shown(_fields(b))} (first match per field)",
                        f"move it above {names.split(' (')[0]}, narrow the earlier rule, or remove this one")
    for j, b in enumerate(defaults):
        earlier = [a for a in defaults[:j] if _fields(a) & _fields(b)]
        if earlier and _fields(b) <= set().union(*(_fields(a) for a in earlier)):
            names = ", ".join(f"'{a.id}' ({_line(a)})" for a in earlier)
            yield _warn(b, "QF650", f"default '{b.id}' can never take effect: the earlier default {names} "
                        f"already sets {_shown(_fields(b))}", "keep one default per field")


def _moded(chain: Any) -> Iterator[Diagnostic]:
    rules: Sequence[Rule] = chain.rules
    has_default = bool(chain.default) or any(r.condition.always and not r.cont for r in rules)
    yield from _no_default(chain, has_default, "add 'default:' with the values to use")
    first = chain.mode == "first"
    for j, b in enumerate(rules):
        if never_holds(b.condition):
            continue
        if first:
            stop = next((a for a in rules[:j] if not a.cont and implies(b.condition, a.condition)), None)
            if stop is not None:
                yield _warn(b, "QF650", f"rule '{b.id}' can never match: rule '{stop.id}' ({_line(stop)}) "
                            "matches whenever it does and stops there (mode first)",
                            f"move it above '{stop.id}', or give '{stop.id}' 'continue: true'")
                continue
            filled = [a for a in rules[:j] if a.cont and implies(b.condition, a.condition)]
            if filled and _fields(b) <= set().union(*(_fields(a) for a in filled)):
                names = ", ".join(f"'{a.id}'" for a in filled)
                yield _warn(b, "QF650", f"rule '{b.id}' can never take effect: {names} already set "
                            f"{_shown(_fields(b))} whenever it matches (mode first)",
                            "move it above them, or remove it")
            continue
        stop = next((a for a in rules[:j] if a.cont is False and implies(b.condition, a.condition)), None)
        if stop is not None:
            yield _warn(b, "QF650", f"rule '{b.id}' can never match: rule '{stop.id}' ({_line(stop)}) matches "
                        "whenever it does and says 'continue: false' (mode all)",
                        f"move it above '{stop.id}'")
            continue
        if b.cont is False:
            continue
        later: list[Rule] = []
        for c in rules[j + 1:]:
            if implies(b.condition, c.condition):
                later.append(c)
            if c.cont is False:
                break  # beyond a stop, later rules may not be reached
        if later and _fields(b) <= set().union(*(_fields(c) for c in later)):
            names = ", ".join(f"'{c.id}' ({_line(c)})" for c in later)
            verbs = "matches too and sets" if len(later) == 1 else "match too and set"
            yield _warn(b, "QF656", f"rule '{b.id}' is always overridden: whenever it matches, {names} "
                        f"{verbs} {_shown(_fields(b))} (mode all: later rules win)",
                        "remove it, or move it below them")
