#!/usr/bin/env bash
# Moving a large etcd in and out (issue #15's performance check): etcd 3.4.23 is filled with
# SIZE GiB, stopped, and oxetcd started on its data dir; then a snapshot is saved from each.
#
#   - etcd: fill (oxetcd-bench put, 4 KiB values, sequential 8-byte keys), `etcdctl
#     snapshot save` (time; etcd's RSS peak, VmHWM, over its life), then SIGTERM;
#   - oxetcd on etcd's data dir: time from exec to /health true, the conversion's own time
#     (its `converted etcd's backend` log line), peak RSS when ready (VmHWM);
#   - `etcdctl snapshot save` from oxetcd (now a bbolt file generated from a read view):
#     time, oxetcd's peak RSS after it, and the two snapshots' `snapshot status` (same
#     revision and key count expected; the hash differs by the compaction and meta rows).
#
#   bench/migrate.sh                 # 1 GiB
#   SIZE=4 bench/migrate.sh
#
# Environment (defaults in brackets): SIZE [1] GiB of keys+values; VAL_SIZE [4096];
# OXETCD_BIN, BENCH_BIN (prebuilt; default cargo build --release); ETCD [/usr/bin/etcd];
# ETCDCTL [etcdctl]; BENCH_TMP [/work/tmp] (a real disk); BASE_PORT [35379].
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${SIZE:-1}
VAL_SIZE=${VAL_SIZE:-4096}

log() { printf '[migrate %s] %s\n' "$(date -u +%T)" "$*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
reference_and_urls 35379
ensure_binaries

make_workdir migrate
DIR=$WORK/data
hwm_mib() { awk '/^VmHWM:/ {print int($2 / 1024)}' "/proc/$PID/status"; }

# start BIN LOG: one member on DIR; sets PID, READY_S (exec to /health true).
start() {
    local t0
    t0=$(now)
    start_member "$1" "$DIR" "$2"
    READY_S=$(secs "$t0")
}
snapshot() { # snapshot FILE: sets SNAP_S
    local t0
    t0=$(now)
    "$ETCDCTL" --endpoints "$EP" --command-timeout=600s snapshot save "$1" >/dev/null 2>&1
    SNAP_S=$(secs "$t0")
}

keys=$((SIZE * 1024 * 1024 * 1024 / (8 + VAL_SIZE)))
start "$ETCD" "$WORK/etcd.log"
log "filling etcd 3.4.23 with $keys keys of $VAL_SIZE bytes ($SIZE GiB)"
t0=$(now)
fill_sequential "$keys" "$VAL_SIZE"
fill_s=$(secs "$t0")
snapshot "$WORK/etcd.snap"
etcd_snap_s=$SNAP_S
etcd_hwm=$(hwm_mib)
stop_member
db_mib=$(($(stat -c %s "$DIR/member/snap/db") / 1048576))

log "starting oxetcd on etcd's data dir ($db_mib MiB backend)"
start "$OXETCD_BIN" "$WORK/oxetcd.log"
ready_s=$READY_S
ox_ready_hwm=$(hwm_mib)
convert=$(grep -o '"message":"converted etcd'"'"'s backend".*' "$WORK/oxetcd.log" | grep -o '"took":"[^"]*"' || echo '"took":"?"')
snapshot "$WORK/oxetcd.snap"
ox_snap_s=$SNAP_S
ox_hwm=$(hwm_mib)
stop_member

status() { "$ETCDCTL" -w json snapshot status "$1" 2>/dev/null; }
cat <<EOF
| $SIZE GiB ($keys keys of $VAL_SIZE B; etcd's db $db_mib MiB) | etcd 3.4.23 | oxetcd |
|---|---|---|
| fill (oxetcd-bench put, 1000 clients) | ${fill_s} s | — |
| start on etcd's data dir, to /health true | — | ${ready_s} s (conversion ${convert#\"took\":}) |
| peak RSS when ready | — | ${ox_ready_hwm} MiB |
| \`etcdctl snapshot save\` | ${etcd_snap_s} s | ${ox_snap_s} s |
| peak RSS over the run (after the snapshot) | ${etcd_hwm} MiB | ${ox_hwm} MiB |
| snapshot status | \`$(status "$WORK/etcd.snap")\` | \`$(status "$WORK/oxetcd.snap")\` |

Command: \`SIZE=$SIZE bench/migrate.sh\` ($(date -u +%F), $(nproc) cores)
EOF
