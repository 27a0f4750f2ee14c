"""House rules that a grep can keep: no wall clock outside the Clock, no eval/exec,
the kernel imports no plugin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.joinpath("src").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_wall_clock_and_no_eval(path):
    text = path.read_text(encoding="utf-8")
    if path.name != "clock.py":
        assert not re.search(r"datetime\.(now|utcnow)\(|\btime\.time\(\)|date\.today\(\)", text)
    assert not re.search(r"(?<![\w.])(eval|exec)\(", text)


def test_the_kernel_imports_no_plugin():
    for path in ROOT.joinpath("src", "qflow").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+qflow_", text, flags=re.M), path
