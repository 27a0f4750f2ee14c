"""Ruleset versions in a running engine: swap to a new ruleset atomically, keep the last
good one when the new one does not load. Mixed into :class:`qflow.Engine`.

A swap is one reference assignment. ``decide`` reads ``self.ruleset`` once, so a
decision that started before the swap finishes with the ruleset it started with, and
every event records the ``name@hash`` of the ruleset that made it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

import attrs

from qflow.diagnostics import Diagnostic, RulesetError
from qflow.errors import PluginError
from qflow.ruleset import Ruleset, load_ruleset

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["SwapResult", "Versions"]

log = logging.getLogger("qflow.versions")


@attrs.frozen
class SwapResult:
    """What :meth:`Versions.swap_ruleset` did.

    ``active`` is the ``name@hash`` in force after the call; ``previous`` the one before
    it. When ``swapped`` is false the engine kept ``previous`` and ``reason`` says why,
    with every problem in ``diagnostics``.
    """

    swapped: bool
    active: str
    previous: str
    reason: str | None = None
    diagnostics: tuple[Diagnostic, ...] = attrs.field(default=(), converter=tuple)

    def __bool__(self) -> bool:
        return self.swapped


class Versions(_Base):
    def swap_ruleset(self, new: Ruleset | str | os.PathLike[str]) -> SwapResult:
        """Make *new* (a loaded ruleset, or the path of one) the engine's ruleset.

        A path is loaded with the engine's plugins first; if it does not load, the
        engine keeps the ruleset it has and the result carries the diagnostics. Never
        raises for a broken ruleset: a running engine must not stop because someone
        deployed a typo.
        """
        if not isinstance(new, Ruleset):
            where = os.fspath(new)
            try:
                new = load_ruleset(where, plugins=self.plugins)
            except RulesetError as exc:
                n = sum(d.severity == "error" for d in exc.diagnostics)
                return self._refused(where, exc.diagnostics, f"{n} error{'s' if n != 1 else ''}")
            except PluginError as exc:
                return self._refused(where, (), str(exc))
        # The lock only orders concurrent swaps so each reports its true predecessor;
        # readers never take it (dict.setdefault is atomic, so no lock is made twice).
        lock = self.__dict__.setdefault("_swap_lock", threading.Lock())
        with lock:
            previous = self.ruleset
            self.ruleset = new
        if previous.ref != new.ref:
            log.info("ruleset %s replaces %s", new.ref, previous.ref)
        return SwapResult(True, new.ref, previous.ref, diagnostics=new.warnings)

    def _refused(self, where: str, diagnostics: tuple[Diagnostic, ...], what: str) -> SwapResult:
        kept = self.ruleset.ref
        reason = f"{where} did not load ({what}); still running {kept}"
        log.warning("ruleset swap refused: %s", reason)
        for d in diagnostics:
            log.warning("%s", d)
        return SwapResult(False, kept, kept, reason, diagnostics)
