#!/usr/bin/env bash
# The compatibility suite: oxetcd checked against the reference etcd 3.4.23.
#
# Installs what the suite needs (Debian's etcd-server, etcd-client,
# golang-etcd-server-dev and golang-go: the reference server, etcdctl, etcd's Go sources
# with its .proto files and bbolt's, and the Go toolchain that builds crates/bbolt's
# bbolt checker and bench/go's oxetcd-gobench, the load generator on etcd 3.4's clientv3; and etcd3gw from PyPI, a Python client of the JSON gateway), then runs the tests behind the `compat` feature. A missing
# reference makes the tests fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(etcd-server etcd-client golang-etcd-server-dev golang-go)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "compat: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# etcd3gw (PyPI), the JSON-gateway client of tests/compat/etcd3gw.rs.
ETCD3GW_VERSION=2.7.0
if ! python3 -c "import etcd3gw" 2>/dev/null; then
  echo "compat: installing etcd3gw $ETCD3GW_VERSION"
  python3 -m pip install --quiet "etcd3gw==$ETCD3GW_VERSION"
fi

# sed, not head: under pipefail, head closing the pipe early kills etcd with SIGPIPE
# (exit 141) and the whole suite with it.
etcd --version | sed -n 1p
# etcdctl_snapshot runs the oxetcdutl binary it finds in the target dir, oxetcdctl the
# oxetcdctl binary, grpc_proxy the oxetcd binary (its `grpc-proxy start`).
cargo build -p oxetcd -p oxetcd-utl -p oxetcd-ctl
cargo test -p oxetcd-tests --features compat "$@"
cargo test -p oxetcd-mvcc --features compat --test etcd_compat "$@"
cargo test -p oxetcd-bbolt --features compat --test go_compat "$@"
