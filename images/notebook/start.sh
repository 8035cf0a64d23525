#!/bin/bash
# The start contract of Jupyter Docker Stacks / cdsdashboards images: `start.sh CMD ARGS...` runs
# optional hooks and then execs CMD, so a launcher can prefix any command with start.sh.
# Kept small: this image already runs as the user (no NB_USER/sudo switching as root).
set -e
run_hooks() {
  local dir=$1 f
  [ -d "$dir" ] || return 0
  shopt -s nullglob
  for f in "$dir"/*; do
    case "$f" in
      *.sh) [ -r "$f" ] && . "$f" ;;
      *) if [ -x "$f" ]; then "$f"; fi ;;
    esac
  done
  return 0
}
run_hooks /usr/local/bin/start-notebook.d
# As in Docker Stacks: no command means a shell (the image's CMD supplies jupyterhub-singleuser).
[ $# -gt 0 ] || set -- bash
run_hooks /usr/local/bin/before-notebook.d
exec "$@"
