#!/usr/bin/env python3
"""Acknowledgement latency of `quench serve` under concurrent slash commands.

Sends N slash commands at once (default 50), each signed exactly as Slack
signs them, to a running `quench serve`, and prints the p50, p99 and worst
time from sending a request to reading its full answer. Slack gives up on a
command not acknowledged within 3 seconds.

    SLACK_SIGNING_SECRET=... bench/slack_ack.py --url http://127.0.0.1:3000

The user (--user) must be allowed to `rehearse` the runbook by a
`[[chatops.allow]]` rule; every command starts a rehearsal. Standard
library only.

Everything is prepared before the clock starts: every request is built and
signed, and every connection opened. Then one thread sends the requests
back to back and reads the answers as they come (`selectors`), timing each
from just before its send to the last byte of its answer. One thread, not
one per request: 50 Python threads contending for the GIL on the same CPUs
as the server would add their own waits to every time they measure
(`--client threads` still measures that way, to compare).
"""

import argparse
import hashlib
import hmac
import http.client
import os
import selectors
import socket
import statistics
import sys
import threading
import time
import urllib.parse


# Each run's commands are its own: quench refuses a signed command it saw before.
RUN = f"{os.getpid()}.{time.time_ns()}"


def signed(secret, body):
    ts = str(int(time.time()))
    mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": "v0=" + mac.hexdigest(),
    }


def command_body(user, channel, text, i):
    return urllib.parse.urlencode({
        "token": "unused", "team_id": "T0BENCH", "team_domain": "bench",
        "channel_id": channel, "channel_name": "bench", "user_id": user,
        "user_name": "bench", "command": "/quench", "text": text,
        "response_url": f"http://127.0.0.1:9/response/{i}",
        "trigger_id": f"bench.{RUN}.{i}",
    }).encode()


def raw_request(host, port, body, headers):
    lines = ["POST /slack/commands HTTP/1.1", f"Host: {host}:{port}",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def answer_if_complete(buf):
    """(status, body) once `buf` holds a whole answer, else None."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length = 0
    for h in head[1:]:
        k, _, v = h.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
        elif k.strip().lower() == "transfer-encoding":
            sys.exit("error: a chunked answer: this client reads Content-Length answers only")
    body = buf[head_end + 4:]
    return (status, body[:length]) if len(body) >= length else None


def run_selectors(url, requests, timeout):
    """One thread: send all, then read all; (seconds, status, body) each."""
    socks = [socket.create_connection((url.hostname, url.port or 80), timeout=timeout)
             for _ in requests]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sel = selectors.DefaultSelector()
    started = [0.0] * len(requests)
    bufs = [b""] * len(requests)
    results = [None] * len(requests)
    for i, (s, req) in enumerate(zip(socks, requests)):
        started[i] = time.perf_counter()
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    pending = len(requests)
    deadline = time.perf_counter() + timeout
    while pending:
        events = sel.select(timeout=max(0.0, deadline - time.perf_counter()))
        if not events:
            sys.exit(f"error: {pending} of {len(requests)} not answered within {timeout} s")
        for key, _ in events:
            i = key.data
            chunk = key.fileobj.recv(65536)
            bufs[i] += chunk
            done = answer_if_complete(bufs[i])
            if done is None and not chunk:
                done = (0, bufs[i])  # closed early
            if done is not None:
                results[i] = (time.perf_counter() - started[i], *done)
                sel.unregister(key.fileobj)
                pending -= 1
    for s in socks:
        s.close()
    return results


def run_threads(url, bodies_headers, timeout):
    """One thread per request, as this script used to measure."""
    n = len(bodies_headers)
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        body, headers = bodies_headers[i]
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
        conn.connect()
        barrier.wait()
        start = time.perf_counter()
        conn.request("POST", "/slack/commands", body=body, headers=headers)
        resp = conn.getresponse()
        answer = resp.read()
        results[i] = (time.perf_counter() - start, resp.status, answer)
        conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:3000")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--user", default="U0BENCH01")
    p.add_argument("--channel", default="C0BENCH01")
    p.add_argument("--text", default="rehearse slack-token-compromise")
    p.add_argument("--expect", default="started",
                   help="what every answer must hold (default: `started`)")
    p.add_argument("--client", choices=["selectors", "threads"], default="selectors",
                   help="one thread reading all answers (default), or one thread per request")
    args = p.parse_args()
    secret = os.environ.get("SLACK_SIGNING_SECRET")
    if not secret:
        sys.exit("error: set SLACK_SIGNING_SECRET to the secret `quench serve` verifies with")
    url = urllib.parse.urlparse(args.url)
    bodies = [command_body(args.user, args.channel, args.text, i) for i in range(args.n)]
    signed_all = [(b, signed(secret, b)) for b in bodies]
    if args.client == "threads":
        results = run_threads(url, signed_all, 30)
    else:
        requests = [raw_request(url.hostname, url.port or 80, b, h) for b, h in signed_all]
        results = run_selectors(url, requests, 30)
    bad = [r for r in results if r[1] != 200 or args.expect.encode() not in r[2]]
    if bad:
        sys.exit(f"error: {len(bad)} of {args.n} not acknowledged: {bad[0][1]} {bad[0][2][:200]!r}")
    ms = sorted(r[0] * 1000 for r in results)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    print(f"{args.n} concurrent signed commands, all acknowledged (HTTP 200), {args.client} client")
    print(f"p50 {statistics.median(ms):.1f} ms  p99 {p99:.1f} ms  max {ms[-1]:.1f} ms  (Slack's limit: 3000 ms)")


if __name__ == "__main__":
    main()
