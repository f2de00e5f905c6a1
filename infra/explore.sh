#!/usr/bin/env bash
# The concurrency explorer: installs what is missing, starts this checkout's own redis-server and
# moto, plus one more moto DynamoDB per worker (moto serves DynamoDB one request at a time), and
# runs every pair of operations exhaustively and random schedules over the larger groups.
# Flags go to flashstock-explore (--random N, --seed S, --workers W, --only NAME,
# --replay 'NAME@HOW'); it ends with `explored N schedules (P pairs exhaustive, R random), V violations`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source "$root/infra/prepare.sh"
cargo build --quiet -p flashstock-explore

workers=2
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers="$2"; shift 2 ;;
    --workers=*) workers="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
endpoints=()
for ((w = 0; w < workers; w++)); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # One step at a time by construction: no conflicts to model, no latency to wait.
  FLASHSTOCK_DYNAMODB_CONFLICTS=0 "$root/.venv/bin/python" "$root/infra/moto_serial.py" 127.0.0.1 "$port" \
    >"$root/.local/explore-dynamo-$w.log" 2>&1 &
  pids+=($!)
  endpoints+=("http://127.0.0.1:$port")
done
for url in "${endpoints[@]}"; do
  for _ in $(seq 1 150); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url/moto-api/" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
RUST_LOG="${RUST_LOG:-off}" "$root/target/debug/flashstock-explore" --workers "$workers" \
  --dynamodb "$(IFS=,; echo "${endpoints[*]}")" ${args[@]+"${args[@]}"}
