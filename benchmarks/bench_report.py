"""A full quarterly report over a million incidents in SQLite (target < 10 s).

    python benchmarks/bench_report.py [--incidents 1000000] [--repeats 3] [--db PATH] [--workers 2]

``--db PATH`` keeps the store in PATH and reuses it when it already holds that many
incidents' facts (loading a million takes minutes; the report takes seconds).
``--workers`` is the threads computing figures side by side (``qflow report`` uses
two where there are two cores; ``--workers 1`` is the report on one thread).

The facts rows (``incident_facts``, ``action_facts``) are what every command keeps up
to date; here a million of them, spread over fifteen months and the shipped hotel
ruleset's teams, categories and places, are written straight into the projection
tables (building them through the engine would measure intake, which
bench_store.py does). The report is then built exactly as ``qflow report`` builds
it: every KPI for the quarter, the previous quarter and a year before, slices by
team, category and severity, the monthly trend, the charts' series, the problem
list and the scorecards. Baseline, in the same run: one plain ``SELECT COUNT(*)``
per figure group, i.e. the floor of scanning the same rows.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import qflow
from qflow import projection_sql
from qflow_assess import ACTIONS, FACTS
from qflow_assess._facts import period_keys
from qflow_assess._report import build_report

ROOT = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 10, 1, tzinfo=TZ)
AS_OF = datetime(2026, 12, 31, 12, 0, tzinfo=TZ)


def _rows(n: int, ruleset: qflow.Ruleset, rnd: random.Random):
    teams = list(ruleset.names("team")) or ["desk"]
    cats = list(ruleset.names("category")) or ["complaint"]
    places = [f"{f}F" for f in range(1, 21)] + ["lobby", "restaurant", "spa"]
    sevs = ["critical", "high", "normal", "low"]
    span = (AS_OF - START).total_seconds()
    for i in range(n):
        reported = START + timedelta(seconds=rnd.random() * span)
        day, month, quarter, year = period_keys(reported, TZ)
        r = reported.timestamp()
        answered = rnd.random() < 0.9
        resolved = rnd.random() < 0.8
        respond_s = rnd.expovariate(1 / 2400) if answered else None
        resolve_s = rnd.expovariate(1 / 90000) if resolved else None
        rd = r + resolve_s if resolve_s is not None else None
        rk = period_keys(datetime.fromtimestamp(rd, TZ), TZ) if rd is not None else (None,) * 4
        score = rnd.randint(1, 5) if rnd.random() < 0.3 else None
        row = {
            "reported_at": r, "reported_day": day, "reported_month": month, "reported_quarter": quarter,
            "reported_year": year, "team": rnd.choice(teams), "owner": f"p{rnd.randint(1, 60)}",
            "category": rnd.choice(cats), "severity": rnd.choice(sevs), "priority": None,
            "channel": rnd.choice(["phone", "online", "onsite", "email"]), "place": rnd.choice(places),
            "stage": "closed" if resolved else "acting", "is_open": int(not resolved), "rejected": 0,
            "acknowledged_at": None, "ack_s": None, "ack_bs": None,
            "responded_at": r + respond_s if respond_s is not None else None, "respond_s": respond_s,
            "respond_bs": respond_s, "respond_due": r + 3600, "respond_met": None if respond_s is None
            else int(respond_s <= 3600),
            "resolved_at": rd, "resolved_month": rk[1], "resolved_quarter": rk[2], "resolved_year": rk[3],
            "resolve_s": resolve_s, "resolve_bs": resolve_s, "resolve_due": r + 86400,
            "resolve_met": None if resolve_s is None else int(resolve_s <= 86400),
            "resolve_target_met": None if resolve_s is None else int(resolve_s <= 86400),
            "closed_at": rd, "reopens": 0, "reopened": int(rnd.random() < 0.03), "reassigned": 0, "reports": 1,
            "responses": 1 if answered else 0, "fcr": None if not resolved else int(rnd.random() < 0.6),
            "surveyed": int(score is not None), "csat": score, "csat_satisfied": None if score is None
            else int(score >= 4), "nps": None, "promoter": None, "detractor": None, "actions": 1,
            "verified": int(resolved), "verified_effective": int(resolved and rnd.random() < 0.85),
            "verification": "effective" if resolved else None, "responsibility": "human",
            "cause_branch": rnd.choice(["man", "machine", "method", "material", "measurement", "environment"]),
        }
        row["fingerprint"] = f"{row['category']}|{row['place']}"
        due = r + 3 * 86400
        done = due - 3600 if rnd.random() < 0.8 else None
        dk = period_keys(datetime.fromtimestamp(due, TZ), TZ)
        action = {"incident_id": f"INC-{i}", "action_id": "A-1", "kind": "corrective", "owner": row["owner"],
                  "team": row["team"], "category": row["category"], "severity": row["severity"],
                  "channel": row["channel"], "place": row["place"], "due": due, "due_month": dk[1],
                  "due_quarter": dk[2], "due_year": dk[3], "done_at": done, "on_time": None if done is None else 1}
        yield f"INC-{i}", row, action


def _fill(con, n: int, ruleset: qflow.Ruleset) -> None:
    t = time.perf_counter()
    rnd = random.Random(7)
    facts_sql = projection_sql.insert_statement(FACTS, "sqlite")
    actions_sql = projection_sql.insert_statement(ACTIONS, "sqlite")
    batch_f, batch_a = [], []
    con.execute("BEGIN")
    con.execute("DELETE FROM qf_proj_incident_facts")
    con.execute("DELETE FROM qf_proj_action_facts")
    for iid, row, action in _rows(n, ruleset, rnd):
        batch_f.extend(projection_sql.row_values(FACTS, iid, row))
        batch_a.extend(projection_sql.row_values(ACTIONS, iid, action))
        if len(batch_f) >= 50_000:
            con.executemany(facts_sql, batch_f)
            con.executemany(actions_sql, batch_a)
            batch_f, batch_a = [], []
    con.executemany(facts_sql, batch_f)
    con.executemany(actions_sql, batch_a)
    con.execute("COMMIT")
    print(f"{n:,} incidents' facts written in {time.perf_counter() - t:.1f} s")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--incidents", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--db", type=Path, help="keep the store in this file and reuse it when it holds as many incidents")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="threads computing the figures side by side (qflow report's default)")
    args = ap.parse_args(argv)
    pm = qflow.make_plugin_manager(autoload=False)
    ruleset = qflow.load_ruleset(ROOT / "rulesets/hotel-front-desk.yaml", plugins=pm)
    with contextlib.ExitStack() as stack:
        path = args.db or Path(stack.enter_context(tempfile.TemporaryDirectory())) / "report.sqlite3"
        engine = qflow.Engine(ruleset, plugins=pm, store=f"sqlite:///{path}")
        store = engine.store
        con = store._con  # the benchmark fills the projection tables directly (see above)
        have = con.execute("SELECT COUNT(*) FROM qf_proj_incident_facts").fetchone()[0]
        if have != args.incidents:
            _fill(con, args.incidents, ruleset)
        else:
            print(f"reusing {path}: {have:,} incidents' facts")

        times, floors = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            report = build_report(store, ruleset, "2026-Q4", as_of=AS_OF, now=AS_OF, workers=args.workers)
            times.append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(9):  # figures (3 periods) and the three slices: as many scans as groups of figures
                con.execute("SELECT COUNT(*) FROM qf_proj_incident_facts WHERE reported_at >= ?",
                            (START.timestamp(),)).fetchone()
            floors.append(time.perf_counter() - t)
        whole = report.comparison.current.total
        med, floor = statistics.median(times), statistics.median(floors)
        print(f"quarterly report 2026-Q4 over {args.incidents:,} incidents: {med:.2f} s median of {args.repeats} "
              f"(target < 10 s); {whole['backlog'].value:,.0f} open, "
              f"on-time resolve {100 * whole['on_time_resolve'].value:.1f}% of {whole['on_time_resolve'].n:,}")
        print(f"baseline, 9 plain COUNT(*) scans of the same table: {floor:.2f} s; report / baseline = "
              f"{med / floor:.1f}x")
        store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
