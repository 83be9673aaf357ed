# Shared by the bench scripts (sourced; needs ROOT and a `log` function; the member
# helpers need EP and PEER, the client and peer URLs).

# Builds oxetcd and oxetcd-bench (release) unless OXETCD_BIN and BENCH_BIN name prebuilt
# binaries, and sets both.
ensure_binaries() {
    if [[ -n ${OXETCD_BIN:-} && -n ${BENCH_BIN:-} ]]; then
        return
    fi
    log "building oxetcd and oxetcd-bench (release)"
    # (`--bin oxetcd` would also filter oxetcd-bench's binary out.)
    (cd "$ROOT" && cargo build --release -p oxetcd -p oxetcd-bench)
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    OXETCD_BIN=${OXETCD_BIN:-$target/release/oxetcd}
    BENCH_BIN=${BENCH_BIN:-$target/release/oxetcd-bench}
}

# await_ready WHAT LOG CMD...: runs CMD every 0.2 s until it succeeds; after 30 s logs
# that WHAT did not become ready with the tail of LOG (its log file) and returns 1.
await_ready() {
    local what=$1 logfile=$2 deadline=$((SECONDS + 30))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then
            log "$what did not become ready; log tail:"
            tail -n 20 "$logfile" >&2
            return 1
        fi
        sleep 0.2
    done
}

# ensure_gobench: builds oxetcd-gobench (bench/go: the load generator on etcd 3.4's Go
# clientv3, Debian's golang-etcd-server-dev) into the cargo target dir unless GOBENCH_BIN
# names a prebuilt binary, and sets GOBENCH_BIN. bench/go/build.sh fails naming the
# Debian package of anything missing.
ensure_gobench() {
    if [[ -n ${GOBENCH_BIN:-} ]]; then
        return
    fi
    local dir=${CARGO_TARGET_DIR:-$ROOT/target}/gobench
    log "building oxetcd-gobench (Go, GOPATH mode) into $dir"
    GOBENCH_BIN=$("$ROOT/bench/go/build.sh" "$dir")
}

# reference_and_urls DEFAULT_PORT: the reference binaries (ETCD, ETCDCTL: Debian's unless
# set) and one member's URLs: EP on BASE_PORT (default DEFAULT_PORT), PEER on the next.
reference_and_urls() {
    ETCD=${ETCD:-/usr/bin/etcd}
    ETCDCTL=${ETCDCTL:-etcdctl}
    BASE_PORT=${BASE_PORT:-$1}
    EP=http://127.0.0.1:$BASE_PORT
    PEER=http://127.0.0.1:$((BASE_PORT + 1))
    export ETCDCTL_API=3
}

now() { date +%s%N; }
# secs T0: seconds since T0 (from `now`), to two decimals.
secs() { python3 -c "print(round(($(now) - $1) / 1e9, 2))"; }

# make_workdir NAME: a fresh directory WORK under BENCH_TMP (a real disk, not tmpfs),
# removed on exit with the member started by start_member (if it still runs).
make_workdir() {
    mkdir -p "${BENCH_TMP:-/work/tmp}"
    WORK=$(mktemp -d "${BENCH_TMP:-/work/tmp}/bench-$1.XXXXXX")
    PID=""
    trap 'stop_member; rm -rf "$WORK"' EXIT
    trap 'exit 130' INT TERM
}

# start_member BIN DATA_DIR LOG: one member named m1 (client URL EP, peer URL PEER, an
# 8 GiB quota) of etcd or oxetcd; waits for /health true; sets PID.
start_member() {
    "$1" --name m1 --data-dir "$2" --listen-client-urls "$EP" --advertise-client-urls "$EP" \
        --listen-peer-urls "$PEER" --initial-advertise-peer-urls "$PEER" \
        --initial-cluster "m1=$PEER" --quota-backend-bytes 8589934592 >>"$3" 2>&1 &
    PID=$!
    until curl -sf -m 5 "$EP/health" 2>/dev/null | grep -q '"true"'; do
        kill -0 "$PID" 2>/dev/null || { tail -n 20 "$3" >&2; exit 1; }
        sleep 0.05
    done
}

# stop_member: SIGTERM to the member start_member started, and wait for its exit.
stop_member() {
    [[ -n ${PID:-} ]] || return 0
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}

# fill_sequential KEYS VAL_SIZE: KEYS puts of sequential 8-byte keys (00000000, ...) with
# VAL_SIZE-byte values, by 1000 clients on 100 connections.
fill_sequential() {
    "$BENCH_BIN" --endpoints "$EP" --conns 100 --clients 1000 --total "$1" \
        put --key-size 8 --val-size "$2" --key-space-size "$1" --sequential-keys >/dev/null
}
