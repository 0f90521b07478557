#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build/fuzz and runs each one for
# JOBCAST_FUZZ_SECONDS (default 60) over a scratch copy of its seed corpus in
# tests/fuzz/corpus/<name> (the repository's corpus is never grown here).
# Exits non-zero when a target crashes, trips a sanitizer or fails a check; the
# input that did it is kept in build/fuzz/artifacts/<target>/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${JOBCAST_FUZZ_SECONDS:-60}
build="$here/build/fuzz"
targets=(fuzz_params_schema)

CXX=clang++ cmake -S "$here" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DJOBCAST_FUZZ=ON -DJOBCAST_TESTS=ON -DJOBCAST_BENCH=OFF >/dev/null
# Only the fuzz targets: the rest of the tree is configured but not built.
cmake --build "$build" --target "${targets[@]}" -j "${JOBCAST_BUILD_JOBS:-2}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in "${targets[@]}"; do
  name=${target#fuzz_}
  corpus="$scratch/$name"
  mkdir -p "$corpus" "$build/artifacts/$target"
  if [ -d "$here/tests/fuzz/corpus/$name" ]; then
    cp -R "$here/tests/fuzz/corpus/$name/." "$corpus/"
  fi
  echo "== $target: ${seconds}s"
  # -timeout: one input taking seconds is a bug (quadratic work) on a hot path.
  if "$build/tests/fuzz/$target" "$corpus" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$target/" 2>"$scratch/$target.log"; then
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$scratch/$target.log" || true
  else
    tail -n 60 "$scratch/$target.log"
    echo "!! $target failed; reproducer in $build/artifacts/$target/" >&2
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: no crashes"
