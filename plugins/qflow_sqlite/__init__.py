"""Built-in plugin qflow_sqlite (being written)."""

from __future__ import annotations
