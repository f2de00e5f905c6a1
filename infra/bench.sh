#!/usr/bin/env bash
# The bench command: installs what is missing, starts the local services, builds what the
# benchmarks run (release binaries, and the Lambda bootstraps for arm64 and x86_64 for their sizes),
# runs every benchmark and writes BENCHMARKS.md with its plots next to it.
#   infra/bench.sh                      everything, full size (~25 min here, plus ~12 min for the
#                                       two cargo-lambda builds)
#   infra/bench.sh --only flash-sale    one section (scripts, amplification, footprint, flash-sale,
#                                       reconcile, history; `hot` only when named: it runs against
#                                       a DynamoDB with transaction conflicts this script starts);
#                                       other flags: see `flashstock-bench --help`
#   infra/bench.sh --tiny               seconds-long sizes (CI); writes target/BENCHMARKS.tiny.md
# FLASHSTOCK_BENCH_SKIP_LAMBDA_BUILD=1 skips the two cargo-lambda builds (sizes from the last ones).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source "$root/infra/prepare.sh"
args=("$@")
# Section `hot` (only when asked for) runs against a DynamoDB with transaction conflicts.
if [[ " $* " == *" --only "* && " $* " == *"hot"* ]]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  FLASHSTOCK_DYNAMODB_CONFLICTS=1 "$root/.venv/bin/python" "$root/infra/moto_serial.py" 127.0.0.1 "$port" \
    >"$root/.local/conflict-dynamo.log" 2>&1 &
  conflict_pid=$!
  trap 'kill "$conflict_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 150); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
      "http://127.0.0.1:$port/flashstock/conflicts" >/dev/null 2>&1 && break
    sleep 0.1
  done
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
fi
if [[ " $* " == *" --tiny "* ]]; then
  [[ " $* " == *" --out "* ]] || args+=(--out "$root/target/BENCHMARKS.tiny.md")
  cargo build --quiet --workspace --bins
  RUST_LOG="${RUST_LOG:-error}" "$root/target/debug/flashstock-bench" "${args[@]}"
  exit
fi
cargo build --quiet --release --workspace --bins
if [[ " $* " != *" --only "* || " $* " == *"footprint"* ]] && [ -z "${FLASHSTOCK_BENCH_SKIP_LAMBDA_BUILD:-}" ]; then
  "$root/infra/build-lambdas.sh"
  "$root/infra/build-lambdas.sh" --x86-64
fi
RUST_LOG="${RUST_LOG:-error}" "$root/target/release/flashstock-bench" "${args[@]}"
