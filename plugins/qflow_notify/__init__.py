"""Built-in plugin qflow_notify (being written)."""

from __future__ import annotations
