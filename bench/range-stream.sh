#!/usr/bin/env bash
# Reading a large range (issue #16, item 5): the server's memory while it answers one Range
# of SIZE GiB, beside RangeStream on oxetcd, and etcd 3.4.23's Range of the same data.
#
# Each server (etcd 3.4.23, then oxetcd) is filled with SIZE GiB (oxetcd-bench put, 4 KiB
# values, sequential 8-byte keys), then, RUNS times each:
#   - Range of every key (`etcdctl get 0 :` to /dev/null: one unary answer of SIZE GiB);
#   - on oxetcd also RangeStream of the same keys (`oxetcd-bench range 0 : --stream`),
#     first;
# measuring the time (the client's included: etcdctl decodes and prints every key) and the
# server's peak RSS during the read (VmHWM, reset before each read through
# /proc/PID/clear_refs) beside its RSS before (VmRSS).
#
#   bench/range-stream.sh            # 1 GiB
#   SIZE=2 RUNS=3 bench/range-stream.sh
#
# Environment (defaults in brackets): SIZE [1] GiB of keys+values; VAL_SIZE [4096]; RUNS
# [3]; OXETCD_BIN, BENCH_BIN (prebuilt; default cargo build --release); ETCD
# [/usr/bin/etcd]; ETCDCTL [etcdctl]; BENCH_TMP [/work/tmp] (a real disk); BASE_PORT
# [36379].
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${SIZE:-1}
VAL_SIZE=${VAL_SIZE:-4096}
RUNS=${RUNS:-3}
ETCD=${ETCD:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL:-etcdctl}
BASE_PORT=${BASE_PORT:-36379}
EP=http://127.0.0.1:$BASE_PORT
PEER=http://127.0.0.1:$((BASE_PORT + 1))
export ETCDCTL_API=3

log() { printf '[range-stream %s] %s\n' "$(date -u +%T)" "$*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ensure_binaries

mkdir -p "${BENCH_TMP:-/work/tmp}"
WORK=$(mktemp -d "${BENCH_TMP:-/work/tmp}/bench-range-stream.XXXXXX")
PID=""
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s%N; }
secs() { python3 -c "print(round(($(now) - $1) / 1e9, 2))"; }
status_mib() { awk -v f="$1:" '$1 == f {print int($2 / 1024)}' "/proc/$PID/status"; }
median() { tr ' ' '\n' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# start BIN NAME: one member on a fresh data dir; waits for /health true; sets PID.
start() {
    "$1" --name m1 --data-dir "$WORK/$2" --listen-client-urls "$EP" --advertise-client-urls "$EP" \
        --listen-peer-urls "$PEER" --initial-advertise-peer-urls "$PEER" \
        --initial-cluster "m1=$PEER" --quota-backend-bytes 8589934592 >>"$WORK/$2.log" 2>&1 &
    PID=$!
    until curl -sf -m 5 "$EP/health" 2>/dev/null | grep -q '"true"'; do
        kill -0 "$PID" 2>/dev/null || { tail -n 20 "$WORK/$2.log" >&2; exit 1; }
        sleep 0.05
    done
}
stop() { kill "$PID"; wait "$PID" || true; PID=""; }

keys=$((SIZE * 1024 * 1024 * 1024 / (8 + VAL_SIZE)))
fill() {
    log "filling $1 with $keys keys of $VAL_SIZE bytes ($SIZE GiB)"
    "$BENCH_BIN" --endpoints "$EP" --conns 100 --clients 1000 --total "$keys" \
        put --key-size 8 --val-size "$VAL_SIZE" --key-space-size "$keys" --sequential-keys >/dev/null
}

# measure LABEL COMMAND...: RUNS reads; appends "LABEL before peak seconds" medians to RESULTS.
RESULTS=()
measure() {
    local label=$1 before=() peak=() took=() t0
    shift
    for _ in $(seq "$RUNS"); do
        before+=("$(status_mib VmRSS)")
        echo 5 >"/proc/$PID/clear_refs"
        t0=$(now)
        "$@" >/dev/null
        took+=("$(secs "$t0")")
        peak+=("$(status_mib VmHWM)")
    done
    log "$label: RSS before ${before[*]} MiB, peak ${peak[*]} MiB, ${took[*]} s"
    RESULTS+=("$label|$(echo "${before[*]}" | median)|$(echo "${peak[*]}" | median)|$(echo "${took[*]}" | median)")
}
etcdctl_range() { "$ETCDCTL" --endpoints "$EP" --command-timeout=600s get 0 : >/dev/null; }
bench_stream() { "$BENCH_BIN" --endpoints "$EP" --total 1 range 0 : --stream >/dev/null; }

start "$ETCD" etcd
fill "etcd 3.4.23"
measure "etcd 3.4.23, Range (etcdctl get)" etcdctl_range
stop
rm -rf "$WORK/etcd"

start "$OXETCD_BIN" oxetcd
fill oxetcd
# RangeStream first: memory a process has once taken (the unary Range's answer) stays in
# its RSS, which would hide the stream's own peak.
measure "oxetcd, RangeStream (oxetcd-bench range --stream)" bench_stream
measure "oxetcd, Range (etcdctl get)" etcdctl_range
count=$("$ETCDCTL" --endpoints "$EP" get 0 : --limit 1 -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[[ $count == "$keys" ]] || { log "expected $keys keys, counted $count"; exit 1; }
stop

echo "| $SIZE GiB ($keys keys of $VAL_SIZE B), medians of $RUNS | RSS before (MiB) | peak RSS during the read (MiB) | time (s) |"
echo "|---|---|---|---|"
for row in "${RESULTS[@]}"; do
    IFS='|' read -r label before peak took <<<"$row"
    echo "| $label | $before | $peak | $took |"
done
