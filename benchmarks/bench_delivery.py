"""Delivery throughput: outbox messages sent to a local webhook receiver per second.

``Engine.deliver`` (claim, render-free send through the signed webhook backend,
record the attempt) against the floor: a bare ``urllib`` POST loop to the same
receiver, in the same run. The receiver is a ThreadingHTTPServer on 127.0.0.1.

    .venv/bin/python benchmarks/bench_delivery.py [--messages 400] [--runs 5]

(run with the installed qflow: its entry points register the notify plugin)
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import threading
import time
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import qflow

RULESET = """\
qflow: 1
name: bench-delivery
timezone: Asia/Shanghai
teams:
  front-office: {name: 前厅部, lead: 王芳}
severities:
  normal: {respond: 4h, resolve: 3d}
classify:
  - id: default
    set: {severity: normal}
route:
  - id: default
    assign: {team: front-office}
notify:
  channels:
    hook: {backend: webhook, url: "${env:BENCH_HOOK}", secret: "${env:BENCH_SECRET}", timeout: 5s}
"""


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _engine(url: str, n: int) -> qflow.Engine:
    pm = qflow.make_plugin_manager(autoload=False)
    rs = qflow.load_ruleset_text(RULESET, plugins=pm)
    engine = qflow.Engine(rs, plugins=pm, clock=qflow.FakeClock(datetime(2026, 11, 20, 15, 10, tzinfo=timezone.utc)))
    engine.delivery_env = {"BENCH_HOOK": url, "BENCH_SECRET": "whsec_" + base64.b64encode(b"k" * 32).decode()}
    engine.delivery_random = random.Random(1)
    for i in range(n):
        engine.report({"category": "complaint", "description": f"等待超过30分钟 #{i}", "place": "lobby"})
    return engine


def _qflow(url: str, n: int) -> float:
    engine = _engine(url, n)
    start = time.perf_counter()
    report = engine.deliver(limit=n)
    took = time.perf_counter() - start
    assert report.delivered == n, report
    return n / took


def _urllib(url: str, n: int) -> float:
    body = b'{"type":"incident.reported","data":{"subject":"x","body":"y"}}'
    start = time.perf_counter()
    for _ in range(n):
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
    return n / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        _qflow(url, 20), _urllib(url, 20)  # warm up
        ours = [_qflow(url, args.messages) for _ in range(args.runs)]
        floor = [_urllib(url, args.messages) for _ in range(args.runs)]
    finally:
        server.shutdown()
        server.server_close()
    q, b = statistics.median(ours), statistics.median(floor)
    print(f"delivery to a local webhook receiver, {args.messages} messages, median of {args.runs}")
    print(f"  Engine.deliver (signed webhook, attempts recorded) {q:10,.0f} messages/s")
    print(f"  bare urllib POST loop                              {b:10,.0f} messages/s   qflow / bare = {q / b:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
