#!/usr/bin/env bash
# Everything `npm start` needs on a fresh machine: Docker answering (and Swarm on a daemon we
# start), and the local images built when missing. Safe to run again: each step skips when done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/docker-up.sh
# The R Shiny image (another ~2-3 min) only when asked: SKIP_SHINY=0 npm start.
SKIP_SHINY=${SKIP_SHINY:-1} bash images/build-all.sh
