#!/usr/bin/env python3
"""From a GitHub secret-scanning webhook to the token's revocation request.

Starts `quench serve` with a `[hooks.github]` trigger on a one-step
revoke runbook, and a fake GitHub (alerts, locations, commits and
`POST /credentials/revoke`, as GitHub's REST API documents them) in this
process. Sends N alerts (default 100), each for its own token, signed as
GitHub signs them, and times each from just before its delivery is sent
to the arrival of the `credentials/revoke` request that carries its token.

    bench/hook_revoke.py --quench target/release/quench             # one at a time
    bench/hook_revoke.py --quench target/release/quench --burst     # all at once

One at a time (the default) measures the path a lone alert takes: the
answer, reading the alert and its location, creating the incident, the
revocation. `--burst` sends them all at once from 10 threads: the same
path under load, with the revocations batched (the number of requests is
printed). Prints p50, p99 and max in ms, and the 202's own time.
Standard library only.
"""

import argparse
import hashlib
import hmac
import http.client
import http.server
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SECRET = "bench-webhook-secret-0123456789abcdef"
ENGINE_TOKEN = "ghp_BenchEngineToken000000000000000000"
REPO = "acme/deploy"

RUNBOOK = """name: bench-hook
title: Benchmark hook
inputs:
  repo: { description: repository }
secrets:
  leaked_token: { description: the token }
steps:
  - id: revoke
    phase: revoke
    action: github.revoke_credentials
    with: { credentials: ["{{secrets.leaked_token}}"] }
"""

CONFIG = """[hooks.github]
secret = "env:GITHUB_WEBHOOK_SECRET"

[[triggers]]
source = "github"
runbook = "bench-hook"
inputs = { repo = "{{repository}}" }
unattended = ["revoke"]
"""


def token(i):
    return f"ghp_BenchToken{i:022d}"


class Github:
    """The alerts, and when each token's revocation request arrived."""

    def __init__(self, n, latency):
        self.n, self.latency = n, latency
        self.revoked = {}
        self.alert_read = {}
        self.requests = 0
        self.lock = threading.Lock()

    def handler(self):
        gh = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer, sent at once: headers and body written
            # apart would meet the client's delayed ACK (~40 ms), which is
            # the fake's time, not quench's.
            wbufsize = io.DEFAULT_BUFFER_SIZE
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def reply(self, status, value):
                body = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self):
                arrived = time.perf_counter_ns()
                time.sleep(gh.latency)
                m = re.fullmatch(rf"/repos/{REPO}/secret-scanning/alerts/(\d+)(/locations)?", self.path)
                c = re.fullmatch(rf"/repos/{REPO}/commits/([0-9a-f]+)", self.path)
                if m and not m.group(2):
                    n = int(m.group(1))
                    gh.alert_read.setdefault(n, arrived)
                    return self.reply(200, {
                        "number": n, "state": "open", "secret_type": "github_personal_access_token",
                        "secret": token(n), "created_at": "2026-12-07T10:00:00Z",
                        "html_url": f"https://github.com/{REPO}/security/secret-scanning/{n}",
                    })
                if m:
                    sha = f"{int(m.group(1)):040x}"
                    return self.reply(200, [{"type": "commit", "details": {
                        "path": ".env", "start_line": 1, "commit_sha": sha}}])
                if c:
                    return self.reply(200, {"sha": c.group(1), "commit": {
                        "author": {"date": "2026-12-06T08:00:00Z"},
                        "committer": {"date": "2026-12-06T08:00:00Z"}}})
                self.reply(404, {"message": "Not Found"})

            def do_POST(self):
                arrived = time.perf_counter_ns()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(gh.latency)
                with gh.lock:
                    gh.requests += 1
                    for t in body.get("credentials", []):
                        gh.revoked.setdefault(t, arrived)
                self.reply(202, {})

        return H


def payload(n):
    return json.dumps({
        "action": "created",
        "alert": {"number": n, "created_at": "2026-12-07T10:00:00Z",
                  "secret_type": "github_personal_access_token",
                  "html_url": f"https://github.com/{REPO}/security/secret-scanning/{n}"},
        "repository": {"full_name": REPO},
    }).encode()


