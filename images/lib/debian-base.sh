# Shared by the image recipes (source it; it defines functions and sets nothing else).
# One cached minbase rootfs per suite+arch, so the notebook and operator images pay for
# debootstrap once and neither ever touches a registry.
#
#   nbswarm_mirror             prints the host's Debian mirror (MIRROR overrides)
#   nbswarm_base_tarball WORK  prints the path of the cached minbase tarball, debootstrapping it
#                              first when missing (or when FORCE_BASE=1); WORK is a scratch dir.
# Env: CACHE_DIR (default /var/cache/nbswarm-images), SUITE (default the host's codename).
# Sourcing it also defines nbswarm_progress (scripts/lib/progress.sh) for the recipes' long steps.

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/progress.sh"

nbswarm_mirror() {
  local mirror=${MIRROR:-}
  # The first URIs line of deb822 sources, else the first classic deb line.
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list)
  fi
  echo "${mirror:-http://deb.debian.org/debian}"
}

nbswarm_suite() {
  if [ -n "${SUITE:-}" ]; then echo "$SUITE"; return; fi
  (. /etc/os-release && echo "$VERSION_CODENAME")
}

nbswarm_base_tarball() {
  local work=$1
  local cache=${CACHE_DIR:-/var/cache/nbswarm-images}
  local suite arch mirror base
  suite=$(nbswarm_suite)
  arch=$(dpkg --print-architecture)
  base=$cache/minbase-$suite-$arch.tar
  mkdir -p "$cache"
  if [ ! -s "$base" ] || [ "${FORCE_BASE:-0}" = 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; return 1; }
    if ! command -v debootstrap >/dev/null 2>&1; then
      bash "$(dirname "${BASH_SOURCE[0]}")/../../scripts/install-packages.sh" start || return 1
    fi
    mirror=$(nbswarm_mirror)
    echo "base: debootstrap --variant=minbase $suite $mirror (once per machine; cached in $cache)" >&2
    mkdir -p "$work/base"
    # Measured 20-50 s against deb.debian.org (2 cores).
    nbswarm_progress "base: debootstrap" 40 nbswarm_logged "$work/debootstrap.log" \
      debootstrap --variant=minbase "$suite" "$work/base" "$mirror" || { tail -20 "$work/debootstrap.log" >&2; return 1; }
    # Write then rename: two recipes running at once never read a half-written tarball.
    tar -C "$work/base" -cf "$base.tmp.$$" . && mv "$base.tmp.$$" "$base"
    rm -rf "$work/base"
  fi
  echo "$base"
}
