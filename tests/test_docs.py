"""The docs stay honest: every hook and every diagnostic code is documented, and the
Python the README and the docs show runs and prints what they say it prints."""

from __future__ import annotations

import inspect
import re
import textwrap
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import qflow
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


# -- the Python of the README and the docs runs as printed -----------------------------------


def _blocks(text: str, after: str) -> list[tuple[str, str]]:
    """The fenced blocks of *text* after the heading *after*, up to the next heading of
    its level, as (language, body)."""
    level = after.split(" ", 1)[0]
    section = text.split(after + "\n", 1)[1].split("\n" + level + " ", 1)[0]
    return re.findall(r"^```(\w*)\n(.*?)^```", section, flags=re.S | re.M)


def _run(code: str, where: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """*code* run as a script in the directory *where*; what it printed."""
    monkeypatch.chdir(where)
    capsys.readouterr()
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc__"})  # noqa: S102 - our own docs
    return capsys.readouterr().out


def _site(tmp_path: Path) -> Path:
    """A copy of the shipped rulesets with the proposal and the typo docs/changing-rules.md makes."""
    import shutil

    shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    deployed = (tmp_path / "rulesets" / "hotel-front-desk.yaml").read_text(encoding="utf-8")
    normal = "normal:   {name: 一般 Normal,   respond: 4h,"
    head, gold = deployed.split("- id: gold-guest-in-person", 1)
    proposed = head.replace(normal, normal.replace("4h", "2h")) + "- id: gold-guest-in-person" + gold.replace(
        "channel: [phone, onsite]", "channel: [phone, onsite, email, online]", 1)
    (tmp_path / "rulesets" / "hotel-front-desk.proposed.yaml").write_text(proposed, encoding="utf-8")
    (tmp_path / "rulesets" / "broken.yaml").write_text(proposed.replace("respond: 2h,", "respond: 2hr,", 1),
                                                       encoding="utf-8")
    return tmp_path


def _example(blocks: list[tuple[str, str]], word: str) -> tuple[str, str]:
    """The Python block that uses *word*, and the block printed after it."""
    i = next(i for i, (lang, body) in enumerate(blocks) if lang == "python" and word in body)
    return blocks[i][1], blocks[i + 1][1]


def test_the_deploy_example_of_changing_rules_prints_what_the_page_shows(tmp_path, monkeypatch, capsys):
    text = (ROOT / "docs" / "changing-rules.md").read_text(encoding="utf-8")
    code, printed = _example(_blocks(text, "## 4. Deploy"), "swap_ruleset")
    assert _run(code, _site(tmp_path), monkeypatch, capsys) == printed


def test_the_deploy_example_of_the_readme_prints_what_it_shows(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code, printed = _example(_blocks(text, "## Changing rules safely"), "swap_ruleset")
    setup = ("from datetime import datetime, timezone\nimport qflow\n"
             "engine = qflow.Engine.from_path('rulesets/hotel-front-desk.yaml',\n"
             "                                clock=qflow.FakeClock(datetime(2026, 11, 20, tzinfo=timezone.utc)))\n")
    assert _run(setup + code, _site(tmp_path), monkeypatch, capsys) == printed


def test_the_embedding_example_of_the_readme_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    [code] = [body for lang, body in _blocks(text, "## Embedding qflow") if lang == "python"]
    (tmp_path / "rulesets").symlink_to(ROOT / "rulesets")
    printed = _run(code, tmp_path, monkeypatch, capsys).splitlines()
    assert printed[0] == "high front-office 2026-11-20 16:10:00+00:00"
    assert "classify service-delay matched" in "\n".join(printed)
    assert (tmp_path / "site.sqlite3").exists()


def test_the_plugin_example_of_the_hook_reference_reads_the_incidents_own_time():
    text = (ROOT / "docs" / "hooks.rst").read_text(encoding="utf-8")
    block = text.split("    # qflow_night_shift/__init__.py\n", 1)[1].split("\nRules every hook follows", 1)[0]
    module = types.ModuleType("qflow_night_shift")
    exec(compile(textwrap.dedent(block), "hooks.rst", "exec"), module.__dict__)  # noqa: S102 - our own docs
    from tests.conftest import BASE

    pm = qflow.make_plugin_manager(autoload=False, plugins=[(module, "night_shift")])
    engine = qflow.Engine(qflow.load_ruleset_text(BASE, plugins=pm), plugins=pm)
    cst = timezone(timedelta(hours=8))

    def severity(reported: datetime, decided: datetime) -> str | None:
        incident = qflow.Incident(reported_at=reported, place="lobby", description="a guest shouting")
        return engine.decide(incident, decided.astimezone(timezone.utc)).severity

    # 02:00 in Shanghai, decided that evening (12:00 UTC): a night-shift incident.
    assert severity(datetime(2026, 11, 20, 2, 0, tzinfo=cst), datetime(2026, 11, 20, 20, 0, tzinfo=cst)) == "high"
    # 09:30 in Shanghai is 01:30 UTC: still day at the desk.
    assert severity(datetime(2026, 11, 20, 9, 30, tzinfo=cst), datetime(2026, 11, 20, 9, 30, tzinfo=cst)) == "normal"
