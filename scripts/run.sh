#!/usr/bin/env bash
# Sets up, builds (Release) and runs jobcast: one broker on an embedded SQLite
# file, two workers (llm.generate + research, and exec with a small allow-list),
# the web UI at http://HOST:PORT/ (https:// with JOBCAST_TLS_CERT and
# JOBCAST_TLS_KEY set). Ctrl-C stops everything.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/setup.sh

build=${JOBCAST_RUN_BUILD:-build/release}
export CCACHE_BASEDIR="$here"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBCAST_TESTS=OFF -DJOBCAST_BENCH=OFF >/dev/null
targets=(jobcast-broker jobcast-worker)
[ -f cli/CMakeLists.txt ] && targets+=(jobcast)
cmake --build "$build" -j "${JOBCAST_JOBS:-2}" --target "${targets[@]}"

mkdir -p var
export JOBCAST_HTTP=${JOBCAST_HTTP:-127.0.0.1:8080}
export JOBCAST_ZMQ=${JOBCAST_ZMQ:-tcp://127.0.0.1:5555}
export JOBCAST_DB=${JOBCAST_DB:-var/jobcast.db}
export JOBCAST_BROKER=${JOBCAST_BROKER:-$JOBCAST_ZMQ}

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$build/bin/jobcast-broker" &
pids+=($!)
# Workers reconnect by themselves, so they may start before the broker binds.
"$build/bin/jobcast-worker" --types llm.generate,research --capacity 8 --name demo-llm &
pids+=($!)
"$build/bin/jobcast-worker" --types exec --capacity 2 --name demo-exec \
  --exec-allow "${JOBCAST_EXEC_ALLOW:-echo,date,uname,ls,seq,sleep}" &
pids+=($!)

scheme=http
if [ -n "${JOBCAST_TLS_CERT:-}" ]; then scheme=https; fi
cat <<MSG

jobcast is running: $scheme://$JOBCAST_HTTP/   (database: $JOBCAST_DB)
  submit:  curl -s -XPOST $scheme://$JOBCAST_HTTP/v1/jobs -d '{"type":"llm.generate","params":{"prompt":"hello","max_tokens":40}}'
  events:  curl -s $scheme://$JOBCAST_HTTP/v1/jobs/<id>/events
  metrics: curl -s $scheme://$JOBCAST_HTTP/metrics
Ctrl-C stops broker and workers.

MSG
wait -n "${pids[@]}"
