#!/usr/bin/env bash
# Regenerates python/ringlb/_core.pyi from the installed extension
# (tests/python/test_stubs.py fails when the checked-in stubs drift).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$PY" -m pybind11_stubgen ringlb._core -o "$out" >/dev/null
cp "$out/ringlb/_core.pyi" python/ringlb/_core.pyi
echo "wrote python/ringlb/_core.pyi"
