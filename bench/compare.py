#!/usr/bin/env python3
"""quench against its baselines: the same 8-step key-compromise response run
three ways, alternating in one run, against one local fake API per latency:

  quench   bench/runbooks/http-8-steps.yaml (8 `http.request` steps)
  curl     bench/baselines/curl-8-steps.sh (bash, one curl per request)
  ansible  bench/baselines/ansible-8-steps.yaml (ansible-core, `uri` module),
           ansible-core installed from PyPI into bench/.venv by this script
  floor    bench/baselines/floor.c: the same 8 requests from a C program that
           does nothing else (one connection, no parsing, no journal): what
           the harness, the process start and the round trips cost any tool
  floor-durable  the same program keeping the least durable journal: a line
           written and fdatasync'ed before each request and after the last
           answer, as quench's journal promises (--tools ...,floor-durable)
  quench-postgres  quench with its store in PostgreSQL (`--store postgres://`):
           every journal flush a fenced commit, the lease taken and renewed.
           `--postgres URL` names the database (its password in PGPASSWORD),
           or `--postgres auto` starts a throwaway one from Debian's
           `postgresql` package on a free port, as the tests do
           (--tools quench,quench-postgres)

For each: total time, overhead (total - 8 x latency), start to first request,
the gap between steps (response i written -> request i+1 arrives), tail, and
peak RSS (ru_maxrss of the child, through the tiny wrapper baselines/rusage.c:
the largest single process of its tree, since the kernel folds in the children
it reaped) and CPU time (user + system, with the children it waited for);
medians, min, max.

Usage: python3 bench/compare.py [--quench PATH] [--runs 10] [--latencies 0,50]
       python3 bench/compare.py --tools quench,quench-postgres --postgres auto
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
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
sys.dont_write_bytecode = True

from bench import filesystem_of, machine, quench_version, source_state  # noqa: E402
from fake_api import FakeAPI  # noqa: E402

STEPS = 8
MS = 1_000_000
VENV = HERE / ".venv"
RUSAGE = ""  # the peak-RSS wrapper, see rusage_helper()
BINARIES: dict[str, str] = {}  # extra quench binaries by column name (--also)
POSTGRES = ""  # the store URL of the quench-postgres column (--postgres)


def ensure_ansible() -> Path:
    exe = VENV / "bin" / "ansible-playbook"
    if not exe.exists():
        print("installing ansible-core into bench/.venv ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin/pip"), "install", "--quiet", "--disable-pip-version-check", "ansible-core"], check=True
        )
    return exe


def built(name: str) -> str:
    """bench/baselines/NAME.c, built once into bench/.venv (see its header)."""
    exe = VENV / name
    src = HERE / f"baselines/{name}.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        VENV.mkdir(exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return str(exe)


def rusage_helper() -> str:
    """The peak-RSS wrapper, bench/baselines/rusage.c."""
    return built("rusage")


def commands(tool: str, quench: str, ansible: Path, url: str, store: str) -> tuple[list[str], dict]:
    env = dict(os.environ)
    if tool == "quench-postgres":
        return [quench, "--store", POSTGRES, "run", str(HERE / "runbooks/http-8-steps.yaml"), "--var", f"api={url}", "--yes"], env
    if tool.startswith("quench"):
        return [BINARIES.get(tool, quench), "run", str(HERE / "runbooks/http-8-steps.yaml"), "--var", f"api={url}", "--store", store, "--yes"], env
    if tool == "floor":
        return [built("floor"), url], env
    if tool == "floor-durable":
        return [built("floor"), url, store], env
    if tool == "curl":
        return [str(HERE / "baselines/curl-8-steps.sh"), url], env
    env.update(
        ANSIBLE_HOME=store,
        ANSIBLE_LOCAL_TEMP=store,
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_PYTHON_INTERPRETER=str(VENV / "bin/python"),
        ANSIBLE_NOCOLOR="1",
    )
    return [str(ansible), "-i", "localhost,", "-c", "local", str(HERE / "baselines/ansible-8-steps.yaml"), "-e", f"api={url}"], env


def throwaway_postgres(root: str) -> tuple[str, callable]:
    """A PostgreSQL of its own under `root`: initdb (as the `postgres` user
    when run as root, which initdb refuses), pg_ctl on a free loopback port.
    Its URL (the password set in PGPASSWORD) and how to stop it."""
    import socket

    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        sys.exit("--postgres auto needs Debian's `postgresql` package")
    bin_dir = bins[-1].parent
    data = tempfile.mkdtemp(prefix="bench-pg-", dir=root)
    as_root = os.geteuid() == 0
    pw = os.path.join(data, "pw")
    password = "bench-" + os.urandom(8).hex()
    Path(pw).write_text(password)
    if as_root:
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(pw, "postgres", "postgres")

    def tool(name: str, *args: str) -> None:
        cmd = [str(bin_dir / name), *args]
        if as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PGPASSWORD": password})

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = os.path.join(data, "data")
    tool("initdb", "-D", db, "-U", "quench", "--auth=scram-sha-256", f"--pwfile={pw}", "-E", "UTF8")
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    tool("pg_ctl", "-D", db, "-l", os.path.join(data, "log"), "-o", opts, "-w", "start")
    tool("psql", "-h", "127.0.0.1", "-p", str(port), "-U", "quench", "-d", "postgres", "-c", "CREATE DATABASE quench")
    os.environ["PGPASSWORD"] = password

    def stop() -> None:
        tool("pg_ctl", "-D", db, "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)

    return f"postgres://quench@127.0.0.1:{port}/quench", stop


def one_run(tool: str, quench: str, ansible: Path, api: FakeAPI, latency_ms: float, store_root: str) -> dict:
    store = tempfile.mkdtemp(prefix=f"bench-{tool}-", dir=store_root)
    try:
        api.take()
        cmd, env = commands(tool, quench, ansible, api.url, store)
        rss_file = os.path.join(store, ".peak-rss")
        t0 = time.time_ns()
        p = subprocess.Popen(
            [RUSAGE, rss_file, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=store
        )
        p.wait()
        t_end = time.time_ns()
        peak_rss_kb, user_us, system_us = (int(x) for x in Path(rss_file).read_text().split())
        if p.returncode != 0:
            sys.exit(f"{tool} exited {p.returncode}: {' '.join(cmd)}")
        reqs = api.take()
        for _ in range(100):
            if len(reqs) >= STEPS:
                break
            time.sleep(0.001)
            reqs += api.take()
        reqs.sort(key=lambda r: r.arrival_ns)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    if len(reqs) != STEPS or any(r.status >= 400 for r in reqs):
        sys.exit(f"{tool}: expected {STEPS} good requests, saw {[(r.method, r.path, r.status) for r in reqs]}")
    lat = int(round(latency_ms * MS))
    gaps = [reqs[i + 1].arrival_ns - reqs[i].done_ns for i in range(STEPS - 1)]
    total = t_end - t0
    return {
        "total": total,
        "overhead": total - STEPS * lat,
        "start_to_first_request": reqs[0].arrival_ns - t0,
        "gap": statistics.median(gaps),
        "tail": t_end - reqs[-1].done_ns,
        "server_excess": sum(r.handling_ns - lat for r in reqs),
        # What is left when the fake API's own time (beyond its latency) is
        # taken out too: the tool's own share of the critical path.
        "own": total - STEPS * lat - sum(r.handling_ns - lat for r in reqs),
        "peak_rss_kb": peak_rss_kb,
        # CPU time, the tool's own threads and children: steadier on a busy
        # or noisy machine than the wall times above.
        "cpu": (user_us + system_us) * 1000,
        "gaps": gaps,
        "requests": [[r.method, r.path, r.arrival_ns, r.done_ns] for r in reqs],
    }


ROWS = [
    ("total", "total (ms)"),
    ("overhead", "overhead = total - 8 x latency (ms)"),
    ("server_excess", "of which the fake API's own time (ms)"),
    ("own", "own overhead = overhead - the API's own time (ms)"),
    ("start_to_first_request", "start to first request (ms)"),
    ("gap", "gap between steps, median of 7 (ms)"),
    ("tail", "tail: last response to exit (ms)"),
    ("cpu", "CPU time, user + system (ms)"),
    ("peak_rss_kb", "peak RSS (MB)"),
]


def cell(values: list[float], key: str) -> str:
    scale = 1024 if key == "peak_rss_kb" else MS
    med, lo, hi = statistics.median(values) / scale, min(values) / scale, max(values) / scale
    digits = 1 if key == "peak_rss_kb" or med >= 100 else 2
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def main() -> None:
    ap = argparse.ArgumentParser(description="quench vs curl script vs Ansible, alternating")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--latencies", default="0,50")
    ap.add_argument("--tools", default="quench,floor,curl,ansible")
    ap.add_argument("--quench", default=str(REPO / "target/release/quench"))
    ap.add_argument(
        "--also", action="append", default=[], metavar="NAME=PATH",
        help="another quench binary as a column of its own, e.g. quench-before=/path/quench",
    )
    ap.add_argument("--store-root", default="/tmp")
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--postgres", default="", help="the quench-postgres column's store URL, or `auto`")
    args = ap.parse_args()
    tools = args.tools.split(",")
    global RUSAGE, POSTGRES
    RUSAGE = rusage_helper()
    stop_postgres = None
    if "quench-postgres" in tools:
        if not args.postgres:
            sys.exit("the quench-postgres column needs --postgres URL (or --postgres auto)")
        POSTGRES = args.postgres
        if POSTGRES == "auto":
            POSTGRES, stop_postgres = throwaway_postgres(args.store_root)
    try:
        run_all(args, tools)
    finally:
        if stop_postgres:
            stop_postgres()


def run_all(args: argparse.Namespace, tools: list[str]) -> None:
    for extra in args.also:
        name, path = extra.split("=", 1)
        BINARIES[name] = str(Path(path).resolve())
        tools.insert(1, name)
    quench = str(Path(args.quench).resolve())
    ansible = ensure_ansible() if "ansible" in tools else Path("/nonexistent")
    latencies = [float(x) for x in args.latencies.split(",")]
    host = machine()
    load_before = os.getloadavg()
    started = dt.datetime.now(dt.timezone.utc)
    results: dict[str, dict[str, list[dict]]] = {}
    for lat in latencies:
        per_tool: dict[str, list[dict]] = {t: [] for t in tools}
        with FakeAPI(lat) as api:
            for _ in range(args.warmup):
                for t in tools:
                    one_run(t, quench, ansible, api, lat, args.store_root)
            for i in range(args.runs):
                # Alternate, and rotate who goes first, so drift hits all alike.
                order = tools[i % len(tools):] + tools[: i % len(tools)]
                for t in order:
                    r = one_run(t, quench, ansible, api, lat, args.store_root)
                    per_tool[t].append(r)
                    print(f"  {lat:g} ms run {i + 1}/{args.runs} {t}: total {r['total'] / MS:.1f} ms", file=sys.stderr)
        results[f"{lat:g}"] = per_tool
    load_after = os.getloadavg()

    lines = [
        f"8-step key-compromise response, {len(tools)} ways, alternating; {args.runs} runs each per latency "
        f"(+{args.warmup} warm-up); median (min–max).",
        "",
        f"Machine: {host['nproc']} CPUs, {host['cpu']}, {host['uname']}; journal store "
        f"{filesystem_of(Path(args.store_root))}{'; quench-postgres: PostgreSQL on loopback' if POSTGRES else ''}; load average (1 min) before/after {load_before[0]:.2f}/{load_after[0]:.2f}.",
        f"quench: `{quench_version(quench) if 'quench' in tools else '-'}` ({source_state()}).",
        "",
        "| metric | latency | " + " | ".join(tools) + " |",
        "|---|---:|" + "---:|" * len(tools),
    ]
    for key, label in ROWS:
        for lat, per_tool in results.items():
            lines.append(
                f"| {label} | {lat} ms | " + " | ".join(cell([r[key] for r in per_tool[t]], key) for t in tools) + " |"
            )
    table = "\n".join(lines)
    print(table)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    f = out / f"compare-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    f.write_text(json.dumps({"machine": host, "load": [load_before, load_after], "results": results, "table": table}))
    print(f"\nraw numbers: {f}", file=sys.stderr)


if __name__ == "__main__":
    main()
