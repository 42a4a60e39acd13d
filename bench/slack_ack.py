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
"""

import argparse
import hashlib
import hmac
import http.client
import os
import statistics
import sys
import threading
import time
import urllib.parse


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
        "trigger_id": f"bench.{i}",
    }).encode()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:3000")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--user", default="U0BENCH01")
    p.add_argument("--channel", default="C0BENCH01")
    p.add_argument("--text", default="rehearse slack-token-compromise")
    args = p.parse_args()
    secret = os.environ.get("SLACK_SIGNING_SECRET")
    if not secret:
        sys.exit("error: set SLACK_SIGNING_SECRET to the secret `quench serve` verifies with")
    url = urllib.parse.urlparse(args.url)
    barrier = threading.Barrier(args.n)
    results = [None] * args.n

    def one(i):
        body = command_body(args.user, args.channel, args.text, i)
        headers = signed(secret, body)
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
        conn.connect()
        barrier.wait()
        start = time.perf_counter()
        conn.request("POST", "/slack/commands", body=body, headers=headers)
        resp = conn.getresponse()
        answer = resp.read()
        results[i] = (time.perf_counter() - start, resp.status, answer)
        conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [r for r in results if r[1] != 200 or b"started" not in r[2]]
    if bad:
        sys.exit(f"error: {len(bad)} of {args.n} not acknowledged: {bad[0][1]} {bad[0][2][:200]!r}")
    ms = sorted(r[0] * 1000 for r in results)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    print(f"{args.n} concurrent signed commands, all acknowledged (HTTP 200)")
    print(f"p50 {statistics.median(ms):.1f} ms  p99 {p99:.1f} ms  max {ms[-1]:.1f} ms  (Slack's limit: 3000 ms)")


if __name__ == "__main__":
    main()
