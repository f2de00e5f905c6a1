#!/usr/bin/env bash
# The test command: installs what is missing, starts this checkout's own redis-server and moto,
# checks formatting and lints, runs every test (unit, end-to-end, fault), the demo at its defaults,
# and stops the services.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source "$root/infra/prepare.sh"
trap '"$root/infra/services.sh" stop' EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build --workspace --bins (the deploy tests start the real bootstraps)"
cargo build --workspace --bins
echo "== cfn-lint template.yaml"
"$root/.venv/bin/cfn-lint" template.yaml
echo "== cargo test"
cargo test --workspace -- --test-threads "${FLASHSTOCK_TEST_THREADS:-4}"
echo "== the storefront contract again, every collection over 4 stock buckets and 2 cache shards on the Redis Cluster"
FLASHSTOCK_TEST_LAYOUT=sharded-cluster cargo test -p flashstock-e2e --test e2e -- \
  --test-threads "${FLASHSTOCK_TEST_THREADS:-4}" api_contract:: second_phase:: try_path:: persist_path::
echo "== the demo at its defaults (the README's first command; its second phase guards the main job)"
verdict=$(RUST_LOG=error "$root/target/debug/flashstock-demo" --no-progress | tail -n 1)
echo "$verdict"
case "$verdict" in
  *"retried 0 · drift 0") echo "demo ok" ;;
  *) echo "demo: expected 'retried 0 · drift 0' at the end of its verdict" >&2; exit 1 ;;
esac
echo "== bench smoke (infra/bench.sh --tiny)"
RUST_LOG=error cargo run --quiet -p flashstock-demo --bin flashstock-bench -- --tiny --runs 1 --out target/BENCHMARKS.tiny.md >/dev/null
echo "bench smoke ok"
