#!/usr/bin/env bash
# Build every image the tests need, each only when missing (FORCE=1 rebuilds):
#   local/busybox:test     (seconds)  fast tests
#   local/notebook:latest  (~1 min with a cached base, ~2 min cold)  hub e2e, notebook integration
#   local/shiny:latest     (~2-3 min) R Shiny dashboard test
#   local/nbswarm:latest   (~25 s with a cached base) the operator image; compiles its own copy of
#                          the TypeScript, so `npm run build` need not have run (`npm ci` must have)
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
# After the notebook image: both share the cached minbase tarball, so it is debootstrapped once.
step "local/nbswarm:latest" "$here/operator/build.sh" local/nbswarm:latest
