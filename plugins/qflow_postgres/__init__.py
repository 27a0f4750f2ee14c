"""Built-in plugin qflow_postgres (being written)."""

from __future__ import annotations
