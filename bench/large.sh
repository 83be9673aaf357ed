#!/usr/bin/env bash
# Large backends (issue #14, item 7: "backend beyond 8 GiB without a cliff"). One member of
# SERVER (oxetcd by default; SERVER=etcd for etcd 3.4 at the same sizes) is filled step by
# step to each size in SIZES (GiB of keys plus values), and at each size:
#
#   - put throughput: 1000 clients on 100 conns, 256-byte values, PUT_TOTAL puts to 100k
#     keys of their own (9-byte keys, so the filled data is not overwritten);
#   - linearizable range throughput, 1000 clients on 100 conns, RANGE_TOTAL reads: of one
#     key (as compare.sh's range-l-1000c), and of a random filled key per request
#     (--random-keys: reads spread over the whole backend);
#   - start-up: SIGTERM, wait for the exit, start again on the same data dir, time until
#     /health answers true (it does a linearizable read): warm (the page cache as the run
#     left it) and cold (the data dir's files dropped from the page cache first with
#     posix_fadvise(DONTNEED): only this process's files, nothing system wide); the
#     server's RSS (VmRSS) when ready, and its peak (VmHWM) during start-up;
#   - the db file's size (member/snap/db), the data dir's (du), Status's dbSize/dbSizeInUse.
#
# Each measurement runs RUNS times (medians are reported). Before each fill the script
# predicts the disk the next size needs (from the bytes on disk per byte of data so far)
# and stops unless MIN_FREE_GB would stay free; a watcher also kills the fill if free space
# falls below MIN_FREE_GB + 1. The report says which sizes were reached.
#
#   bench/large.sh OUTPUT.md
#   SIZES="1 4" bench/large.sh OUTPUT.md
#   SERVER=etcd SIZES=1 bench/large.sh OUTPUT-etcd.md
#
# Environment (defaults in brackets):
#   SERVER [oxetcd]        oxetcd or etcd
#   SIZES [1 4 16]         GiB of data (keys + values) to fill to, in increasing order
#   VAL_SIZE [4096]        value size of the fill (8-byte keys 00000000, 00000001, ...)
#   FILL_CLIENTS [1000]    clients of the fill (on 100 conns)
#   PUT_TOTAL [200000]     puts per put measurement
#   RANGE_TOTAL [200000]   reads per range measurement
#   RUNS [2]               runs of each measurement (and of each kind of start-up)
#   MAX_SECONDS [60]       a throughput measurement stops after this long
#   QUOTA [68719476736]    --quota-backend-bytes (64 GiB: far above every size)
#   SNAPSHOT_COUNT [100000] --snapshot-count
#   MIN_FREE_GB [15]       free space that must remain on the data dir's filesystem
#   ETCD [/usr/bin/etcd], ETCDCTL [etcdctl]
#   OXETCD_BIN, BENCH_BIN  prebuilt binaries (default: cargo build --release)
#   BENCH_TMP [/work/tmp]  parent of the data dir (a real disk, not tmpfs)
#   BASE_PORT [34379]      client port; the peer port is BASE_PORT+1
set -euo pipefail

OUT=${1:?usage: bench/large.sh OUTPUT.md}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${SERVER:-oxetcd}
read -r -a SIZES <<<"${SIZES:-1 4 16}"
VAL_SIZE=${VAL_SIZE:-4096}
FILL_CLIENTS=${FILL_CLIENTS:-1000}
PUT_TOTAL=${PUT_TOTAL:-200000}
RANGE_TOTAL=${RANGE_TOTAL:-200000}
RUNS=${RUNS:-2}
MAX_SECONDS=${MAX_SECONDS:-60}
QUOTA=${QUOTA:-68719476736}
SNAPSHOT_COUNT=${SNAPSHOT_COUNT:-100000}
MIN_FREE_GB=${MIN_FREE_GB:-15}
ETCD=${ETCD:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL:-etcdctl}
BASE_PORT=${BASE_PORT:-34379}
PEER_PORT=$((BASE_PORT + 1))
EP=http://127.0.0.1:$BASE_PORT
KEY_BYTES=8
export ETCDCTL_API=3

