#!/usr/bin/env bash
# jobcast side by side with nginx + nchan, NATS JetStream and HTTP polling, in
# one run on this machine, with one load generator (bench/compare/bench_compare.cpp):
#   1. installs the peers from Debian when missing (nginx-light,
#      libnginx-mod-nchan, nats-server; idempotent: nothing to do the second time);
#   2. builds the Release broker, workers and load generator (build/release);
#   3. runs jobcast-bench: each system in turn is started on loopback with the
#      configuration files of bench/compare/, measured and stopped; then the
#      machine's raw limits. Bounded to 15 minutes (about 8 on 2 cores).
# Prints one table; JSON in build/release/bench-compare.json. Extra arguments go
# to jobcast-bench, e.g. --systems jobcast,nats --scenario latency,resume.
#
# Latency under contention: each latency row is measured twice, quiet and then
# with one thread of jobcast-bench spinning in a busy loop for the whole row
# (--cpu-hog 1; rows "..., 1 CPU hog" beside the quiet ones). --cpu-hog N
# spins N threads, --cpu-hog 0 measures quiet only.
#
#   bench/compare.sh [--json PATH] [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."

peers=(nginx-light libnginx-mod-nchan nats-server)
need=()
for p in "${peers[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends "${need[@]}"
fi

export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBCAST_TESTS=OFF \
  -DJOBCAST_BENCH=ON >/dev/null
cmake --build build/release --target jobcast-broker jobcast-bench-worker \
  jobcast-bench-stream-worker jobcast-bench jobcast-bench-limits -j2

# 15,000 idle WebSocket connections need as many descriptors in the load
# generator: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)"
echo "uptime: $(uptime)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "peers: $(nginx -v 2>&1) + nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan), $(nats-server --version)"
exec timeout --signal=TERM --kill-after=15 900 \
  build/release/bin/jobcast-bench --bin-dir build/release/bin --conf-dir bench/compare \
  --json build/release/bench-compare.json --cpu-hog 1 "$@"
