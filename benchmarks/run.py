"""qflow benchmarks: `make bench`. Medians of several runs, ratios measured in the same run.

decide     end-to-end Engine.decide at 10, 100 and 1,000 rules (target >= 50,000/s at 1,000)
classify   the compiled classify chain vs the same rules as hand-written lambdas (target <= 1.5x)
           and vs the rule-engine package (target >= 30x faster)
load       loading and checking a 1,000-rule ruleset with positions (target < 1 s)
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402

import qflow  # noqa: E402
from qflow import incident_view  # noqa: E402


def median_rate(fn, items: int, repeats: int) -> float:
    """Items per second, the median over *repeats* runs of fn(), after one warm-up run."""
    fn()
    rates = []
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        fn()
        rates.append(items / (time.perf_counter() - t))
    return statistics.median(rates)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def first_match(rules_fns, defaults, view):
    """Hand-written baseline with the same semantics: the first matching rule sets severity."""
    for fn, sev in rules_fns:
        if fn(view):
            return sev
    return defaults


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--incidents", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=Path(".bench/latest.json"))
    args = ap.parse_args()

    pm = qflow.make_plugin_manager(autoload=False)
    raw = gen.make_incidents(args.incidents)
    incidents = [qflow.parse_incident(r) for r in raw]
    views = [incident_view(i) for i in incidents]
    now = incidents[-1].reported_at
    results: dict[str, float] = {}

    print(f"qflow {qflow.__version__} on Python {sys.version.split()[0]}; {args.incidents:,} incidents, "
          f"median of {args.repeats}\n")
    print("decide, end to end (Engine.decide: view, classify, route, deadlines, Decision)")
    for n in (10, 100, 1000):
        rules = gen.make_rules(n)
        rs = qflow.load_ruleset_text(gen.ruleset_yaml(rules), file=f"bench-{n}.yaml", plugins=pm)
        engine = qflow.Engine(rs, plugins=pm)
        decide = engine.decide

        def run_decide(decide=decide):
            # A stream: each decision is used and dropped, as in `qflow decide`.
            for i in incidents:
                decide(i, now)

        rate = median_rate(run_decide, len(incidents), args.repeats)
        results[f"decide_{n}"] = rate
        print(f"  {n:>5} rules  {rate:>10,.0f} incidents/s")

    rules = gen.make_rules(1000)
    rs = qflow.load_ruleset_text(gen.ruleset_yaml(rules), file="bench-1000.yaml", plugins=pm)
    chain = rs.compiled("classify")
    lambdas = [(gen.as_lambda(r["when"]), r["set"]["severity"]) for r in rules if "when" in r]
    ours = [chain.run(v).severity for v in views]
    theirs = [first_match(lambdas, "normal", v) for v in views]
    assert ours == theirs, "the compiled rules and the lambdas disagree"
    # A second, stronger baseline: the lambdas bucketed by category by hand, as a
    # careful programmer would write them.
    by_cat: dict[str, list] = {}
    for r, (fn, sev) in zip([r for r in rules if "when" in r], lambdas, strict=True):
        by_cat.setdefault(r["when"]["category"], []).append((fn, sev))
    assert [first_match(by_cat.get(v["category"], ()), "normal", v) for v in views] == theirs
    q = median_rate(lambda: [chain.run(v) for v in views], len(views), args.repeats)
    lam = median_rate(lambda: [first_match(lambdas, "normal", v) for v in views], len(views), args.repeats)
    lamb = median_rate(lambda: [first_match(by_cat.get(v["category"], ()), "normal", v) for v in views],
                       len(views), args.repeats)

    import rule_engine

    ctx = rule_engine.Context(default_value=None)
    re_rules = [(rule_engine.Rule(gen.as_rule_engine(r["when"]), context=ctx), r["set"]["severity"])
                for r in rules if "when" in r]
    sample = views[:200]

    def run_rule_engine():
        for v in sample:
            for rule, _sev in re_rules:
                if rule.matches(v):
                    break

    assert [next((s for r, s in re_rules if r.matches(v)), "normal") for v in sample[:50]] == theirs[:50]
    reng = median_rate(run_rule_engine, len(sample), max(1, args.repeats // 2))
    results.update(classify_qflow=q, classify_lambdas=lam, classify_lambdas_bucketed=lamb, classify_rule_engine=reng)
    print("\nclassification alone, 1,000 rules (same rules, same first-match semantics, same answers)")
    print(f"  qflow compiled chain   {q:>10,.0f} incidents/s")
    print(f"  lambdas, one list      {lam:>10,.0f} incidents/s   qflow time / lambda time = {lam / q:.2f}x (target <= 1.5x)")
    print(f"  lambdas, by category   {lamb:>10,.0f} incidents/s   qflow time / lambda time = {lamb / q:.2f}x (target <= 1.5x)")
    print(f"  rule-engine {rule_engine.__version__:<9}  {reng:>10,.0f} incidents/s   qflow is {q / reng:,.0f}x faster (target >= 30x)")

    text = gen.ruleset_yaml(rules)
    path = Path(".bench/bench-1000.yaml")
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    load = median_time(lambda: qflow.load_ruleset(path, plugins=pm), args.repeats)
    results["load_1000_s"] = load
    print(f"\nload + check + compile a 1,000-rule ruleset with positions: {load * 1000:,.0f} ms (target < 1,000 ms)")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
