#!/usr/bin/env bash
# Defragment under load (issue #14): etcd 3.4 (Debian's /usr/bin/etcd) blocks every read
# and write for the whole defrag (etcd #9222); oxetcd rewrites the backend while they go on.
# For each server, RUNS times, servers alternating, each run in a fresh data dir:
#
#   1. fill: FILL_KEYS keys (8-byte keys 00000000.., VAL_SIZE-byte values), 1000 clients;
#   2. make room to reclaim: delete the first half of the keys (etcdctl del, in ranges of
#      DELETE_CHUNK keys), then compact to the current revision (etcdctl compact --physical);
#   3. load for LOAD_SECONDS: oxetcd-bench put (overwrites of the live half, VAL_SIZE bytes,
#      PUT_RATE/s from 100 clients) and, at the same time, oxetcd-bench range (one live key,
#      linearizable, RANGE_RATE/s from 100 clients), both with --latency-log;
#   4. DEFRAG_AT seconds into the load: etcdctl defrag --command-timeout=5m, timed;
#   5. db size (etcdctl endpoint status) before and after; per-request latencies split into
#      the requests that overlap the defrag (sent before it ended, answered after it began)
#      and the others; the episodes in which requests took over 50 ms, relative to the
#      defrag's start. The per-request logs are kept beside OUTPUT.md
#      (OUTPUT-<server>-<run>-{put,range}.tsv, and .tsv.defrag: the defrag's start and end, ns).
#
#   bench/defrag.sh OUTPUT.md
#
# Environment (defaults in brackets):
#   RUNS [2]               runs per server (medians are reported)
#   SERVERS [etcd oxetcd]  which servers, in the first run's order (later runs alternate)
#   FILL_KEYS [1000000]    keys written by the fill
#   VAL_SIZE [1024]        value size of the fill and of the put load
#   DELETE_CHUNK [50000]   keys per etcdctl del request
#   LOAD_SECONDS [60]      length of the put and range load
#   DEFRAG_AT [15]         seconds into the load when defrag is called
#   PUT_RATE [1000]        puts per second (100 clients, 10 conns)
#   RANGE_RATE [1000]      linearizable ranges per second (100 clients, 10 conns)
#   QUOTA [8589934592]     --quota-backend-bytes for both servers (8 GiB)
#   SNAPSHOT_COUNT [100000] --snapshot-count for both servers
#   ETCD [/usr/bin/etcd], ETCDCTL [etcdctl] (3.4: Debian's etcd-client)
#   OXETCD_BIN, BENCH_BIN  prebuilt binaries (default: cargo build --release)
#   BENCH_TMP [/work/tmp]  parent of the data dirs (a real disk, not tmpfs)
#   BASE_PORT [33379]      client port; the peer port is BASE_PORT+1
#   MIN_FREE_GB [15]       refuse to start a run with less free space than this + 4 GB
set -euo pipefail

OUT=${1:?usage: bench/defrag.sh OUTPUT.md}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-2}
read -r -a SERVERS <<<"${SERVERS:-etcd oxetcd}"
FILL_KEYS=${FILL_KEYS:-1000000}
VAL_SIZE=${VAL_SIZE:-1024}
DELETE_CHUNK=${DELETE_CHUNK:-50000}
LOAD_SECONDS=${LOAD_SECONDS:-60}
DEFRAG_AT=${DEFRAG_AT:-15}
PUT_RATE=${PUT_RATE:-1000}
RANGE_RATE=${RANGE_RATE:-1000}
QUOTA=${QUOTA:-8589934592}
SNAPSHOT_COUNT=${SNAPSHOT_COUNT:-100000}
ETCD=${ETCD:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL:-etcdctl}
BASE_PORT=${BASE_PORT:-33379}
MIN_FREE_GB=${MIN_FREE_GB:-15}
PEER_PORT=$((BASE_PORT + 1))
EP=http://127.0.0.1:$BASE_PORT
export ETCDCTL_API=3

log() { printf '[defrag %s] %s\n' "$(date -u +%T)" "$*" >&2; }

