"""Outbox delivery: ``deliver(now)`` sends what is waiting. Mixed into :class:`qflow.Engine`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["Delivery"]


class Delivery(_Base):
    pass
