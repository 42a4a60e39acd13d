#!/usr/bin/env python3
"""A fake internal API for the quench benchmark (stdlib only).

It answers the routes used by bench/runbooks/http-8-steps.yaml after a fixed
latency, on 127.0.0.1 and a free port, with HTTP/1.1 keep-alive. For every
request it records:

  arrival_ns   time.time_ns() when the request line had been read
  done_ns      time.time_ns() when the whole response had been handed to the kernel
  handling_ns  perf_counter time from arrival to response sent, *including* the
               latency sleep: handling_ns - latency is the server's own cost,
               which a client-side measurement cannot tell apart from the
               client's

The benchmark harness (bench.py) imports this module and runs the server in a
thread of its own process, so it reads these records directly. Run on its own
(`python3 bench/fake_api.py --latency-ms 50`) it serves until Ctrl-C and prints
one line per request.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _body(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# Pre-encoded answers: the handler does as little as possible per request.
REVOKED = _body({"revoked": True})
NEW_KEY = _body({"id": "key-new", "secret": "s3cr3t-new-value"})
EVENTS = _body(
    {
        "count": 3,
        "first_seen": "2026-11-22T22:58:12Z",
        "last_seen": "2026-11-22T23:07:40Z",
        "source_ips": ["203.0.113.7"],
    }
)
EMPTY = _body({})
WHOAMI = _body({"key_id": "key-new"})
CREATED_ID = _body({"id": 1})
NOT_FOUND = _body({"error": "not found"})

REVOKE_RE = re.compile(r"^/keys/[^/]+/revoke$")
EVENTS_RE = re.compile(r"^/keys/[^/]+/events$")


def route(method: str, path: str) -> tuple[int, bytes]:
    path = path.split("?", 1)[0]
    if method == "POST":
        if path == "/keys":
            return 201, NEW_KEY
        if path in ("/notify", "/tickets"):
            return 200, CREATED_ID
        if REVOKE_RE.match(path):
            return 200, REVOKED
    elif method == "GET":
        if path == "/whoami":
            return 200, WHOAMI
        if EVENTS_RE.match(path):
            return 200, EVENTS
    elif method == "PUT":
        if path == "/config/credential":
            return 200, EMPTY
    return 404, NOT_FOUND


@dataclass
class Request:
    method: str
    path: str
    status: int
    arrival_ns: int  # time.time_ns(), request line read
    done_ns: int  # time.time_ns(), response written
    handling_ns: int  # perf_counter_ns() delta, arrival -> response written
    connection: int  # which TCP connection (accept order)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "fake-api/1"
    sys_version = ""
    # Buffer the response so headers and body leave in one write (no
    # Nagle / delayed-ACK interplay between a header write and a body write),
    # and set TCP_NODELAY anyway.
    wbufsize = io.DEFAULT_BUFFER_SIZE
    disable_nagle_algorithm = True

    server: "FakeServer"

    def setup(self):
        super().setup()
        self.conn_no = self.server.next_connection()

    def parse_request(self):
        # Called right after the request line has been read: the arrival.
        self._arrival_ns = time.time_ns()
        self._arrival_pc = time.perf_counter_ns()
        return super().parse_request()

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        latency = self.server.latency_s
        if latency > 0:
            time.sleep(latency)
        status, body = route(self.command, self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        done_pc = time.perf_counter_ns()
        done_ns = time.time_ns()
        self.server.record(
            Request(
                method=self.command,
                path=self.path,
                status=status,
                arrival_ns=self._arrival_ns,
                done_ns=done_ns,
                handling_ns=done_pc - self._arrival_pc,
                connection=self.conn_no,
            )
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def send_response(self, code, message=None):
        # Skip the access log and the Date header (a strftime per request).
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, latency_ms: float, on_request=None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.latency_s = latency_ms / 1000.0
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._connections = 0
        self._on_request = on_request

    def next_connection(self) -> int:
        with self._lock:
            self._connections += 1
            return self._connections

    def record(self, r: Request) -> None:
        with self._lock:
            self._requests.append(r)
        if self._on_request:
            self._on_request(r)

    def take(self) -> list[Request]:
        """The requests recorded since the last call, in arrival order."""
        with self._lock:
            out, self._requests = self._requests, []
        out.sort(key=lambda r: r.arrival_ns)
        return out


class FakeAPI:
    """The server in a background thread: `with FakeAPI(50) as api: api.port`."""

    def __init__(self, latency_ms: float, on_request=None):
        self.server = FakeServer(latency_ms, on_request)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-api",
            daemon=True,
        )

    def __enter__(self) -> "FakeAPI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def take(self) -> list[Request]:
        return self.server.take()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency-ms", type=float, default=0.0, help="fixed latency per request")
    args = ap.parse_args()

    def show(r: Request) -> None:
        own_us = (r.handling_ns - int(args.latency_ms * 1e6)) / 1000
        print(
            f"{r.arrival_ns} conn#{r.connection} {r.method} {r.path} -> {r.status} "
            f"(server's own time {own_us:.0f} µs)",
            flush=True,
        )

    with FakeAPI(args.latency_ms, on_request=show) as api:
        print(f"listening on {api.url} (latency {args.latency_ms:g} ms)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
