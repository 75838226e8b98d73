#!/usr/bin/env bash
# Every test ringlb has, from a fresh machine: installs what it needs, then
#   1. the C++ suite (GoogleTest via ctest) built with -Werror,
#   2. the same suite under AddressSanitizer + UndefinedBehaviorSanitizer, then ThreadSanitizer,
#      each followed by the replica server's tests against its sanitized build,
#   3. every libFuzzer target (fuzz/) for 45 s from its seeds (scripts/fuzz.sh),
#   4. pytest (ring, replica, router, heartbeat, backends incl. the real Docker
#      engine, launcher, CLI, quality, notebooks, type stubs).
set -euo pipefail
cd "$(dirname "$0")/.."

export RINGLB_WERROR=ON
bash scripts/install.sh test

jobs="$(nproc)"
echo "== C++ tests (-Werror)"
cmake -S . -B build-test -G Ninja -DRINGLB_TESTS=ON -DRINGLB_PYTHON=OFF -DRINGLB_WERROR=ON >/dev/null
ninja -C build-test -j "$jobs"
ctest --test-dir build-test --output-on-failure --timeout 300

echo "== C++ tests under ASan + UBSan"
cmake -S . -B build-asan -G Ninja -DRINGLB_TESTS=ON -DRINGLB_PYTHON=OFF -DRINGLB_WERROR=ON \
  -DRINGLB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
ninja -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure --timeout 600
# The replica server is its own executable: its tests drive the sanitized build.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  RINGLB_REPLICA_BINARY="$PWD/build-asan/cpp/ringlb-replica" \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/python/test_replica.py

echo "== C++ tests under ThreadSanitizer"
cmake -S . -B build-tsan -G Ninja -DRINGLB_TESTS=ON -DRINGLB_PYTHON=OFF -DRINGLB_WERROR=ON \
  -DRINGLB_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug >/dev/null
ninja -C build-tsan -j "$jobs"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir build-tsan --output-on-failure --timeout 600
TSAN_OPTIONS=halt_on_error=1 RINGLB_REPLICA_BINARY="$PWD/build-tsan/cpp/ringlb-replica" \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/python/test_replica.py

echo "== fuzz targets"
bash scripts/fuzz.sh 45

echo "== Python tests"
.venv/bin/python -m pytest "$@"
