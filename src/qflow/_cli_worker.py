"""``qflow worker``: the long-running process that ticks the clocks and delivers the outbox."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from zoneinfo import ZoneInfo
from typing import IO, Any

from qflow._convert import ShapeError, parse_duration
from qflow._worker import Worker
from qflow._cli_store import DEFAULT_STORE, store_url
from qflow.clock import SystemClock
from qflow.engine import Engine, open_store
from qflow.errors import QflowError, StoreUnavailableError
from qflow.store import TransientStoreError

__all__ = ["add_commands"]

_EPILOG = """\
Every interval: fire what is due (escalation steps, reminders, verifications) and
deliver what waits in the outbox, then print one line saying what was done. Run as
many workers as you like against one PostgreSQL store: each step fires once and each
message goes out once per idempotency key (receivers drop repeats by that key).
SIGTERM or SIGINT (Ctrl-C) stops after the current batch (--batch) and gives the
claims back; a second one stops at once (the transaction in progress is rolled back).
A database that goes away is waited for and reconnected to.

examples:
  qflow worker rulesets/hotel-front-desk.yaml --store sqlite:///qflow.db
  qflow worker rules.yaml --store postgresql://qflow@db/qflow --name web-1 --interval 10s
  qflow worker rules.yaml --store sqlite:///qflow.db --once     # one interval, then exit (cron)

exit status: 0 stopped cleanly, 1 (with --once) the store was unavailable, 2 a usage error,
128 + the signal (130, 143) stopped at once by a second signal.
"""


def add_commands(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    from qflow.cli import _FORMATTER

    p = sub.add_parser("worker", parents=[common], formatter_class=_FORMATTER, epilog=_EPILOG,
                       help="tick the clocks and deliver notifications, until stopped",
                       description="Run the clocks and the outbox for a store, interval after interval.")
    p.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    p.add_argument("--store", metavar="URL",
                   help="the store: sqlite:///PATH, postgresql://USER@HOST/DB (password in PGPASSWORD); "
                        f"default: $QFLOW_STORE, else {DEFAULT_STORE}")
    p.add_argument("--interval", default="5s", metavar="DURATION", help="time between intervals (default 5s)")
    p.add_argument("--once", action="store_true", help="run one interval and exit")
    p.add_argument("--name", metavar="NAME",
                   help="this worker's name in claims and delivery attempts (default HOST-PID)")
    p.add_argument("--batch", type=int, default=500, metavar="N", help="timers or messages per batch (default 500)")
    return {"worker": _cmd_worker}


def _cmd_worker(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow.cli import UsageError, _load, _plugins

    try:
        interval = parse_duration(args.interval)
    except ShapeError as exc:
        raise UsageError(f"argument --interval: {exc.message}", exc.hint) from None
    if args.batch < 1:
        raise UsageError("argument --batch must be at least 1", "use e.g. --batch 500")
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=err, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pm = _plugins(args)
    ruleset = _load(args.ruleset, pm)
    url = store_url(args)
    try:
        # A worker only works on a store that is there: a mistyped path is refused.
        engine = Engine(ruleset, plugins=pm, store=open_store(url, pm, create=False),
                        clock=SystemClock(ZoneInfo(ruleset.timezone)))
    except TransientStoreError as exc:
        raise UsageError(str(exc), None) from None
    except StoreUnavailableError as exc:
        raise UsageError(str(exc), "start the database, or fix --store") from None
    except QflowError as exc:
        raise UsageError(str(exc), "check --store") from None
    worker = Worker(engine, name=name, interval=interval, out=out, batch=args.batch)
    restore = worker.install_signal_handlers()
    try:
        out.write(f"qflow worker {name}: {ruleset.ref} on {_shown(url)}, every {args.interval}\n")
        out.flush()
        status = worker.run(once=args.once)
    finally:
        restore()
        engine.store.close()
    out.write(f"qflow worker {name}: stopped after {worker.intervals} interval"
              f"{'s' * (worker.intervals != 1)}\n")
    return status


def _shown(url: str) -> str:
    """The store URL without a password, for the log."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, at, host = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in userinfo else ''}@{host}"