[[ -x $ETCD ]] || { echo "no etcd at $ETCD (apt-get install -y etcd-server)" >&2; exit 1; }
command -v "$ETCDCTL" >/dev/null || { echo "no etcdctl (apt-get install -y etcd-client)" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ensure_binaries

mkdir -p "${BENCH_TMP:-/work/tmp}"
WORK=$(mktemp -d "${BENCH_TMP:-/work/tmp}/bench-defrag.XXXXXX")
RESULTS=$WORK/results.jsonl
COMMANDS=$WORK/commands.txt
: >"$RESULTS"
: >"$COMMANDS"
PID=""
LOADS=()

stop_server() {
    local p
    for p in "${LOADS[@]}"; do kill "$p" 2>/dev/null || true; done
    LOADS=()
    [[ -n $PID ]] || return 0
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_gb() { df -B1G --output=avail "$WORK" | tail -1 | tr -d ' '; }
ctl() { "$ETCDCTL" --endpoints "$EP" --command-timeout=5m "$@"; }
# status FIELD: a field of etcdctl endpoint status -w json's Status (dbSize, dbSizeInUse,
# header.revision).
status() {
    ctl endpoint status -w json | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["Status"]
for k in sys.argv[1].split("."):
    s = s.get(k, 0) if isinstance(s, dict) else 0
print(s)' "$1"
}
record() { echo "$*" >>"$COMMANDS"; }

# start SERVER DIR: one member on 127.0.0.1, waits for a linearizable read.
start() {
    local server=$1 dir=$2 bin
    case $server in etcd) bin=$ETCD ;; oxetcd) bin=$OXETCD_BIN ;; esac
    local cmd=("$bin" --name m1 --data-dir "$dir"
        --listen-client-urls "$EP" --advertise-client-urls "$EP"
        --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT"
        --initial-cluster "m1=http://127.0.0.1:$PEER_PORT" --initial-cluster-state new --initial-cluster-token defrag
        --snapshot-count "$SNAPSHOT_COUNT" --quota-backend-bytes "$QUOTA")
    record "${cmd[*]}"
    "${cmd[@]}" >"$dir.log" 2>&1 &
    PID=$!
    await_ready "$server" "$dir.log" "$BENCH_BIN" --endpoints "$EP" --total 1 --json range ready
}

