#!/usr/bin/env bash
# Installs everything jobcast needs to build, test and run, on Debian 12, as root.
# Idempotent: packages already present are left alone, so a second run takes seconds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# What building needs (JOBCAST_SETUP_PROFILE=build: only this, e.g. in the Dockerfile).
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libzmq3-dev cppzmq-dev
  libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev libboost-url1.81-dev
  libsqlite3-dev sqlite3 prometheus-cpp-dev libspdlog-dev libfmt-dev libssl-dev
  libhiredis-dev libvalijson-dev libre2-dev
)
if [ "${JOBCAST_SETUP_PROFILE:-all}" != build ]; then
  # Tests, fuzzing, the browser test, the Prometheus check of the dashboard,
  # the compose file check, real Redis nodes (redis-tools has the server binary),
  # nginx in front of cluster brokers (its config filled in by envsubst, as
  # the nginx image does) and the official JSON Schema tests the params schema
  # check is held to; valgrind for the benchmarks that count instructions
  # (bench/idle_cost.sh).
  packages+=(
    clang-format clang libclang-rt-14-dev catch2 valgrind
    curl openssl procps psmisc python3 python3-zmq python3-msgpack python3-websocket python3-yaml chromium
    prometheus docker-compose iproute2 redis-tools nginx gettext-base json-schema-test-suite
  )
  # Node.js (with its npm) may come from another package than Debian's nodejs;
  # ask for Debian's only when no node is there at all.
  command -v node >/dev/null 2>&1 || packages+=(nodejs)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi

need=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ${#need[@]} -gt 0 ] || ! dpkg-query -W -f='${Status}' libmsgpack-cxx-dev 2>/dev/null | grep -q "install ok installed"; then
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  if [ ${#need[@]} -gt 0 ]; then
    as_root apt-get install -y -q --no-install-recommends "${need[@]}"
  fi
  # libmsgpack-cxx-dev depends on libboost-dev (Boost 1.74), which conflicts with
  # libboost1.81-dev. A tiny local package says "Boost 1.81 provides libboost-dev",
  # so apt installs the header-only msgpack-cxx and stays consistent.
  if ! dpkg-query -W -f='${Status}' libmsgpack-cxx-dev 2>/dev/null | grep -q "install ok installed"; then
    tmp=$(mktemp -d)
    mkdir -p "$tmp/pkg/DEBIAN"
    cat > "$tmp/pkg/DEBIAN/control" <<CONTROL
Package: jobcast-boost-provides
Version: 1.81.0
Architecture: all
Maintainer: jobcast <jobcast@localhost>
Depends: libboost1.81-dev
Provides: libboost-dev (= 1.81.0)
Description: lets packages that depend on libboost-dev use Boost 1.81
CONTROL
    dpkg-deb --build "$tmp/pkg" "$tmp/jobcast-boost-provides.deb" >/dev/null
    as_root apt-get install -y -q "$tmp/jobcast-boost-provides.deb"
    as_root apt-get install -y -q --no-install-recommends libmsgpack-cxx-dev
    rm -rf "$tmp"
  fi
fi

# JavaScript dependencies for the client tests and the browser test (if the
# project declares any); `npm ci` is skipped when node_modules is up to date.
if [ -f "$here/package.json" ] && [ "${JOBCAST_SKIP_NPM:-0}" != 1 ]; then
  if [ ! -d "$here/node_modules" ] || [ "$here/package-lock.json" -nt "$here/node_modules" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error && touch node_modules)
  fi
fi
