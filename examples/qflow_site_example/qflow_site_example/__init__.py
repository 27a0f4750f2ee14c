"""A site plugin for qflow: what one hotel adds on top of the shipped rules.

Three things, each through a public qflow hook, the way any third-party plugin does it:

``vip_guests:`` (a ruleset section)
    The hotel's own VIP list: customer ids with the lowest severity their incidents
    may get. The section is structured into :class:`VipGuest` like any other, so a
    typo is reported as ``file:line:col: CODE ...``; every ``raise_to`` must be one of
    the ruleset's severities and an id may appear once.

``qflow_classify`` (a hook wrapper)
    Raises the severity of an incident reported for a listed guest to the guest's
    ``raise_to`` when the rules decided something less urgent. It never lowers one.

``mentions`` (a condition operator)
    ``description: {mentions: [空调, wifi]}`` holds when the text mentions any of the
    words, comparing full-width and half-width forms, upper and lower case, and
    ignoring spaces and hyphens: ``ＷＩ-ＦＩ`` mentions ``wifi``.

Registered through the ``qflow`` entry-point group as ``site_example`` (see
``pyproject.toml``); install with ``pip install -e examples/qflow_site_example``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from qflow import Classification, CompileContext, Incident, Ruleset, Section, TraceStep, hookimpl
from qflow.conditions import ConditionFunction

__all__ = ["VipGuest", "mentions"]

SECTION = "vip_guests"
SOURCE = "plugin:site_example"


@attrs.frozen
class VipGuest:
    """One guest on the site's VIP list.

    ``id`` is the customer id incidents carry (``customer.id``); ``raise_to`` is the
    lowest severity an incident of this guest gets.
    """

    id: str
    name: str | None = None
    level: str | None = None  # 集团大使 ambassador, 政府接待 official visit, ...
    raise_to: str = "high"
    note: str | None = None


def _compile_vip_guests(guests: Sequence[VipGuest] | None, ctx: CompileContext) -> Mapping[str, VipGuest]:
    """Check the list (ids once, severities defined) and index it by customer id."""
    by_id: dict[str, VipGuest] = {}
    for i, guest in enumerate(guests or ()):
        path = (SECTION, ctx.index(SECTION, i))
        ctx.define("vip guest", guest.id, path + ("id",))
        ctx.refer("severity", guest.raise_to, path + ("raise_to",), rule=guest.id)
        by_id.setdefault(guest.id, guest)
    return by_id


def _listed(view: Mapping[str, Any], ruleset: Ruleset) -> VipGuest | None:
    customer = view.get("customer")
    if not customer or not customer.get("id"):
        return None
    return ruleset.compiled(SECTION, {}).get(customer["id"])


# -- the condition operator -------------------------------------------------------------

_IGNORED = re.compile(r"[\s\-_]+")


def _fold(text: str) -> str:
    """Full-width to half-width, case folded, without spaces and hyphens."""
    return _IGNORED.sub("", unicodedata.normalize("NFKC", text).casefold())


def mentions(arg: Any) -> Callable[[Any], bool]:
    """Compile ``{mentions: word}`` or ``{mentions: [word, ...]}``.

    :raises ValueError: when the argument is not a word or a non-empty list of words
        (qflow reports it as QF303 at the argument).
    """
    words = [arg] if isinstance(arg, str) else arg
    if not isinstance(words, list):
        raise ValueError("give a word or a list of words, e.g. mentions: [空调, air con]")
    if not words:
        raise ValueError("give at least one word, e.g. mentions: [空调, air con]")
    if not all(isinstance(w, str) for w in words):
        raise ValueError("every word must be text; put numbers in quotes, e.g. mentions: ['1202']")
    folded = tuple(_fold(w) for w in words)
    if not all(folded):
        raise ValueError("a word is empty; remove it")

    def test(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        text = _fold(value)
        return any(w in text for w in folded)

    return test


# -- hooks ------------------------------------------------------------------------------


@hookimpl
def qflow_ruleset_sections() -> Sequence[Section]:
    return [
        Section(SECTION, list[VipGuest], _compile_vip_guests, default=list,
                doc="the site's VIP guests: customer id, name, level and the lowest severity (raise_to)"),
    ]


@hookimpl
def qflow_condition_functions() -> Sequence[ConditionFunction]:
    return [
        ConditionFunction("mentions", mentions,
                          doc="mentions: [word, ...] holds when the text mentions any word, "
                              "ignoring width, case, spaces and hyphens"),
    ]


@hookimpl(wrapper=True)
def qflow_classify(view: Mapping[str, Any], ruleset: Ruleset) -> Any:
    """Raise the severity for a listed VIP guest; never lower it.

    A wrapper, because "at least high" needs every other plugin's answer first: the
    result is the others' list with this plugin's :class:`~qflow.Classification` put in
    front when it raises the severity (the first severity in the list wins).
    """
    results = yield
    guest = _listed(view, ruleset)
    if guest is None:
        return results
    decided = next((c.severity for c in results if c is not None and c.severity is not None), None)
    order = ruleset.names("severity")  # most urgent first
    if decided in order and order.index(decided) <= order.index(guest.raise_to):
        return results
    raised = Classification(severity=guest.raise_to, source=f"{SECTION}:{guest.id}",
                            matched=(f"{SECTION}:{guest.id}",))
    return [raised, *results]


@hookimpl
def qflow_explain(incident: Incident, view: Mapping[str, Any], ruleset: Ruleset, now: datetime) -> list[TraceStep]:
    """Say whether the customer is on the VIP list and what that means for the severity."""
    if not ruleset.compiled(SECTION):
        return []
    guest = _listed(view, ruleset)
    if guest is None:
        customer = (view.get("customer") or {}).get("id")
        who = f"customer {customer}" if customer else "the incident has no customer id, so it"
        return [TraceStep(SECTION, None, "no match", f"{who} is not on the VIP list", SOURCE)]
    label = ", ".join(x for x in (guest.name, guest.level) if x)
    return [TraceStep(SECTION, guest.id, "matched",
                      f"customer {guest.id} ({label}) is on the VIP list: severity at least {guest.raise_to}",
                      SOURCE)]
