#!/usr/bin/env bash
# The demo command: installs what is missing, starts the local services, and runs a flash sale
# (2,000 buyers for 200 units by default; pass flashstock-demo options through, e.g.
# `infra/demo.sh --buyers 20000 --units 2000`). Its last line shows the drift, which must be 0.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source "$root/infra/prepare.sh"
trap '"$root/infra/services.sh" stop' EXIT
cargo build --quiet -p flashstock-demo
RUST_LOG="${RUST_LOG:-warn}" "$root/target/debug/flashstock-demo" "$@"
