#!/usr/bin/env bash
# Everything the README's commands need on a bare Debian 12 machine (as root). Safe to run again:
# each step checks first and skips what is done (~1 s when everything is there).
#
# Usage: scripts/setup.sh [start|test]
#   start  (`npm start`) the apt packages of group start (scripts/apt-packages.txt), Docker
#          answering (Swarm initialised on a daemon this started), the local images; the R Shiny
#          image only with SKIP_SHINY=0
#   test   (`npm test`, as its pretest step) the same plus the packages only tests use, Swarm
#          initialised on an existing daemon too (the suite needs a manager; NBSWARM_SWARM_INIT=0
#          refuses) and every image the tests run, Shiny included
set -euo pipefail
cd "$(dirname "$0")/.."
purpose=${1:-start}
case "$purpose" in
  start) groups=(start); skip_shiny=${SKIP_SHINY:-1}; swarm_init=${NBSWARM_SWARM_INIT:-0} ;;
  test) groups=(start test); skip_shiny=${SKIP_SHINY:-0}; swarm_init=${NBSWARM_SWARM_INIT:-1} ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "setup: unknown purpose '$purpose' (start or test)" >&2; exit 2 ;;
esac
begin=$SECONDS
step() { echo "setup ($purpose) [$1/3, $((SECONDS - begin))s]: $2" >&2; }

step 1 "apt packages"
bash scripts/install-packages.sh "${groups[@]}"
step 2 "Docker"
NBSWARM_SWARM_INIT=$swarm_init bash scripts/docker-up.sh
step 3 "images"
SKIP_SHINY=$skip_shiny bash images/build-all.sh
echo "setup ($purpose): ready in $((SECONDS - begin))s" >&2
