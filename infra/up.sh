#!/usr/bin/env bash
# Starts the local stack and leaves it serving on 127.0.0.1:${FLASHSTOCK_HTTP_PORT:-3000} until
# Ctrl-C; the services (redis-server, moto) keep running afterwards: `infra/services.sh stop`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source "$root/infra/prepare.sh"
cargo build --quiet --release -p flashstock-local
exec "$root/target/release/flashstock-local" serve "$@"
