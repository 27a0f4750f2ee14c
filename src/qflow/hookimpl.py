"""The marker plugins use: ``from qflow import hookimpl``."""

from __future__ import annotations

import pluggy

from qflow.hookspecs import PROJECT

__all__ = ["hookimpl"]

hookimpl = pluggy.HookimplMarker(PROJECT)  #: decorator for qflow plugin functions
