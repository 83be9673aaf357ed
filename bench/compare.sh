#!/usr/bin/env bash
# Side by side: etcd 3.4 (Debian's /usr/bin/etcd) and oxetcd, same flags, same
# disk, the same load generators (oxetcd-bench, in Rust, and oxetcd-gobench, on etcd 3.4's
# Go clientv3: bench/go), alternating servers, RUNS runs each, medians. Writes a markdown
# report to OUTPUT.md, one table per load generator.
#
#   bench/compare.sh OUTPUT.md            # full run (~15 min per load generator on 2 cores)
#   QUICK=1 bench/compare.sh OUTPUT.md    # ~2 min, small totals
#   ONLY=put-1000c,put-1000c-tls bench/compare.sh OUTPUT.md   # some workloads only
#   ONLY=put-1000c,put-1000c-auth,range-l-1000c,range-l-1000c-auth bench/compare.sh OUTPUT.md
#   LOADGEN=go ONLY=put-1000c-1conn,put-1000c,put-1000c-1000conns bench/compare.sh OUTPUT.md
#
# Environment (defaults in brackets):
#   RUNS [3]                runs per server and workload (medians are reported)
#   ONLY [all]              comma-separated workload names to run (see WORKLOADS)
#   PUT1_TOTAL [20000]      put, 1 client, 256-byte values
#   PUTN_TOTAL [200000]     put, 1000 clients on 100 conns
#   RANGE_TOTAL [200000]    range of one key, 1000 clients, l and s
#   CLUSTER_TOTAL [100000]  put, 1000 clients, 3 members
#   TXN_TOTAL [100000]      txns of 4 puts, 100 clients on 100 conns
#   FILL_KEYS [1000000]     distinct 256-byte keys written by the fill workload (RSS after)
#   FILL_MAX_SECONDS [180]  the fill workload's time limit
#   KEY_SPACE [100000]      distinct keys written by the put workloads
#   SNAPSHOT_COUNT [100000] --snapshot-count for both servers (etcd 3.4's default)
#   ETCD [/usr/bin/etcd]    the reference binary
#   LOADGEN [rust,go]       the load generators, comma separated: rust (oxetcd-bench),
#                           go (oxetcd-gobench: etcd 3.4's clientv3, bench/go/build.sh)
#   OXETCD_BIN, BENCH_BIN   prebuilt binaries (default: cargo build --release); BENCH_BIN
#                           (oxetcd-bench) also waits for each server and writes the key
#                           the range rows read, whatever LOADGEN says
#   GOBENCH_BIN             prebuilt oxetcd-gobench (default: bench/go/build.sh into
#                           the cargo target dir)
#   OXETCD_REV              the revision OXETCD_BIN was built from, for the report
#   BENCH_TMP [/work/tmp]   parent of the data dirs (must be a real disk, not tmpfs)
#   MAX_SECONDS [20]        a benchmark stops after this long even short of its total
#                           (so a slow server cannot stall the run; the raw table
#                           shows how many requests each run completed)
#   BENCH_TIMEOUT [300]     seconds allowed per benchmark invocation (hang guard)
#   BASE_PORT [32379]       client port; the peer port is BASE_PORT+1
#   ETCDCTL [etcdctl]       sets up users and roles for the auth rows (Debian's etcd-client)
#   AUTH_BCRYPT_COST [4]    --bcrypt-cost for both servers in the auth rows (see below)
#
# put-1c also runs against `oxetcd-bench floor-server` (a gRPC server that only syncs one
# record per put: the floor as each load generator sees it), and `oxetcd-bench floor`
# measures the raw floor (one fdatasync, one TCP round trip) before it in every run.
#
# Rows marked tls in WORKLOADS serve the client URLs over https (peers stay http) with
# one CA and server certificate generated per run (openssl; etcd's test fixtures if
# openssl is missing); the bench verifies it with --cacert.
#
# Rows marked auth run with authentication enabled on both servers (simple tokens, the
# default of both): before the benchmark, etcdctl adds user root (role root) and user
# bench with role bench, which may read and write the prefix "000" (every key the put
# workloads write, 00000000-00099999, and the key the range workloads read, 000), and
# enables auth; the bench then runs as bench (--user bench:bench, one Authenticate per
# connection), so every request is checked against a non-root user's permissions. Both
# servers start with --bcrypt-cost AUTH_BCRYPT_COST: the benchmark measures requests
# with a token, not logins, and at etcd's default cost (10) the 100 connections'
# logins would add seconds of server CPU to the CPU-per-request column.
set -euo pipefail

