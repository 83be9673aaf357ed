#!/usr/bin/env bash
# `etcdctl snapshot save` from a large member: etcd 3.4.23 and oxetcd builds side by side
# on the same data (issue #14/#15's snapshot check, and the before/after of a change to
# how oxetcd makes snapshots).
#
#   - etcd 3.4.23 and oxetcd are each filled once with SIZE GiB (oxetcd-bench put, 4 KiB
#     values, sequential 8-byte keys) and stopped;
#   - then, RUNS rounds: each binary in turn started on its data dir, `etcdctl snapshot
#     save` timed, the member's peak RSS (VmHWM, over its life) read, the member stopped;
#   - prints, per binary, the median time and peak RSS, and the snapshot's size.
#
#   bench/snapshot.sh                                  # etcd and this tree's oxetcd
#   OXETCD_BINS="/tmp/oxetcd-before /tmp/oxetcd-after" bench/snapshot.sh
#
# Environment (defaults in brackets): SIZE [1] GiB of keys+values; VAL_SIZE [4096]; RUNS
# [3]; OXETCD_BINS [the built oxetcd] (several share one data dir, filled by the first);
# BENCH_BIN; ETCD [/usr/bin/etcd]; ETCDCTL [etcdctl]; BENCH_TMP [/work/tmp] (a real
# disk); BASE_PORT [35479].
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${SIZE:-1}
VAL_SIZE=${VAL_SIZE:-4096}
RUNS=${RUNS:-3}

log() { printf '[snapshot %s] %s\n' "$(date -u +%T)" "$*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
reference_and_urls 35479
ensure_binaries
read -r -a BINS <<<"${OXETCD_BINS:-$OXETCD_BIN}"
command -v "$ETCDCTL" >/dev/null || { echo "snapshot.sh: $ETCDCTL is missing (Debian's etcd-client)" >&2; exit 2; }
[[ -x $ETCD ]] || { echo "snapshot.sh: $ETCD is missing (Debian's etcd-server)" >&2; exit 2; }

make_workdir snapshot
KEYS=$((SIZE * 1024 * 1024 * 1024 / (VAL_SIZE + 8)))

# fill BIN DATA_DIR: SIZE GiB into a new member, then stop it.
fill() {
    start_member "$1" "$2" "$WORK/fill.log"
    log "filling $2 with $KEYS keys through $(basename "$1")"
    fill_sequential "$KEYS" "$VAL_SIZE"
    stop_member
}

# save BIN DATA_DIR NAME: one timed `snapshot save`; prints "NAME seconds hwm_mib bytes".
save() {
    start_member "$1" "$2" "$WORK/$3.log"
    rm -f "$WORK/snap.db"
    local start
    start=$(now)
    "$ETCDCTL" --endpoints "$EP" --command-timeout 10m snapshot save "$WORK/snap.db" >/dev/null
    local took hwm
    took=$(secs "$start")
    hwm=$(awk '/^VmHWM:/ {print int($2 / 1024)}' "/proc/$PID/status")
    stop_member
    echo "$3 $took $hwm $(stat -c %s "$WORK/snap.db")"
}

fill "$ETCD" "$WORK/etcd"
fill "${BINS[0]}" "$WORK/oxetcd"
results=$WORK/results
for run in $(seq "$RUNS"); do
    log "round $run of $RUNS"
    save "$ETCD" "$WORK/etcd" etcd >>"$results"
    for i in "${!BINS[@]}"; do
        save "${BINS[$i]}" "$WORK/oxetcd" "oxetcd-$i:$(basename "${BINS[$i]}")" >>"$results"
    done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, took, hwm, size = line.split()
    rows.setdefault(name, []).append((float(took), int(hwm), int(size)))
etcd = statistics.median(t for t, _, _ in rows["etcd"])
print("| binary | snapshot save, median s (runs) | vs etcd | peak RSS MiB (median) | snapshot bytes |")
print("|---|---|---|---|---|")
for name, runs in rows.items():
    took = statistics.median(t for t, _, _ in runs)
    print(f"| {name} | {took:.2f} ({', '.join(f'{t:.2f}' for t, _, _ in runs)}) "
          f"| {took / etcd:.2f}× | {statistics.median(h for _, h, _ in runs):.0f} | {runs[-1][2]:,} |")
PY
