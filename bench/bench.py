#!/usr/bin/env python3
"""quench benchmark: process start to first request, and engine overhead on an
8-step `http.request` chain, against a local fake API with a fixed latency.

For each latency and each run:
  t0     = time.time_ns() right before Popen([quench, "run", ...])
  t_end  = time.time_ns() right after quench exited (exit 0 required)
  total                   = t_end - t0
  start_to_first_request  = first request's arrival at the API - t0
  overhead                = total - 8 × latency   (the runbook is one chain of 8)

The overhead is split exactly (per run) into
  start_to_first_request + engine gaps + server excess + tail
where
  engine gaps    = Σ over the 7 hand-offs of (arrival of request i+1 - response i written)
  server excess  = Σ over the 8 requests of (server time from arrival to response written - latency)
  tail           = t_end - last response written (last journal events, document, exit)
"server excess" is the fake API's own cost; it counts against quench's overhead.

Usage: bench/run.sh [--runs N] [--latencies 0,50] [--quench PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # no bench/__pycache__ from importing fake_api

from fake_api import FakeAPI  # noqa: E402

STEPS = 8  # requests on the critical path of the runbook (one sequential chain)
MS = 1_000_000  # ns per ms

# (key, label) in table order.
METRICS = [
    ("total", "total wall time"),
    ("overhead", "overhead (total - 8 x latency)"),
    ("start_to_first_request", "start to first request"),
    ("engine_gaps", "engine gaps (7 hand-offs, summed)"),
    ("tail", "tail (last response to exit)"),
    ("server_excess", "fake API's own time (8 requests, summed)"),
]


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(len(os.sched_getaffinity(0)))
    try:
        uname = subprocess.run(["uname", "-srm"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        uname = f"{platform.system()} {platform.release()} {platform.machine()}"
    return {
        "nproc": nproc,
        "uname": uname,
        "cpu": cpu,
        "python": platform.python_version(),
    }


def filesystem_of(path: Path) -> str:
    """The mount (and its type) holding `path`: the journal is fdatasync'ed there."""
    best = ("", "?", "?")
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            dev, mnt, fstype, *_ = line.split()
            mnt = mnt.replace("\\040", " ")
            p = str(path.resolve())
            if (p == mnt or p.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[0]):
                best = (mnt, fstype, dev)
    except OSError:
        pass
    return f"{path} on {best[0]} ({best[1]}, {best[2]})"


