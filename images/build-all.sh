#!/usr/bin/env bash
# Build every image the tests need, each only when missing (FORCE=1 rebuilds):
#   local/busybox:test     (seconds)  fast tests
#   local/notebook:latest  (~1 min with a cached base, ~2 min cold)  hub e2e, notebook integration
#   local/shiny:latest     (~2-3 min) R Shiny dashboard test
# SKIP_SHINY=1 leaves out the Shiny image. Prints one timing line per image.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
step() {
  local label=$1; shift
  local t0; t0=$(date +%s)
  "$@"
  echo "images: $label done in $(( $(date +%s) - t0 ))s" >&2
}
step "local/busybox:test" "$here/test/build.sh"
step "local/notebook:latest" "$here/notebook/build.sh" local/notebook:latest
if [ "${SKIP_SHINY:-0}" != 1 ]; then
  step "local/shiny:latest" "$here/notebook/build.sh" local/shiny:latest --with-shiny
fi
