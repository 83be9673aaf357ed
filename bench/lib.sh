# Shared by the bench scripts (sourced; needs ROOT and a `log` function).

# Builds oxetcd and oxetcd-bench (release) unless OXETCD_BIN and BENCH_BIN name prebuilt
# binaries, and sets both.
ensure_binaries() {
    if [[ -n ${OXETCD_BIN:-} && -n ${BENCH_BIN:-} ]]; then
        return
    fi
    log "building oxetcd and oxetcd-bench (release)"
    (cd "$ROOT" && cargo build --release -p oxetcd --bin oxetcd -p oxetcd-bench)
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    OXETCD_BIN=${OXETCD_BIN:-$target/release/oxetcd}
    BENCH_BIN=${BENCH_BIN:-$target/release/oxetcd-bench}
}
