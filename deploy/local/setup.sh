#!/usr/bin/env bash
# Installs everything sidecarless needs on this node, idempotently: a second run only checks stamps.
#   1. Debian packages (clang/libbpf/bpftool for bpf/, clickhouse-server for the HTTP path, nftables for loss tests,
#      procps for the sysctl some tests set inside their pods, nginx-light, curl and wget: the HTTP tests' foreign
#      servers and clients and bench http-live's server; haproxy: bench overhead's sidecar proxies)
#   2. npm packages (only when package-lock.json changed)
#   3. Kafka jars from Maven Central into .stack/kafka-libs, and ZooKeeper's (the ClickHouse cluster tests') into
#      .stack/zookeeper-libs (each only when its pom changed)
#   4. kube-apiserver and etcd built from Go modules (deploy/local/kube/build.sh; cached outside the work tree by
#      version: minutes once, then a check)
#   5. tracefs and bpffs mounts, bpf/ objects (make decides what is stale) and the TypeScript build
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
stack="$root/.stack"
mkdir -p "$stack"

log() { printf '[setup] %s\n' "$*" >&2; }

apt_packages=(clang-16 llvm-16 libbpf-dev bpftool iproute2 clickhouse-server nftables make procps nginx-light curl wget haproxy)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { log "need root to install: ${missing[*]}"; exit 1; }
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

npm_sum=$(sha256sum package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
if [ ! -d node_modules ] || ! stamp_ok "$stack/npm.stamp" "$npm_sum"; then
  log "installing npm packages"
  # `npm install`, not `npm ci`: the lock records only this platform's build of chdb's optional native package,
  # which `npm ci` rejects as out of sync; install still follows the lock's versions.
  npm install --no-audit --no-fund --loglevel=error
  npm_sum=$(sha256sum package.json package-lock.json | sha256sum | cut -c1-16)
  echo "$npm_sum" > "$stack/npm.stamp"
fi

# The jars a pom pins, into .stack/<dir>, collected again only when the pom changed.
collect_jars() {
  local what=$1 pom=$2 dir=$3
  local sum
  sum=$(sha256sum "$pom" | cut -c1-16)
  if ! stamp_ok "$stack/$dir.stamp" "$sum"; then
    log "collecting $what jars with Maven"
    rm -rf "${stack:?}/$dir"
    mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$stack/$dir"
    echo "$sum" > "$stack/$dir.stamp"
  fi
}
collect_jars Kafka deploy/local/kafka/pom.xml kafka-libs
collect_jars ZooKeeper deploy/local/zookeeper/pom.xml zookeeper-libs

bash deploy/local/kube/build.sh >/dev/null

# Kernel filesystems the programs need; a fresh VM boots without them mounted.
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

make -s -C bpf
npx tsc -p tsconfig.json
# Compiled files whose source is gone (moved or deleted) would still be importable, and their tests still found.
find dist -name '*.js' | while read -r js; do
  source="${js#dist/}"
  [ -f "${source%.js}.ts" ] || rm -f "$js" "$js.map"
done
find dist -type d -empty -delete
