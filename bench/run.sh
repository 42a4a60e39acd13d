#!/usr/bin/env bash
# Build quench (release) and run the benchmark. Arguments go to bench.py:
#   bench/run.sh --runs 20 --latencies 0,50
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
exec python3 bench/bench.py "$@"
