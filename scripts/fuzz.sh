#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (docs/robustness.md says what each covers), each
# for SECONDS_TO_RUN seconds, starting from its seeds (fuzz/seeds/<target>, committed) and
# what earlier runs kept (fuzz/corpus/<target>, not committed). A panic, a hang (one input
# over 10 s), or memory past 2 GiB (in all, or in one allocation) stops the target and
# leaves the input in fuzz/artifacts/<target>/ with the command that replays it; the
# script then fails, after running the other targets.
#
#   scripts/fuzz.sh                                  # every target, 5 minutes each
#   FUZZ_SANITIZER=none SECONDS_TO_RUN=10 FUZZ_SEED=1 scripts/fuzz.sh   # what .ci/run does
#   SECONDS_TO_RUN=3600 scripts/fuzz.sh wal_segment  # one target, an hour
#
# FUZZ_SEED fixes libFuzzer's random seed (CI does, so that a run there explores the same
# inputs first every time; unset, each run starts from a new seed).
# Runs on the stable toolchain: libfuzzer-sys needs nightly features, which
# RUSTC_BOOTSTRAP=1 allows. FUZZ_SANITIZER=none skips AddressSanitizer (faster runs; the
# Rust code is safe, ASan watches the unsafe code of dependencies). Needs cargo-fuzz
# (`cargo install cargo-fuzz --locked`) and fails without it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_TO_RUN=${SECONDS_TO_RUN:-300}
SANITIZER=${FUZZ_SANITIZER:-address}
command -v cargo-fuzz >/dev/null || {
  echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 2
}
export RUSTC_BOOTSTRAP=1
# The fuzz workspace builds into fuzz/target/<sanitizer> (never the main workspace's target
# dir), one per sanitizer, so switching does not rebuild everything.
unset CARGO_TARGET_DIR
fuzz() { cargo +stable fuzz "$1" --fuzz-dir fuzz "${@:2}"; }
build_flags=(--sanitizer "$SANITIZER" --target-dir "fuzz/target/$SANITIZER")

# Largest input per target: room for the seeds and well past any field's limit.
declare -A MAX_LEN=(
  [bbolt_read]=262144 [wal_segment]=65536 [snap_file]=65536 [log_entry]=4096
  [backend_rows]=16384 [requests]=16384 [config]=4096
  [auth_requests]=16384 [members]=16384 [wal_dir]=65536
)
mapfile -t ALL < <(fuzz list)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL[@]}")
for target in "${targets[@]}"; do
  [[ " ${ALL[*]} " == *" $target "* && -n ${MAX_LEN[$target]:-} ]] || {
    echo "fuzz.sh: unknown target $target (targets: ${ALL[*]})" >&2
    exit 2
  }
done

echo "fuzz.sh: building ${#ALL[@]} targets (sanitizer: $SANITIZER)"
fuzz build "${build_flags[@]}"

failed=()
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  log=$(mktemp)
  if fuzz run "${build_flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 \
    -max_len="${MAX_LEN[$target]}" -print_final_stats=1 ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
    >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz.sh: $target: $runs runs in ${SECONDS_TO_RUN} s, no finding"
  else
    tail -n 60 "$log"
    echo "fuzz.sh: $target: FINDING (input in fuzz/artifacts/$target/)" >&2
    failed+=("$target")
  fi
  rm -f "$log"
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: findings in: ${failed[*]}" >&2
  exit 1
fi
