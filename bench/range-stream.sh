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

log() { printf '[range-stream %s] %s\n' "$(date -u +%T)" "$*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
reference_and_urls 36379
ensure_binaries

make_workdir range-stream
status_mib() { awk -v f="$1:" '$1 == f {print int($2 / 1024)}' "/proc/$PID/status"; }
median() { tr ' ' '\n' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

keys=$((SIZE * 1024 * 1024 * 1024 / (8 + VAL_SIZE)))
fill() {
    log "filling $1 with $keys keys of $VAL_SIZE bytes ($SIZE GiB)"
    fill_sequential "$keys" "$VAL_SIZE"
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

start_member "$ETCD" "$WORK/etcd" "$WORK/etcd.log"
fill "etcd 3.4.23"
measure "etcd 3.4.23, Range (etcdctl get)" etcdctl_range
stop_member
rm -rf "$WORK/etcd"

start_member "$OXETCD_BIN" "$WORK/oxetcd" "$WORK/oxetcd.log"
fill oxetcd
# RangeStream first: memory a process has once taken (the unary Range's answer) stays in
# its RSS, which would hide the stream's own peak.
measure "oxetcd, RangeStream (oxetcd-bench range --stream)" bench_stream
measure "oxetcd, Range (etcdctl get)" etcdctl_range
count=$("$ETCDCTL" --endpoints "$EP" get 0 : --limit 1 -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[[ $count == "$keys" ]] || { log "expected $keys keys, counted $count"; exit 1; }
stop_member

echo "| $SIZE GiB ($keys keys of $VAL_SIZE B), medians of $RUNS | RSS before (MiB) | peak RSS during the read (MiB) | time (s) |"
echo "|---|---|---|---|"
for row in "${RESULTS[@]}"; do
    IFS='|' read -r label before peak took <<<"$row"
    echo "| $label | $before | $peak | $took |"
done
