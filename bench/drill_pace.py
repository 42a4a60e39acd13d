#!/usr/bin/env python3
"""How closely a paced drill keeps time: `quench rehearse
aws-access-key-compromise --pace 20x` with a scenario whose critical path is
20 s of simulated latency and whose human steps are all scripted (answered
at once), so the drill should take 1 s of wall time.

    python3 bench/drill_pace.py --quench target/release/quench --runs 10

The scenario's per-action latency is calibrated first: one rehearsal on the
virtual clock at 1 s per action gives the critical path's length in actions
(`depth`), and each action then takes 20 s / depth. Each run is timed from
spawn to exit (wall), and by its own journal: from its first record to its
last, on the drill's clock (simulated) and that divided by the pace (the
engine's wall time, without process start-up). Prints the median, min, max
and standard deviation over the runs, and each one's deviation from 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNBOOK = "aws-access-key-compromise"
MANUAL = ["review", "prevent", "went_well", "went_wrong", "lucky"]


def scenario(latency_s: float) -> str:
    lines = [f"defaults: {{ latency: {int(latency_s * 1000)}ms, approval: 0s }}", "manual:"]
    lines += [f'  {step}: {{ after: 0s, answer: "scripted" }}' for step in MANUAL]
    return "\n".join(lines) + "\n"


def ts(record: dict) -> datetime:
    return datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))


def once(binary: str, scenario_path: str, pace: str | None) -> tuple[float, float]:
    """One rehearsal (a drill at `pace`): wall seconds, and the seconds its
    journal spans on its own clock."""
    store = tempfile.mkdtemp(prefix="bench-drill-")
    try:
        args = [binary, "rehearse", RUNBOOK, "--scenario", scenario_path, "--store", store]
        if pace:
            args += ["--pace", pace]
        t0 = os.times().elapsed
        subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=store, check=True)
        wall = os.times().elapsed - t0
        (journal,) = Path(store).glob("*/journal.jsonl")
        records = [json.loads(line) for line in journal.read_text().splitlines()]
        return wall, (ts(records[-1]) - ts(records[0])).total_seconds()
    finally:
        shutil.rmtree(store, ignore_errors=True)


def summary(name: str, xs: list[float]) -> str:
    return (f"| {name} | {statistics.median(xs):.3f} | {min(xs):.3f} | {max(xs):.3f} | "
            f"{statistics.pstdev(xs):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quench", default=str(HERE.parent / "target/release/quench"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pace", type=int, default=20)
    ap.add_argument("--critical-path", type=float, default=20.0, help="simulated seconds")
    args = ap.parse_args()
    args.quench = str(Path(args.quench).resolve())
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(scenario(1.0))
    try:
        _, depth = once(args.quench, f.name, None)
        latency = args.critical_path / round(depth)
        Path(f.name).write_text(scenario(latency))
        _, simulated = once(args.quench, f.name, None)
        print(f"critical path: {round(depth)} actions × {latency:.3f} s = {simulated:.3f} s "
              f"simulated; target {args.critical_path / args.pace:.3f} s wall at {args.pace}x",
              file=sys.stderr)
        walls, engine, sims = [], [], []
        for i in range(args.runs):
            wall, sim = once(args.quench, f.name, f"{args.pace}x")
            walls.append(wall)
            sims.append(sim)
            engine.append(sim / args.pace)
            print(f"run {i + 1}: wall {wall:.3f} s, journal {sim:.3f} s simulated", file=sys.stderr)
    finally:
        os.unlink(f.name)
    target = args.critical_path / args.pace
    print(f"\n{args.runs} drills of `{RUNBOOK}` at --pace {args.pace}x, "
          f"critical path {args.critical_path:g} s simulated (target {target:.3f} s wall)\n")
    print("| seconds | median | min | max | stdev |")
    print("|---|---|---|---|---|")
    print(summary("wall, spawn to exit", walls))
    print(summary("journal span ÷ pace (engine)", engine))
    print(summary("journal span, simulated", sims))
    print(summary("wall − target", [w - target for w in walls]))


if __name__ == "__main__":
    main()
