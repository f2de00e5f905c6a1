#!/usr/bin/env bash
# Before/after in one run: builds the benchmark at two revisions (each in a git worktree under
# target/compare/, release binaries kept per commit) and runs the named sections of each in turn,
# A B A B …, on the same services, so both sides see the same machine and the same noise.
#   infra/bench-compare.sh eb72764 0d7a583 --only scripts,amplification,footprint --rounds 3
# Every round's report is kept as target/compare/<round>-<side>-<commit>.md; the caller compares
# the tables (each already median | min | max over `--runs`). Other flags go to flashstock-bench.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
[ $# -ge 2 ] || { echo "usage: infra/bench-compare.sh REV_A REV_B [--rounds N] [flashstock-bench flags]" >&2; exit 2; }
rev_a=$(git rev-parse --short "$1^{commit}") || { echo "REV_A: no such commit: $1" >&2; exit 2; }
rev_b=$(git rev-parse --short "$2^{commit}") || { echo "REV_B: no such commit: $2" >&2; exit 2; }
shift 2
rounds=3
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) [[ "${2:-}" =~ ^[1-9][0-9]?$ ]] || { echo "--rounds: a number from 1 to 99, got '${2:-}'" >&2; exit 2; }
      rounds=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
source "$root/infra/prepare.sh"
out="$root/target/compare"
mkdir -p "$out"
build() { # one revision's release binaries, once per commit
  local rev=$1 tree="$out/tree-$1" bin="$out/bin-$1"
  [ -x "$bin/flashstock-bench" ] && return
  [ -d "$tree" ] || git worktree add --detach --force "$tree" "$rev" >/dev/null
  # The worktrees share one target dir (dependencies built once), but cargo may take another
  # worktree's build of the workspace's own crates as fresh: clean those first, every time.
  local members
  members=$(cd "$tree" && cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(" ".join("-p " + p["name"] for p in json.load(sys.stdin)["packages"]))')
  # shellcheck disable=SC2086
  (cd "$tree" && CARGO_TARGET_DIR="$root/target" cargo clean --quiet --release $members &&
    CARGO_TARGET_DIR="$root/target" cargo build --quiet --release --workspace --bins)
  mkdir -p "$bin"
  for f in "$root"/target/release/flashstock-*; do
    if [ -f "$f" ] && [ -x "$f" ]; then cp "$f" "$bin/"; fi
  done
}
build "$rev_a"
build "$rev_b"
for round in $(seq 1 "$rounds"); do
  for side in a b; do
    rev=$rev_a; [ $side = b ] && rev=$rev_b
    echo "round $round/$rounds: $side = $rev" >&2
    RUST_LOG="${RUST_LOG:-error}" "$out/bin-$rev/flashstock-bench" --bin-dir "$out/bin-$rev" \
      --out "$out/$round-$side-$rev.md" "${args[@]}"
  done
done
echo "reports: $out/*-{a-$rev_a,b-$rev_b}.md" >&2