OUT=${1:?usage: bench/compare.sh OUTPUT.md}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [[ ${QUICK:-0} == 1 ]]; then
    : "${PUT1_TOTAL:=1000}" "${PUTN_TOTAL:=10000}" "${RANGE_TOTAL:=10000}" "${CLUSTER_TOTAL:=5000}" "${MAX_SECONDS:=5}"
    : "${TXN_TOTAL:=10000}"
    : "${FILL_KEYS:=100000}" "${FILL_MAX_SECONDS:=30}"
fi
RUNS=${RUNS:-3}
PUT1_TOTAL=${PUT1_TOTAL:-20000}
PUTN_TOTAL=${PUTN_TOTAL:-200000}
RANGE_TOTAL=${RANGE_TOTAL:-200000}
CLUSTER_TOTAL=${CLUSTER_TOTAL:-100000}
TXN_TOTAL=${TXN_TOTAL:-100000}
FILL_KEYS=${FILL_KEYS:-1000000}
FILL_MAX_SECONDS=${FILL_MAX_SECONDS:-180}
KEY_SPACE=${KEY_SPACE:-100000}
MAX_SECONDS=${MAX_SECONDS:-20}
SNAPSHOT_COUNT=${SNAPSHOT_COUNT:-100000}
ETCD=${ETCD:-/usr/bin/etcd}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
BASE_PORT=${BASE_PORT:-32379}
ETCDCTL=${ETCDCTL:-etcdctl}
AUTH_BCRYPT_COST=${AUTH_BCRYPT_COST:-4}
PEER_PORT=$((BASE_PORT + 1))
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[compare %s] %s\n' "$(date -u +%T)" "$*" >&2; }

[[ -x $ETCD ]] || { echo "no etcd at $ETCD (apt-get install -y etcd-server)" >&2; exit 1; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ensure_binaries
IFS=',' read -r -a LOADGENS <<<"${LOADGEN:-rust,go}"
for gen in "${LOADGENS[@]}"; do
    case $gen in
    rust) ;;
    go) ensure_gobench ;;
    *) echo "LOADGEN=$LOADGEN: each of rust, go" >&2; exit 1 ;;
    esac
done

mkdir -p "${BENCH_TMP:-/work/tmp}"
WORK=$(mktemp -d "${BENCH_TMP:-/work/tmp}/compare.XXXXXX")
RESULTS=$WORK/results.tsv
FLOOR=$WORK/floor.tsv
COMMANDS=$WORK/commands.txt
PIDS=()

stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    stop_servers
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_certs: a CA and a server certificate for 127.0.0.1-3 (ECDSA P-256) under
# $WORK/tls; sets TLS_CA, TLS_CERT, TLS_KEY. Once per run.
make_certs() {
    local d=$WORK/tls
    mkdir -p "$d"
    if command -v openssl >/dev/null; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj /CN=compare-ca -keyout "$d/ca.key" -out "$d/ca.crt" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj /CN=compare-server -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
        printf '%s\n' 'subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3' \
            'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature' \
            'extendedKeyUsage=serverAuth,clientAuth' >"$d/server.ext"
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
            -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
        TLS_CA=$d/ca.crt TLS_CERT=$d/server.crt TLS_KEY=$d/server.key
    else
        # etcd's fixtures (RSA; SANs cover 127.0.0.1 only: single-member rows).
        local f=/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures
        [[ -r $f/server.crt ]] || { echo "TLS rows need openssl or $f" >&2; exit 1; }
        TLS_CA=$f/ca.crt TLS_CERT=$f/server.crt TLS_KEY=$f/server.key.insecure
    fi
    log "TLS: CA $TLS_CA, server certificate $TLS_CERT"
}

# has OPTS OPT: whether the comma-separated options OPTS (a WORKLOADS row's fourth
# field: tls, auth) include OPT.
has() { [[ ,$1, == *",$2,"* ]]; }

