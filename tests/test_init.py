"""``qflow init``: every kind of scaffold passes ``qflow check`` and ``qflow test`` as written."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from qflow._scaffold import KINDS, render_scaffold
from qflow.cli import main


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        status = main(list(args))
    finally:
        sys.stdout, sys.stderr = saved
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_scaffold_passes_check_and_test_out_of_the_box(kind, tmp_path):
    site = tmp_path / "site"
    status, out, err = run_cli("init", str(site), "--kind", kind, "--name", f"my-{kind}")
    ruleset, tests, incidents = (site / f"my-{kind}{ext}" for ext in (".yaml", ".tests.yaml", ".incidents.jsonl"))
    assert (status, err) == (0, "")
    cases = tests.read_text(encoding="utf-8").count("\n  - name:")
    examples = len(incidents.read_text(encoding="utf-8").splitlines())
    assert out == (
        f"wrote {ruleset} (the ruleset), {tests} ({cases} test cases), {incidents} ({examples} example incidents)\n"
        "next:\n"
        f"  qflow check {ruleset}\n"
        f"  qflow test {ruleset}\n"
        f"  qflow graph {ruleset} -o {site / f'my-{kind}'}.mmd\n"
        f"  qflow decide {ruleset} --input {incidents}\n"
    )
    assert cases >= 7
    status, out, _ = run_cli("check", "--no-plugins", str(ruleset))
    assert status == 0, out
    assert out.startswith(f"{ruleset}: ok (")
    assert "warning" not in out
    status, out, _ = run_cli("test", "--no-plugins", str(ruleset))
    assert status == 0, out
    assert out.splitlines()[-1] == f"{cases} passed in 1 file"
    status, out, _ = run_cli("lint", "--no-plugins", "--strict", str(ruleset))  # the CI gate the docs recommend
    assert (status, out) == (0, "1 file clean\n")
    status, out, _ = run_cli("decide", "--no-plugins", str(ruleset), "--input", str(incidents),
                             "--now", "2026-11-26T09:00:00+08:00")
    assert status == 0
    assert all("error" not in json.loads(line) for line in out.splitlines())
    assert f'"ruleset": "my-{kind}@' in out


def test_the_name_is_used_inside_the_files(tmp_path):
    files = render_scaffold("hotel", "harbour-hotel")
    assert sorted(files) == ["harbour-hotel.incidents.jsonl", "harbour-hotel.tests.yaml", "harbour-hotel.yaml"]
    assert "\nname: harbour-hotel\n" in files["harbour-hotel.yaml"]
    assert "\nruleset: harbour-hotel.yaml\n" in files["harbour-hotel.tests.yaml"]
    assert "__NAME__" not in "".join(files.values())


def test_the_default_name_comes_from_the_kind(tmp_path):
    status, out, _ = run_cli("init", str(tmp_path), "--kind", "support")
    assert status == 0
    assert (tmp_path / "support-centre.yaml").is_file()


def test_init_never_overwrites_and_rejects_bad_names(tmp_path):
    assert run_cli("init", str(tmp_path), "--kind", "hotel", "--name", "h")[0] == 0
    before = (tmp_path / "h.yaml").read_text(encoding="utf-8")
    (tmp_path / "h.yaml").write_text(before + "# my change\n", encoding="utf-8")
    status, out, err = run_cli("init", str(tmp_path), "--kind", "hotel", "--name", "h")
    assert (status, out) == (2, "")
    assert err == (f"qflow: error: {tmp_path / 'h.yaml'} already exists (and 2 more)\n"
                   "hint: qflow init never overwrites a file; choose another --name or folder\n")
    assert (tmp_path / "h.yaml").read_text(encoding="utf-8").endswith("# my change\n")
    status, _, err = run_cli("init", str(tmp_path), "--kind", "hotel", "--name", "my hotel.yaml")
    assert status == 2
    assert err == ("qflow: error: --name 'my hotel.yaml' cannot be a ruleset name\n"
                   "hint: use letters, digits, '-', '_' and '.', without .yaml, e.g. --name harbour-hotel\n")
    status, _, err = run_cli("init", str(tmp_path), "--kind", "castle")
    assert status == 2
    assert err.splitlines()[0] == ("qflow: error: argument --kind: invalid choice: 'castle' "
                                   "(choose from 'hotel', 'support', 'field-service')")
    file = tmp_path / "afile"
    file.write_text("x", encoding="utf-8")
    status, _, err = run_cli("init", str(file), "--kind", "hotel")
    assert status == 2
    assert err.splitlines()[0] == f"qflow: error: '{file}' is a file, not a folder"


def test_templates_are_package_data():
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert 'qflow = ["py.typed", "templates/*/*.yaml", "templates/*/*.jsonl"]' in pyproject
    for kind, (folder, _) in KINDS.items():
        base = Path(__file__).resolve().parents[1] / "src" / "qflow" / "templates" / folder
        assert sorted(p.name for p in base.iterdir()) == ["incidents.jsonl", "ruleset.yaml", "tests.yaml"], kind
