#!/usr/bin/env bash
# Build every image the tests need, each only when missing (FORCE=1 rebuilds):
#   local/busybox:test     (seconds)  fast tests
#   local/notebook:latest  (~1 min with a cached base, ~2 min cold)  hub e2e, notebook integration
#   local/shiny:latest     (~2-3 min) R Shiny dashboard test
#   local/nbswarm:latest   (~25 s with a cached base) the operator image; compiles its own copy of
#                          the TypeScript, so `npm run build` need not have run (`npm ci` must have)
# SKIP_SHINY=1 leaves out the Shiny image. Each recipe reports its long steps (elapsed, typical
# time); this prints one line before and one timing line after each image.
#
# Usage: images/build-all.sh [IMAGE...]   only the images named (of the four above), in this order;
#   .ci/run builds the three that need no node_modules while `npm ci` compiles.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Build order. After the notebook image: Shiny and the operator share its cached minbase tarball,
# so it is debootstrapped once.
known=(local/busybox:test local/notebook:latest local/shiny:latest local/nbswarm:latest)
images=()
if [ $# -eq 0 ]; then
  for image in "${known[@]}"; do
    [ "$image" = local/shiny:latest ] && [ "${SKIP_SHINY:-0}" = 1 ] && continue
    images+=("$image")
  done
else
  for a in "$@"; do
    case "$a" in -h|--help) sed -n '2,12p' "$0"; exit 0 ;; esac
    ok=0
    for image in "${known[@]}"; do [ "$a" = "$image" ] && ok=1; done
    [ $ok = 1 ] || { echo "build-all: unknown image '$a' (${known[*]})" >&2; exit 2; }
  done
  for image in "${known[@]}"; do
    for a in "$@"; do [ "$a" = "$image" ] && images+=("$image"); done
  done
fi
n=0
for image in "${images[@]}"; do
  n=$((n + 1))
  t0=$SECONDS
  echo "images [$n/${#images[@]}]: $image" >&2
  case "$image" in
    local/busybox:test) "$here/test/build.sh" "$image" ;;
    local/notebook:latest) "$here/notebook/build.sh" "$image" ;;
    local/shiny:latest) "$here/notebook/build.sh" "$image" --with-shiny ;;
    local/nbswarm:latest) "$here/operator/build.sh" "$image" ;;
  esac
  echo "images [$n/${#images[@]}]: $image done in $((SECONDS - t0))s" >&2
done
