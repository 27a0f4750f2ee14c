"""Built-in plugin qflow_loop (being written)."""

from __future__ import annotations