# start SERVER MEMBERS OPTS: starts a fresh cluster of MEMBERS on 127.0.0.1..N (client
# URLs over https if OPTS has tls; --bcrypt-cost AUTH_BCRYPT_COST if it has auth), sets
# PIDS, ENDPOINTS, BENCH_TLS (the bench's TLS flags) and DATA_DIRS, waits until a
# linearizable read succeeds.
start() {
    local server=$1 members=$2 opts=$3 bin i cluster="" name ip dir scheme=http
    local server_tls=() server_auth=()
    BENCH_TLS=()
    if has "$opts" tls; then
        scheme=https
        server_tls=(--cert-file "$TLS_CERT" --key-file "$TLS_KEY")
        BENCH_TLS=(--cacert "$TLS_CA")
    fi
    has "$opts" auth && server_auth=(--bcrypt-cost "$AUTH_BCRYPT_COST")
    case $server in
    etcd) bin=$ETCD ;;
    oxetcd) bin=$OXETCD_BIN ;;
    floor-server) start_floor_server; return ;;
    esac
    for ((i = 1; i <= members; i++)); do
        cluster+="${cluster:+,}m$i=http://127.0.0.$i:$PEER_PORT"
    done
    ENDPOINTS="" DATA_DIRS=()
    for ((i = 1; i <= members; i++)); do
        name=m$i ip=127.0.0.$i dir=$WORK/$server-$members-$i
        rm -rf "$dir"
        local cmd=("$bin" --name "$name" --data-dir "$dir"
            --listen-client-urls "$scheme://$ip:$BASE_PORT" --advertise-client-urls "$scheme://$ip:$BASE_PORT"
            "${server_tls[@]}" "${server_auth[@]}"
            --listen-peer-urls "http://$ip:$PEER_PORT" --initial-advertise-peer-urls "http://$ip:$PEER_PORT"
            --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token bench
            --snapshot-count "$SNAPSHOT_COUNT")
        echo "${cmd[*]}" >>"$COMMANDS"
        "${cmd[@]}" >"$dir.log" 2>&1 &
        PIDS+=($!)
        DATA_DIRS+=("$dir")
        ENDPOINTS+="${ENDPOINTS:+,}$scheme://127.0.0.$i:$BASE_PORT"
    done
    await_ready "$server ($members members)" "${DATA_DIRS[0]}.log" \
        "$BENCH_BIN" --endpoints "$ENDPOINTS" "${BENCH_TLS[@]}" --total 1 --json range ready
}

# start_floor_server: oxetcd-bench floor-server on 127.0.0.1 (a gRPC server that answers
# KV.Put after one write and fdatasync of a record and serves nothing else: the floor
# under put-1c as a load generator sees it, its own gRPC work included); sets PIDS,
# ENDPOINTS, BENCH_TLS and DATA_DIRS as start does, waits until it accepts connections.
start_floor_server() {
    local dir=$WORK/floor-server
    rm -rf "$dir" && mkdir -p "$dir"
    local cmd=("$BENCH_BIN" floor-server --listen "127.0.0.1:$BASE_PORT" --dir "$dir")
    echo "${cmd[*]}" >>"$COMMANDS"
    "${cmd[@]}" >"$dir.log" 2>&1 &
    PIDS+=($!)
    DATA_DIRS=("$dir") ENDPOINTS="http://127.0.0.1:$BASE_PORT" BENCH_TLS=()
    # It serves nothing a readiness probe could ask: a connection accepted is enough.
    await_ready "the floor server" "$dir.log" bash -c ": </dev/tcp/127.0.0.1/$BASE_PORT"
}

