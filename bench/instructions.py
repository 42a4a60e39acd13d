#!/usr/bin/env python3
"""Instructions one 8-step run executes, counted by valgrind's callgrind: the
same count every time, where this VM's wall times move by 10-20% from one
minute to the next. Each binary runs bench/runbooks/http-8-steps.yaml once
(after one run to warm the page cache) against the fake API at 0 ms latency,
from a scratch directory (a `./templates` directory, such as the
repository's, would be loaded as a team's templates and compiled at run
time).

Usage: python3 bench/instructions.py [--quench PATH] [--also NAME=PATH ...]
Needs valgrind.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True

from fake_api import FakeAPI  # noqa: E402


def count(binary: str, url: str) -> dict[str, int]:
    """Instructions in all, and on the main thread (callgrind's thread 1)."""
    work = tempfile.mkdtemp(prefix="quench-instructions-")
    try:
        cmd = [binary, "run", str(HERE / "runbooks/http-8-steps.yaml"), "--var", f"api={url}", "--store", "store", "--yes"]
        subprocess.run(cmd, cwd=work, check=True, stdout=subprocess.DEVNULL)
        out = Path(work) / "cg.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}", *cmd],
            cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        per_thread = {}
        for f in Path(work).glob("cg.out*"):
            m = re.search(r"^summary: (\d+)", f.read_text(errors="replace"), re.M)
            t = re.search(r"-(\d+)$", f.name)
            if m and t:
                per_thread[int(t.group(1))] = int(m.group(1))
        return {"total": sum(per_thread.values()), "main": per_thread.get(1, 0)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description="instructions of one 8-step run, by callgrind")
    ap.add_argument("--quench", default=str(REPO / "target/release/quench"))
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PATH")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("needs valgrind")
    binaries = [("quench", str(Path(args.quench).resolve()))]
    for extra in args.also:
        name, path = extra.split("=", 1)
        binaries.append((name, str(Path(path).resolve())))
    print("| binary | instructions, all threads | main thread |")
    print("|---|---:|---:|")
    with FakeAPI(0) as api:
        for name, binary in binaries:
            c = count(binary, api.url)
            print(f"| {name} | {c['total'] / 1e6:.1f} M | {c['main'] / 1e6:.1f} M |")


if __name__ == "__main__":
    main()
