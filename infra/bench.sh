#!/usr/bin/env bash
# The bench command: installs what is missing, starts the local services, runs every benchmark
# (release build) and writes BENCHMARKS.md. `--tiny` runs seconds-long sizes (CI) and writes to
# target/BENCHMARKS.tiny.md unless --out is given.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source "$root/infra/prepare.sh"
profile=release
args=("$@")
if [[ " $* " == *" --tiny "* ]]; then
  profile=debug
  [[ " $* " == *" --out "* ]] || args+=(--out "$root/target/BENCHMARKS.tiny.md")
fi
if [ "$profile" = release ]; then cargo build --quiet --release -p flashstock-local; else cargo build --quiet -p flashstock-local; fi
RUST_LOG="${RUST_LOG:-error}" "$root/target/$profile/flashstock-bench" "${args[@]}"
