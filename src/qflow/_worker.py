"""The long-running worker: tick the clocks and deliver the outbox, interval after interval.

Several workers may run against one PostgreSQL store: the store hands each due timer
and each outbox message to one worker at a time (claims with a lease), and the event
log's sequence check makes a step recorded by one worker visible to the others before
they could record it again. A worker that stops gracefully (SIGTERM, SIGINT) finishes
its batch and gives its claims back; a second signal stops it at once (the transaction
in progress is rolled back, and the claims are given back if the store answers); one
that is killed leaves claims that expire with their lease.

The waiting between intervals is real time in production, but both the clock and
the wait are injected, so tests run intervals without sleeping.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import IO, Any

import attrs

from qflow.clock import Clock, SystemClock
from qflow.errors import StoreUnavailableError

__all__ = ["IntervalReport", "Worker"]

log = logging.getLogger("qflow.worker")


class _StopNow(KeyboardInterrupt):
    """A second SIGTERM or SIGINT: leave the batch at once. A KeyboardInterrupt, so no
    ``except Exception`` on the way (a plugin's failure in the tick) takes it, and so
    psycopg cancels the query it waits on and the rollback can still run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@attrs.frozen
class IntervalReport:
    """What one interval did (over all its batches)."""

    at: datetime
    incidents: int = 0
    effects: int = 0
    conflicts: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    error: str | None = None

    def line(self, name: str, tz: tzinfo | None = None) -> str:
        """The status line, its time in *tz* (default: as the clock gave it), to the second."""
        at = (self.at.astimezone(tz) if tz is not None else self.at).isoformat(timespec="seconds")
        if self.error is not None:
            return f"{at} {name}: store unavailable, will retry: {self.error}"
        parts = [f"{self.effects} effect{'s' * (self.effects != 1)} on {self.incidents} "
                 f"incident{'s' * (self.incidents != 1)}"]
        if self.conflicts:
            parts.append(f"{self.conflicts} lost race{'s' * (self.conflicts != 1)} re-read")
        parts.append(f"{self.delivered} delivered")
        if self.retrying:
            parts.append(f"{self.retrying} to retry")
        if self.dead:
            parts.append(f"{self.dead} dead")
        return f"{at} {name}: " + ", ".join(parts)


class Worker:
    """Runs ``engine.tick`` and ``engine.deliver`` every *interval* until stopped.

    :param engine: the engine (its store is shared with the other workers).
    :param name: this worker's name in claims and delivery attempts; unique per process.
    :param clock: where ``now`` comes from (default: the engine's clock).
    :param wait: ``wait(seconds) -> bool`` pauses between intervals and returns True
        when the worker was asked to stop meanwhile; the default waits on an event
        that :meth:`stop` sets, so a signal ends the pause at once.
    :param out: where the one line per interval goes (None: only the log).
    :param tz: the zone of the status line's time (default: the ruleset's, the zone
        ``qflow show`` and the notifications use).
    """

    def __init__(self, engine: Any, *, name: str, interval: timedelta = timedelta(seconds=5),
                 clock: Clock | None = None, wait: Callable[[float], bool] | None = None,
                 out: IO[str] | None = None, batch: int = 500, lease: timedelta = timedelta(minutes=5),
                 backoff: timedelta = timedelta(seconds=1), max_backoff: timedelta = timedelta(minutes=1),
                 tz: tzinfo | None = None) -> None:
        self.engine = engine
        self.name = name
        self.interval = interval
        self.clock = clock or getattr(engine, "clock", None) or SystemClock()
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self.out = out
        self.batch = batch
        self.lease = lease
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.intervals = 0
        self.tz = tz if tz is not None else _zone(engine)

    # -- stopping ----------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        """Ask the worker to stop after the batch it is in (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> Callable[[], None]:
        """Stop gracefully on SIGTERM and SIGINT, and at once on a second one; returns a
        function restoring the old handlers."""
        old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for s, handler in old.items():
                signal.signal(s, handler)

        def handle(signum: int, _frame: object) -> None:
            if not self.stopping:
                self.stop()
                return
            # A third signal gets the old handling (by default it ends the process),
            # should giving the claims back hang.
            restore()
            raise _StopNow(signum)

        for s in old:
            signal.signal(s, handle)
        return restore

    # -- the work ----------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> IntervalReport:
        """One interval: tick until nothing more is due, then deliver until the outbox
        has nothing ready, *batch* timers or messages at a time; a stop request ends it
        between batches."""
        if now is None:
            now = self.clock.now()
        # One tick for the interval, so each incident is asked once (more only while
        # what it records makes more due at once) however many batches the backlog
        # takes; it asks whether to stop after each batch.
        r = self.engine.tick(now, worker=self.name, limit=self.batch, lease=self.lease,
                             stop=lambda: self.stopping)
        incidents, effects, conflicts = r.incidents, r.effects, r.conflicts
        delivered = retrying = dead = 0
        deliver = getattr(self.engine, "deliver", None)
        while deliver is not None and not self.stopping:
            d = deliver(now, worker=self.name, limit=self.batch, lease=self.lease)
            delivered += getattr(d, "delivered", 0)
            retrying += getattr(d, "retrying", 0)
            dead += getattr(d, "dead", 0)
            if getattr(d, "claimed", 0) < self.batch:
                break
        return IntervalReport(now, incidents, effects, conflicts, delivered, retrying, dead)

    def run(self, *, once: bool = False) -> int:
        """Work interval after interval until stopped (or one interval with *once*);
        release this worker's claims at the end. Returns the exit status: 128 + the
        signal's number when a second signal stopped it at once."""
        try:
            return self._intervals(once)
        except _StopNow as forced:
            log.warning("worker %s: stopped at once by a second %s; the transaction in progress was rolled back",
                        self.name, signal.Signals(forced.signum).name)
            return 128 + forced.signum
        finally:
            self._release()

    def _intervals(self, once: bool) -> int:
        status = 0
        failures = 0
        while not self.stopping:
            try:
                report = self.run_once()
                failures = 0
            except StoreUnavailableError as exc:
                # The store already retried its transaction; wait longer and again.
                failures += 1
                report = IntervalReport(self.clock.now(), error=str(exc))
                log.warning("worker %s: %s", self.name, exc)
                status = 1 if once else 0
            self.intervals += 1
            self._print(report)
            if once:
                break
            pause = self.interval if not failures else min(self.max_backoff, self.backoff * 2 ** (failures - 1))
            if self._wait(pause.total_seconds()):
                break
        return status

    def _release(self) -> None:
        try:
            self.engine.store.release_timers(self.name)
            log.info("worker %s: claims released", self.name)
        except (Exception, _StopNow) as exc:
            # Claims left behind expire with their lease; nothing is lost. After a forced
            # stop the connection may be past helping, and a second signal may come now.
            log.warning("worker %s: could not release claims (%s); they expire with their lease", self.name, exc)

    def _print(self, report: IntervalReport) -> None:
        line = report.line(self.name, self.tz)
        if self.out is None:
            log.info("%s", line)
            return
        # Printed, not logged as well: under a service manager both streams end in the
        # same journal, and each interval would show twice.
        log.debug("%s", line)
        self.out.write(line + "\n")
        self.out.flush()


def _zone(engine: Any) -> tzinfo | None:
    name = getattr(getattr(engine, "ruleset", None), "timezone", None)
    if not name:
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
