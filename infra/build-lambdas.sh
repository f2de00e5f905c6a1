#!/usr/bin/env bash
# Builds every function's bootstrap for AWS Lambda (provided.al2023) with cargo-lambda + zig from
# the project venv: arm64 by default, `--x86-64` for x86_64.
# Output: target/deploy/lambda/<binary>/bootstrap. `sam build` does the same through the template's rust-cargolambda build method.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/infra/setup.sh" >/dev/null
if [ ! -x "$root/.venv/bin/cargo-lambda" ]; then
  "$root/.venv/bin/pip" install -q --disable-pip-version-check cargo-lambda ziglang
fi
export PATH="$root/.venv/bin:$PATH"
# A target dir of its own, so a deployment build never waits on (or invalidates) the dev build.
export CARGO_TARGET_DIR="$root/target/deploy"
arch=--arm64 triple=aarch64-unknown-linux-gnu
[ "${1:-}" = "--x86-64" ] && arch=--x86-64 triple=x86_64-unknown-linux-gnu
rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
cargo lambda build --release "$arch" \
  --bin flashstock-api --bin flashstock-persist --bin flashstock-cancel --bin flashstock-reconcile
# Sizes per arch for the benchmarks (both arches build into the same lambda/ directory).
arch_name=arm64; [ "$triple" = x86_64-unknown-linux-gnu ] && arch_name=x86_64
for b in flashstock-api flashstock-persist flashstock-cancel flashstock-reconcile; do
  printf '%s %s\n' "$b" "$(stat -c %s "$CARGO_TARGET_DIR/lambda/$b/bootstrap")"
done | tee "$CARGO_TARGET_DIR/bootstrap-sizes-$arch_name.txt"
