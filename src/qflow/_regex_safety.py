r"""Refusing regular expressions that can backtrack catastrophically.

Python's ``re`` backtracks: a pattern like ``(a+)+$`` takes exponential time on a long
``aaaa…b``, and a ruleset regex runs on every incident's description, so one bad rule
could stall the engine. We cannot switch engines (RE2 drops features ops people use),
so we refuse the dangerous shapes at load instead.

The analysis walks the pattern as ``re._parser`` parses it and looks for a repeat
whose body can match the same text in more than one way while repeating: a repeat
inside a repeat whose pieces can match the same characters (``(a+)+``, ``(a*)*``,
``(.*a)*``, ``(\w+\s?)+``), or alternatives that overlap inside a repeat
(``(a|aa)+``, ``(?:\d|\d\d)+``). Characters are compared through small probe sets
of first and following characters, so the check errs on the safe side only where the
probes say two pieces cannot meet: it accepts ``(\d+\.)+\d+``, ``(\w+\s)+``,
``(ab|ac)+`` and anything made atomic (``(?>a+)+``, ``(a++)+``). It is a guard for
the common mistakes, not a proof: exotic constructions (back-references inside
repeats, lookarounds that change what follows) are treated as harmless.

A second, milder shape is polynomial: two unbounded repeats side by side that can
share the same text (``\s*\s*$``, ``.*.*=``, ``\w+\s?\w*!``). Each can take any
share of a run the other could take, so with *k* of them a failing match tries about
n^k splits, and a search tries every start on top: ``\s*\s*\s*$`` takes over a minute
on 600 spaces. :func:`overlapping_neighbours` finds the first such pair when
something after it can fail (at the end of the pattern the first split succeeds, so
``fire.*.*`` is harmless). Repeats that cannot begin or end on the same character
(``(\d+\.)+\d+``, ``[^=]*=.*``), bounded ones (``.{0,8}``) and a possessive first
(``a*+a*``) pass.
"""

from __future__ import annotations

import functools
import re
import re._constants as _sre  # type: ignore[import-not-found,unused-ignore]
import re._parser as _sre_parse  # type: ignore[import-not-found,unused-ignore]
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["can_backtrack_catastrophically", "overlapping_neighbours"]


def can_backtrack_catastrophically(pattern: str) -> bool:
    """True when *pattern* (already accepted by ``re.compile``) has a dangerous repeat."""
    try:
        return _catastrophic(_parsed(pattern))
    except Exception:  # noqa: BLE001 - re.compile accepted it; never crash the load
        return False


def overlapping_neighbours(pattern: str) -> tuple[str, str] | None:
    """The first two unbounded repeats of *pattern* (already accepted by ``re.compile``)
    that stand side by side, can match the same text, and have something after them
    that can fail, as written (``("\\s*", "\\s*")``); None when there are none."""
    try:
        return _neighbours(_parsed(pattern), [], False)[1]
    except Exception:  # noqa: BLE001 - re.compile accepted it; never crash the load
        return None


@functools.lru_cache(maxsize=32)
def _parsed(pattern: str) -> Any:
    # Both checks read the same parse of a rule's pattern (walks only read it).
    return _sre_parse.parse(pattern).data


_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT)
_CHAR_OPS = (_sre.LITERAL, _sre.NOT_LITERAL, _sre.ANY, _sre.IN)
_CATEGORY_RE = {
    name: re.compile(pattern)
    for pattern, names in {
        r"\d": ("CATEGORY_DIGIT", "CATEGORY_UNI_DIGIT"),
        r"\D": ("CATEGORY_NOT_DIGIT", "CATEGORY_UNI_NOT_DIGIT"),
        r"\s": ("CATEGORY_SPACE", "CATEGORY_UNI_SPACE"),
        r"\S": ("CATEGORY_NOT_SPACE", "CATEGORY_UNI_NOT_SPACE"),
        r"\w": ("CATEGORY_WORD", "CATEGORY_UNI_WORD", "CATEGORY_LOC_WORD"),
        r"\W": ("CATEGORY_NOT_WORD", "CATEGORY_UNI_NOT_WORD", "CATEGORY_LOC_NOT_WORD"),
        r"\n": ("CATEGORY_LINEBREAK", "CATEGORY_UNI_LINEBREAK"),
        r"[^\n]": ("CATEGORY_NOT_LINEBREAK", "CATEGORY_UNI_NOT_LINEBREAK"),
    }.items()
    for name in names
}
# Characters to probe whether two character sets overlap, besides those they name.
_PROBES = " \t\n0123456789aAzZ_-.,:;/@中é"


