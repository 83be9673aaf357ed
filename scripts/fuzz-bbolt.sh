#!/usr/bin/env bash
# Fuzzes the bbolt reader (crates/bbolt/fuzz, target bbolt_read) with cargo-fuzz on the
# nightly toolchain, starting from a real etcd 3.4.23 backend (crates/bbolt/fuzz/seeds).
# Findings land in crates/bbolt/fuzz/artifacts/ with the command to replay them.
#
#   scripts/fuzz-bbolt.sh              # 5 minutes
#   SECONDS_TO_RUN=3600 scripts/fuzz-bbolt.sh
#
# Needs `rustup toolchain install nightly` and `cargo install cargo-fuzz`; fails loudly
# without them. Not part of .ci/run (the proptest corruption tests in
# crates/bbolt/tests/corrupt.rs run there).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_TO_RUN=${SECONDS_TO_RUN:-300}
command -v cargo-fuzz >/dev/null || { echo "fuzz-bbolt: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }
rustup toolchain list | grep -q '^nightly' || { echo "fuzz-bbolt: the nightly toolchain is missing: rustup toolchain install nightly" >&2; exit 2; }
cd "$ROOT/crates/bbolt"
corpus=fuzz/corpus/bbolt_read
mkdir -p "$corpus"
exec cargo +nightly fuzz run bbolt_read "$corpus" fuzz/seeds -- -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=2048
