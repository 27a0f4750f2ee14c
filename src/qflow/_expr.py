"""Expression strings: the one-line form of a condition.

    when: 'category == "complaint" and customer.tier in ["gold", "platinum"] and impact >= 3'

A small tokenizer and a recursive-descent parser, nothing else: no ``eval``, no
Python. The parser does not compile anything itself; it translates the expression
into the structured form (``{all: [{category: {eq: complaint}}, ...]}``) with a
position on every key, value and item, and :mod:`qflow.conditions` compiles that
exactly like a condition written in YAML. So both forms give the same callables,
the same ``explain`` reasons and the same load errors, located at the character
inside the string.

Grammar (lowest precedence first)::

    expr       := and ('or' and)*
    and        := unary ('and' unary)*
    unary      := 'not' unary | primary
    primary    := '(' expr ')' | NAME '(' [value] ')' | FIELD test
    test       := ('==' | '!=' | '<' | '<=' | '>' | '>=') value
                | ['not'] ('in' | OPERATOR) value          # matches, contains, between, plugin operators
    value      := STRING | NUMBER | true | false | null | '[' [value (',' value)*] ']'

``exists(field)`` and ``empty(field)`` test a field; any other call is a plugin
predicate over the whole incident (``vip_guest(true)`` is ``fn: {vip_guest: true}``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from qflow._yaml import Mark, YMap, YSeq

__all__ = ["ExpressionError", "parse_expression"]

_COMPARE = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_KEYWORDS = frozenset(("and", "or", "not", "in", "true", "false", "null"))
_NEGATED = {"in": "not_in", "contains": "not_contains"}
_FIELD_CALLS = ("exists", "empty")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/"}


class ExpressionError(Exception):
    """A mistake at character *pos* (0-based) of the expression."""

    def __init__(self, code: str, pos: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.pos = pos
        self.message = message
        self.hint = hint


class _Token(NamedTuple):
    kind: str  # name, string, number, op, end
    text: str
    value: Any
    pos: int


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "\"'":
            value, end = _string(text, i)
            out.append(_Token("string", text[i:end], value, i))
            i = end
            continue
        if c.isdigit() or (c in "-+." and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == ".")
                           and _value_expected(out)):
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "._" or (text[j] in "+-" and text[j - 1] in "eE")):
                j += 1
            raw = text[i:j]
            out.append(_Token("number", raw, _number(raw, i), i))
            i = j
            continue
        if c.isalpha() or c == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_" or
                             (text[j] == "." and j + 1 < n and (text[j + 1].isalnum() or text[j + 1] == "_"))):
                j += 1
            out.append(_Token("name", text[i:j], text[i:j], i))
            i = j
            continue
        two = text[i:i + 2]
        if two in ("==", "!=", "<=", ">="):
            out.append(_Token("op", two, two, i))
            i += 2
            continue
        if c in "<>()[],":
            out.append(_Token("op", c, c, i))
            i += 1
            continue
        if c == "=":
            raise ExpressionError("QF306", i, "'=' is not an operator", "compare with '=='")
        if c == "&" or c == "|":
            word = "and" if c == "&" else "or"
            raise ExpressionError("QF306", i, f"'{text[i:i + 2] if text[i:i + 2] in ('&&', '||') else c}' "
                                  f"is not an operator", f"write '{word}'")
        if c == "!":
            raise ExpressionError("QF306", i, "'!' is not an operator", "write 'not', or '!=' for not equal")
        raise ExpressionError("QF306", i, f"unexpected character {c!r}",
                              "write text in quotes; fields are names such as customer.tier")
    out.append(_Token("end", "", None, n))
    return out


def _value_expected(before: list[_Token]) -> bool:
    """A sign starts a number only where a value may stand (not after a field)."""
    return not before or before[-1].kind == "op" and before[-1].text not in (")", "]")


def _string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    i, n = start + 1, len(text)
    chars: list[str] = []
    while i < n:
        c = text[i]
        if c == quote:
            return "".join(chars), i + 1
        if c == "\\":
            if i + 1 >= n:
                break
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                chars.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and i + 5 < n + 0 and _is_hex(text[i + 2:i + 6]):
                chars.append(chr(int(text[i + 2:i + 6], 16)))
                i += 6
                continue
            # Regexes are the common case for a backslash: keep it as written.
            chars.append(c)
            i += 1
            continue
        chars.append(c)
        i += 1
    raise ExpressionError("QF306", start, "the text has no closing quote",
                          f"end it with {quote}")


def _is_hex(s: str) -> bool:
    return len(s) == 4 and all(ch in "0123456789abcdefABCDEF" for ch in s)


def _number(raw: str, pos: int) -> int | float:
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        raise ExpressionError("QF306", pos, f"'{raw}' is not a number",
                              "write numbers like 3, -1 or 2.5; quote text") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ExpressionError("QF306", pos, f"'{raw}' is not a number", "write numbers like 3, -1 or 2.5")
    return value


# ---------------------------------------------------------------------------
# Parser: builds the structured form directly
# ---------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, mark: Callable[[int], Mark]) -> None:
        self.text = text
        self.mark = mark
        self.toks = _tokens(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def word(self, t: _Token, *words: str) -> bool:
        return t.kind == "name" and t.text in words

    def fail(self, t: _Token, expected: str, hint: str | None = None) -> ExpressionError:
        got = "the end of the expression" if t.kind == "end" else f"'{t.text}'"
        return ExpressionError("QF307", t.pos, f"expected {expected}, found {got}", hint)

    # -- structure builders (every key, value and item has a mark) ----------------

    def ymap(self, pairs: list[tuple[Any, int, Any, int]]) -> YMap:
        m = YMap()
        m.start = self.mark(pairs[0][1])
        m.key_marks, m.value_marks = {}, {}
        for key, kpos, value, vpos in pairs:
            m[key] = value
            m.key_marks[key] = self.mark(kpos)
            m.value_marks[key] = self.mark(vpos)
        return m

    def yseq(self, items: list[tuple[Any, int]], pos: int) -> YSeq:
        s = YSeq(v for v, _ in items)
        s.start = self.mark(pos)
        s.item_marks = [self.mark(p) for _, p in items]
        return s

    # -- grammar ----------------------------------------------------------------

    def parse(self) -> tuple[Any, int]:
        if self.tok.kind == "end":
            raise ExpressionError("QF310", 0, "the expression is empty",
                                  "write a test such as category == \"complaint\", or remove 'when'")
        node = self.expr()
        t = self.tok
        if t.kind != "end":
            if t.text == ")":
                raise ExpressionError("QF309", t.pos, "')' has no matching '('", "remove it or add the '('")
            raise self.fail(t, "'and', 'or' or the end of the expression")
        return node

    def expr(self) -> tuple[Any, int]:
        return self.chain("or", "any", self.conjunction)

    def conjunction(self) -> tuple[Any, int]:
        return self.chain("and", "all", self.unary)

    def chain(self, word: str, key: str, part: Callable[[], tuple[Any, int]]) -> tuple[Any, int]:
        first = part()
        items = [first]
        op_pos = None
        while self.word(self.tok, word):
            op_pos = op_pos if op_pos is not None else self.tok.pos
            self.take()
            items.append(part())
        if len(items) == 1:
            return first
        return self.ymap([(key, op_pos, self.yseq(items, first[1]), first[1])]), first[1]

    def unary(self) -> tuple[Any, int]:
        t = self.tok
        if self.word(t, "not"):
            self.take()
            inner, pos = self.unary()
            return self.ymap([("not", t.pos, inner, pos)]), t.pos
        return self.primary()

    def primary(self) -> tuple[Any, int]:
        t = self.tok
        if t.text == "(" and t.kind == "op":
            self.take()
            node = self.expr()
            close = self.tok
            if close.text != ")":
                if close.kind == "end":
                    raise ExpressionError("QF309", t.pos, "'(' is never closed", "add ')'")
                raise self.fail(close, "')' or 'and'/'or'")
            self.take()
            return node[0], t.pos
        if t.kind != "name" or t.text in _KEYWORDS:
            if t.kind in ("string", "number") or self.word(t, "true", "false", "null"):
                raise ExpressionError("QF308", t.pos, f"a test starts with a field, not the value {t.text}",
                                      "put the field first, e.g. impact >= 3")
            raise self.fail(t, "a field or a test such as category == \"complaint\"")
        self.take()
        if self.tok.text == "(" and self.tok.kind == "op":
            return self.call(t)
        return self.test(t), t.pos

    def call(self, name: _Token) -> tuple[Any, int]:
        open_ = self.take()
        arg: tuple[Any, int] | None = None
        if self.tok.text != ")":
            if name.text in _FIELD_CALLS:
                field = self.tok
                if field.kind != "name" or field.text in _KEYWORDS:
                    raise self.fail(field, f"a field name inside {name.text}(...)", f"e.g. {name.text}(customer.tier)")
                self.take()
                arg = (field, field.pos)
            else:
                arg = self.value()
        close = self.tok
        if close.text != ")":
            if close.kind == "end":
                raise ExpressionError("QF309", open_.pos, "'(' is never closed", "add ')'")
            raise self.fail(close, "')'", "a function takes one argument")
        self.take()
        if name.text in _FIELD_CALLS:
            if arg is None:
                raise ExpressionError("QF307", close.pos, f"{name.text}() needs a field",
                                      f"e.g. {name.text}(customer.tier)")
            field = arg[0]
            inner = self.ymap([(name.text, name.pos, True, name.pos)])
            return self.ymap([(field.text, field.pos, inner, name.pos)]), name.pos
        if arg is None:
            return self.ymap([("fn", name.pos, name.text, name.pos)]), name.pos
        inner = self.ymap([(name.text, name.pos, arg[0], arg[1])])
        return self.ymap([("fn", name.pos, inner, name.pos)]), name.pos

    def test(self, field: _Token) -> YMap:
        t = self.tok
        negate = False
        if t.kind == "op" and t.text in _COMPARE:
            self.take()
            op, op_pos = _COMPARE[t.text], t.pos
        else:
            if self.word(t, "not"):
                negate = True
                self.take()
                t = self.tok
            if t.kind != "name" or t.text in ("and", "or", "not", "true", "false", "null"):
                raise self.fail(t, f"an operator after '{field.text}' (==, !=, <, <=, >, >=, in, matches, "
                                "contains ...)", f"e.g. {field.text} == \"...\"")
            self.take()
            op, op_pos = t.text, t.pos
            if negate and op in _NEGATED:
                op, negate = _NEGATED[op], False
        value, vpos = self.value()
        inner = self.ymap([(op, op_pos, value, vpos)])
        node = self.ymap([(field.text, field.pos, inner, op_pos)])
        if negate:
            return self.ymap([("not", op_pos, node, field.pos)])
        return node

    def value(self) -> tuple[Any, int]:
        t = self.tok
        if t.kind in ("string", "number"):
            self.take()
            return t.value, t.pos
        if self.word(t, "true", "false", "null"):
            self.take()
            return {"true": True, "false": False, "null": None}[t.text], t.pos
        if t.kind == "op" and t.text == "[":
            self.take()
            items: list[tuple[Any, int]] = []
            while self.tok.text != "]" or self.tok.kind != "op":
                if self.tok.kind == "end":
                    raise ExpressionError("QF309", t.pos, "'[' is never closed", "add ']'")
                if self.tok.kind == "op" and self.tok.text == "[":
                    raise ExpressionError("QF311", self.tok.pos, "a list cannot hold another list",
                                          "list plain values: [\"gold\", \"platinum\"]")
                items.append(self.value())
                if self.tok.text == ",":
                    self.take()
                elif self.tok.text != "]":
                    raise self.fail(self.tok, "',' or ']'")
            self.take()
            return self.yseq(items, t.pos), t.pos
        if t.kind == "name" and t.text not in _KEYWORDS:
            raise ExpressionError("QF307", t.pos, f"expected a value, found the name '{t.text}'",
                                  f"write text in quotes: \"{t.text}\"")
        raise self.fail(t, "a value (quoted text, a number, true, false, null or a [list])")


def parse_expression(text: str, mark: Callable[[int], Mark]) -> YMap:
    """Translate the expression *text* into the structured condition form.

    *mark(offset)* gives the source position of character *offset*; every key,
    value and list item of the result carries one, so later errors point inside
    the string.

    :raises ExpressionError: at the first mistake, with its character offset.
    """
    try:
        node, _ = _Parser(text, mark).parse()
    except RecursionError:
        raise ExpressionError("QF307", 0, "the expression is nested too deeply",
                              "use fewer parentheses") from None
    return node  # type: ignore[no-any-return]
