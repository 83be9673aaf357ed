#!/usr/bin/env bash
# etcd 3.4.23's own end-to-end suite (tests/e2e from Debian's golang-etcd-server-dev) run
# against oxetcd: our broadest compatibility yardstick.
#
#   scripts/etcd-e2e.sh                 ratchet: run the tests listed in
#                                       tests/e2e-etcd-passing.txt; fail naming any that fail
#   scripts/etcd-e2e.sh --all           run all 208 v3 tests; write which passed
#   scripts/etcd-e2e.sh --reference     run all 208 against Debian's etcd 3.4.23 (207 pass
#                                       here; fails only if a test other than
#                                       TestEtcdExampleConfig or TestEtcdUnixPeers fails)
#   scripts/etcd-e2e.sh [--reference] TestA TestB ...   run just these tests
#   scripts/etcd-e2e.sh --ctl [--reference] [--all | TestA ...]   oxetcdctl as the suite's
#                                       etcdctl; --reference: against etcd 3.4.23, so that
#                                       oxetcdctl alone is under test. Ratchet list
#                                       tests/e2e-etcdctl-passing.txt; --all runs every
#                                       TestCtlV3* test and writes which passed
#
# The suite's v2, v2->v3 migrate and release-upgrade tests are left out (oxetcd serves v3
# only; the upgrade tests need an older etcd release). The test binary is built once, in
# GOPATH mode, with Debian's Go and the package's GOPATH tree, and cached under
# $OXETCD_E2E_DIR (default target/etcd-e2e). Each test runs alone (the suite uses fixed ports
# 20000+), bounded by -test.timeout, in a fresh temporary stand-in for the package's
# tests/e2e (some tests write files in their working directory; ../../integration/fixtures
# leads to the package's fixtures) with TMPDIR inside it; afterwards every process it
# started is killed and the directory removed. Logs of the last run (with every process'
# output: EXPECT_DEBUG=1) stay in $OXETCD_E2E_DIR/last/ (last-reference/ with --reference).
#
# Environment: OXETCD_BIN (an oxetcd binary to test; otherwise `cargo build --release`),
# OXETCDCTL_BIN (an etcdctl stand-in, implies --ctl; with --ctl and no OXETCDCTL_BIN,
# `cargo build --release --bin oxetcdctl`),
# OXETCD_E2E_TIMEOUT (seconds per test, default 300), OXETCD_E2E_DIR. (Not ETCD_*: the
# members would inherit them and warn about unknown ETCD_* variables.)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIST="$ROOT/tests/e2e-etcd-passing.txt"
# Tests the suite has that we leave out: v2 API, v2->v3 migration, release upgrade.
EXCLUDE='^(TestCtlV2|TestV2Curl|TestCtlV3Migrate$|TestReleaseUpgrade)'
EXPECTED_COUNT=208
# Tests real etcd 3.4.23 may fail: the package has no sample config file for the first;
# the second (unix-socket peers) fails on some machines, though not with this script here.
REFERENCE_FAILS=(TestEtcdExampleConfig TestEtcdUnixPeers)
TIMEOUT=${OXETCD_E2E_TIMEOUT:-300}
OUT=${OXETCD_E2E_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/etcd-e2e}
PACKAGES=(golang-go golang-etcd-server-dev etcd-client etcd-server curl)

die() {
  echo "etcd-e2e: error: $*" >&2
  exit 2
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

mode=ratchet
reference=0
ctl=0
[ -n "${OXETCDCTL_BIN:-}" ] && ctl=1
selected=()
while [ $# -gt 0 ]; do
  case "$1" in
    --all) mode=all ;;
    --reference) reference=1 ;;
    --ctl) ctl=1 ;;
    -h | --help) usage 0 ;;
    -*) echo "etcd-e2e: unknown option $1" >&2 && usage 2 ;;
    *) selected+=("$1") ;;
  esac
  shift
