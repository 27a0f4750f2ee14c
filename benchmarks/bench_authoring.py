"""Authoring tools: `qflow test` and `qflow replay` at scale. Runnable as a script.

test     1,000 cases against a 1,000-rule ruleset, end to end (load the ruleset, parse the
         tests file with positions, decide, compare)          target < 5 s
replay   100,000 incidents (JSON Lines) through two 1,000-rule rulesets, end to end
         (read, parse, decide twice, tally)                    target >= 20,000 incidents/s

Each is printed with the floor measured in the same run: the same decisions made by a
bare Engine.decide loop over incidents parsed beforehand.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402

import qflow  # noqa: E402
from qflow._ruletest import TestRunner  # noqa: E402
from qflow.cli import main  # noqa: E402


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def write_cases(folder: Path, ruleset: qflow.Ruleset, pm, incidents: list[dict]) -> Path:
    """A tests file whose expectations are what the ruleset decides (the cases pass)."""
    engine = qflow.Engine(ruleset, plugins=pm)
    lines = ["ruleset: bench.yaml", "tests:"]
    for i, data in enumerate(incidents):
        incident = qflow.parse_incident(data)
        d = engine.decide(incident, incident.reported_at)
        lines += [
            f"  - name: case {i}",
            f"    now: {data['reported_at']}",
            f"    incident: {json.dumps({k: v for k, v in data.items() if k != 'reported_at'}, ensure_ascii=False)}",
            "    expect:",
            f"      severity: {d.severity}",
            f"      team: {d.team}",
            f"      respond_by: {d.respond_by.isoformat()}",
        ]
    path = folder / "bench.tests.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bench_test(folder: Path, pm, repeats: int) -> None:
    (folder / "bench.yaml").write_text(gen.ruleset_yaml(gen.make_rules(1000)), encoding="utf-8")
    ruleset = qflow.load_ruleset(folder / "bench.yaml", plugins=pm)
    data = gen.make_incidents(1000)
    path = write_cases(folder, ruleset, pm, data)

    def run() -> None:
        result = TestRunner(pm).run_file(str(path))
        assert result.count("passed") == 1000, result.diagnostics[:3] or [r for r in result.results if r.outcome != "passed"][:3]

    incidents = [qflow.parse_incident(d) for d in data]
    engine = qflow.Engine(ruleset, plugins=pm)

    def floor() -> None:
        for i in incidents:
            engine.decide(i, i.reported_at)

    t = median_time(run, repeats)
    f = median_time(floor, repeats)
    load = median_time(lambda: qflow.load_ruleset(folder / "bench.yaml", plugins=pm), repeats)
    print("qflow test: 1,000 cases, 1,000-rule ruleset, end to end")
    print(f"  qflow test              {t * 1000:8.0f} ms   target < 5,000 ms   {'ok' if t < 5 else 'MISSED'}")
    print(f"  of which ruleset load   {load * 1000:8.0f} ms")
    print(f"  floor: 1,000 decides    {f * 1000:8.0f} ms   qflow test / floor = {t / f:.1f}x")


def bench_replay(folder: Path, pm, n: int, repeats: int) -> None:
    (folder / "old.yaml").write_text(gen.ruleset_yaml(gen.make_rules(1000, seed=7)), encoding="utf-8")
    (folder / "new.yaml").write_text(gen.ruleset_yaml(gen.make_rules(1000, seed=8)), encoding="utf-8")
    data = gen.make_incidents(n)
    for i, d in enumerate(data):
        d["id"] = f"INC-{i + 1}"
    (folder / "past.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in data),
                                       encoding="utf-8")
    def replay(jobs: int):
        args = ["replay", "--no-plugins", "--jobs", str(jobs), str(folder / "old.yaml"), str(folder / "new.yaml"),
                "--input", str(folder / "past.jsonl")]

        def run() -> None:
            out, err = io.StringIO(), io.StringIO()
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = out, err
            try:
                status = main(args)
            finally:
                sys.stdout, sys.stderr = saved
            assert status == 0, err.getvalue()[:500]
            run.output = out.getvalue()  # type: ignore[attr-defined]

        return run

    old = qflow.load_ruleset(folder / "old.yaml", plugins=pm)
    incidents = [qflow.parse_incident(d) for d in data]
    engine = qflow.Engine(old, plugins=pm)

    def floor() -> None:
        for i in incidents:
            engine.decide(i, i.reported_at)

    f = median_time(floor, repeats)
    print(f"qflow replay: {n:,} incidents, two 1,000-rule rulesets, end to end with loading (median of {repeats})")
    outputs = set()
    for jobs in (1, 2):
        run = replay(jobs)
        t = median_time(run, repeats)
        outputs.add(run.output)  # type: ignore[attr-defined]
        rate = n / t
        print(f"  --jobs {jobs}                {rate:10,.0f} incidents/s per ruleset   target >= 20,000/s   "
              f"{'ok' if rate >= 20_000 else 'MISSED'}   replay time / (2 x floor) = {t / (2 * f):.2f}x")
    assert len(outputs) == 1, "--jobs 1 and --jobs 2 must report the same"
    print(f"  floor: one ruleset      {n / f:10,.0f} decides/s (incidents parsed beforehand, no loading)")
    print("  " + outputs.pop().splitlines()[1])


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 incidents instead of 100,000, 3 runs of the test benchmark instead of 5")
    opts = parser.parse_args()
    repeats = 3 if opts.quick else 5
    pm = qflow.make_plugin_manager(autoload=False)
    import os

    print(f"qflow {qflow.__version__} on Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_test(folder, pm, repeats)
        print()
        bench_replay(folder, pm, 10_000 if opts.quick else 100_000, 3)


if __name__ == "__main__":
    main_()
