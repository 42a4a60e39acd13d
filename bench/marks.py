#!/usr/bin/env python3
"""Where quench's time goes inside one run: its own marks, by run.

quench marks the moments of its start and of its end at debug level under
the `quench::startup` target (`QUENCH_LOG=quench::startup=debug`), in
microseconds since `main` began: the command line parsed, the runbook
loaded, the incident's directory written, each request sent and each answer
read, the incident's end journaled, the final document begun and written,
the exit. This runs the 8-step benchmark runbook N times per latency against
the fake API (bench/fake_api.py) and prints, for each mark, the median (min,
max) of its first occurrence and, for a mark made once per step, of its last.
The spans between them say where the time goes; for instance "the final
document begins" to "the document is written" is what the final rewrite
costs the exit.

compare.py measures from outside (spawn to exit); this measures from inside,
with the logging switched on (which costs a little): use it to find where
time goes, compare.py to measure how much there is.

Usage: python3 bench/marks.py [--quench PATH] [--runs 30] [--latencies 0,50]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True

from fake_api import FakeAPI  # noqa: E402

MARK = re.compile(r"quench::startup: (.*?) us=(\d+)")


def one_run(quench: str, url: str, store_root: str) -> list[tuple[str, int]]:
    """The marks of one run, in the order they were made. It runs in a
    directory of its own, as compare.py's do: a `templates/` or `quench.toml`
    in the caller's would change what it measures."""
    store = tempfile.mkdtemp(prefix="marks-", dir=store_root)
    try:
        # stderr goes to a file, not a pipe: a reader woken by every line
        # would compete with quench for the CPUs.
        err = Path(store) / ".stderr"
        with open(err, "wb") as f:
            p = subprocess.run(
                [quench, "run", str(HERE / "runbooks/http-8-steps.yaml"), "--var", f"api={url}",
                 "--store", os.path.join(store, "s"), "--yes"],
                stdout=subprocess.DEVNULL, stderr=f, cwd=store,
                env=dict(os.environ, QUENCH_LOG="quench::startup=debug"),
            )
        text = err.read_text(errors="replace")
        if p.returncode != 0:
            sys.exit(f"quench exited {p.returncode}:\n{text}")
        return [(m.group(1), int(m.group(2))) for m in MARK.finditer(text)]
    finally:
        shutil.rmtree(store, ignore_errors=True)


def cell(values: list[int]) -> str:
    return f"{statistics.median(values) / 1000:.2f} ({min(values) / 1000:.2f}–{max(values) / 1000:.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quench", default=str(HERE.parent / "target/release/quench"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--latencies", default="0,50")
    ap.add_argument("--store-root", default="/tmp")
    args = ap.parse_args()

    print(f"Marks of `{args.quench}`, ms since `main` began: median (min–max) of {args.runs} runs.\n")
    for lat in (float(x) for x in args.latencies.split(",")):
        first: dict[str, list[int]] = {}
        last: dict[str, list[int]] = {}
        order: list[str] = []
        with FakeAPI(lat) as api:
            one_run(args.quench, api.url, args.store_root)  # warm-up
            for i in range(args.runs):
                marks = one_run(args.quench, api.url, args.store_root)
                seen: dict[str, int] = {}
                for name, us in marks:
                    if name not in seen:
                        first.setdefault(name, []).append(us)
                        if name not in order:
                            order.append(name)
                    seen[name] = us
                for name, us in seen.items():
                    last.setdefault(name, []).append(us)
                print(f"  {lat:g} ms run {i + 1}/{args.runs}", file=sys.stderr)
        print(f"latency {lat:g} ms\n")
        print("| mark | first | last |")
        print("|---|---:|---:|")
        for name in order:
            repeated = len(last[name]) == len(first[name]) and last[name] != first[name]
            print(f"| {name} | {cell(first[name])} | {cell(last[name]) if repeated else ''} |")
        print()


if __name__ == "__main__":
    main()
