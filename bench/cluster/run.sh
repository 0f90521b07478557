#!/usr/bin/env bash
# Builds the Release broker, the bench workers and jobcast-bench-cluster, then
# measures one node (SQLite) and a cluster (3 brokers on a Redis Cluster of 3
# primaries + 3 replicas on loopback) side by side: ingest, dispatch, fan-out to
# other brokers, latency local vs remote, resume, and how long streams and
# workers take to go on after a broker SIGKILL and a Redis primary SIGKILL
# (about 3 minutes on a 2-core machine). Needs redis-tools (scripts/setup.sh).
# Extra arguments go to jobcast-bench-cluster, e.g. --scenario ingest or
# --perf-out build/release/cluster-ingest.perf.
#
#   bench/cluster/run.sh [--json build/release/bench-cluster.json] [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBCAST_TESTS=OFF \
  -DJOBCAST_BENCH=ON >/dev/null
cmake --build build/release --target jobcast-broker jobcast-bench-cluster jobcast-bench-worker \
  jobcast-bench-stream-worker -j2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
exec timeout --signal=TERM --kill-after=10 600 \
  build/release/bin/jobcast-bench-cluster --bin-dir build/release/bin \
  --modes single,cluster --scenario all --redis-script scripts/redis_cluster.py \
  --node-timeout-ms 2000 --json build/release/bench-cluster.json "$@"