# one SERVER RUN: a whole measurement; appends one JSON line to RESULTS.
one() {
    local server=$1 run=$2 dir=$WORK/$server-$run
    local need=$((MIN_FREE_GB + 4)) free
    free=$(free_gb)
    if ((free < need)); then
        log "only ${free} GB free under $WORK (need $need): stopping"
        exit 1
    fi
    local load_before
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    start "$server" "$dir"
    local bench=("$BENCH_BIN" --endpoints "$EP")

    local fill=("${bench[@]}" --conns 100 --clients 1000 --total "$FILL_KEYS" --max-seconds 600 --json
        put --key-size 8 --val-size "$VAL_SIZE" --key-space-size "$FILL_KEYS" --sequential-keys)
    record "${fill[*]}"
    local t0=$SECONDS
    "${fill[@]}" >"$WORK/fill.json"
    local fill_s=$((SECONDS - t0))
    local half=$((FILL_KEYS / 2)) a b
    t0=$SECONDS
    for ((a = 0; a < half; a += DELETE_CHUNK)); do
        b=$((a + DELETE_CHUNK < half ? a + DELETE_CHUNK : half))
        ctl del "$(printf %08d "$a")" "$(printf %08d "$b")" >/dev/null
    done
    record "$ETCDCTL --endpoints $EP --command-timeout=5m del <a> <a+$DELETE_CHUNK> (for a in 0, $DELETE_CHUNK, .. below $half)"
    local rev
    rev=$(status header.revision)
    ctl compact "$rev" --physical >/dev/null
    record "$ETCDCTL --endpoints $EP --command-timeout=5m compact <revision> --physical"
    local prep_s=$((SECONDS - t0))
    local keys
    keys=$(ctl get "" --prefix --limit 1 -w json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("count", 0))')
    local size_before inuse_before du_before
    size_before=$(status dbSize)
    inuse_before=$(status dbSizeInUse)
    du_before=$(du -sk "$dir" | cut -f1)
    log "$server run $run: filled in ${fill_s}s, deleted+compacted in ${prep_s}s; $keys keys, db $size_before bytes ($inuse_before in use)"

    local put=("${bench[@]}" --conns 10 --clients 100 --rate "$PUT_RATE" --total 100000000 --max-seconds "$LOAD_SECONDS"
        --latency-log "$WORK/put.tsv" --json put --key-size 8 --val-size "$VAL_SIZE" --key-offset "$half"
        --key-space-size "$((FILL_KEYS - half))")
    local range=("${bench[@]}" --conns 10 --clients 100 --rate "$RANGE_RATE" --total 100000000 --max-seconds "$LOAD_SECONDS"
        --latency-log "$WORK/range.tsv" --json range "$(printf %08d "$((FILL_KEYS - 1))")" --consistency l)
    record "${put[*]}"
    record "${range[*]}"
    "${put[@]}" >"$WORK/put.json" 2>"$WORK/put.err" &
    LOADS+=($!)
    "${range[@]}" >"$WORK/range.json" 2>"$WORK/range.err" &
    LOADS+=($!)
    sleep "$DEFRAG_AT"
    record "$ETCDCTL --endpoints $EP --command-timeout=5m defrag"
    local d0 d1
    d0=$(date +%s%N)
    ctl defrag >"$WORK/defrag.out" 2>&1 || log "defrag failed: $(cat "$WORK/defrag.out")"
    d1=$(date +%s%N)
    local p
    for p in "${LOADS[@]}"; do wait "$p" || log "a load exited with $?: $(cat "$WORK"/*.err)"; done
    LOADS=()
    local size_after inuse_after du_after
    size_after=$(status dbSize)
    inuse_after=$(status dbSizeInUse)
    du_after=$(du -sk "$dir" | cut -f1)
    local server_log
    server_log=$(grep -i 'defragment' "$dir.log" | tail -n 3 | cut -c1-400 || true)
    stop_server
    rm -rf "$dir" "$dir.log"
    local load_after
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)

    python3 - "$server" "$run" "$d0" "$d1" "$WORK" "$fill_s" "$prep_s" "$keys" \
        "$size_before" "$inuse_before" "$size_after" "$inuse_after" "$du_before" "$du_after" \
        "$load_before" "$load_after" "$server_log" >>"$RESULTS" <<'EOF'
import json, sys
(server, run, d0, d1, work, fill_s, prep_s, keys, size_b, inuse_b, size_a, inuse_a,
 du_b, du_a, load_b, load_a, server_log) = sys.argv[1:]
d0, d1 = int(d0), int(d1)

