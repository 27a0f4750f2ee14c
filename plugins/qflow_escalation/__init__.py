"""Built-in plugin qflow_escalation (being written)."""

from __future__ import annotations
