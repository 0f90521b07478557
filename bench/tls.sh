#!/usr/bin/env bash
# What native TLS costs the broker: the same Release broker on the same
# machine, once plain and once with --tls-cert, replaying one finished job of
# EVENTS events (jobcast-bench-worker's bench.emit, SIZE-byte tokens) to
# CLIENTS concurrent SSE readers (curl), ROUNDS times. Reports delivered
# events/s, the broker's CPU-seconds per million events delivered (from
# /proc/PID/stat), and, with TLS, full and resumed handshakes per second
# (openssl s_time) with the broker's CPU per handshake. Each reader's stream is
# checked: every seq from 1 to the last, once. Then the broker's RSS per idle
# WebSocket (IDLE connections, Python clients), plain and over TLS.
#
#   bench/tls.sh   # EVENTS=200000 SIZE=64 CLIENTS=4 ROUNDS=3 HANDSHAKE_SECONDS=5 IDLE=2000
set -euo pipefail
cd "$(dirname "$0")/.."

events=${EVENTS:-200000}
size=${SIZE:-64}
clients=${CLIENTS:-4}
rounds=${ROUNDS:-3}
handshake_seconds=${HANDSHAKE_SECONDS:-5}

export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DJOBCAST_TESTS=OFF \
  -DJOBCAST_BENCH=ON >/dev/null
cmake --build build/release --target jobcast-broker jobcast-bench-worker -j2 >/dev/null
bin=build/release/bin

dir=$(mktemp -d /tmp/jobcast-bench-tls.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1

ticks=$(getconf CLK_TCK)
cpu_seconds() {  # utime + stime of a process, in seconds
  awk -v t="$ticks" '{ sub(/.*\) /, ""); printf "%.3f", ($12 + $13) / t }' "/proc/$1/stat"
}

run() {
  local mode=$1 args=() scheme=http curl_tls=()
  if [ "$mode" = tls ]; then
    args=(--tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem")
    scheme=https
    curl_tls=(--cacert "$dir/cert.pem")
  fi
  local log="$dir/broker-$mode.log"
  # Thousands of connections from this one address: no per-IP cap.
  "$bin/jobcast-broker" --http 127.0.0.1:0 --zmq tcp://127.0.0.1:0 --db "$dir/$mode.db" \
    --max-connections-per-ip 0 "${args[@]}" >"$log" 2>&1 &
  local broker=$!
  pids+=("$broker")
  local line=""
  for _ in $(seq 200); do
    line=$(grep -m1 -o 'listening http=[^ ]* zmq=[^ ]*' "$log" || true)
    [ -n "$line" ] && break
    sleep 0.05
  done
  [ -n "$line" ] || { echo "broker did not start: $(cat "$log")" >&2; exit 1; }
  local http zmq
  http=$(sed -E 's/.*http=127.0.0.1:([0-9]+).*/localhost:\1/' <<<"$line")
  zmq=$(sed -E 's/.*zmq=([^ ]+).*/\1/' <<<"$line")
  "$bin/jobcast-bench-worker" --broker "$zmq" --capacity 1 >"$dir/worker-$mode.log" 2>&1 &
  pids+=("$!")

  local url="$scheme://$http"
  local id
  id=$(curl -sf "${curl_tls[@]}" -X POST -H 'Content-Type: application/json' \
    -d "{\"type\":\"bench.emit\",\"params\":{\"count\":$events,\"size\":$size}}" \
    "$url/v1/jobs" | sed -E 's/.*"id":"([^"]+)".*/\1/')
  local last=0
  for _ in $(seq 1200); do
    local job
    job=$(curl -sf "${curl_tls[@]}" "$url/v1/jobs/$id")
    if [[ $job == *'"state":"succeeded"'* ]]; then
      last=$(sed -E 's/.*"last_seq":([0-9]+).*/\1/' <<<"$job")
      break
    fi
    sleep 0.1
  done
  [ "$last" -gt 0 ] || { echo "the job did not finish" >&2; exit 1; }

  local cpu0 t0 cpu1 t1
  cpu0=$(cpu_seconds "$broker")
  t0=$(date +%s.%N)
  for r in $(seq "$rounds"); do
    local readers=()
    for c in $(seq "$clients"); do
      curl -sf "${curl_tls[@]}" -N -H 'Accept: text/event-stream' \
        "$url/v1/jobs/$id/events" -o "$dir/sse-$mode-$c" &
      readers+=("$!")
    done
    wait "${readers[@]}"
    for c in $(seq "$clients"); do
      local ids
      ids=$(grep -c '^id: ' "$dir/sse-$mode-$c" || true)
      local ordered
      ordered=$(awk '/^id: /{ if ($2 != ++n) bad=1 } END { print bad ? "bad" : "ok" }' "$dir/sse-$mode-$c")
      if [ "$ids" != "$last" ] || [ "$ordered" != ok ]; then
        echo "$mode: reader $c got $ids events ($ordered order), expected 1..$last" >&2
        exit 1
      fi
    done
  done
  t1=$(date +%s.%N)
  cpu1=$(cpu_seconds "$broker")
  local delivered=$((last * clients * rounds))
  awk -v m="$mode" -v d="$delivered" -v t0="$t0" -v t1="$t1" -v c0="$cpu0" -v c1="$cpu1" \
    -v n="$clients" -v r="$rounds" -v s="$size" 'BEGIN {
      printf "%-5s SSE replay, %d readers x %d rounds, %d-byte tokens: %d events in %.2f s = %.0f events/s; broker %.2f CPU-s per 1M events\n",
        m, n, r, s, d, t1 - t0, d / (t1 - t0), (c1 - c0) / d * 1e6 }'

  # Idle WebSockets: the broker's RSS per open connection.
  /usr/bin/python3 - "$scheme" "$http" "$dir/cert.pem" "$broker" "${IDLE:-2000}" <<'PY'
import ssl, sys, time, websocket
scheme, http, cafile, pid, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
ws_scheme = "wss" if scheme == "https" else "ws"
opt = {"context": ssl.create_default_context(cafile=cafile)} if scheme == "https" else None
time.sleep(0.5)
before = rss_kib()
conns = [websocket.create_connection(f"{ws_scheme}://{http}/v1/ws", sslopt=opt) for _ in range(n)]
time.sleep(1.0)
after = rss_kib()
print(f"{'tls' if scheme == 'https' else 'plain':5s} idle WebSockets: {n} open, broker RSS +{(after - before) / 1024:.1f} MiB = {(after - before) / n:.1f} KiB each")
for c in conns:
    c.close()
PY

  if [ "$mode" = tls ]; then
    local port=${http##*:}
    for kind in new reuse; do
      cpu0=$(cpu_seconds "$broker")
      local out
      out=$(openssl s_time -connect "127.0.0.1:$port" -"$kind" -time "$handshake_seconds" 2>/dev/null |
        grep -m1 'connections in')
      cpu1=$(cpu_seconds "$broker")
      local conns secs
      conns=$(awk '{print $1}' <<<"$out")
      secs=$(awk '{print $4}' <<<"$out")
      awk -v k="$kind" -v n="$conns" -v s="$secs" -v c="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{print b-a}')" \
        'BEGIN { printf "tls   handshakes (%s): %.0f/s; broker %.0f µs CPU each\n",
          k == "new" ? "full, ECDSA P-256" : "resumed", n / s, c / n * 1e6 }'
    done
  fi
  kill "$broker" "${pids[-1]}" 2>/dev/null || true
  wait "$broker" 2>/dev/null || true
}

echo "uptime: $(uptime)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(openssl version)"
run plain
run tls