def _accepts(atom: tuple[Any, Any], ch: str) -> bool:
    op, av = atom
    if op is _sre.LITERAL:
        return bool(ord(ch) == av)
    if op is _sre.NOT_LITERAL:
        return bool(ord(ch) != av)
    if op is _sre.ANY:
        return ch != "\n"
    negate = False
    hit = False
    for item_op, item_av in av:
        if item_op is _sre.NEGATE:
            negate = True
        elif item_op is _sre.LITERAL:
            hit = hit or ord(ch) == item_av
        elif item_op is _sre.RANGE:
            hit = hit or item_av[0] <= ord(ch) <= item_av[1]
        elif item_op is _sre.CATEGORY:
            probe = _CATEGORY_RE.get(str(item_av))
            hit = hit or (probe is None or probe.match(ch) is not None)
        else:  # anything unexpected: assume it may match
            hit = True
    return hit != negate


def _named_chars(atoms: Iterable[tuple[Any, Any]]) -> set[str]:
    out: set[str] = set()
    for op, av in atoms:
        if op in (_sre.LITERAL, _sre.NOT_LITERAL):
            out.add(chr(av))
        elif op is _sre.IN:
            for item_op, item_av in av:
                if item_op is _sre.LITERAL:
                    out.add(chr(item_av))
                elif item_op is _sre.RANGE:
                    out.update((chr(item_av[0]), chr(item_av[1])))
    return out


def _overlap(a: list[tuple[Any, Any]], b: list[tuple[Any, Any]]) -> bool:
    if not a or not b:
        return False
    probes = set(_PROBES) | _named_chars(a) | _named_chars(b)
    return any(any(_accepts(x, ch) for x in a) and any(_accepts(y, ch) for y in b) for ch in probes)


def _edge_seq(items: Sequence[tuple[Any, Any]], *, last: bool = False) -> tuple[list[tuple[Any, Any]], bool]:
    """The characters a sequence can start (or, with *last*, end) with, and whether it
    can match nothing."""
    atoms: list[tuple[Any, Any]] = []
    for op, av in (reversed(items) if last else items):
        more, nullable = _edge_item(op, av, last)
        atoms += more
        if not nullable:
            return atoms, False
    return atoms, True


def _edge_item(op: Any, av: Any, last: bool = False) -> tuple[list[tuple[Any, Any]], bool]:
    if op in _CHAR_OPS:
        return [(op, av)], False
    if op is _sre.BRANCH:
        atoms: list[tuple[Any, Any]] = []
        nullable = False
        for alt in av[1]:
            more, n = _edge_seq(alt, last=last)
            atoms += more
            nullable = nullable or n
        return atoms, nullable
    if op is _sre.SUBPATTERN:
        return _edge_seq(av[-1], last=last)
    if op in _REPEATS or op is _sre.POSSESSIVE_REPEAT:
        atoms, nullable = _edge_seq(av[2], last=last)
        return atoms, nullable or av[0] == 0
    if op is _sre.ATOMIC_GROUP:
        return _edge_seq(av, last=last)
    if op is _sre.GROUPREF_EXISTS:
        yes, ny = _edge_seq(av[1], last=last)
        no, nn = _edge_seq(av[2], last=last) if av[2] is not None else ([], True)
        return yes + no, ny or nn
    if op is _sre.GROUPREF:
        return [(_sre.ANY, None)], True
    return [], True  # anchors and lookarounds match no character


