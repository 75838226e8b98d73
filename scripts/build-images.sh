#!/usr/bin/env bash
# Build the balancer image (docker/Dockerfile) from ringlb's wheel; nothing is pulled
# when no registry answers.
#
#   bash scripts/build-images.sh [--tag TAG] [--base IMAGE] [--local-base] [--wheel WHEEL]
#                                [--label KEY=VALUE]...
#   bash scripts/build-images.sh debian-base TAG [--label KEY=VALUE]...
#
# The base: --base IMAGE (it must be on this host), else python:3.11-slim-bookworm when
# it is here or `docker pull` gets it, else (or with --local-base) a Debian bookworm
# made here with mmdebstrap and `docker import`ed as LOCAL_BASE (kept for later builds).
# The wheel: --wheel WHEEL, else built from this tree as README's "Building a wheel"
# says (python -m build, auditwheel repair), incrementally in build/. Its dependencies
# are downloaded as wheels on the host (pip's cache), so the image build is offline.
# The image is tagged TAG (default ringlb/balancer:latest); the build stage is removed. `debian-base TAG` makes only the mmdebstrap base (tests/python use it too).
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_BASE="python:3.11-slim-bookworm"
LOCAL_BASE="ringlb-local/debian-python:bookworm"
PYTHON="${PYTHON:-.venv/bin/python}"
# The classic builder: BuildKit keeps no stage images, but is not on every Docker 20.10.
export DOCKER_BUILDKIT=0

die() { echo "build-images: $*" >&2; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# Debian bookworm minbase with python3 and its venv module (ensurepip's wheels): what
# the wheel and pip need, and nothing else (no docs, man pages or locales).
debian_base() {
  local tag="$1"; shift
  local changes=()
  for label in "$@"; do changes+=(--change "LABEL $label"); done
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (scripts/apt-packages.txt)"
  echo "build-images: making $tag with mmdebstrap" >&2
  # Imported under a temporary name, tagged only when mmdebstrap succeeded too: a
  # failed run must not leave a half base under the tag that later builds trust.
  # The merged-usr hook makes /bin etc. links itself: without it bookworm's usrmerge
  # package is installed, and perl with it (~45 MB). Unsafe io: no fsync, it is a tarball.
  local tmp="ringlb-local/partial:$$" log status=0
  log="$(mktemp -t ringlb-mmdebstrap-XXXXXX)"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --dpkgopt=force-unsafe-io \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' bookworm - 2>"$log" \
    | docker import "${changes[@]}" - "$tmp" >/dev/null || status=$?
  if [ "$status" -eq 0 ]; then docker tag "$tmp" "$tag"; else tail -20 "$log" >&2; fi
  rm -f "$log"
  docker rmi "$tmp" >/dev/null 2>&1 || true
  [ "$status" -eq 0 ] || die "making the base $tag failed (exit $status)"
}

if [ "${1:-}" = "debian-base" ]; then
  [ $# -ge 2 ] || die "usage: $0 debian-base TAG [--label KEY=VALUE]..."
  tag="$2"; shift 2
  labels=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --label) labels+=("$2"); shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  debian_base "$tag" "${labels[@]}"
  exit 0
fi

tag="ringlb/balancer:latest"; base=""; local_base=0; wheel=""; labels=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --base) base="$2"; shift 2 ;;
    --local-base) local_base=1; shift ;;
    --wheel) wheel="$2"; shift 2 ;;
    --label) labels+=("$2"); shift 2 ;;
    *) die "unknown argument $1 (see the head of $0)" ;;
  esac
done

if [ -n "$base" ]; then
  have_image "$base" || die "base image $base is not on this host"
elif [ "$local_base" -eq 0 ] && { have_image "$DEFAULT_BASE" \
    || timeout 120 docker pull -q "$DEFAULT_BASE" >/dev/null 2>&1; }; then
  base="$DEFAULT_BASE"
else
  [ "$local_base" -eq 1 ] || echo "build-images: no registry gives $DEFAULT_BASE: using $LOCAL_BASE" >&2
  base="$LOCAL_BASE"
  have_image "$base" || debian_base "$base"
fi

ctx="$(mktemp -d -t ringlb-balancer-XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/wheels"

if [ -z "$wheel" ]; then
  [ -x "$PYTHON" ] || die "$PYTHON is missing: run scripts/install.sh test first (or PYTHON=...)"
  # The image's Python is bookworm's 3.11: the wheel must be cp311.
  pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [ "$pyver" = "3.11" ] || die "$PYTHON is Python $pyver; the image needs a cp311 wheel (--wheel)"
  venv_bin="$(dirname "$PYTHON")"
  # As the build folder was configured (scripts/install.sh), so the build stays incremental.
  werror="$(grep -h '^RINGLB_WERROR:' build/*/CMakeCache.txt 2>/dev/null | head -1 | cut -d= -f2 || true)"
  case "${werror^^}" in ON|TRUE|1) werror=ON ;; *) werror=OFF ;; esac
  echo "build-images: building the wheel ($SECONDS s)" >&2
  PATH="$venv_bin:$PATH" RINGLB_WERROR="${RINGLB_WERROR:-$werror}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PYTHON" -m build --wheel --no-isolation --outdir "$ctx/raw" . >"$ctx/build.log" 2>&1 \
    || { tail -30 "$ctx/build.log" >&2; die "python -m build failed"; }
  PATH="$venv_bin:$PATH" auditwheel repair --wheel-dir "$ctx/wheels" "$ctx"/raw/ringlb-*.whl \
    >"$ctx/repair.log" 2>&1 || { cat "$ctx/repair.log" >&2; die "auditwheel repair failed"; }
else
  [ -f "$wheel" ] || die "no wheel at $wheel"
  cp "$wheel" "$ctx/wheels/"
  [ -x "$PYTHON" ] || PYTHON=python3  # only pip download needs it then
fi
echo "build-images: downloading the dependencies' wheels ($SECONDS s)" >&2
# pip's own wheel too: the image build runs pip from it (docker/Dockerfile).
"$PYTHON" -m pip download --quiet --only-binary :all: --python-version 3.11 \
  --dest "$ctx/wheels" "$ctx"/wheels/ringlb-*.whl pip

build_labels=()
for label in "${labels[@]}"; do build_labels+=(--label "$label"); done
# The build stage under a tag of its own first, so that it can be removed afterwards (the
# classic builder would leave it as an untagged image); the second build reuses it.
stage="ringlb-local/balancer-build:$$"
echo "build-images: building $tag from $base ($SECONDS s)" >&2
status=0
docker build --quiet -f docker/Dockerfile --build-arg "BASE=$base" --target build \
    -t "$stage" "$ctx" >/dev/null \
  && docker build --quiet -f docker/Dockerfile --build-arg "BASE=$base" \
    "${build_labels[@]}" -t "$tag" "$ctx" >/dev/null \
  || status=$?
docker rmi "$stage" >/dev/null 2>&1 || true
[ "$status" -eq 0 ] || die "docker build failed"
echo "build-images: done ($SECONDS s)" >&2
echo "$tag"