done
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "OXETCD_E2E_TIMEOUT=$TIMEOUT is not a number of seconds"
if [ ${#selected[@]} -gt 0 ]; then
  [ "$mode" = all ] && die "--all and test names exclude each other"
  mode=selected
elif [ "$reference" = 1 ] && [ "$ctl" = 0 ]; then
  mode=all
fi

# ---- prerequisites: install what is missing, waiting for a dpkg lock held by another apt
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
apt_retry() {
  local try
  for try in $(seq 1 60); do
    if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; then
      return 0
    fi
    echo "etcd-e2e: apt-get $1 failed (attempt $try; another apt may hold the lock); retrying in 10s" >&2
    sleep 10
  done
  return 1
}
missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}; run as root to install them, or install them first"
  echo "etcd-e2e: installing ${missing[*]}"
  apt_retry update -qq || die "apt-get update failed"
  apt_retry install -y -qq --no-install-recommends "${missing[@]}" ||
    die "apt-get install ${missing[*]} failed"
fi
GO=$(command -v go) || die "go not found after installing golang-go"
CTL=/usr/bin/etcdctl
[ -x "$CTL" ] || die "$CTL not found (package etcd-client)"
if [ "$ctl" = 1 ]; then
  # oxetcdctl stands in for etcdctl; its own ratchet list.
  LIST="$ROOT/tests/e2e-etcdctl-passing.txt"
  if [ -n "${OXETCDCTL_BIN:-}" ]; then
    CTL=$OXETCDCTL_BIN
  else
    echo "etcd-e2e: cargo build --release --bin oxetcdctl"
    (cd "$ROOT" && cargo build --release --bin oxetcdctl) || die "building oxetcdctl failed"
    CTL="${CARGO_TARGET_DIR:-$ROOT/target}/release/oxetcdctl"
  fi
  [ -x "$CTL" ] || die "OXETCDCTL_BIN=$CTL is not an executable"
  CTL=$(readlink -f "$CTL")
fi
command -v curl >/dev/null || die "curl not found (the suite's HTTP tests run it)"
ETCD_REF=/usr/bin/etcd
[ "$reference" = 0 ] || [ -x "$ETCD_REF" ] || die "$ETCD_REF not found (package etcd-server)"
# The package's tree: <GOPATH>/src/go.etcd.io/etcd.
files=$(dpkg -L golang-etcd-server-dev) || die "dpkg -L golang-etcd-server-dev failed"
PKG=$(grep '/src/go\.etcd\.io/etcd/tests/e2e$' <<<"$files" | sed -n '1s#/tests/e2e$##p')
[ -n "$PKG" ] || die "golang-etcd-server-dev lists no tests/e2e directory"
[ -f "$PKG/tests/e2e/main_test.go" ] || die "$PKG/tests/e2e/main_test.go missing"
FIXTURES="$PKG/integration/fixtures"
[ -f "$FIXTURES/server.crt" ] || die "$FIXTURES/server.crt missing"
GOPATH_TREE=${PKG%/src/go.etcd.io/etcd}
PKG_VERSION=$(dpkg-query -W -f='${Version}' golang-etcd-server-dev)

# ---- the test binary, built once per package and Go version
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
E2E="$OUT/e2e.test"
key="golang-etcd-server-dev=$PKG_VERSION $("$GO" version)"
if [ ! -x "$E2E" ] || [ "$(cat "$E2E.key" 2>/dev/null)" != "$key" ]; then
  echo "etcd-e2e: building etcd $PKG_VERSION tests/e2e (GOPATH=$GOPATH_TREE, $("$GO" version))"
  rm -f "$E2E" "$E2E.key"
  (cd "$PKG" && env GOPATH="$GOPATH_TREE" GO111MODULE=off GOFLAGS= \
    "$GO" test -c -o "$E2E" ./tests/e2e) || die "building the e2e test binary failed"
  echo "$key" >"$E2E.key"
fi
mapfile -t all_tests < <("$E2E" -test.list '.*' | grep -Ev "$EXCLUDE" | LC_ALL=C sort)
[ ${#all_tests[@]} -eq "$EXPECTED_COUNT" ] ||
  die "expected $EXPECTED_COUNT tests after exclusions, the binary lists ${#all_tests[@]}"

# ---- the server under test
if [ "$reference" = 1 ]; then
  SERVER=$ETCD_REF
elif [ -n "${OXETCD_BIN:-}" ]; then
  SERVER=$OXETCD_BIN
  [ -x "$SERVER" ] || die "OXETCD_BIN=$SERVER is not an executable"
else
  echo "etcd-e2e: cargo build --release --bin oxetcd"
  (cd "$ROOT" && cargo build --release --bin oxetcd) || die "building oxetcd failed"
  SERVER="${CARGO_TARGET_DIR:-$ROOT/target}/release/oxetcd"
fi
SERVER=$(readlink -f "$SERVER")

# ---- which tests
if [ "$ctl" = 1 ] && [ "$mode" = all ]; then
  # Only the etcdctl tests exercise the etcdctl stand-in.
  mapfile -t all_ctl < <(printf '%s\n' "${all_tests[@]}" | grep '^TestCtlV3')
fi
case "$mode" in
  all) if [ "$ctl" = 1 ]; then tests=("${all_ctl[@]}"); else tests=("${all_tests[@]}"); fi ;;
  selected) tests=("${selected[@]}") ;;
  ratchet)
    [ -f "$LIST" ] || die "$LIST missing"
    mapfile -t tests < <(grep -v '^[[:space:]]*$' "$LIST")
    [ ${#tests[@]} -gt 0 ] || die "$LIST lists no test"
    [ "$(printf '%s\n' "${tests[@]}")" = "$(printf '%s\n' "${tests[@]}" | LC_ALL=C sort -u)" ] ||
      die "$LIST is not sorted or has duplicates"
    ;;
esac
declare -A known=()
for t in "${all_tests[@]}"; do known[$t]=1; done
for t in "${tests[@]}"; do
  [ -n "${known[$t]:-}" ] || die "no test $t among the suite's $EXPECTED_COUNT"
done

# ---- run
WORK=$(mktemp -d "${TMPDIR:-/tmp}/etcd-e2e.XXXXXX")
BIN="$WORK/bin"
mkdir -p "$BIN"
ln -s "$SERVER" "$BIN/etcd"
ln -s "$CTL" "$BIN/etcdctl"
LOGS="$OUT/last"
[ "$reference" = 0 ] || LOGS="$OUT/last-reference"
[ "$ctl" = 0 ] || LOGS="$LOGS-oxetcdctl"
rm -rf "$LOGS"
mkdir -p "$LOGS/logs"
mark=""

# Kills every process started by the current test: they all carry its marker in their
# environment (the suite starts members in sessions of their own, so process groups miss them).
reap() {
  [ -n "$mark" ] || return 0
  local round pids
  for round in 1 2 3 4 5; do
    mapfile -t pids < <(grep -lzxF "E2E_RUN_MARK=$mark" /proc/[0-9]*/environ 2>/dev/null |
      sed 's#^/proc/\([0-9]*\)/environ$#\1#')
    [ ${#pids[@]} -gt 0 ] || return 0
    [ "$round" = 1 ] && echo "  killing leftover processes: ${pids[*]}" >&2
    kill -9 "${pids[@]}" 2>/dev/null || true
    sleep 0.5
  done
}
cleanup() {
  reap
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "etcd-e2e: server $SERVER ($("$SERVER" --version 2>&1 | sed -n 1p)); etcdctl $("$CTL" version | sed -n 1p)"
echo "etcd-e2e: ${#tests[@]} tests, one at a time, ${TIMEOUT}s each at most; logs in $LOGS/logs"
passed=()
failed=()
suite_start=$(date +%s)
# The suite's fixed ports belong to the machine: runs from two checkouts at once take
# turns, test by test, instead of failing on each other's members.
exec {ports_lock}>"${TMPDIR:-/tmp}/oxetcd-etcd-e2e-ports.lock"
# run_one TEST LOG: runs TEST alone, its output in LOG; sets rc (its exit code) and secs.
run_one() {
  local t=$1 log=$2 dir="$WORK/run" start tenths
  flock "$ports_lock"
  mkdir -p "$dir/etcd/tests/e2e" "$dir/etcd/integration" "$dir/tmp"
  ln -s "$FIXTURES" "$dir/etcd/integration/fixtures"
  mark="$$-$t"
  start=$(date +%s%N)
  rc=0
  (cd "$dir/etcd/tests/e2e" && exec env E2E_RUN_MARK="$mark" TMPDIR="$dir/tmp" EXPECT_DEBUG=1 \
    timeout -k 10 $((TIMEOUT + 30)) "$E2E" -test.run "^$t\$" -test.v -test.count=1 \
    -test.timeout "${TIMEOUT}s" -bin-dir "$BIN" -cert-dir "$FIXTURES") >"$log" 2>&1 </dev/null || rc=$?
  reap
  flock -u "$ports_lock"
  mark=""
  rm -rf "$dir"
  tenths=$((($(date +%s%N) - start) / 100000000))
  secs="$((tenths / 10)).$((tenths % 10))"
}

# verdict TEST LOG: "pass", "pass-leak" or "fail" for the run whose exit code is rc.
verdict() {
  local t=$1 log=$2
  # Not anchored: a process' last output line may lack its newline (EXPECT_DEBUG echoes it).
  if [ "$rc" = 0 ] && grep -qF -- "--- PASS: $t (" "$log"; then
    echo pass
  elif [ "$rc" = 1 ] && grep -qF -- "--- PASS: $t (" "$log" &&
    grep -qF 'Too many goroutines running after all test(s)' "$log"; then
    # The test passed; the binary's exit check then found its own pty reader goroutine
    # still running, a race in the harness that real etcd hits too.
    echo pass-leak
  else
    echo fail
  fi
}

for t in "${tests[@]}"; do
  log="$LOGS/logs/$t.log"
  run_one "$t" "$log"
  result=$(verdict "$t" "$log")
  retried=""
  # The harness reads a process' output from a pty, and Linux may answer a read with EIO
  # once the process has exited, before the last lines it wrote are read: the test then
  # misses a line the process did print (etcd's own CI hits this: etcd issues #5037,
  # #9509, #12372). Such a failure is run once more, and counts only as that run does;
  # the first run's log is kept beside the second's.
  if [ "$result" = fail ] && grep -qF 'read /dev/ptmx: input/output error' "$log"; then
    mv "$log" "$LOGS/logs/$t.first.log"
    run_one "$t" "$log"
    result=$(verdict "$t" "$log")
    retried="; run twice: the first lost output to the pty (logs/$t.first.log)"
  fi
  case "$result" in
    pass)
      passed+=("$t")
      echo "PASS $t (${secs}s$retried)"
      ;;
    pass-leak)
      passed+=("$t")
      echo "PASS $t (${secs}s; the harness's leaked-goroutine check after it failed, ignored$retried)"
      ;;
    *)
      failed+=("$t")
      echo "FAIL $t (${secs}s, exit $rc$retried)"
      ;;
  esac
done
elapsed=$(($(date +%s) - suite_start))
printf '%s\n' "${passed[@]}" | sed '/^$/d' >"$LOGS/passed.txt"
printf '%s\n' "${failed[@]}" | sed '/^$/d' >"$LOGS/failed.txt"
echo "etcd-e2e: ran ${#tests[@]} tests in ${elapsed}s; passed: $LOGS/passed.txt, failed: $LOGS/failed.txt"

status=0
case "$mode" in
  ratchet)
    if [ ${#failed[@]} -gt 0 ]; then
      echo "etcd-e2e: REGRESSION: these tests of $LIST failed: ${failed[*]}"
      status=1
    fi
    ;;
  all)
    if [ "$reference" = 1 ] && [ "$ctl" = 0 ]; then
      unexpected=$(printf '%s\n' "${failed[@]}" | sed '/^$/d' | grep -vxF -f <(printf '%s\n' "${REFERENCE_FAILS[@]}") || true)
      if [ -n "$unexpected" ]; then
        echo "etcd-e2e: etcd 3.4.23 failed beyond the expected ${REFERENCE_FAILS[*]}:" $unexpected
        status=1
      fi
    else
      echo "etcd-e2e: to ratchet: cp $LOGS/passed.txt $LIST"
    fi
    ;;
  selected) [ ${#failed[@]} -eq 0 ] || status=1 ;;
esac
echo "${#passed[@]} passed, ${#failed[@]} failed"
exit "$status"
