#!/usr/bin/env bash
# Sets up, builds (Debug + AddressSanitizer + UndefinedBehaviorSanitizer) and
# runs the whole jobcast test suite through ctest.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/setup.sh

build=${JOBCAST_TEST_BUILD:-build/test}
export CCACHE_NOHASHDIR=1 CCACHE_BASEDIR="$here"
cmake -S . -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
  -DJOBCAST_SANITIZE=ON -DJOBCAST_BENCH=OFF -DJOBCAST_TESTS=ON >/dev/null
cmake --build "$build" -j "${JOBCAST_JOBS:-2}"

# Fuzz the decoders for a bounded time when clang's libFuzzer is available.
if [ -x scripts/fuzz.sh ] && command -v clang++ >/dev/null; then
  JOBCAST_FUZZ_SECONDS=${JOBCAST_FUZZ_SECONDS:-20} bash scripts/fuzz.sh
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
ctest --output-on-failure -j "${JOBCAST_JOBS:-2}" --timeout 600
