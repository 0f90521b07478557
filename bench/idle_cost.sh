#!/usr/bin/env bash
# What idle WebSockets cost the broker, in instructions counted by callgrind,
# so the figure holds on a busy machine too (wall-clock CPU% does not). The
# Release broker runs under callgrind; the broker's own instructions over
# --seconds with no client are counted, then over the same time with
# --connections idle WebSockets open (bench/idle_ws.mjs, which answers pings
# as browsers do). Prints instructions per idle connection per minute and
# per ping cycle (the pings the clients counted in the same window).
# Arguments after `--` go to the broker, e.g. `-- --ws-ping-interval 15s`
# (with the broker's defaults the window must cover two ping intervals or
# more: --seconds 320 at the default 150 s). --bin DIR runs another build's
# broker (e.g. main's, to compare).
#
#   bench/idle_cost.sh [--connections 200] [--seconds 120] [--bin DIR] [-- BROKER_ARGS...]
#
# Needs valgrind, node with `npm ci` done, and a Release build:
#   cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBCAST_TESTS=OFF
#   cmake --build build/release --target jobcast-broker
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
connections=200
seconds=120
bin_dir="$here/build/release/bin"
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --bin) bin_dir=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--connections N] [--seconds S] [--bin DIR] [-- BROKER_ARGS...]" >&2; exit 2 ;;
  esac
done
broker_args=("$@")
broker_bin="$bin_dir/jobcast-broker"
[ -x "$broker_bin" ] || { echo "build the Release broker first (see the header)" >&2; exit 1; }

dir=$(mktemp -d /tmp/jobcast-idle-cost-XXXXXX)
broker=""
clients=""
cleanup() {
  [ -n "$clients" ] && kill "$clients" 2>/dev/null || true
  [ -n "$broker" ] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(free_port)
zmq=$(free_port)

valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.%p" \
  "$broker_bin" --http "127.0.0.1:$http" --zmq "tcp://127.0.0.1:$zmq" --db "$dir/jobcast.db" \
  "${broker_args[@]}" >"$dir/broker.log" 2>&1 &
broker=$!
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$http/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "http://127.0.0.1:$http/healthz" >/dev/null || { cat "$dir/broker.log" >&2; exit 1; }

# Instructions of the broker from now until `seconds` later (zeroed, then dumped).
count_for() {
  callgrind_control -z "$broker" >/dev/null 2>&1
  sleep "$seconds"
  callgrind_control -d "$broker" >/dev/null 2>&1
  local dump
  dump=$(ls -t "$dir"/callgrind.*.* | head -1)
  awk '/^(summary|totals):/ { print $2; exit }' "$dump"
}

alone=$(count_for)
node "$here/bench/idle_ws.mjs" --url "ws://127.0.0.1:$http/v1/ws" --connections "$connections" \
  --seconds $((seconds + 30)) >"$dir/clients.log" 2>&1 &
clients=$!
for _ in $(seq 1 600); do
  grep -q '^open' "$dir/clients.log" && break
  sleep 0.2
done
grep -q '^open' "$dir/clients.log" || { cat "$dir/clients.log" >&2; exit 1; }
sleep 10  # the connections' set-up is not idle cost
pings_now() { awk '/^pings / { n = $2 } END { print n + 0 }' "$dir/clients.log"; }
pings0=$(pings_now)
held=$(count_for)
pings=$(( $(pings_now) - pings0 ))
wait "$clients" || { echo "the broker closed idle connections:" >&2; cat "$dir/clients.log" >&2; exit 1; }
clients=""

awk -v a="$alone" -v h="$held" -v p="$pings" -v n="$connections" -v s="$seconds" -v k="${broker_args[*]:-defaults}" 'BEGIN {
  printf "broker %s, %d s each\n", k, s
  printf "  broker alone:                 %.0f instructions/min\n", a * 60 / s
  printf "  with %d idle WebSockets:     %.0f instructions/min\n", n, h * 60 / s
  printf "  per idle WebSocket:           %.0f instructions/min\n", (h - a) * 60 / s / n
  printf "  pings in the window:          %d\n", p
  if (p > 0) printf "  per ping cycle:               %.0f instructions\n", (h - a) / p
}'
