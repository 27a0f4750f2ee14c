"""Real local servers for the notification tests: an HTTP receiver that can check
signatures and fail on demand, and helpers to build engines with a notify section.
Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.frozen
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class Receiver:
    """A webhook receiver on 127.0.0.1. ``fail_with(...)`` queues behaviours for the
    next requests: an HTTP status (500), ``"timeout"`` (answers only after the client
    gave up), ``"echo"`` (500 with the path and the Authorization header it was sent
    in the body, as careless receivers do), or bytes to answer with; then it answers
    ``reply``. ``check(request)``
    may raise to refuse a request with 401 (a bad signature)."""

    def __init__(self, reply: bytes = b"{}", check: Callable[[Request], None] | None = None) -> None:
        self.reply = reply
        self.check = check
        self.requests: list[Request] = []
        self.refused: list[tuple[Request, str]] = []
        self._plan: list[Any] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                parts = urllib.parse.urlsplit(self.path)
                req = Request(parts.path, dict(urllib.parse.parse_qsl(parts.query)),
                              {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    step = receiver._plan.pop(0) if receiver._plan else None
                if step == "timeout":
                    receiver._release.wait(5)
                    return
                if step == "echo":
                    self._answer(500, f"bad request to {self.path} (authorization: "
                                      f"{self.headers.get('Authorization')})".encode())
                    return
                if isinstance(step, int):
                    self._answer(step, b'{"error": "told to fail"}')
                    return
                if receiver.check is not None:
                    try:
                        receiver.check(req)
                    except Exception as exc:
                        receiver.refused.append((req, str(exc)))
                        self._answer(401, str(exc).encode())
                        return
                with receiver._lock:
                    receiver.requests.append(req)
                self._answer(200, step if isinstance(step, bytes) else receiver.reply)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fail_with(self, *steps: Any) -> None:
        with self._lock:
            self._plan.extend(steps)

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/hook"


BASE = textwrap.dedent("""\
    qflow: 1
    name: notify-desk
    timezone: Asia/Shanghai
    teams:
      front-office: {name: 前厅部 Front office, lead: 王芳, members: [李强]}
      housekeeping: {name: 客房部 Housekeeping, lead: 李娜}
    severities:
      critical: {respond: 15m, resolve: 4h}
      normal: {respond: 4h, resolve: 3d}
    classify:
      - id: safety
        when: {category: safety}
        set: {severity: critical}
      - id: default
        set: {severity: normal}
    route:
      - id: cleanliness
        when: {category: hygiene}
        assign: {team: housekeeping}
      - id: default
        assign: {team: front-office, owner: 李强}
    """)


def ruleset_text(notify: str) -> str:
    return BASE + textwrap.dedent(notify)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
