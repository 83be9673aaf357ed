#!/usr/bin/env bash
# Builds oxetcd-gobench (bench/go/oxetcd-gobench: the load generator on etcd 3.4's Go
# clientv3) into DIR, in GOPATH mode against Debian's Go source tree:
#
#   bench/go/build.sh DIR           # -> DIR/oxetcd-gobench
#   bench/go/build.sh --check DIR   # first gofmt (no diff), go vet and go test
#
# Needs Debian's golang-go (Go 1.19) and golang-etcd-server-dev (etcd 3.4's sources under
# /usr/share/gocode/src, whose Depends bring the rest: grpc, gogo protobuf, zap, ...). A
# package the build cannot find fails the build naming the Debian package that provides it.
#
# Environment: GO [go], GOCODE [/usr/share/gocode] (Debian's GOPATH tree), GOCACHE (Go's
# default unless set).
set -euo pipefail

CHECK=0
if [[ ${1:-} == --check ]]; then
    CHECK=1
    shift
fi
OUT=${1:?usage: bench/go/build.sh [--check] OUTPUT_DIR}
SRC=$(cd "$(dirname "$0")" && pwd)/oxetcd-gobench
GO=${GO:-go}
GOCODE=${GOCODE:-/usr/share/gocode}

fail() {
    echo "bench/go/build.sh: $*" >&2
    exit 1
}

# debian_package IMPORT_PATH: the Debian package that installs IMPORT_PATH under
# /usr/share/gocode (the packages oxetcd-gobench's imports come from, as `dpkg -S` names
# them on Debian 12).
debian_package() {
    case $1 in
    go.etcd.io/etcd/*) echo golang-etcd-server-dev ;;
    google.golang.org/grpc | google.golang.org/grpc/*) echo golang-google-grpc-dev ;;
    google.golang.org/genproto/*) echo golang-google-genproto-dev ;;
    github.com/gogo/protobuf/*) echo golang-github-gogo-protobuf-dev ;;
    github.com/golang/protobuf/*) echo "golang-github-golang-protobuf-1-3-dev (via golang-goprotobuf-dev)" ;;
    github.com/coreos/go-semver/*) echo golang-github-coreos-go-semver-dev ;;
    github.com/coreos/go-systemd/*) echo golang-github-coreos-go-systemd-dev ;;
    github.com/coreos/pkg/*) echo golang-github-coreos-pkg-dev ;;
    github.com/google/uuid) echo golang-github-google-uuid-dev ;;
    go.uber.org/atomic) echo golang-go.uber-atomic-dev ;;
    go.uber.org/multierr) echo golang-go.uber-multierr-dev ;;
    go.uber.org/zap | go.uber.org/zap/*) echo golang-go.uber-zap-dev ;;
    golang.org/x/net/*) echo golang-golang-x-net-dev ;;
    golang.org/x/sys/*) echo golang-golang-x-sys-dev ;;
    golang.org/x/text/*) echo golang-golang-x-text-dev ;;
    *) echo "an unknown package (apt-file search /usr/share/gocode/src/$1)" ;;
    esac
}

command -v "$GO" >/dev/null || fail "no Go toolchain ($GO): apt-get install -y golang-go"
[[ -d $GOCODE/src/go.etcd.io/etcd/clientv3 ]] ||
    fail "no etcd 3.4 clientv3 under $GOCODE/src: apt-get install -y golang-etcd-server-dev"

mkdir -p "$OUT"
# The build runs in the source dir: a relative OUT means relative to the caller.
OUT=$(cd "$OUT" && pwd)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
# GOPATH mode: a scratch GOPATH first (where go would write), then Debian's tree.
export GO111MODULE=off GOFLAGS= GOPATH="$SCRATCH:$GOCODE"

cd "$SRC"
missing=$("$GO" list -e -deps -f '{{with .Error}}{{$.ImportPath}}{{"\n"}}{{end}}' . | sort -u)
if [[ -n $missing ]]; then
    {
        echo "bench/go/build.sh: Go packages missing from GOPATH=$GOPATH:"
        packages=()
        while read -r path; do
            [[ -n $path ]] || continue
            echo "  $path: install $(debian_package "$path")"
            packages+=("$(debian_package "$path")")
        done <<<"$missing"
        echo "Debian packages to install:"
        printf '%s\n' "${packages[@]}" | sort -u | sed 's/^/  /'
    } >&2
    exit 1
fi
if ((CHECK)); then
    unformatted=$(gofmt -l .)
    [[ -z $unformatted ]] || fail "not gofmt'ed: $unformatted"
    "$GO" vet . >&2
    "$GO" test . >&2
fi
"$GO" build -o "$OUT/oxetcd-gobench" .
echo "$OUT/oxetcd-gobench"