# setup_auth: users root (role root) and bench (role bench: readwrite on the prefix
# "000"), then auth enabled, with etcdctl against ENDPOINTS. The same commands for both
# servers; each is logged to COMMANDS.
setup_auth() {
    local ctl=("$ETCDCTL" --endpoints "$ENDPOINTS") step
    [[ ${#BENCH_TLS[@]} -gt 0 ]] && ctl+=(--cacert "$TLS_CA")
    local steps=(
        "user add root:root"
        "user grant-role root root"
        "role add bench"
        "role grant-permission bench --prefix=true readwrite 000"
        "user add bench:bench"
        "user grant-role bench bench"
        "auth enable"
    )
    for step in "${steps[@]}"; do
        echo "${ctl[*]} $step" >>"$COMMANDS"
        # shellcheck disable=SC2086 # step is a word list
        if ! ETCDCTL_API=3 "${ctl[@]}" $step >"$WORK/etcdctl.out" 2>&1; then
            log "auth setup failed at '$step': $(head -c 300 "$WORK/etcdctl.out")"
            return 1
        fi
    done
}

cpu_ticks() { # utime+stime of all PIDS
    local pid sum=0
    for pid in "${PIDS[@]}"; do
        sum=$((sum + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
    done
    echo "$sum"
}
rss_kib() { # VmHWM (peak RSS) summed over PIDS
    local pid sum=0
    for pid in "${PIDS[@]}"; do
        sum=$((sum + $(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")))
    done
    echo "$sum"
}
disk_kib() { du -sk "${DATA_DIRS[@]}" | awk '{s += $1} END {print s}'; }

# measure LOADGEN SERVER MEMBERS OPTS WORKLOAD RUN BENCH-ARGS...: fresh cluster,
# optional setup, one timed invocation of the load generator (rust: oxetcd-bench, go:
# oxetcd-gobench; same arguments, same JSON report), resources, one TSV row.
measure() {
    local loadgen=$1 server=$2 members=$3 opts=$4 workload=$5 run=$6 bin=$BENCH_BIN
    shift 6
    [[ $loadgen == go ]] && bin=$GOBENCH_BIN
    start "$server" "$members" "$opts"
    local bench_user=()
    if has "$opts" auth; then
        setup_auth
        bench_user=(--user bench:bench)
    fi
    if [[ $workload == range-* ]]; then
        # The key the range workloads read: put's key 0 with --key-size 3 is "000".
        local setup=("$BENCH_BIN" --endpoints "$ENDPOINTS" "${BENCH_TLS[@]}" "${bench_user[@]}" --total 1 put --key-size 3 --val-size 256)
        echo "${setup[*]}" >>"$COMMANDS"
        "${setup[@]}" >/dev/null
    fi
    local limit=$MAX_SECONDS
    [[ $workload == fill-* ]] && limit=$FILL_MAX_SECONDS
    local cmd=("$bin" --endpoints "$ENDPOINTS" "${BENCH_TLS[@]}" "${bench_user[@]}" --max-seconds "$limit" --json "$@")
    echo "${cmd[*]}" >>"$COMMANDS"
    local before json status=0 client_before client_after
    before=$(cpu_ticks)
    # `times` must run in this shell (a subshell has its own counters); its second
    # line is the CPU of waited-for children, which includes the bench below.
    times >"$WORK/times"
    client_before=$(tail -n 1 "$WORK/times")
    json=$(timeout "$BENCH_TIMEOUT" "${cmd[@]}" 2>"$WORK/bench.err") || status=$?
    times >"$WORK/times"
    client_after=$(tail -n 1 "$WORK/times")
    local ticks=$(($(cpu_ticks) - before)) rss disk
    rss=$(rss_kib)
    disk=$(disk_kib)
    stop_servers
    if ((status != 0)) || [[ -z $json ]]; then
        log "$loadgen: $server $workload run $run failed (exit $status): $(head -c 300 "$WORK/bench.err")"
        json='{}'
    fi
    python3 - "$loadgen" "$server" "$workload" "$run" "$ticks" "$CLK_TCK" "$rss" "$disk" "$json" \
        "$client_before" "$client_after" >>"$RESULTS" <<'EOF'
import json, re, sys
loadgen, server, workload, run, ticks, tck, rss, disk, raw, client_before, client_after = sys.argv[1:]

def seconds(times):  # bash `times` line for children: "0m1.234s 0m0.567s"
    return sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", times))

r = json.loads(raw)
ok = r.get("ok", 0)
lat = r.get("latency_ms", {})
nan = float("nan")
cpu = int(ticks) / int(tck) / (ok / 10000) if ok else nan
client_cpu = (seconds(client_after) - seconds(client_before)) / (ok / 10000) if ok else nan
row = [loadgen, server, workload, run, ok, r.get("requests_per_sec", nan), lat.get("p50", nan), lat.get("p99", nan),
       int(rss) / 1024, cpu, client_cpu, int(disk) / 1024, r.get("errors_total", nan)]
print("\t".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in row))
EOF
    log "$loadgen: $server $workload run $run: $(tail -n 1 "$RESULTS" | cut -f5-)"
}

# measure_floor RUN: the floor under put-1c on this machine and disk (oxetcd-bench floor:
# one fdatasync of a WAL-sized record in a preallocated file under WORK plus one loopback
# TCP round trip, no server), PUT1_TOTAL times, one row of FLOOR. Taken in every run just
# before the put-1c rows, since this machine's fdatasync time drifts by 2x over an hour.
measure_floor() {
    local cmd=("$BENCH_BIN" --total "$PUT1_TOTAL" --max-seconds "$MAX_SECONDS" --json floor --dir "$WORK")
    echo "${cmd[*]}" >>"$COMMANDS"
    local json
    json=$("${cmd[@]}") || { log "floor run $1 failed"; return 0; }
    python3 - "$1" "$json" >>"$FLOOR" <<'EOF'
import json, sys
run, raw = sys.argv[1:]
r = json.loads(raw)
phases = {p["workload"]: p["latency_ms"]["average"] for p in r["phases"]}
print("\t".join(str(x) for x in (run, r["requests_per_sec"], r["latency_ms"]["average"],
                                  phases["fdatasync"], phases["round-trip"])))
EOF
    log "floor run $1: $(tail -n 1 "$FLOOR" | cut -f2-)"
}

# The workloads: name, members, bench arguments, and optionally options, comma separated:
# "tls" (client URLs over https for both servers, the bench with --cacert; see
# make_certs), "auth" (auth enabled, the bench as a non-root user; see setup_auth).
WORKLOADS=(
    "put-1c|1|--conns 1 --clients 1 --total $PUT1_TOTAL put --key-size 8 --val-size 256 --key-space-size $KEY_SPACE"
    "put-1000c|1|--conns 100 --clients 1000 --total $PUTN_TOTAL put --key-size 8 --val-size 256 --key-space-size $KEY_SPACE"
    "put-1000c-1conn|1|--conns 1 --clients 1000 --total $PUTN_TOTAL put --key-size 8 --val-size 256 --key-space-size $KEY_SPACE"
    "put-1000c-1000conns|1|--conns 1000 --clients 1000 --total $PUTN_TOTAL put --key-size 8 --val-size 256 --key-space-size $KEY_SPACE"
    "range-l-1000c|1|--conns 100 --clients 1000 --total $RANGE_TOTAL range 000 --consistency l"
    "range-s-1000c|1|--conns 100 --clients 1000 --total $RANGE_TOTAL range 000 --consistency s"
    "txn-100c|1|--conns 100 --clients 100 --total $TXN_TOTAL txn-put --txn-ops 4 --key-size 8 --val-size 256 --key-space-size $KEY_SPACE"
    "fill-1000c|1|--conns 100 --clients 1000 --total $FILL_KEYS put --key-size 8 --val-size 256 --key-space-size $FILL_KEYS --sequential-keys"
    "put-3m-1000c|3|--conns 100 --clients 1000 --total $CLUSTER_TOTAL --target-leader put --key-size 8 --val-size 256 --key-space-size $KEY_SPACE"
)

# Watch and lease (issue #5). watch-fanout: FANOUT_WATCHERS [10000] watchers of one key
# on 100 streams, FANOUT_PUTS [200] puts one at a time (each once every watcher has the
# last); its requests are deliveries and its latency put-sent -> event-received.
# lease-keepalive-1000c: KEEPALIVE_TOTAL [200000] keep-alive round trips of 1000 leases,
# one stream each, on 100 connections.
if [[ ${QUICK:-0} == 1 ]]; then
    : "${FANOUT_PUTS:=20}" "${KEEPALIVE_TOTAL:=10000}"
fi
FANOUT_WATCHERS=${FANOUT_WATCHERS:-10000}
FANOUT_PUTS=${FANOUT_PUTS:-200}
KEEPALIVE_TOTAL=${KEEPALIVE_TOTAL:-200000}
WORKLOADS+=(
    "watch-fanout|1|--conns 10 watch-fanout --watchers $FANOUT_WATCHERS --streams 100 --put-total $FANOUT_PUTS --val-size 256"
    "lease-keepalive-1000c|1|--conns 100 --clients 1000 --total $KEEPALIVE_TOTAL lease-keepalive"
)

# TLS (issue #11): put-1000c and range-l-1000c again, over https.
WORKLOADS+=(
    "put-1000c-tls|1|--conns 100 --clients 1000 --total $PUTN_TOTAL put --key-size 8 --val-size 256 --key-space-size $KEY_SPACE|tls"
    "range-l-1000c-tls|1|--conns 100 --clients 1000 --total $RANGE_TOTAL range 000 --consistency l|tls"
)

# Auth (issue #12): put-1000c and range-l-1000c again, with auth enabled and a simple token.
WORKLOADS+=(
    "put-1000c-auth|1|--conns 100 --clients 1000 --total $PUTN_TOTAL put --key-size 8 --val-size 256 --key-space-size $KEY_SPACE|auth"
    "range-l-1000c-auth|1|--conns 100 --clients 1000 --total $RANGE_TOTAL range 000 --consistency l|auth"
)

if [[ -n ${ONLY:-} ]]; then
    selected=()
    for w in "${WORKLOADS[@]}"; do
        [[ ,$ONLY, == *",${w%%|*},"* ]] && selected+=("$w")
    done
    ((${#selected[@]})) || { echo "ONLY=$ONLY names no workload" >&2; exit 1; }
    WORKLOADS=("${selected[@]}")
fi
for w in "${WORKLOADS[@]}"; do
    IFS='|' read -r _ _ _ opts <<<"$w"
    if has "${opts:-}" tls; then
        make_certs
        break
    fi
done
for w in "${WORKLOADS[@]}"; do
    IFS='|' read -r _ _ _ opts <<<"$w"
    if has "${opts:-}" auth; then
        command -v "$ETCDCTL" >/dev/null || { echo "auth rows need etcdctl (apt-get install -y etcd-client) or ETCDCTL" >&2; exit 1; }
        break
    fi
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'run\treq_per_s\tmean_ms\tfdatasync_mean_ms\tround_trip_mean_ms\n' >"$FLOOR"
printf 'loadgen\tserver\tworkload\trun\tok\treq_per_s\tp50_ms\tp99_ms\trss_mib\tcpu_s_per_10k\tbench_cpu_s_per_10k\tdata_dir_mib\terrors\n' >"$RESULTS"
: >"$COMMANDS"
log "data dirs under $WORK; load generators ${LOADGENS[*]}; $RUNS runs; totals put-1c=$PUT1_TOTAL put-1000c=$PUTN_TOTAL range=$RANGE_TOTAL fill=$FILL_KEYS 3m=$CLUSTER_TOTAL; at most ${MAX_SECONDS}s each (fill: ${FILL_MAX_SECONDS}s)"
for ((run = 1; run <= RUNS; run++)); do
    # Alternate which server goes first, so drift (page cache, thermal) hits both.
    if ((run % 2)); then order=(etcd oxetcd); else order=(oxetcd etcd); fi
    for w in "${WORKLOADS[@]}"; do
        IFS='|' read -r name members args opts <<<"$w"
        [[ $name == put-1c ]] && measure_floor "$run"
        servers=("${order[@]}")
        # put-1c also against the floor server: the floor as each load generator sees it.
        [[ $name == put-1c ]] && servers+=(floor-server)
        for gen in "${LOADGENS[@]}"; do
            for server in "${servers[@]}"; do
                # shellcheck disable=SC2086 # args is a word list
                measure "$gen" "$server" "$members" "${opts:-plain}" "$name" "$run" $args
            done
        done
    done
done

LOAD_BEFORE=$LOAD_BEFORE AUTH_BCRYPT_COST=$AUTH_BCRYPT_COST python3 - "$RESULTS" "$FLOOR" "$COMMANDS" "$OUT" "$RUNS" "$WORK" "$ETCD" "$OXETCD_BIN" "$ROOT" <<'EOF'
import csv, os, platform, statistics, subprocess, sys, datetime
results, floor, commands, out, runs, work, etcd, oxetcd, root = sys.argv[1:]
rows = list(csv.DictReader(open(results), delimiter="\t"))
floors = list(csv.DictReader(open(floor), delimiter="\t"))
metrics = [("req_per_s", "throughput (req/s)"), ("p50_ms", "p50 latency (ms)"), ("p99_ms", "p99 latency (ms)"),
           ("rss_mib", "server RSS, peak (MiB)"), ("cpu_s_per_10k", "server CPU s / 10k req"),
           ("bench_cpu_s_per_10k", "bench client CPU s / 10k req"),
           ("data_dir_mib", "data dir (MiB)"), ("errors", "errors (sum of runs)")]
workloads = list(dict.fromkeys(r["workload"] for r in rows))
VARIANTS = ("-tls", "-auth")  # a row "X-tls" or "X-auth" is X with TLS or auth on


def base_of(w):
    for suffix in VARIANTS:
        if w.endswith(suffix) and w[: -len(suffix)] in workloads:
            return w[: -len(suffix)]
    return None


# Each variant right after its plain row (in the order run), so the cost shows at a glance.
order = {w: i for i, w in enumerate(workloads)}
workloads.sort(key=lambda w: (order[base_of(w) or w], base_of(w) is not None, order[w]))

# One table per load generator (the rows of `gen`, set by the loop below).
LOADGENS = {"rust": "oxetcd-bench (Rust: oxetcd-client on tonic)",
            "go": "oxetcd-gobench (Go: etcd 3.4's clientv3, Debian's golang-etcd-server-dev)"}
gens = list(dict.fromkeys(r["loadgen"] for r in rows))
gen = None

def values(server, workload, key):
    vs = [float(r[key]) for r in rows
          if r["loadgen"] == gen and r["server"] == server and r["workload"] == workload]
    return [v for v in vs if v == v]  # drop NaN (failed runs)

def agg(server, workload, key):
    vs = values(server, workload, key)
    if not vs:
        return None
    return sum(vs) if key == "errors" else statistics.median(vs)

def fmt(v):
    return "—" if v is None else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"

o = []
o.append("# oxetcd vs etcd 3.4: side by side\n")
o.append(f"Generated by `bench/compare.sh` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}. "
         f"Medians of {runs} runs per server and workload (errors: summed); ratio = oxetcd / etcd "
         "(above 1 is better for throughput, below 1 is better for the others).\n")
for gen in gens:
    o.append(f"## Load generator {gen}: {LOADGENS.get(gen, gen)}\n")
    o.append("| workload | metric | etcd 3.4.23 | oxetcd | ratio |")
    o.append("|---|---|---:|---:|---:|")
    for w in workloads:
        for key, label in metrics:
            e, x = agg("etcd", w, key), agg("oxetcd", w, key)
            ratio = "" if not e or x is None or key == "errors" else f"{x / e:.2f}×" if x / e >= 0.1 else f"{x / e:.2g}×"
            o.append(f"| {w} | {label} | {fmt(e)} | {fmt(x)} | {ratio} |")
    variants = [(w, base_of(w)) for w in workloads if base_of(w)]
    if variants:
        o.append(f"\n### What TLS and auth cost each server ({gen})\n")
        o.append("Each `-tls`/`-auth` row against its plain row, per server. Throughput: the "
                 "variant's median as a share of the plain median (1.00× = no loss), then the same "
                 "ratio taken run by run (each run measures both rows of one server minutes apart), "
                 "as median (min–max). CPU: server CPU seconds per 10k requests, plain → variant.\n")
        o.append("| variant | server | plain req/s | variant req/s | kept (medians) | kept, run by run | "
                 "server CPU s/10k plain → variant |")
        o.append("|---|---|---:|---:|---:|---:|---:|")

        def per_run(server, w, key):
            return {r["run"]: float(r[key]) for r in rows
                    if r["loadgen"] == gen and r["server"] == server and r["workload"] == w
                    and float(r[key]) == float(r[key])}

        for w, base in variants:
            for server in ("etcd", "oxetcd"):
                p, v = agg(server, base, "req_per_s"), agg(server, w, "req_per_s")
                kept = f"{v / p:.2f}×" if p and v is not None else "—"
                plain_runs, variant_runs = per_run(server, base, "req_per_s"), per_run(server, w, "req_per_s")
                paired = sorted(variant_runs[k] / plain_runs[k] for k in variant_runs if plain_runs.get(k))
                by_run = (f"{statistics.median(paired):.2f}× ({paired[0]:.2f}–{paired[-1]:.2f})"
                          if paired else "—")
                cp, cv = agg(server, base, "cpu_s_per_10k"), agg(server, w, "cpu_s_per_10k")
                o.append(f"| {w} | {server} | {fmt(p)} | {fmt(v)} | {kept} | {by_run} | {fmt(cp)} → {fmt(cv)} |")

if floors:
    def floor_median(key):
        return statistics.median(float(f[key]) for f in floors)
    floor_rps = floor_median("req_per_s")
    o.append("## The floor under put-1c\n")
    o.append(f"No single-member put is acknowledged before one fdatasync of its WAL record and one "
             f"round trip: on this machine, medians of {len(floors)} measurements (`oxetcd-bench floor`, "
             f"one before each run's put-1c rows), fdatasync {floor_median('fdatasync_mean_ms') * 1000:.0f} µs "
             f"+ loopback TCP round trip {floor_median('round_trip_mean_ms') * 1000:.0f} µs = "
             f"{floor_rps:,.0f} puts/s for one client. Each server's put-1c against it "
             "(1.00× = at the floor; issue #19's target for oxetcd is at least 1/1.2 = 0.83×). "
             "With one client the load generator's own CPU time per request is on the same "
             "path, so the next column adds it (its median over both servers' put-1c runs) to "
             "the floor. The last columns measure the same end to end: put-1c against "
             "`oxetcd-bench floor-server`, a gRPC server that answers each put after one write "
             "and fdatasync of a record on the thread that read it and does nothing else, and "
             "each server's put-1c as a share of that.\n")
    o.append("| load generator | etcd 3.4.23 req/s | share of floor | oxetcd req/s | share of floor | "
             "floor + load generator CPU | floor server req/s | etcd / oxetcd share of it |")
    o.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    floor_ms = 1000 / floor_rps
    for gen in gens:
        e, x = agg("etcd", "put-1c", "req_per_s"), agg("oxetcd", "put-1c", "req_per_s")
        share = lambda v: "—" if v is None else f"{v / floor_rps:.2f}×"
        client = values("etcd", "put-1c", "bench_cpu_s_per_10k") + values("oxetcd", "put-1c", "bench_cpu_s_per_10k")
        # s per 10k requests -> ms per request: x 1000 / 10000
        with_client = f"{1000 / (floor_ms + statistics.median(client) / 10):,.0f} req/s" if client else "—"
        f = agg("floor-server", "put-1c", "req_per_s")
        of_server = "—" if not f else " / ".join("—" if v is None else f"{v / f:.2f}×" for v in (e, x))
        o.append(f"| {gen} | {fmt(e)} | {share(e)} | {fmt(x)} | {share(x)} | {with_client} | {fmt(f)} | {of_server} |")
    o.append("")

o.append("""
Workloads: `put-1c` one client, 256-byte values; `put-1000c` 1000 clients on 100 connections
(`put-1000c-1conn`, `put-1000c-1000conns`: on 1 and on 1000 connections);
`range-l-1000c` / `range-s-1000c` linearizable / serializable range of one key, 1000 clients on
100 connections; `txn-100c` txns of 4 puts (256-byte values), 100 clients on 100 connections; `fill-1000c` writes FILL_KEYS distinct keys of 256 bytes (1M in a full run: its
RSS row is the server's memory holding 1M keys); `put-3m-1000c` 3 members on 127.0.0.1-3, 1000 clients on 100 connections to
the leader (`--target-leader`); `*-tls` the same workloads with both servers serving their client
URL over https (`--cert-file`/`--key-file`, one ECDSA P-256 certificate from a CA made for the
run; peers plaintext) and the bench verifying it (`--cacert`); `*-auth` the same workloads with
auth enabled on both servers (simple tokens, `--bcrypt-cost` AUTH_BCRYPT_COST) and the bench
running as user `bench`, whose only role may read and write the prefix `000` (one
Authenticate per connection, the token on every request).
Each measurement starts a fresh cluster in a fresh data dir. Both load generators take the
same arguments and print the same JSON report; a connection is one oxetcd-client client (Rust,
retries off) or one clientv3 client (Go, clientv3's defaults, its retries included).
RSS is VmHWM after the run (summed over members for 3 members), CPU is utime+stime of the
server process(es) during the benchmark only (the load generator's own CPU is shown too: on a
small machine it competes with the server for the same cores), data dir is `du -sk` after the run (WAL
segments are preallocated by both servers). A benchmark stops at its total or after
`--max-seconds` (see the `ok` column of the raw runs), so a slow server writes fewer keys.
""".replace("AUTH_BCRYPT_COST", os.environ["AUTH_BCRYPT_COST"]))
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
disk = sh(f"df -hT {work} | tail -1")
etcd_version = sh(f"{etcd} --version | head -1")
rev = os.environ.get("OXETCD_REV") or sh(f"git -C {root} describe --always --dirty")
o.append("## Machine\n")
o.append(f"- nproc: {os.cpu_count()}; CPU:{cpu}")
o.append(f"- kernel: {platform.release()}; date: {sh('date -u')}")
o.append(f"- load average (1/5/15 min) before the run: {os.environ['LOAD_BEFORE']}, after: "
         f"{' '.join(open('/proc/loadavg').read().split()[:3])} (other work on the machine skews both servers)")
o.append(f"- data dirs (same filesystem for both servers): `{disk}`")
o.append(f"- {etcd_version} ({etcd}); oxetcd: git {rev} ({oxetcd})")
o.append("\n## Raw runs\n")
o.append("| " + " | ".join(rows[0].keys()) + " |" if rows else "")
o.append("|" + "---|" * len(rows[0]) if rows else "")
for r in rows:
    o.append("| " + " | ".join(r.values()) + " |")
o.append("\n## Commands\n")
o.append("```")
o.extend(dict.fromkeys(line.rstrip() for line in open(commands)))
o.append("```")
open(out, "w").write("\n".join(o) + "\n")
EOF
log "wrote $OUT"