def source_state() -> str:
    """The commit the binary is (presumably) built from, and whether the sources differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout?)"
    return f"{head} + uncommitted changes to src/Cargo.*" if dirty else head


def quench_version(quench: str) -> str:
    r = subprocess.run([quench, "--version"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"`{quench} --version` failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout.strip()


def version_startup(quench: str, runs: int) -> list[int]:
    """Wall time of `quench --version`: process spawn + startup + exit, no work."""
    out = []
    for _ in range(runs):
        t0 = time.time_ns()
        p = subprocess.Popen([quench, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.wait()
        out.append(time.time_ns() - t0)
    return out


def one_run(quench: str, runbook: Path, api: FakeAPI, latency_ms: float, store_root: str = "/tmp") -> dict:
    # A fresh store per run: incident ids have 1 s resolution + 16 random bits.
    store = tempfile.mkdtemp(prefix="quench-bench-", dir=store_root)
    try:
        api.take()  # drop anything left over
        cmd = [quench, "run", str(runbook), "--var", f"api={api.url}", "--store", store, "--yes"]
        t0 = time.time_ns()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = p.communicate()
        t_end = time.time_ns()
        if p.returncode != 0:
            sys.stderr.write(err.decode(errors="replace"))
            sys.exit(f"quench exited {p.returncode}: {' '.join(cmd)}")
        # The last response is written before quench can exit, but its record
        # is appended just after: give the server thread a moment.
        reqs = api.take()
        for _ in range(100):
            if len(reqs) >= STEPS:
                break
            time.sleep(0.001)
            reqs += api.take()
        reqs.sort(key=lambda r: r.arrival_ns)
    finally:
        shutil.rmtree(store, ignore_errors=True)

    if len(reqs) != STEPS:
        sys.exit(f"expected {STEPS} requests at the API, saw {len(reqs)}: {[(r.method, r.path) for r in reqs]}")
    bad = [r for r in reqs if r.status >= 400]
    if bad:
        sys.exit(f"the fake API answered errors: {[(r.method, r.path, r.status) for r in bad]}")

    lat_ns = int(round(latency_ms * MS))
    total = t_end - t0
    gaps = [reqs[i + 1].arrival_ns - reqs[i].done_ns for i in range(STEPS - 1)]
    excess = [r.handling_ns - lat_ns for r in reqs]
    m = {
        "total": total,
        "overhead": total - STEPS * lat_ns,
        "start_to_first_request": reqs[0].arrival_ns - t0,
        "engine_gaps": sum(gaps),
        "tail": t_end - reqs[-1].done_ns,
        "server_excess": sum(excess),
    }
    return {
        "t0_ns": t0,
        "t_end_ns": t_end,
        "metrics_ns": m,
        "gaps_ns": gaps,
        "server_excess_ns": excess,
        "connections": len({r.connection for r in reqs}),
        "requests": [
            {
                "method": r.method,
                "path": r.path,
                "status": r.status,
                "arrival_ns": r.arrival_ns,
                "done_ns": r.done_ns,
                "handling_ns": r.handling_ns,
                "connection": r.connection,
            }
            for r in reqs
        ],
    }


def fmt_ms(ns: float) -> str:
    return f"{ns / MS:.2f}"


def summary(values: list[int]) -> tuple[float, int, int]:
    return statistics.median(values), min(values), max(values)


def main() -> None:
    ap = argparse.ArgumentParser(description="quench start-up and engine-overhead benchmark")
    ap.add_argument("--runs", type=int, default=20, help="measured runs per latency (default 20)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured runs first, per latency (default 1)")
    ap.add_argument("--latencies", default="0,50", help="comma-separated fake API latencies in ms (default 0,50)")
    ap.add_argument("--quench", default=str(REPO / "target/release/quench"), help="the quench binary")
    ap.add_argument("--runbook", default=str(HERE / "runbooks/http-8-steps.yaml"))
    ap.add_argument("--results", default=str(HERE / "results"), help="where the raw JSON goes")
    ap.add_argument(
        "--store-root",
        default="/tmp",
        help="where each run's --store tmpdir is made (default /tmp); the journal is fdatasync'ed there",
    )
    args = ap.parse_args()

    if args.runs < 1:
        sys.exit("--runs must be at least 1")
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    quench = str(Path(args.quench).resolve())
    if not os.access(quench, os.X_OK):
        sys.exit(f"no executable quench at {quench} (run `cargo build --release`)")
    runbook = Path(args.runbook).resolve()

    host = machine()
    host["store_fs"] = filesystem_of(Path(args.store_root))
    version = quench_version(quench)
    source = source_state()
    if Path(quench) != (REPO / "target/release/quench").resolve():
        source = f"unknown: binary given with --quench (working tree: {source})"
    load_before = os.getloadavg()
    print(f"# quench benchmark: {version}", file=sys.stderr)

    started = dt.datetime.now(dt.timezone.utc)
    runs_by_latency: dict[str, list[dict]] = {}
    for lat in latencies:
        with FakeAPI(lat) as api:
            for i in range(args.warmup):
                one_run(quench, runbook, api, lat, args.store_root)
            runs = []
            for i in range(args.runs):
                runs.append(one_run(quench, runbook, api, lat, args.store_root))
                print(
                    f"  latency {lat:g} ms run {i + 1}/{args.runs}: "
                    f"total {fmt_ms(runs[-1]['metrics_ns']['total'])} ms, "
                    f"overhead {fmt_ms(runs[-1]['metrics_ns']['overhead'])} ms",
                    file=sys.stderr,
                )
        runs_by_latency[f"{lat:g}"] = runs
    version_ns = version_startup(quench, args.runs)
    load_after = os.getloadavg()

    # The table.
    lines = [
        f"quench benchmark: `{version}`, {args.runs} runs per latency (+{args.warmup} warm-up), "
        f"runbook `{runbook.relative_to(REPO) if runbook.is_relative_to(REPO) else runbook}` "
        f"({STEPS} sequential http.request steps)",
        "",
        f"Machine: {host['nproc']} CPUs (nproc), {host['uname']}, {host['cpu']}; "
        f"Python {host['python']}; journal store: {host['store_fs']}",
        "",
        f"Source: {source}. Load average (1 min) before/after: {load_before[0]:.2f}/{load_after[0]:.2f} "
        "(anything else busy on the machine shows up as noise here).",
        "",
        "| metric | latency (ms) | median (ms) | min (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in METRICS:
        for lat, runs in runs_by_latency.items():
            med, lo, hi = summary([r["metrics_ns"][key] for r in runs])
            lines.append(f"| {label} | {lat} | {fmt_ms(med)} | {fmt_ms(lo)} | {fmt_ms(hi)} |")
    for lat, runs in runs_by_latency.items():
        med, lo, hi = summary([g for r in runs for g in r["gaps_ns"]])
        lines.append(f"| one engine gap (each of 7 x runs) | {lat} | {fmt_ms(med)} | {fmt_ms(lo)} | {fmt_ms(hi)} |")
    med, lo, hi = summary(version_ns)
    lines.append(f"| `quench --version` wall time | - | {fmt_ms(med)} | {fmt_ms(lo)} | {fmt_ms(hi)} |")
    lines += [
        "",
        "overhead = start to first request + engine gaps + fake API's own time + tail, exactly, per run "
        "(medians need not add up).",
    ]
    table = "\n".join(lines)
    print(table)

    # The raw numbers.
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = results / f"{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "started_at": started.isoformat(),
                "quench": {"path": quench, "version": version, "source": source},
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "machine": host,
                "config": {
                    "runs": args.runs,
                    "warmup": args.warmup,
                    "latencies_ms": latencies,
                    "runbook": str(runbook),
                    "store_root": args.store_root,
                    "steps_on_critical_path": STEPS,
                    "clock": "time.time_ns (CLOCK_REALTIME); handling_ns from time.perf_counter_ns",
                },
                "version_wall_ns": version_ns,
                "runs": runs_by_latency,
                "table_markdown": table,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\nraw numbers: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")


if __name__ == "__main__":
    main()
