"""The process the fault tests kill: intake, then tick, then delivery, against one store.

    python tests/fault_child.py STORE_URL RECEIVER COUNT NOW_MINUTES NAME

Reports COUNT incidents (external ids ``ext-0`` ...) and prints ``ACK ext-i INC-n``
after each report returns (an acknowledged report); then ticks and delivers in small
batches at T0 + NOW_MINUTES, printing a line after each batch, and ``DONE`` at the end.
A second run (the tests make it in their own process) retries every report (the external id makes a
retry record nothing new) and finishes whatever the killed run left.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import BASE, T0  # noqa: E402
from stepplugin import StepPlugin  # noqa: E402

import qflow  # noqa: E402

STEPS = 2


def main(url: str, receiver: str, count: int, minutes: int, name: str, out: IO[str] = sys.stdout) -> None:
    pm = qflow.make_plugin_manager(autoload=False, plugins=[StepPlugin(STEPS, receiver)])
    ruleset = qflow.load_ruleset_text(BASE, file="base.yaml", plugins=pm)
    clock = qflow.FakeClock(T0)
    engine = qflow.Engine(ruleset, plugins=pm, store=url, clock=clock)
    for i in range(count):
        state = engine.report({"channel": "phone", "category": "complaint", "description": f"room {i} is cold",
                               "external_id": f"ext-{i}"})
        out.write(f"ACK ext-{i} {state.id}\n")
        out.flush()
    now = T0 + timedelta(minutes=minutes)
    while True:
        r = engine.tick(now, worker=name, limit=3, lease=timedelta(minutes=5))
        out.write(f"TICK {r.incidents} {r.effects}\n")
        out.flush()
        if not r.incidents:
            break
    while True:
        d = engine.deliver(now, worker=name, limit=3, lease=timedelta(minutes=5))
        out.write(f"DELIVER {d.claimed} {d.delivered}\n")
        out.flush()
        if not d.claimed:
            break
    engine.store.close()
    out.write("DONE\n")
    out.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
