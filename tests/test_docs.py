"""The docs stay honest: every hook and every diagnostic code is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from qflow import hookspecs
from qflow.diagnostics import CODES

ROOT = Path(__file__).resolve().parents[1]
HOOK_NAMES = sorted(n for n in dir(hookspecs) if n.startswith("qflow_"))


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_every_hook_is_documented_with_its_signature(name):
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert f".. function:: {name}({params})" in (ROOT / "docs" / "hooks.rst").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_every_hookspec_docstring_has_the_house_shape(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert ".. versionadded::" in doc
    assert re.search(r"(All implementations are called|Stops at the first non-None result|A broadcast)", doc)
    for param in inspect.signature(getattr(hookspecs, name)).parameters:
        assert f":param {param}:" in doc


def test_every_diagnostic_code_is_in_the_table():
    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| (QF\d{3}) \|", text, flags=re.M)
    assert documented == sorted(CODES)