log() { printf '[large %s] %s\n' "$(date -u +%T)" "$*" >&2; }

case $SERVER in
etcd) BIN=$ETCD ;;
oxetcd) BIN=${OXETCD_BIN:-} ;;
*) echo "SERVER must be oxetcd or etcd" >&2; exit 1 ;;
esac
if [[ -z ${BENCH_BIN:-} || ($SERVER == oxetcd && -z $BIN) ]]; then
    # shellcheck source=bench/lib.sh
    source "$ROOT/bench/lib.sh"
    ensure_binaries
    [[ $SERVER == oxetcd ]] && BIN=$OXETCD_BIN
fi

mkdir -p "${BENCH_TMP:-/work/tmp}"
WORK=$(mktemp -d "${BENCH_TMP:-/work/tmp}/bench-large.XXXXXX")
DIR=$WORK/data
RESULTS=$WORK/results.jsonl
COMMANDS=$WORK/commands.txt
: >"$RESULTS"
: >"$COMMANDS"
PID=""
WATCHER=""

stop_server() {
    [[ -n $PID ]] || return 0
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}
cleanup() {
    [[ -n $WATCHER ]] && kill "$WATCHER" 2>/dev/null
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

record() { echo "$*" >>"$COMMANDS"; }
free_bytes() { df -B1 --output=avail "$WORK" | tail -1 | tr -d ' '; }
now() { date +%s%N; }
emit() { echo "$1" >>"$RESULTS"; }

# start: the server on DIR (new or existing); sets PID, STARTUP_S (exec to /health true),
# RSS_READY_KIB, HWM_READY_KIB.
start() {
    local cmd=("$BIN" --name m1 --data-dir "$DIR"
        --listen-client-urls "$EP" --advertise-client-urls "$EP"
        --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT"
        --initial-cluster "m1=http://127.0.0.1:$PEER_PORT" --initial-cluster-state new --initial-cluster-token large
        --snapshot-count "$SNAPSHOT_COUNT" --quota-backend-bytes "$QUOTA")
    record "${cmd[*]}"
    local t0 deadline=$((SECONDS + 600))
    t0=$(now)
    "${cmd[@]}" >>"$WORK/server.log" 2>&1 &
    PID=$!
    until curl -sf -m 5 "$EP/health" 2>/dev/null | grep -q '"true"'; do
        if ((SECONDS > deadline)) || ! kill -0 "$PID" 2>/dev/null; then
            log "$SERVER did not become healthy; log tail:"
            tail -n 20 "$WORK/server.log" >&2
            exit 1
        fi
        sleep 0.01
    done
    STARTUP_S=$(python3 -c "print(($(now) - $t0) / 1e9)")
    RSS_READY_KIB=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
    HWM_READY_KIB=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
}

# stop: SIGTERM and wait; sets STOP_S.
stop() {
    local t0
    t0=$(now)
    stop_server
    STOP_S=$(python3 -c "print(($(now) - $t0) / 1e9)")
}

# drop_cache: the data dir's files out of the page cache (fsync first: only clean pages go).
drop_cache() {
    python3 - "$DIR" <<'EOF'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        fd = os.open(os.path.join(root, name), os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
EOF
}

status_json() {
    "$ETCDCTL" --endpoints "$EP" --command-timeout=60s endpoint status -w json |
        python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; print(json.dumps({"dbSize": s.get("dbSize", 0), "dbSizeInUse": s.get("dbSizeInUse", 0), "revision": s["header"]["revision"]}))'
}

# bench NAME SIZE RUN ARGS...: one timed oxetcd-bench run; emits its JSON with the
# server's CPU ticks over it.
bench() {
    local name=$1 size=$2 run=$3
    shift 3
    local cmd=("$BENCH_BIN" --endpoints "$EP" --max-seconds "$MAX_SECONDS" --json "$@")
    record "${cmd[*]}"
    local before after json
    before=$(sed 's/^.*) //' "/proc/$PID/stat" | awk '{print $12 + $13}')
    json=$(timeout 600 "${cmd[@]}" 2>"$WORK/bench.err") || { log "$name failed: $(head -c 300 "$WORK/bench.err")"; json='{}'; }
    after=$(sed 's/^.*) //' "/proc/$PID/stat" | awk '{print $12 + $13}')
    python3 - "$name" "$size" "$run" "$((after - before))" "$(getconf CLK_TCK)" "$json" "$(cut -d' ' -f1 /proc/loadavg)" <<'EOF' >>"$RESULTS"
import json, sys
name, size, run, ticks, tck, raw, load = sys.argv[1:]
r = json.loads(raw)
ok = r.get("ok", 0)
lat = r.get("latency_ms", {})
print(json.dumps({"kind": "bench", "name": name, "size": float(size), "run": int(run), "ok": ok,
                  "errors": r.get("errors_total"), "per_s": r.get("requests_per_sec"),
                  "p50": lat.get("p50"), "p99": lat.get("p99"), "max": lat.get("slowest"),
                  "cpu_s_per_10k": int(ticks) / int(tck) / (ok / 10000) if ok else None, "load1": load}))
EOF
    log "$name at $size GiB run $run: $(tail -n 1 "$RESULTS" | cut -c1-220)"
}

fill_watch() { # kill the fill (PID $1) if free space falls below MIN_FREE_GB + 1
    local limit=$(((MIN_FREE_GB + 1) * 1000000000))
    while kill -0 "$1" 2>/dev/null; do
        if (($(free_bytes) < limit)); then
            log "free space below $((MIN_FREE_GB + 1)) GB: stopping the fill"
            kill "$1" 2>/dev/null
            touch "$WORK/disk-full"
            return
        fi
        sleep 2
    done
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "$SERVER in $DIR; sizes ${SIZES[*]} GiB of $VAL_SIZE-byte values; $(df -h "$WORK" | tail -1)"
start
emit "{\"kind\": \"start\", \"size\": 0, \"startup_s\": $STARTUP_S}"
filled=0
on_disk_per_byte=1.6 # a guess for the first size; measured after each
reached=()
for size in "${SIZES[@]}"; do
    target=$(python3 -c "print(int($size * 2**30 // ($KEY_BYTES + $VAL_SIZE)))")
    add=$((target - filled))
    need=$(python3 -c "print(int($add * ($KEY_BYTES + $VAL_SIZE) * $on_disk_per_byte + 2e9))")
    free=$(free_bytes)
    if ((free - need < MIN_FREE_GB * 1000000000)); then
        log "size $size GiB needs about $((need / 1000000000)) GB more; $((free / 1000000000)) GB free, $MIN_FREE_GB must stay: stopping"
        emit "{\"kind\": \"skipped\", \"size\": $size, \"need_gb\": $((need / 1000000000)), \"free_gb\": $((free / 1000000000))}"
        break
    fi
    fill=("$BENCH_BIN" --endpoints "$EP" --conns 100 --clients "$FILL_CLIENTS" --total "$add" --json
        put --key-size "$KEY_BYTES" --val-size "$VAL_SIZE" --key-offset "$filled" --key-space-size "$add" --sequential-keys)
    record "${fill[*]}"
    log "filling to $size GiB: keys $filled..$target"
    load_fill=$(cut -d' ' -f1 /proc/loadavg)
    "${fill[@]}" >"$WORK/fill.json" 2>"$WORK/fill.err" &
    fill_pid=$!
    fill_watch "$fill_pid" &
    WATCHER=$!
    fill_status=0
    wait "$fill_pid" || fill_status=$?
    kill "$WATCHER" 2>/dev/null || true
    wait "$WATCHER" 2>/dev/null || true
    WATCHER=""
    if [[ -e $WORK/disk-full || $fill_status != 0 ]]; then
        log "the fill to $size GiB did not finish (exit $fill_status): $(head -c 300 "$WORK/fill.err")"
        emit "{\"kind\": \"skipped\", \"size\": $size, \"reason\": \"fill stopped (disk or error)\"}"
        break
    fi
    filled=$target
    reached+=("$size")
    st=$(status_json)
    db=$(stat -c %s "$DIR/member/snap/db")
    du_kib=$(du -sk "$DIR" | cut -f1)
    wal_kib=$(du -sk "$DIR/member/wal" | cut -f1)
    on_disk_per_byte=$(python3 -c "print(max(1.0, $du_kib * 1024 / ($filled * ($KEY_BYTES + $VAL_SIZE))))")
    python3 - "$size" "$filled" "$db" "$du_kib" "$wal_kib" "$st" "$WORK/fill.json" "$load_fill" "$(cut -d' ' -f1 /proc/loadavg)" <<'EOF' >>"$RESULTS"
import json, sys
size, keys, db, du, wal, st, fill, load_a, load_b = sys.argv[1:]
f = json.load(open(fill))
print(json.dumps({"kind": "size", "size": float(size), "keys": int(keys), "db": int(db), "du_kib": int(du),
                  "wal_kib": int(wal), "status": json.loads(st), "fill_s": f.get("total_seconds"),
                  "fill_per_s": f.get("requests_per_sec"), "fill_p99": f["latency_ms"]["p99"],
                  "fill_errors": f.get("errors_total"), "load_fill": f"{load_a} -> {load_b}"}))
EOF
    log "at $size GiB: $(tail -n 1 "$RESULTS")"

    for ((run = 1; run <= RUNS; run++)); do
        bench put "$size" "$run" --conns 100 --clients 1000 --total "$PUT_TOTAL" \
            put --key-size 9 --val-size 256 --key-space-size 100000
        bench range-l-1key "$size" "$run" --conns 100 --clients 1000 --total "$RANGE_TOTAL" \
            range 00000000 --consistency l
        bench range-l-random "$size" "$run" --conns 100 --clients 1000 --total "$RANGE_TOTAL" \
            range --random-keys "$filled" --random-key-size "$KEY_BYTES" --consistency l
    done
    rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
    hwm_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
    emit "{\"kind\": \"rss\", \"size\": $size, \"rss_kib\": $rss_kib, \"hwm_kib\": $hwm_kib}"

    for mode in warm cold; do
        for ((run = 1; run <= RUNS; run++)); do
            stop
            [[ $mode == cold ]] && drop_cache
            start
            emit "{\"kind\": \"restart\", \"size\": $size, \"mode\": \"$mode\", \"run\": $run, \"stop_s\": $STOP_S, \"startup_s\": $STARTUP_S, \"rss_ready_kib\": $RSS_READY_KIB, \"hwm_ready_kib\": $HWM_READY_KIB, \"load1\": \"$(cut -d' ' -f1 /proc/loadavg)\"}"
            log "restart ($mode) at $size GiB run $run: stop ${STOP_S}s, start ${STARTUP_S}s, RSS $((RSS_READY_KIB / 1024)) MiB (peak $((HWM_READY_KIB / 1024)))"
        done
    done
done
stop_server

cp "$RESULTS" "${OUT%.md}.jsonl"
LOAD_BEFORE=$LOAD_BEFORE python3 - "$RESULTS" "$COMMANDS" "$OUT" "$SERVER" "$BIN" "$ROOT" "$WORK" "$VAL_SIZE" "$RUNS" "${SIZES[*]}" <<'EOF'
import json, os, statistics, subprocess, sys, datetime
results, commands, out, server, binary, root, work, val_size, runs, sizes = sys.argv[1:]
rows = [json.loads(l) for l in open(results)]

def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

def med(vs):
    vs = [v for v in vs if v is not None]
    return statistics.median(vs) if vs else None

def fmt(v):
    if v is None:
        return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"

def spread(vs):
    vs = [v for v in vs if v is not None]
    return f"{fmt(min(vs))}–{fmt(max(vs))}" if len(vs) > 1 else ""

reached = [r for r in rows if r["kind"] == "size"]
o = [f"# Large backends: {server}\n"]
o.append(f"Generated by `bench/large.sh` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}. "
         f"Data = keys + values ({val_size}-byte values, 8-byte keys); medians of {runs} runs (min–max below each).\n")
o.append("| data (GiB) | keys | db file (GiB) | data dir (GiB) | fill (keys/s, MB/s) | put req/s (p99 ms) | "
         "range-l 1 key req/s (p99 ms) | range-l random key req/s (p99 ms) | start-up warm (s) | start-up cold (s) | "
         "RSS when ready (MiB) | RSS after the runs (MiB) |")
o.append("|---:|---:|---:|---:|---|---|---|---|---:|---:|---:|---:|")
for s in reached:
    size = s["size"]
    def b(name, key):
        return [r[key] for r in rows if r["kind"] == "bench" and r["name"] == name and r["size"] == size]
    def rs(mode, key):
        return [r[key] for r in rows if r["kind"] == "restart" and r["mode"] == mode and r["size"] == size]
    rss = [r for r in rows if r["kind"] == "rss" and r["size"] == size]
    mb_s = s["fill_per_s"] * (int(val_size) + 8) / 1e6 if s["fill_per_s"] else None
    cells = [fmt(size), f"{s['keys']:,}", f"{s['db'] / 2**30:.2f}", f"{s['du_kib'] / 2**20:.2f}",
             f"{fmt(s['fill_per_s'])}, {fmt(mb_s)}"]
    for name in ("put", "range-l-1key", "range-l-random"):
        cells.append(f"{fmt(med(b(name, 'per_s')))} ({fmt(med(b(name, 'p99')))})")
    for mode in ("warm", "cold"):
        cells.append(fmt(med(rs(mode, "startup_s"))))
    cells.append(fmt(med([v / 1024 for v in rs("warm", "rss_ready_kib") + rs("cold", "rss_ready_kib")])))
    cells.append(fmt(rss[0]["rss_kib"] / 1024) if rss else "—")
    o.append("| " + " | ".join(cells) + " |")
    sp = [spread(b(n, "per_s")) for n in ("put", "range-l-1key", "range-l-random")]
    o.append(f"| (spread) | | | | | {sp[0]} | {sp[1]} | {sp[2]} | {spread(rs('warm', 'startup_s'))} | "
             f"{spread(rs('cold', 'startup_s'))} | | |")
for r in rows:
    if r["kind"] == "skipped":
        o.append(f"\nNot reached: {r['size']} GiB ({r.get('reason') or 'would need about %s GB, %s GB free' % (r['need_gb'], r['free_gb'])}).")
o.append("\n## Every row\n")
o.append("```")
o.extend(json.dumps(r) for r in rows)
o.append("```")
o.append("\n## Machine\n")
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
ram = sh("awk '/MemTotal/ {print $2/1048576}' /proc/meminfo")
o.append(f"- nproc: {os.cpu_count()}; CPU:{cpu}; RAM: {ram} GiB")
o.append(f"- kernel: {sh('uname -r')}; date: {sh('date -u')}")
o.append(f"- load average before: {os.environ['LOAD_BEFORE']}, after: {' '.join(open('/proc/loadavg').read().split()[:3])}")
o.append(f"- data dir: `{sh(f'df -hT {work} | tail -1')}`")
o.append(f"- {server}: {binary} ({sh(f'git -C {root} describe --always --dirty') if server == 'oxetcd' else sh(f'{binary} --version | head -1')})")
o.append("\n## Commands\n")
o.append("```")
o.extend(dict.fromkeys(l.rstrip() for l in open(commands)))
o.append("```")
open(out, "w").write("\n".join(o) + "\n")
EOF
log "reached ${reached[*]:-nothing} GiB; wrote $OUT and ${OUT%.md}.jsonl"
