#!/usr/bin/env bash
# Builds the Release binaries and runs both end-to-end scenarios of
# jobcast-bench-ingest (bounded: about a minute on a 2-core machine).
# Extra arguments go to jobcast-bench-ingest, e.g. --repeat 3 or --scenario ingest.
#
#   bench/ingest/run.sh [--json build/release/bench-ingest.json] [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBCAST_TESTS=OFF \
  -DJOBCAST_BENCH=ON >/dev/null
cmake --build build/release --target jobcast-broker jobcast-worker jobcast-bench-ingest \
  jobcast-bench-worker -j2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
exec build/release/bin/jobcast-bench-ingest --bin-dir build/release/bin \
  --scenario all --repeat 2 \
  --workers 4 --capacity 4 --jobs-per-worker 4 --events 100000 --size 64 \
  --dispatch-jobs 10000 --dispatch-capacity 4 \
  --timeout 60 --json build/release/bench-ingest.json "$@"
