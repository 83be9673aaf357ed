#!/usr/bin/env bash
# Longer robustness runs: seeded fault scenarios against a three-member cluster of the
# real binary (built with failpoints), each history checked for linearizability, watch
# guarantees and the end state (crates/robustness, docs/robustness.md).
#
#   scripts/robustness.sh [--duration SECS] [--faults kill,pause,failpoint] [--seed N]
#                         [--runs N] [--scenario-secs SECS] [--members N] [--out DIR]
#                         [--release]
#
# Prints one line per history and, at the end, `N histories, M anomalies`; exits 1 if
# any anomaly was found. A history with an anomaly is kept under --out (default
# robustness-runs/) with history.json, the member logs, the seed, the faults and
# replay.txt (the command that runs it again, and the one that checks the history again).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
cargo_profile=()
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release; cargo_profile=(--release); shift ;;
    --duration|--faults|--seed|--runs|--scenario-secs|--members|--out)
      [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
      args+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

cargo build "${cargo_profile[@]}" -p oxetcd -p oxetcd-robustness --features oxetcd/failpoints
target="${CARGO_TARGET_DIR:-target}/$profile"
exec "$target/oxetcd-robustness" run --oxetcd "$target/oxetcd" "${args[@]}"
