#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang-14, ASan + UBSan) and runs each
# for a bounded time, starting from its checked-in seeds:
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 45)
# Each target works on a temporary copy of fuzz/corpus/<target>/, so the
# inputs it discovers never land in the repository; a crash, sanitizer report
# or leak is kept in build-fuzz/artifacts/<target>/ and fails the script
# (after every target has run). Reproduce one with build-fuzz/fuzz/<target> FILE.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-45}"
case "$seconds" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;;
esac
for tool in clang-14 clang++-14; do
  command -v "$tool" >/dev/null || {
    echo "fuzz.sh needs $tool: apt-get install clang-14 libfuzzer-14-dev libclang-rt-14-dev" >&2
    exit 2
  }
done

build=build-fuzz
cmake -S . -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_BUILD_TYPE=Debug -DRINGLB_FUZZ=ON -DRINGLB_PYTHON=OFF -DRINGLB_TESTS=OFF \
  -DRINGLB_WERROR=ON >/dev/null
ninja -C "$build" -j "$(nproc)" fuzz-targets

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Halt on the first report, with a stack for UBSan too (its checks are
# already fatal: -fno-sanitize-recover=all).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
summary=()
for source in fuzz/fuzz_*.cpp; do
  target="$(basename "$source" .cpp)"
  corpus="$work/$target"
  artifacts="$build/artifacts/$target"
  rm -rf "$artifacts"  # only this run's findings
  mkdir -p "$corpus" "$artifacts"
  cp -R "fuzz/corpus/$target/." "$corpus/"
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
        -artifact_prefix="$artifacts/")
  if [ -f "fuzz/$target.dict" ]; then args+=(-dict="fuzz/$target.dict"); fi
  echo "-- $target: ${seconds}s from $(find "$corpus" -type f | wc -l) seeds"
  log="$work/$target.log"
  status=0
  "$build/fuzz/$target" "${args[@]}" "$corpus" >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  if [ "$status" -ne 0 ]; then
    # The report: from the sanitizer's or libFuzzer's first line to the artifact.
    report='^==[0-9]+==|^fuzz_[a-z_]+: |^SUMMARY|ERROR: libFuzzer|ALARM|out-of-memory'
    if grep -q -E "$report" "$log"; then
      grep -E -A60 "$report" "$log" | head -n 120 >&2 || true
    else
      tail -n 60 "$log" >&2
    fi
    failed+=("$target")
    summary+=("$(printf '%-24s %12s executions  FAILED (exit %s; see %s)' "$target" "${runs:-?}" "$status" "$artifacts")")
  else
    summary+=("$(printf '%-24s %12s executions  ok' "$target" "${runs:-?}")")
  fi
done

echo "== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz targets failed: ${failed[*]}" >&2
  exit 1
fi
