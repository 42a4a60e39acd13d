#!/usr/bin/env python3
"""`git.scan_history` against `git log --all -S`, on one generated repository.

Makes a repository of --commits commits (default 20,000) with `git
fast-import`: each commit rewrites one line of one of 200 source files (a
few KB each), and the secret is added to `config/app.env` in one commit (a
quarter of the way) and removed in a later one (three quarters); a tag and a
second branch point into the history. It is packed as a server packs a
clone, `git repack -adf`: deltas computed anew, the newest version of a file
the base of the older ones. (`--reuse-deltas` keeps fast-import's deltas
instead, each version a delta on the one before it: see BENCHMARKS.md.)
Then, alternating run by run after one warm-up each:

- `git log --all -S<secret> --format=%H` (pickaxe: the commits that change
  how often the value occurs), the baseline;
- quench's scan with `encodings: false` (the raw value only: the same
  search as git's);
- quench's scan with every encoding (raw, URL-encoded, base64 at any
  alignment, JSON-escaped, hex: 25 forms).

quench runs `bench/runbooks/git-scan.yaml` (`quench run`, a fresh store each
time); its time is the whole process, start-up and documents included, and
the scan step alone is read from the journal. CPU is user + system of the
child. Prints a Markdown table; needs git and Python 3.9+.

    python3 bench/git_scan.py --quench target/release/quench --runs 5
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

SECRET = "ghp_BenchLeakedToken0123456789abcdefABCD"
FILES = 200


def git(repo, *args, **kw):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
    return subprocess.run(["git", "-C", repo, *args], check=True, env=env, **kw)


def make_repo(path, commits, reuse_deltas=False):
    """A repository of `commits` commits, the secret in one, gone in a later one."""
    git(path, "init", "-q", "-b", "main")
    added, removed = commits // 4, commits * 3 // 4
    lines = []
    out = lines.append
    base = 1_700_000_000
    # A few KB of text per file; each commit rewrites one line of one file.
    contents = [
        [f"// file {f} line {i}: {'x' * 40}\n" for i in range(60)] for f in range(FILES)
    ]
    for n in range(commits):
        f = n % FILES
        contents[f][n % 60] = f"// file {f} line {n % 60} changed in commit {n}\n"
        files = [(f"src/file{f:03}.rs", "".join(contents[f]))]
        if n == added:
            files.append(("config/app.env", f"PORT=8080\nGITHUB_TOKEN={SECRET}\n"))
        elif n == removed:
            files.append(("config/app.env", "PORT=8080\n"))
        message = f"commit {n}\n"
        when = f"{base + n * 60} +0000"
        out(f"commit refs/heads/main\nmark :{n + 1}\n")
        out(f"author Dana Dev <dana@example.com> {when}\n")
        out(f"committer Dana Dev <dana@example.com> {when}\n")
        out(f"data {len(message)}\n{message}")
        if n > 0:
            out(f"from :{n}\n")
        for name, text in files:
            data = text.encode()
            out(f"M 100644 inline {name}\ndata {len(data)}\n{text}\n")
        if n == commits // 2:
            out(f"reset refs/tags/v1\nfrom :{n + 1}\n\n")
    stream = "".join(lines).encode()
    git(path, "fast-import", "--quiet", input=stream)
    git(path, "repack", "-adq" if reuse_deltas else "-adfq")
    git(path, "branch", "-q", "release", f"main~{commits // 10}")
    return added, removed


def run_timed(argv, env=None):
    """Wall seconds and child CPU seconds of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{argv[0]} failed ({done.returncode}):\n{done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout.decode()


def git_log(repo):
    wall, cpu, out = run_timed(
        ["git", "-C", repo, "log", "--all", f"-S{SECRET}", "--format=%H"],
        env=dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null"),
    )
    return wall, cpu, None, len(out.split())


def quench(binary, runbook, repo, encodings, store_root):
    store = tempfile.mkdtemp(prefix="quench-git-bench-", dir=store_root)
    argv = [
        binary, "run", runbook, "--store", store, "--yes",
        "--var", f"repository={repo}", "--var", f"encodings={encodings}",
        "--secret", "leaked=env:QUENCH_BENCH_SECRET",
    ]
    env = dict(os.environ, QUENCH_BENCH_SECRET=SECRET)
    wall, cpu, _ = run_timed(argv, env=env)
    step, count = step_time(store)
    subprocess.run(["rm", "-rf", store], check=True)
    return wall, cpu, step, count


def step_time(store):
    """The scan step's time (started → succeeded) and its hit count, from the journal."""
    (incident,) = os.listdir(store)
    started = succeeded = None
    count = None
    with open(os.path.join(store, incident, "journal.jsonl")) as journal:
        for line in journal:
            record = json.loads(line)
            event = record.get("event")
            if record.get("step") != "scan":
                continue
            ts = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
            if event == "step_started":
                started = ts
            elif event == "step_succeeded":
                succeeded = ts
                count = record["outputs"]["count"]
            elif event in ("step_failed", "attempt_failed"):
                sys.exit(f"the scan failed: {record.get('error')}")
    return succeeded - started, count


def summary(values):
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quench", default=os.path.join(here, "..", "target", "release", "quench"))
    p.add_argument("--commits", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--store-root", default="/tmp")
    p.add_argument("--reuse-deltas", action="store_true",
                   help="keep fast-import's deltas (each version on the one before) rather than `repack -f`")
    p.add_argument("--repo", help="use this repository instead of making one")
    args = p.parse_args()
    runbook = os.path.join(here, "runbooks", "git-scan.yaml")

    tmp = None
    if args.repo:
        repo = args.repo
    else:
        tmp = tempfile.TemporaryDirectory(prefix="quench-git-bench-repo-", dir=args.store_root)
        repo = tmp.name
        t0 = time.perf_counter()
        added, removed = make_repo(repo, args.commits, args.reuse_deltas)
        print(f"made {args.commits} commits in {time.perf_counter() - t0:.1f}s "
              f"(the secret added in commit {added}, removed in {removed})", file=sys.stderr)
    size = subprocess.run(["du", "-sh", os.path.join(repo, ".git")], capture_output=True,
                          text=True).stdout.split()[0]

    tools = {
        "git log --all -S": lambda: git_log(repo),
        "quench, raw only (`encodings: false`)": lambda: quench(args.quench, runbook, repo, "false", args.store_root),
        "quench, every encoding": lambda: quench(args.quench, runbook, repo, "true", args.store_root),
    }
    results = {name: [] for name in tools}
    for name, run in tools.items():
        run()  # warm-up: the pack in the page cache
    for i in range(args.runs):
        for name, run in tools.items():
            results[name].append(run())
        print(f"run {i + 1}/{args.runs}", file=sys.stderr)

    load = os.getloadavg()[0]
    print(f"{args.commits} commits, .git {size}, {args.runs} runs each, alternating; "
          f"load average {load:.1f}; median (min–max) in seconds\n")
    print("| tool | wall | CPU (user + sys) | the scan step alone | found |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        walls = [r[0] for r in rows]
        cpus = [r[1] for r in rows]
        steps = [r[2] for r in rows if r[2] is not None]
        found = rows[0][3]
        step = summary(steps) if steps else "—"
        print(f"| {name} | {summary(walls)} | {summary(cpus)} | {step} | {found} |")
    base = statistics.median(r[0] for r in results["git log --all -S"])
    raw = statistics.median(r[0] for r in results["quench, raw only (`encodings: false`)"])
    full = statistics.median(r[0] for r in results["quench, every encoding"])
    print(f"\nquench raw only / git: {raw / base:.2f}× wall; every encoding / git: {full / base:.2f}×")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
