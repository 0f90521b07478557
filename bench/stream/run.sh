#!/usr/bin/env bash
# Builds the Release broker, the publishers and jobcast-bench-stream, then runs
# every streaming scenario twice (fanout, latency, idle, resume), bounded: about
# two minutes on a 2-core machine, at most five. Extra arguments go to
# jobcast-bench-stream, e.g. --scenario fanout --repeat 1 or --threads 2.
#
#   bench/stream/run.sh [--json build/release/bench-stream.json] [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBCAST_TESTS=OFF \
  -DJOBCAST_BENCH=ON >/dev/null
cmake --build build/release --target jobcast-broker jobcast-bench-stream \
  jobcast-bench-stream-worker jobcast-bench-worker -j2
echo "uptime: $(uptime)"
exec timeout --signal=TERM --kill-after=10 300 \
  build/release/bin/jobcast-bench-stream --bin-dir build/release/bin \
  --scenario all --repeat 2 --threads 1 \
  --fanout-subs 1000 --fanout-events 30000 --size 16 \
  --latency 1000x200,10000x100,1000x50,10000x10 --latency-seconds 5 --warmup-ms 500 \
  --idle-conns 10000 --resume-events 100000 --resume-repeat 3 \
  --timeout 60 --json build/release/bench-stream.json "$@"
