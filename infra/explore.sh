#!/usr/bin/env bash
# The concurrency explorer: installs what is missing, starts this checkout's own redis-server and
# moto, and runs every pair of operations exhaustively plus random schedules over the larger
# groups (flags go to flashstock-explore: --random N, --seed S, --workers W, --only NAME,
# --replay 'NAME@HOW'). Ends with `explored N schedules (P pairs exhaustive, R random), V violations`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source "$root/infra/prepare.sh"
cargo build --quiet -p flashstock-explore
RUST_LOG="${RUST_LOG:-off}" exec "$root/target/debug/flashstock-explore" "$@"
