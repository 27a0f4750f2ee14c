"""``qflow replay``: what a ruleset change would change on past incidents."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

import qflow
from qflow.cli import main
from tests.conftest import BASE

# The proposal: gold and platinum complaints by e-mail too, and housekeeping for noise.
PROPOSED = BASE.replace(
    "when: {channel: [phone, onsite], category: complaint, customer.tier: {in: [gold, platinum]}}",
    "when: {channel: [phone, onsite, email], category: complaint, customer.tier: {in: [gold, platinum]}}",
).replace(
    "    when: {category: [hygiene, room_not_clean]}",
    "    when: {category: [hygiene, room_not_clean, noise]}",
)

INCIDENTS = [
    {"id": "INC-1", "reported_at": "2026-11-20T09:00:00+08:00", "channel": "email", "category": "complaint",
     "customer": {"tier": "gold"}},
    {"id": "INC-2", "reported_at": "2026-11-20T09:05:00+08:00", "channel": "phone", "category": "complaint",
     "customer": {"tier": "gold"}},
    {"id": "INC-3", "reported_at": "2026-11-20T09:10:00+08:00", "channel": "email", "category": "complaint",
     "customer": {"tier": "platinum"}},
    {"id": "INC-4", "reported_at": "2026-11-20T09:15:00+08:00", "channel": "phone", "category": "noise"},
    {"id": "INC-5", "reported_at": "2026-11-20T09:20:00+08:00", "channel": "email", "category": "complaint",
     "customer": {"tier": "gold"}},
    {"id": "INC-6", "reported_at": "2026-11-20T09:25:00+08:00", "channel": "onsite", "category": "hygiene"},
]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "old.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "new.yaml").write_text(PROPOSED, encoding="utf-8")
    lines = [json.dumps(i, ensure_ascii=False) for i in INCIDENTS]
    lines.insert(3, '{"id": "INC-X", "channel": 7}')
    lines.insert(5, "not json")
    lines.append('{"id": "INC-7", "channel": "phone"}')
    (tmp_path / "past.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "clean.jsonl").write_text("".join(json.dumps(i) + "\n" for i in INCIDENTS), encoding="utf-8")
    pm = qflow.make_plugin_manager(autoload=False)
    return {"old": str(tmp_path / "old.yaml"), "new": str(tmp_path / "new.yaml"),
            "past": str(tmp_path / "past.jsonl"), "clean": str(tmp_path / "clean.jsonl"),
            "old_ref": qflow.load_ruleset(tmp_path / "old.yaml", plugins=pm).ref,
            "new_ref": qflow.load_ruleset(tmp_path / "new.yaml", plugins=pm).ref}


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        status = main(list(args))
    finally:
        sys.stdout, sys.stderr = saved
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_report_counts_each_kind_of_change_with_examples(files, jobs):
    status, out, err = run_cli("replay", "--no-plugins", "--jobs", jobs, files["old"], files["new"],
                               "--input", files["past"], "--examples", "2")
    assert status == 1  # broken lines
    assert out == (
        f"replay: 6 incidents, {files['old_ref']} (old) → {files['new_ref']} (new)\n"
        "4 of 6 incidents would change (66.7%)\n"
        "\n"
        "  field           changed\n"
        "  category        0\n"
        "  severity        3\n"
        "  priority        0\n"
        "  team            1\n"
        "  owner           0\n"
        "  responsibility  1\n"
        "  respond         3\n"
        "  resolve         3\n"
        "\n"
        "severity\n"
        "  normal → high  3 incidents, e.g. INC-1, INC-3\n"
        "\n"
        "team\n"
        "  front-office → housekeeping  1 incident, e.g. INC-4\n"
        "\n"
        "responsibility\n"
        "  (unset) → human  1 incident, e.g. INC-4\n"
        "\n"
        "respond\n"
        "  4h on 24x7 → 1h on 24x7  3 incidents, e.g. INC-1, INC-3\n"
        "\n"
        "resolve\n"
        "  3d on 24x7 → 1d on 24x7  3 incidents, e.g. INC-1, INC-3\n"
    )
    assert err == (
        f"{files['past']}:4: QF402 expected text, got the number 7 (put the value in quotes) @ $.channel\n"
        f"{files['past']}:6: QF401 not valid JSON: Expecting value at column 1\n"
        f"{files['past']}:9: INC-7 has no reported_at; give --now to decide such incidents at that time\n"
        "qflow: 3 of 9 lines could not be replayed (see above); the others were\n"
    )


def test_a_stream_where_no_line_replays_says_so_without_promising_others(files, tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"bad json\n{"category": 5, "reported_at": "2026-11-24T09:00:00+08:00"}\n', encoding="utf-8")
    status, out, err = run_cli("replay", "--no-plugins", files["old"], files["new"], "--input", str(broken))
    assert status == 1
    assert out == f"replay: 0 incidents, {files['old_ref']} (old) → {files['new_ref']} (new)\nno decision changes\n"
    assert err == (
        f"{broken}:1: QF401 not valid JSON: Invalid control character at column 11\n"
        f"{broken}:2: QF402 expected text, got the number 5 (put the value in quotes) @ $.category\n"
        "qflow: 2 of 2 lines could not be replayed (see above)\n"
    )


def test_json_report(files):
    status, out, err = run_cli("replay", "--no-plugins", files["old"], files["new"], "--input", files["clean"],
                               "--format", "json")
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert (data["old"], data["new"], data["incidents"], data["changed"], data["broken"]) == (
        files["old_ref"], files["new_ref"], 6, 4, [])
    assert data["fields"]["severity"] == {"changed": 3, "changes": [
        {"from": "normal", "to": "high", "count": 3, "examples": ["INC-1", "INC-3", "INC-5"]}]}
    assert data["fields"]["category"] == {"changed": 0, "changes": []}


def test_now_decides_incidents_without_a_time_and_fail_on_change(files):
    status, out, err = run_cli("replay", "--no-plugins", files["old"], files["old"], "--input", files["clean"],
                               "--fail-on-change")
    assert (status, err) == (0, "")
    assert out == f"replay: 6 incidents, {files['old_ref']} (old) → {files['old_ref']} (new)\nno decision changes\n"
    status, _, _ = run_cli("replay", "--no-plugins", files["old"], files["new"], "--input", files["clean"],
                           "--fail-on-change")
    assert status == 1
    Path(files["clean"]).write_text('{"id": "A", "channel": "email", "category": "complaint", '
                                    '"customer": {"tier": "gold"}}\n', encoding="utf-8")
    status, out, err = run_cli("replay", "--no-plugins", files["old"], files["new"], "--input", files["clean"],
                               "--now", "2026-11-20T09:00:00+08:00")
    assert (status, err) == (0, "")
    assert out.splitlines()[1] == "1 of 1 incident would change (100.0%)"


def test_reads_reported_incidents_from_a_store(files, tmp_path):
    """The incidents a SQLite store has recorded, decided as reported."""
    url = f"sqlite:///{tmp_path / 'qflow.db'}"
    pm = qflow.make_plugin_manager(autoload=False)
    clock = qflow.FakeClock(qflow.parse_incident(INCIDENTS[0]).reported_at)
    engine = qflow.Engine(qflow.load_ruleset(files["old"], plugins=pm), plugins=pm, store=url, clock=clock)
    for data in INCIDENTS:
        clock.set(qflow.parse_incident(data).reported_at)
        engine.report(data)
    engine.store.close()
    status, out, err = run_cli("replay", "--no-plugins", files["old"], files["new"], "--store", url)
    assert (status, err) == (0, "")
    assert out.splitlines()[:2] == [f"replay: 6 incidents, {files['old_ref']} (old) → {files['new_ref']} (new)",
                                    "4 of 6 incidents would change (66.7%)"]
    assert out.splitlines()[-1] == "  3d on 24x7 → 1d on 24x7  3 incidents, e.g. INC-1, INC-3, INC-5"


def test_usage_errors(files):
    status, out, err = run_cli("replay", files["old"], files["new"])
    assert (status, out) == (2, "")
    assert err == ("qflow: error: one of the arguments --input/-i --store is required\n"
                   "hint: run 'qflow replay --help' for usage and examples\n")
    status, _, err = run_cli("replay", "--no-plugins", files["old"], files["new"], "--input", "nowhere.jsonl")
    assert status == 2
    assert err == "qflow: error: no such input file: 'nowhere.jsonl'\nhint: check the path and the current directory\n"
    status, _, err = run_cli("replay", "--no-plugins", files["old"], "missing.yaml", "--input", files["clean"])
    assert status == 2
    assert err.splitlines()[0] == "qflow: error: no such ruleset file: 'missing.yaml'"


def _mixed_stream(n: int) -> bytes:
    """*n* incidents of many kinds (so that kinds of change start in both halves), with
    broken, blank and id-less lines spread over the whole file."""
    import random

    rnd = random.Random(3)
    lines = []
    for i in range(n):
        data = dict(rnd.choice(INCIDENTS))
        data["id"] = f"M-{i}"
        data["impact"] = rnd.randint(1, 3)
        if i % 97 == 0:
            del data["id"]  # labelled by its line number
        if i % 89 == 0:
            del data["reported_at"]
        lines.append(json.dumps(data, ensure_ascii=False).encode())
        if i % 83 == 0:
            lines.append(b'{"id": "bad", "channel": 7}')
        if i % 79 == 0:
            lines.append(b"")
        if i % 151 == 0:
            lines.append(b"\xff not utf-8")
    return b"\xef\xbb\xbf" + b"\n".join(lines)  # a byte-order mark, no newline at the end


@pytest.mark.parametrize(("fmt", "examples"), [("text", "4"), ("json", "1000")])
def test_two_processes_report_exactly_what_one_does(files, tmp_path, fmt, examples):
    """--jobs 2 splits the file in the middle; the halves' tallies, merged, are the
    whole file's: the same counts, kinds in the same order, the same first examples and
    the same broken lines with their numbers."""
    past = tmp_path / "mixed.jsonl"
    past.write_bytes(_mixed_stream(1500))
    results = [run_cli("replay", "--no-plugins", "--jobs", jobs, files["old"], files["new"], "--input", str(past),
                       "--examples", examples, "--format", fmt)
               for jobs in ("1", "2")]
    assert results[0] == results[1]
    status, out, err = results[0]
    assert status == 1 and f"{past}:1: QF40" not in err  # the byte-order mark is not an error
    assert "QF401 not UTF-8 text" in err and "M-890 has no reported_at" in err
    if fmt == "json":
        assert json.loads(out)["incidents"] == 1500 - len(range(0, 1500, 89))


def test_the_split_falls_at_a_line_start_with_its_number(tmp_path):
    from qflow._replay import _numbered, _split

    path = tmp_path / "lines.jsonl"
    path.write_bytes(b'{"id": "a"}\n\n{"id": "b"}\n{"id": "c"}\n{"id": "d"}\n')
    with open(path, "rb") as f:
        offset, first = _split(f)
    data = path.read_bytes()
    assert data[offset - 1:offset] == b"\n" and data[:offset].count(b"\n") == first - 1
    with open(path, "rb") as f:
        f.seek(offset)
        tail = [(n, i.id) for n, i in _numbered(f, first)]
    assert tail == [(n, x) for n, x in [(1, "a"), (3, "b"), (4, "c"), (5, "d")] if n >= first]
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with open(empty, "rb") as f:
        assert _split(f) == (0, 1)
