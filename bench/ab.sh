#!/usr/bin/env bash
# A/B of two oxetcd binaries on one workload: fresh single member per run, the two
# binaries alternating, RUNS runs each; prints each run's throughput, p99, the
# server's CPU (clock ticks from /proc/<pid>/stat) over the benchmark, its peak RSS and
# the load generator's CPU.
#
#   A_BIN=old/oxetcd B_BIN=new/oxetcd BENCH_BIN=oxetcd-bench bench/ab.sh
#
# Environment: RUNS [3], BENCH_ARGS [put-1000c: 100k puts, 1000 clients, 100 conns],
# BENCH_TMP [/work/tmp] (a real disk), PORT [42379] (the peer port is PORT+1).
set -euo pipefail
: "${A_BIN:?}" "${B_BIN:?}" "${BENCH_BIN:?}"
RUNS=${RUNS:-3}
PORT=${PORT:-42379}
BENCH_ARGS=${BENCH_ARGS:---conns 100 --clients 1000 --total 100000 put --key-size 8 --val-size 256 --key-space-size 100000}
mkdir -p "${BENCH_TMP:-/work/tmp}"
# The load generator's CPU too (user+system seconds, bash's `time`): what the member
# makes its client do is part of what a change costs or saves.
TIMEFORMAT='load generator cpu %U+%S s'
for run in $(seq "$RUNS"); do
  for side in A B; do
    bin_var="${side}_BIN"
    dir=$(mktemp -d "${BENCH_TMP:-/work/tmp}/ab.XXXXXX")
    "${!bin_var}" --name ab --data-dir "$dir/data" \
      --listen-client-urls "http://127.0.0.1:$PORT" --advertise-client-urls "http://127.0.0.1:$PORT" \
      --listen-peer-urls "http://127.0.0.1:$((PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((PORT + 1))" \
      --initial-cluster "ab=http://127.0.0.1:$((PORT + 1))" --snapshot-count 100000 --log-level error 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do
      curl -s "127.0.0.1:$PORT/health" | grep -q true && break
      sleep 0.1
    done
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    # shellcheck disable=SC2086
    result=$( { time timeout 300 "$BENCH_BIN" --endpoints "127.0.0.1:$PORT" $BENCH_ARGS 2>&1 |
      grep -E "Requests/sec|p99 in" | sed -n 1,2p; } 2>&1 | tr -s '\t\n' '  ')
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    peak_rss=$(awk '/^VmHWM/ {print $2 " " $3}' "/proc/$pid/status")
    echo "$side run $run: server cpu ticks $((after - before)); peak RSS $peak_rss; $result"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