def _chars_in(items: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every character set a sequence can consume (lookarounds excluded)."""
    out: list[tuple[Any, Any]] = []
    for op, av in items:
        if op in _CHAR_OPS:
            out.append((op, av))
        elif op is _sre.BRANCH:
            for alt in av[1]:
                out += _chars_in(alt)
        elif op is _sre.SUBPATTERN:
            out += _chars_in(av[-1])
        elif op in _REPEATS or op is _sre.POSSESSIVE_REPEAT:
            out += _chars_in(av[2])
        elif op is _sre.ATOMIC_GROUP:
            out += _chars_in(av)
        elif op is _sre.GROUPREF_EXISTS:
            out += _chars_in(av[1]) + (_chars_in(av[2]) if av[2] is not None else [])
        elif op is _sre.GROUPREF:
            out.append((_sre.ANY, None))
    return out


def _literal_text(items: Sequence[tuple[Any, Any]]) -> str | None:
    if all(op is _sre.LITERAL for op, _ in items):
        return "".join(chr(av) for _, av in items)
    return None


def _ambiguous(items: Sequence[tuple[Any, Any]], follow: list[tuple[Any, Any]]) -> bool:
    """Can this part of a repeated body match one text in several ways, given the
    characters that may *follow* it? Walks right to left, keeping the follow set."""
    for op, av in reversed(items):
        if op in _REPEATS:
            low, high, body = av
            if low != high and _overlap(_chars_in(body), follow):
                return True  # e.g. the a+ in (a+)+ or the .* in (.*a)*
            inner = follow + (_edge_seq(body)[0] if high > 1 else [])
            if _ambiguous(body, inner):
                return True
        elif op is _sre.SUBPATTERN:
            if _ambiguous(av[-1], follow):
                return True
        elif op is _sre.BRANCH:
            alts = av[1]
            if any(_ambiguous(alt, follow) for alt in alts):
                return True
            if _alternatives_clash(alts, follow):
                return True
        # atomic groups, possessive repeats and lookarounds are never backtracked into
        atoms, nullable = _edge_item(op, av)
        follow = atoms + (follow if nullable else [])
    return False


def _alternatives_clash(alts: Sequence[Any], follow: list[tuple[Any, Any]]) -> bool:
    """Two alternatives that can match the same text, as in (a|aa)+."""
    for i, a in enumerate(alts):
        for b in alts[i + 1:]:
            ta, tb = _literal_text(a), _literal_text(b)
            if ta is not None and tb is not None:
                short, long = sorted((ta, tb), key=len)
                if long.startswith(short):
                    rest = long[len(short):]
                    if not rest or _overlap([(_sre.LITERAL, ord(rest[0]))], follow):
                        return True
                continue
            first_a, empty_a = _edge_seq(a)
            first_b, empty_b = _edge_seq(b)
            if (_overlap(first_a, first_b) or (empty_a and _overlap(first_b, follow))
                    or (empty_b and _overlap(first_a, follow))):
                return True
    return False


def _catastrophic(items: Sequence[tuple[Any, Any]]) -> bool:
    """True when some backtracking repeat contains a part that can match one text in
    several ways (nested unbounded repeats, overlapping alternatives)."""
    for op, av in items:
        if op in _REPEATS:
            _, high, body = av
            if high > 1 and _ambiguous(body, _edge_seq(body)[0]):
                return True
            if _catastrophic(body):
                return True
        elif any(_catastrophic(inner) for inner in _inside(op, av)):
            return True
    return False


def _inside(op: Any, av: Any) -> list[Any]:
    """The sub-sequences of a parsed item other than a backtracking repeat's body."""
    if op is _sre.POSSESSIVE_REPEAT:
        return [av[2]]
    if op is _sre.SUBPATTERN:
        return [av[-1]]
    if op is _sre.BRANCH:
        return list(av[1])
    if op is _sre.ATOMIC_GROUP:
        return [av]
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return [av[1]]
    if op is _sre.GROUPREF_EXISTS:
        return [av[1]] + ([av[2]] if av[2] is not None else [])
    return []


# ---------------------------------------------------------------------------
# Unbounded repeats side by side (polynomial backtracking)
# ---------------------------------------------------------------------------

#: An unbounded backtracking repeat the walk has passed with nothing since that must
#: consume a character: (every character set it can consume, its first characters,
#: its last characters, how it is written).
_Open = tuple[list[tuple[Any, Any]], list[tuple[Any, Any]], list[tuple[Any, Any]], str]


def _neighbours(items: Sequence[tuple[Any, Any]], open_: list[_Open],
                tail_fails: bool) -> tuple[list[_Open], tuple[str, str] | None]:
    """Walk *items* left to right with the repeats *open_* that may end where the walk
    stands; *tail_fails* says whether what follows *items* can fail. Returns the
    repeats still open after *items*, and the first clashing pair found."""
    fails_after = [tail_fails] * (len(items) + 1)
    for i in range(len(items) - 1, -1, -1):
        fails_after[i] = fails_after[i + 1] or _can_fail(*items[i])
    for i, (op, av) in enumerate(items):
        open_, found = _neighbour_step(op, av, open_, fails_after[i + 1])
        if found is not None:
            return open_, found
    return open_, None


def _neighbour_step(op: Any, av: Any, open_: list[_Open], fails: bool) -> tuple[list[_Open], tuple[str, str] | None]:
    if op in _REPEATS or op is _sre.POSSESSIVE_REPEAT:
        low, high, body = av
        if high == _sre.MAXREPEAT:
            inner = _neighbours(body, [], True)[1]  # side by side within one pass of the body
            if inner is not None:
                return open_, inner
            me = (_chars_in(body), _edge_seq(body, last=False)[0], _edge_seq(body, last=True)[0],
                  _repeat_text(op, av))
            if fails:
                for other in open_:
                    if _overlap(other[1], me[1]) and _overlap(other[2], me[2]) and _overlap(other[0], me[0]):
                        return open_, (other[3], me[3])
            if op is _sre.POSSESSIVE_REPEAT:  # never gives back what it took
                return (open_ if low == 0 else []), None
            return ([*open_, me] if low == 0 else [me]), None
        if high == 0:
            return open_, None
        # a bounded repeat: what one pass leaves open, and a second pass when the first
        # leaves a repeat open that the next could meet (\s*{2} is \s*\s*)
        once, found = _neighbours(body, open_, fails)
        if found is not None or high == 1 or not once:
            return _union(open_ if low == 0 else [], once), found
        twice, found = _neighbours(body, once, fails)
        return _union(open_ if low == 0 else [], once, twice), found
    if op is _sre.SUBPATTERN:
        return _neighbours(av[-1], open_, fails)
    if op is _sre.BRANCH or op is _sre.GROUPREF_EXISTS:
        alts = av[1] if op is _sre.BRANCH else [av[1], av[2] or []]
        outs: list[list[_Open]] = []
        for alt in alts:
            out, found = _neighbours(alt, open_, fails)
            if found is not None:
                return out, found
            outs.append(out)
        return _union(*outs), None
    if op is _sre.ATOMIC_GROUP:  # the repeats before it still retry it; its own never give back
        found = _neighbours(av, open_, fails)[1]
        return (open_ if _edge_seq(av, last=False)[1] else []), found
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return open_, _neighbours(av[1], [], True)[1]
    if op is _sre.AT:
        return open_, None  # an anchor matches no character
    return [], None  # a character (or a back-reference) ends every run


def _union(*groups: list[_Open]) -> list[_Open]:
    out: list[_Open] = []
    for group in groups:
        out += [o for o in group if not any(o is x for x in out)]
    return out


def _can_fail(op: Any, av: Any) -> bool:
    """Whether the item can fail to match where it stands (one that can always match
    nothing cannot)."""
    if op in _REPEATS or op is _sre.POSSESSIVE_REPEAT:
        return av[0] > 0 and any(_can_fail(*item) for item in av[2])
    if op is _sre.SUBPATTERN:
        return any(_can_fail(*item) for item in av[-1])
    if op is _sre.ATOMIC_GROUP:
        return any(_can_fail(*item) for item in av)
    if op is _sre.BRANCH:
        return all(any(_can_fail(*item) for item in alt) for alt in av[1])
    return True


_CATEGORY_TEXT = {
    "CATEGORY_DIGIT": r"\d", "CATEGORY_UNI_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_UNI_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s", "CATEGORY_UNI_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S", "CATEGORY_UNI_NOT_SPACE": r"\S", "CATEGORY_WORD": r"\w",
    "CATEGORY_UNI_WORD": r"\w", "CATEGORY_LOC_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W",
    "CATEGORY_UNI_NOT_WORD": r"\W", "CATEGORY_LOC_NOT_WORD": r"\W",
}


def _repeat_text(op: Any, av: Any) -> str:
    """A repeat written back as a person would have written it (``\\s*``, ``[a-z]+``,
    ``.*?``, ``\\d{2,}``); a group body is shown as ``(…)``."""
    low, high, body = av
    quantifier = "*" if low == 0 else "+" if low == 1 else f"{{{low},}}"
    if high != _sre.MAXREPEAT:
        quantifier = f"{{{low},{high}}}"
    if op is _sre.MIN_REPEAT:
        quantifier += "?"
    elif op is _sre.POSSESSIVE_REPEAT:
        quantifier += "+"
    return (_atom_text(*body[0]) if len(body) == 1 and body[0][0] in _CHAR_OPS else "(…)") + quantifier


#: Characters written with a backslash outside and inside a character set.
_OUTSIDE_SET = ".^$*+?{}[]\\|()"
_IN_SET = "^]\\-"


def _atom_text(op: Any, av: Any) -> str:
    if op is _sre.ANY:
        return "."
    if op is _sre.LITERAL:
        return _char_text(av, _OUTSIDE_SET)
    if op is _sre.NOT_LITERAL:
        return f"[^{_char_text(av, _IN_SET)}]"
    if len(av) == 1 and av[0][0] is _sre.CATEGORY:
        return _CATEGORY_TEXT.get(str(av[0][1]), "[…]")
    parts = []
    for item_op, item_av in av:
        if item_op is _sre.NEGATE:
            parts.append("^")
        elif item_op is _sre.LITERAL:
            parts.append(_char_text(item_av, _IN_SET))
        elif item_op is _sre.RANGE:
            parts.append(f"{_char_text(item_av[0], _IN_SET)}-{_char_text(item_av[1], _IN_SET)}")
        elif item_op is _sre.CATEGORY:
            parts.append(_CATEGORY_TEXT.get(str(item_av), "…"))
        else:
            parts.append("…")
    return "[" + "".join(parts) + "]"


def _char_text(code: int, special: str) -> str:
    ch = chr(code)
    if ch in special:
        return "\\" + ch
    if ch == "\n":
        return r"\n"
    if ch == "\t":
        return r"\t"
    return ch if ch.isprintable() else f"\\u{code:04x}"
