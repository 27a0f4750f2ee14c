"""Rulesets: YAML files an ops person writes, checked and compiled once at load."""

from __future__ import annotations

from qflow.ruleset._load import FORMAT_VERSION, load_ruleset, load_ruleset_text
from qflow.ruleset._model import CompileContext, Ruleset, Section

__all__ = ["FORMAT_VERSION", "CompileContext", "Ruleset", "Section", "load_ruleset", "load_ruleset_text"]
