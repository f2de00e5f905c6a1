#!/usr/bin/env bash
# The bench command: installs what is missing, starts the local services, builds what the
# benchmarks run (release binaries, and the Lambda bootstraps for arm64 and x86_64 for their sizes),
# runs every benchmark and writes BENCHMARKS.md with its plots next to it.
#   infra/bench.sh                      everything, full size (~25 min here, plus ~12 min for the
#                                       two cargo-lambda builds)
#   infra/bench.sh --only flash-sale    one section (scripts, amplification, footprint, flash-sale,
#                                       reconcile, history); other flags: see `flashstock-bench --help`
#   infra/bench.sh --tiny               seconds-long sizes (CI); writes target/BENCHMARKS.tiny.md
# FLASHSTOCK_BENCH_SKIP_LAMBDA_BUILD=1 skips the two cargo-lambda builds (sizes from the last ones).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source "$root/infra/prepare.sh"
args=("$@")
if [[ " $* " == *" --tiny "* ]]; then
  [[ " $* " == *" --out "* ]] || args+=(--out "$root/target/BENCHMARKS.tiny.md")
  cargo build --quiet --workspace --bins
  RUST_LOG="${RUST_LOG:-error}" exec "$root/target/debug/flashstock-bench" "${args[@]}"
fi
cargo build --quiet --release --workspace --bins
if [[ " $* " != *" --only "* || " $* " == *"footprint"* ]] && [ -z "${FLASHSTOCK_BENCH_SKIP_LAMBDA_BUILD:-}" ]; then
  "$root/infra/build-lambdas.sh"
  "$root/infra/build-lambdas.sh" --x86-64
fi
RUST_LOG="${RUST_LOG:-error}" exec "$root/target/release/flashstock-bench" "${args[@]}"