def pct(xs, q):
    if not xs:
        return None
    return xs[min(len(xs) - 1, max(0, int(-(-q * len(xs) // 1)) - 1))]

def stalls(name, slow_ms=50):
    """Episodes in which requests took over slow_ms: overlapping [sent, answered]
    intervals of slow requests merged, as (start, length) in s, start relative to the
    defrag's start; at most 10, the longest."""
    spans = []
    with open(f"{work}/{name}.tsv") as f:
        next(f)
        for line in f:
            sent, lat, _ = map(int, line.split())
            if lat > slow_ms * 1e6:
                spans.append((sent, sent + lat))
    spans.sort()
    merged = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
            merged[-1][2] += 1
        else:
            merged.append([a, b, 1])
    merged.sort(key=lambda m: m[0] - m[1])
    return [{"at_s": round((a - d0) / 1e9, 3), "len_s": round((b - a) / 1e9, 3), "requests": n}
            for a, b, n in merged[:10]]

def windows(name):
    during, outside, failed = [], [], 0
    first = last = None
    with open(f"{work}/{name}.tsv") as f:
        next(f)
        for line in f:
            sent, lat, ok = map(int, line.split())
            first = sent if first is None else first
            last = sent + lat
            if ok == 0:
                failed += 1
            # Overlaps the defrag: sent before it ended, answered after it began.
            (during if sent < d1 and sent + lat > d0 else outside).append(lat / 1e6)
    out = {"failed": failed, "stalls": stalls(name)}
    span_out = (last - first) / 1e9 - (d1 - d0) / 1e9 if first else 0
    for label, xs, span in (("during", during, (d1 - d0) / 1e9), ("outside", outside, span_out)):
        xs.sort()
        out[label] = {"n": len(xs), "per_s": len(xs) / span if span > 0 else None,
                      "p50": pct(xs, 0.5), "p99": pct(xs, 0.99), "p999": pct(xs, 0.999),
                      "max": xs[-1] if xs else None}
    return out

fill = json.load(open(f"{work}/fill.json"))
print(json.dumps({
    "server": server, "run": int(run), "defrag_s": (d1 - d0) / 1e9,
    "fill_s": int(fill_s), "fill_ok": fill.get("ok"), "fill_per_s": fill.get("requests_per_sec"),
    "prep_s": int(prep_s), "keys_left": int(keys),
    "db_before": int(size_b), "inuse_before": int(inuse_b), "db_after": int(size_a), "inuse_after": int(inuse_a),
    "du_before_kib": int(du_b), "du_after_kib": int(du_a),
    "load_before": load_b, "load_after": load_a, "server_log": server_log,
    "put": windows("put"), "range": windows("range"),
}))
EOF
    log "$server run $run: defrag $(python3 -c "print(round(($d1 - $d0) / 1e9, 2))") s; db $size_before -> $size_after; load $load_before -> $load_after"
    local f
    for f in put range; do
        mv "$WORK/$f.tsv" "${OUT%.md}-$server-$run-$f.tsv"
        echo "defrag $d0 $d1" >>"${OUT%.md}-$server-$run-$f.tsv.defrag"
    done
}

log "work dir $WORK; $RUNS runs; $FILL_KEYS keys of $VAL_SIZE bytes; load ${LOAD_SECONDS}s, defrag at ${DEFRAG_AT}s"
for ((run = 1; run <= RUNS; run++)); do
    order=("${SERVERS[@]}")
    if ((run % 2 == 0)); then
        order=()
        for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do order+=("${SERVERS[i]}"); done
    fi
    for server in "${order[@]}"; do one "$server" "$run"; done
done

cp "$RESULTS" "${OUT%.md}.jsonl"
python3 - "$RESULTS" "$COMMANDS" "$OUT" "$ETCD" "$OXETCD_BIN" "$ROOT" "$WORK" <<'EOF'
import json, os, statistics, subprocess, sys, datetime
results, commands, out, etcd, oxetcd, root, work = sys.argv[1:]
rows = [json.loads(l) for l in open(results)]
servers = list(dict.fromkeys(r["server"] for r in rows))

def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

def med(server, get):
    vs = [get(r) for r in rows if r["server"] == server]
    vs = [v for v in vs if v is not None]
    return statistics.median(vs) if vs else None

def tot(server, get):
    return sum(get(r) for r in rows if r["server"] == server)

def fmt(v, unit=""):
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:.3g}{unit}"

def mib(b):
    return b / 2**20

o = ["# Defragment under load: etcd 3.4 vs oxetcd\n"]
o.append(f"Generated by `bench/defrag.sh` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; "
         f"medians of {len(rows) // max(1, len(servers))} runs per server (failed requests: summed). \"during\": requests that overlap the "
         "defrag (sent before it ended, answered after it began); \"outside\": the others. Latencies in ms.\n")
o.append("| metric | " + " | ".join(servers) + (" | ratio |" if len(servers) == 2 else ""))
o.append("|---|" + "---:|" * len(servers) + ("---:|" if len(servers) == 2 else ""))
metrics = [
    ("defrag duration (s)", lambda r: r["defrag_s"]),
    ("db size before (MiB)", lambda r: mib(r["db_before"])),
    ("db in use before (MiB)", lambda r: mib(r["inuse_before"])),
    ("db size after (MiB)", lambda r: mib(r["db_after"])),
    ("db in use after (MiB)", lambda r: mib(r["inuse_after"])),
    ("data dir before → after (MiB)", None),
]
for op in ("put", "range"):
    for w in ("during", "outside"):
        for k, label in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")):
            metrics.append((f"{op} {label}, {w}", lambda r, op=op, w=w, k=k: r[op][w][k]))
        metrics.append((f"{op} req/s, {w}", lambda r, op=op, w=w: r[op][w]["per_s"]))
    metrics.append((f"{op} failed", lambda r, op=op: r[op]["failed"]))
for label, get in metrics:
    if get is None:
        cells = [f"{fmt(med(s, lambda r: r['du_before_kib'] / 1024))} → {fmt(med(s, lambda r: r['du_after_kib'] / 1024))}"
                 for s in servers]
        o.append(f"| {label} | " + " | ".join(cells) + (" | |" if len(servers) == 2 else ""))
        continue
    vals = [tot(s, get) if label.endswith("failed") else med(s, get) for s in servers]
    ratio = ""
    if len(servers) == 2:
        a, b = vals
        ratio = f" {b / a:.2g}× |" if a and b is not None else " |"
    o.append(f"| {label} | " + " | ".join(fmt(v) for v in vals) + " |" + ratio)
o.append("\nratio = " + (f"{servers[1]} / {servers[0]}" if len(servers) == 2 else "") + "\n")
o.append("## Runs\n")
o.append("| server | run | load before → after | fill (s, keys/s) | del+compact (s) | defrag (s) | db MiB before → after | "
         "put p99 / max during | put p99 / max outside | range p99 / max during | range p99 / max outside |")
o.append("|---|---|---|---|---|---:|---|---|---|---|---|")
for r in rows:
    def pm(op, w):
        return f"{fmt(r[op][w]['p99'])} / {fmt(r[op][w]['max'])}"
    o.append(f"| {r['server']} | {r['run']} | {r['load_before']} → {r['load_after']} | {r['fill_s']}, {fmt(r['fill_per_s'])} | "
             f"{r['prep_s']} | {r['defrag_s']:.2f} | {mib(r['db_before']):,.0f} → {mib(r['db_after']):,.0f} | "
             f"{pm('put', 'during')} | {pm('put', 'outside')} | {pm('range', 'during')} | {pm('range', 'outside')} |")
o.append("\nStalls: episodes in which requests took over 50 ms (overlapping slow requests merged), "
         "at most the 10 longest, as start relative to the defrag's start (s) + length (s) [requests]:\n")
for r in rows:
    for op in ("put", "range"):
        eps = ", ".join(f"{e['at_s']:+.2f} + {e['len_s']:.3f} [{e['requests']}]" for e in r[op]["stalls"])
        o.append(f"- {r['server']} run {r['run']} {op} (defrag {r['defrag_s']:.2f} s): {eps or 'none'}")
o.append("\nServer log lines about the defrag:\n")
o.append("```")
for r in rows:
    o.append(f"{r['server']} run {r['run']}: {r['server_log']}")
o.append("```")
o.append("\n## Machine\n")
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
o.append(f"- nproc: {os.cpu_count()}; CPU:{cpu}")
o.append(f"- kernel: {sh('uname -r')}; date: {sh('date -u')}")
o.append(f"- data dirs: `{sh(f'df -hT {work} | tail -1')}`")
o.append(f"- {sh(f'{etcd} --version | head -1')} ({etcd}); oxetcd: git {sh(f'git -C {root} describe --always --dirty')} ({oxetcd})")
o.append("\n## Commands\n")
o.append("```")
o.extend(dict.fromkeys(l.rstrip() for l in open(commands)))
o.append("```")
o.append("\n## Raw\n")
o.append("```")
o.extend(json.dumps(r) for r in rows)
o.append("```")
open(out, "w").write("\n".join(o) + "\n")
EOF
log "wrote $OUT and ${OUT%.md}.jsonl"
