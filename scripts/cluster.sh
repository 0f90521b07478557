#!/usr/bin/env bash
# A local jobcast cluster on loopback, to try cluster mode: sets up and builds
# (Release) like scripts/run.sh, then starts a Redis Cluster of 6 nodes (3
# primaries, one replica each: scripts/redis_cluster.py), 3 brokers on it
# (UI and API on http://127.0.0.1:8081/, :8082/, :8083/), and workers that
# know every broker. A broker or Redis node killed by hand starts again, as
# under a service manager. Ctrl-C stops everything. This run's data is in
# var/cluster/, wiped at the next start.
#   JOBCAST_CLUSTER_HTTP_PORT  the first broker's HTTP port (8081; then +1, +2)
#   JOBCAST_CLUSTER_ZMQ_PORT   the first broker's worker port (5561; then +1, +2)
#   JOBCAST_CLUSTER_NODE_TIMEOUT_MS  Redis cluster-node-timeout (2000: a failover
#                              takes a few seconds)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/setup.sh

build=${JOBCAST_RUN_BUILD:-build/release}
export CCACHE_BASEDIR="$here"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBCAST_TESTS=OFF -DJOBCAST_BENCH=OFF >/dev/null
cmake --build "$build" -j "${JOBCAST_JOBS:-2}" --target jobcast-broker jobcast-worker

# The flags below are the whole configuration: none comes from the environment.
unset JOBCAST_STORE JOBCAST_DB JOBCAST_HTTP JOBCAST_ZMQ JOBCAST_BROKER

run=var/cluster
rm -rf "$run"
mkdir -p "$run"
http_port=${JOBCAST_CLUSTER_HTTP_PORT:-8081}
zmq_port=${JOBCAST_CLUSTER_ZMQ_PORT:-5561}

pids=()
cleanup() {
  trap - INT TERM EXIT
  touch "$run/stopping"
  # The supervising loops first (so nothing starts again), then what they
  # run, then the workers, and the Redis nodes last, after the brokers.
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  local supervised=()
  for f in "$run"/*.pid; do
    [ -f "$f" ] && supervised+=("$(cat "$f")")
  done
  for p in "${supervised[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  # The brokers are not this shell's children: wait for them by pid (they
  # stop within their --shutdown-timeout, 10 s).
  for _ in $(seq 1 150); do
    local running=0
    for p in "${supervised[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
    [ $running = 0 ] && break
    sleep 0.1
  done
  if [ -n "${redis_pid:-}" ]; then kill -TERM "$redis_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# The Redis Cluster: its first line is the --store URL, then its shards, then
# a line for each node that dies and starts again.
exec {redis_out}< <(exec /usr/bin/python3 -u scripts/redis_cluster.py --dir "$run/redis" \
  --node-timeout-ms "${JOBCAST_CLUSTER_NODE_TIMEOUT_MS:-2000}")
redis_pid=$!
if ! read -r -t 120 store <&"$redis_out" || [[ $store != redis-cluster://* ]]; then
  echo "the Redis cluster did not start${store:+: $store}" >&2
  exit 1
fi
cat <&"$redis_out" &

# Runs a command again 2 s after it exits (a broker killed by hand), its
# current pid in $run/NAME.pid, until cleanup.
supervise() {
  local name=$1
  shift
  while [ ! -f "$run/stopping" ]; do
    "$@" &
    echo $! >"$run/$name.pid"
    wait $! || true
    [ -f "$run/stopping" ] && break
    echo "$name exited; it starts again in 2 s"
    sleep 2
  done
}

brokers=()
for i in 1 2 3; do
  h=$((http_port + i - 1))
  z=$((zmq_port + i - 1))
  brokers+=("tcp://127.0.0.1:$z")
  supervise "broker-$i" "$build/bin/jobcast-broker" --http "127.0.0.1:$h" --zmq "tcp://127.0.0.1:$z" \
    --store "$store" --retention 1d &
  pids+=($!)
done

for i in 1 2 3; do
  h=$((http_port + i - 1))
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$h/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$h/readyz" >/dev/null || { echo "broker-$i is not ready" >&2; exit 1; }
done

# One worker per broker, each listing every broker from its own one: a job
# submitted on any broker finds a worker there, and a worker whose broker
# dies moves to the next.
list() { local IFS=,; echo "$*"; }
for i in 0 1 2; do
  "$build/bin/jobcast-worker" --broker "$(list "${brokers[@]:i}" "${brokers[@]:0:i}")" \
    --types llm.generate,research --capacity 4 --name "cluster-llm-$((i + 1))" &
  pids+=($!)
done
"$build/bin/jobcast-worker" --broker "$(list "${brokers[@]}")" --types exec --capacity 2 \
  --name cluster-exec --exec-allow "${JOBCAST_EXEC_ALLOW:-echo,date,uname,ls,seq,sleep}" &
pids+=($!)

b1=127.0.0.1:$http_port
b2=127.0.0.1:$((http_port + 1))
b3=127.0.0.1:$((http_port + 2))
cat <<MSG

jobcast cluster is running: 3 brokers on one Redis Cluster ($store)
  UI of each broker:  http://$b1/   http://$b2/   http://$b3/
  submit on broker-1: curl -s -XPOST http://$b1/v1/jobs -d '{"type":"llm.generate","params":{"prompt":"hello","max_tokens":400,"tokens_per_second":20}}'
  stream on broker-2: curl -sN http://$b2/v1/jobs/<id>/events -H 'Accept: text/event-stream'
  kill a broker:      kill -9 \$(cat $run/broker-2.pid)    (starts again in 2 s; workers and streams move on)
  kill a primary:     kill -9 \$(cat $run/redis/node-PORT/redis.pid)    (PORT of a primary above; its
                      replica takes over, and it starts again as a replica once the cluster marked it failed)
  who is primary now: redis-cli -p PORT cluster nodes
Ctrl-C stops brokers, workers and Redis nodes.

MSG
wait -n "${pids[@]}"
