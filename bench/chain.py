#!/usr/bin/env python3
"""What a long incident costs quench per step: one chain of N `http.request`
steps (each `needs` the one before, so every step renders against the
outputs of all before it) against the fake API at 0 ms latency.

    python3 bench/chain.py --quench target/release/quench --also before=/path/quench

Prints, per binary, the median (min–max) over --runs of wall time and of CPU
time (user + system, the process and its threads), the binaries alternating
run by run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fake_api import FakeAPI  # noqa: E402


def runbook(steps: int) -> str:
    lines = ["name: bench-chain", "kind: procedure", "inputs:", '  api: { example: "http://127.0.0.1:1" }', "steps:"]
    for i in range(steps):
        lines += [f"  - id: s{i}", "    phase: revoke" if i == 0 else "    phase: notify", "    action: http.request"]
        if i:
            lines.append(f"    needs: [s{i - 1}]")
        lines += [
            "    with:",
            "      method: POST",
            f'      url: "{{{{inputs.api}}}}/keys/k{i}/revoke"',
            f"      json: {{ owner: bench, n: {i} }}",
            "      outputs: { status: /revoked }",
        ]
    return "\n".join(lines) + "\n"


def one(binary: str, path: str, url: str) -> tuple[float, float]:
    store = tempfile.mkdtemp(prefix="bench-chain-")
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = os.times().elapsed
        subprocess.run(
            [binary, "run", path, "--var", f"api={url}", "--store", store, "--yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=store, check=True,
        )
        wall = os.times().elapsed - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu
    finally:
        shutil.rmtree(store, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quench", default=str(HERE.parent / "target/release/quench"))
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    binaries = {"quench": args.quench} | dict(a.split("=", 1) for a in args.also)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(runbook(args.steps))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in binaries}
    try:
        with FakeAPI(0) as api:
            for _ in range(args.runs):
                for name, binary in binaries.items():
                    results[name].append(one(binary, f.name, api.url))
    finally:
        os.unlink(f.name)

    def cell(xs: list[float]) -> str:
        return f"{statistics.median(xs):.3f} ({min(xs):.3f}–{max(xs):.3f}) s"

    print(f"| {args.steps} chained steps, {args.runs} runs | wall | CPU (user + system) |")
    print("|---|---:|---:|")
    for name, rows in results.items():
        print(f"| {name} | {cell([w for w, _ in rows])} | {cell([c for _, c in rows])} |")


if __name__ == "__main__":
    main()