def deliver(addr, n, run):
    """Sends alert `n`; returns (sent, answered) perf_counter_ns stamps."""
    body = payload(n)
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection(*addr, timeout=30)
    conn.connect()
    sent = time.perf_counter_ns()
    conn.request("POST", "/hooks/github", body, {
        "Content-Type": "application/json", "X-GitHub-Event": "secret_scanning_alert",
        "X-GitHub-Delivery": f"{run}-{n}", "X-Hub-Signature-256": sig,
    })
    resp = conn.getresponse()
    resp.read()
    answered = time.perf_counter_ns()
    conn.close()
    if resp.status != 202:
        sys.exit(f"alert {n}: HTTP {resp.status}")
    return sent, answered


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quench", default="target/release/quench")
    ap.add_argument("--alerts", type=int, default=100)
    ap.add_argument("--burst", action="store_true", help="send every alert at once")
    ap.add_argument("--latency-ms", type=float, default=0, help="the fake GitHub's latency")
    ap.add_argument("--stderr", help="keep quench's standard error in this file "
                    "(QUENCH_LOG=quench::startup=debug says where the time goes)")
    args = ap.parse_args()

    gh = Github(args.alerts, args.latency_ms / 1000)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), gh.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="quench-hook-bench-")
    os.makedirs(f"{work}/runbooks")
    with open(f"{work}/runbooks/bench-hook.yaml", "w") as f:
        f.write(RUNBOOK)
    with open(f"{work}/quench.toml", "w") as f:
        f.write(CONFIG)
    env = dict(os.environ, GITHUB_API_URL=f"http://127.0.0.1:{server.server_port}",
               GITHUB_TOKEN=ENGINE_TOKEN, GITHUB_WEBHOOK_SECRET=SECRET)
    for k in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        env.pop(k, None)
    quench = subprocess.Popen([os.path.abspath(args.quench), "serve", "--listen", "127.0.0.1:0"],
                              cwd=work, env=env, stdout=subprocess.PIPE,
                              stderr=open(args.stderr, "w") if args.stderr else subprocess.DEVNULL,
                              text=True)
    line = quench.stdout.readline()
    host, port = re.search(r"http://([\d.]+):(\d+)", line).groups()
    addr = (host, int(port))
    run = f"{os.getpid()}-{time.time_ns()}"
    stamps = {}
    try:
        deliver(addr, 10_000_000, run)  # warm-up: its token is not counted
        time.sleep(0.5)
        if args.burst:
            def worker(ns):
                for n in ns:
                    stamps[n] = deliver(addr, n, run)
            threads = [threading.Thread(target=worker, args=(range(i + 1, args.alerts + 1, 10),))
                       for i in range(10)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for n in range(1, args.alerts + 1):
                stamps[n] = deliver(addr, n, run)
                deadline = time.time() + 30
                while token(n) not in gh.revoked and time.time() < deadline:
                    time.sleep(0.0002)
        deadline = time.time() + 60
        while any(token(n) not in gh.revoked for n in stamps) and time.time() < deadline:
            time.sleep(0.01)
    finally:
        quench.terminate()
        quench.wait()
        shutil.rmtree(work, ignore_errors=True)
    missing = [n for n in stamps if token(n) not in gh.revoked]
    if missing:
        sys.exit(f"{len(missing)} tokens never revoked")
    to_revoke = [(gh.revoked[token(n)] - sent) / 1e6 for n, (sent, _) in stamps.items()]
    answers = [(answered - sent) / 1e6 for sent, answered in stamps.values()]
    to_read = [(gh.alert_read[n] - sent) / 1e6 for n, (sent, _) in stamps.items()]
    read_to_revoke = [(gh.revoked[token(n)] - gh.alert_read[n]) / 1e6 for n in stamps]
    mode = "burst" if args.burst else "one at a time"
    print(f"{args.alerts} alerts, {mode}, fake GitHub latency {args.latency_ms:g} ms")
    print("| metric | p50 (ms) | p99 (ms) | max (ms) |")
    print("|---|---:|---:|---:|")
    for name, v in (("webhook sent → revoke request arrives", to_revoke),
                    ("webhook sent → 202 read", answers),
                    ("webhook sent → alert request arrives", to_read),
                    ("alert request → revoke request", read_to_revoke)):
        print(f"| {name} | {statistics.median(v):.2f} | {pct(v, 99):.2f} | {max(v):.2f} |")
    print(f"revoke requests: {gh.requests - 1} for {args.alerts} tokens (warm-up excluded)")


if __name__ == "__main__":
    main()
