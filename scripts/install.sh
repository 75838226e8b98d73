#!/usr/bin/env bash
# Set-up on a fresh Debian 12 / Ubuntu machine: system packages, then ringlb
# and its Python dependencies into ./.venv. Re-running is cheap (incremental build).
#   bash scripts/install.sh [EXTRAS]     e.g. bash scripts/install.sh test,notebooks
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
while read -r pkg; do
  case "$pkg" in ''|'#'*) continue ;; esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/apt-packages.txt
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# The build backend lives in .venv itself (pyproject's [build-system] requires) and pip
# builds without an isolated environment: pybind11's headers then keep one path, so the
# build folder (build/<wheel tag>) stays incremental across installs and the wheel test.
mapfile -t build_requires < <(.venv/bin/python - <<'PY'
import re
text = open("pyproject.toml").read()
block = re.search(r"^\[build-system\]\s*\nrequires\s*=\s*\[(.*?)\]", text, re.M | re.S).group(1)
print("\n".join(re.findall(r'"([^"]+)"', block)))
PY
)
.venv/bin/python -m pip install -q "${build_requires[@]}"
# One compile job per core (ninja alone would run cores + 2).
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
extras="${1:-}"
target="."
if [ -n "$extras" ]; then target=".[$extras]"; fi
.venv/bin/python -m pip install -q --no-build-isolation "$target"
echo "ringlb installed in $(pwd)/.venv: run .venv/bin/ringlb serve (or source .venv/bin/activate)"
