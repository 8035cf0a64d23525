#!/usr/bin/env bash
# Install the Debian packages a set-up path needs, only the ones missing. The one list, with the
# reason for each package, is scripts/apt-packages.txt; `npm start`, `npm test` (its pretest step),
# `npm run bench` and .ci/run all come through here, so nothing is installed by CI alone.
#
# Usage: scripts/install-packages.sh [--dry-run | --list] GROUP...
#   GROUP      start | test | bench (several may be given) | all
#   --dry-run  print the missing packages, one per line on stdout; install nothing
#   --list     print every package of the groups with its reason; install nothing
# Env: NBSWARM_APT_LIST  another list file (same format)
#
# Checking costs one dpkg-query call (~20 ms), so a machine that has everything pays nothing.
# Installs with --no-install-recommends: the list names everything nbswarm uses (recommends of
# docker.io alone triple the download). Needs root only when something is missing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list=${NBSWARM_APT_LIST:-$here/apt-packages.txt}
mode=install
groups=()
for a in "$@"; do
  case "$a" in
    --dry-run) mode=dry-run ;;
    --list) mode=list ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    start|test|bench) groups+=("$a") ;;
    all) groups+=(start test bench) ;;
    *) echo "install-packages: unknown argument '$a' (groups: start test bench all)" >&2; exit 2 ;;
  esac
done
[ ${#groups[@]} -gt 0 ] || { echo "install-packages: name a group: start, test, bench or all" >&2; exit 2; }
[ -r "$list" ] || { echo "install-packages: cannot read $list" >&2; exit 2; }

# The list: PACKAGE GROUP SECONDS REASON..., '#' starts a comment.
wanted=() seconds=() reasons=()
while read -r pkg group secs reason; do
  case "$pkg" in ''|'#'*) continue ;; esac
  case "$secs" in ''|*[!0-9]*) echo "install-packages: $list: '$pkg' needs a number of seconds in its third column" >&2; exit 2 ;; esac
  for g in "${groups[@]}"; do
    if [ "$g" = "$group" ]; then wanted+=("$pkg"); seconds+=("$secs"); reasons+=("$reason"); break; fi
  done
done <"$list"

if [ "$mode" = list ]; then
  for i in "${!wanted[@]}"; do printf '%-28s %s\n' "${wanted[$i]}" "${reasons[$i]}"; done
  exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-packages: not a Debian system (no dpkg-query); make sure these are installed: ${wanted[*]}" >&2
  exit 0
fi
declare -A installed=()
# Unknown names make dpkg-query complain and exit 1; only the "installed" lines matter here.
while read -r status pkg; do
  [ "$status" = installed ] && installed[$pkg]=1
done < <(dpkg-query -W -f='${db:Status-Status} ${Package}\n' "${wanted[@]}" 2>/dev/null || true)

missing=() estimate=10   # apt-get update, measured 6-12 s against deb.debian.org
for i in "${!wanted[@]}"; do
  if [ -z "${installed[${wanted[$i]}]:-}" ]; then
    missing+=("${wanted[$i]}")
    estimate=$((estimate + ${seconds[$i]}))
  fi
done

if [ "$mode" = dry-run ]; then
  [ ${#missing[@]} -eq 0 ] || printf '%s\n' "${missing[@]}"
  exit 0
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "apt packages (${groups[*]}): all ${#wanted[@]} present" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-packages: these Debian packages are missing: ${missing[*]}" >&2
  echo "  install them as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

. "$here/lib/progress.sh"
# No package may start its service while we install it: the tests run their own registry,
# Prometheus and etcd on ports they choose, and dockerd is started by scripts/docker-up.sh with the
# flags nbswarm needs. An existing policy-rc.d (container images ship one) is left as it is.
policy=/usr/sbin/policy-rc.d
marker='# nbswarm install-packages: no service starts during the install'
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n%s\nexit 101\n' "$marker" >"$policy"
  chmod 0755 "$policy"
  trap 'if grep -qxF "$marker" "$policy" 2>/dev/null; then rm -f "$policy"; fi' EXIT
fi
log=$(mktemp /tmp/nbswarm-apt.XXXXXX.log)
echo "apt packages (${groups[*]}): installing ${#missing[@]} of ${#wanted[@]}: ${missing[*]} (log: $log)" >&2
apt_install() {
  apt-get update -q || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}
if ! nbswarm_progress "apt-get install ${#missing[@]} packages" "$estimate" nbswarm_logged "$log" apt_install; then
  tail -20 "$log" >&2
  echo "install-packages: apt-get failed; the whole log is $log" >&2
  exit 1
fi
rm -f "$log"
