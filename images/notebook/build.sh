#!/usr/bin/env bash
# Build a real notebook image without any registry: debootstrap (minbase) of the host's Debian
# suite, then Debian's Jupyter packages installed inside it with apt, then `docker import`.
# Two stages because debootstrap --include cannot resolve the virtual packages of the Jupyter stack.
#
# Usage: images/notebook/build.sh [NAME] [--with-shiny]
#   NAME defaults to local/notebook:latest (local/shiny:latest with --with-shiny).
#   An image built from this same recipe (label nbswarm.recipe) is kept; FORCE=1 rebuilds anyway.
#   CACHE_DIR (default /var/cache/nbswarm-images) keeps the stage-1 rootfs tarball so a rebuild
#   only repeats the apt stage.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name="" shiny=0
for a in "$@"; do
  case "$a" in
    --with-shiny) shiny=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) name=$a ;;
  esac
done
if [ -z "$name" ]; then if [ $shiny = 1 ]; then name=local/shiny:latest; else name=local/notebook:latest; fi; fi
# The recipe's files and options: an image built by an older recipe (without git or the dashboard
# proxy, say) is rebuilt instead of silently kept.
recipe=$( { cat "$0" "$here/start.sh" "$here/nbswarm-dashboard-proxy"; echo "shiny=$shiny"; } | sha256sum | cut -c1-16)
built=$(docker image inspect --format '{{ index .Config.Labels "nbswarm.recipe" }}' "$name" 2>/dev/null || true)
if [ "$built" = "$recipe" ] && [ "${FORCE:-0}" != 1 ]; then echo "$name already built from this recipe" >&2; exit 0; fi
if [ -n "$built" ] || docker image inspect "$name" >/dev/null 2>&1; then echo "$name was built from another recipe: rebuilding" >&2; fi
[ "$(id -u)" = 0 ] || { echo "needs root (debootstrap, chroot, mounts)" >&2; exit 1; }

t0=$(date +%s)
. "$here/../lib/debian-base.sh"
suite=$(nbswarm_suite)

# git + openssh-client: spec.git sources are cloned inside the server's container.
packages=(jupyter-core jupyter-notebook jupyter-server python3-notebook python3-ipykernel
  python3-jupyter-server python3-nbclassic jupyterhub tini ca-certificates git openssh-client)
[ $shiny = 1 ] && packages+=(r-base-core r-cran-shiny)

work=$(mktemp -d /var/tmp/nbswarm-image.XXXXXX)
root=$work/rootfs
cleanup() {
  for m in dev/pts dev sys proc; do
    if mountpoint -q "$root/$m" 2>/dev/null; then umount -l "$root/$m" || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Stage 1: minbase rootfs, cached per suite+arch (shared with images/operator).
base=$(nbswarm_base_tarball "$work")
t1=$(date +%s)
mkdir -p "$root"
tar -C "$root" -xf "$base"

# Stage 2: the Jupyter stack with apt inside the chroot, using the host's sources.
rm -f "$root/etc/apt/sources.list"
cp -a /etc/apt/sources.list.d/. "$root/etc/apt/sources.list.d/" 2>/dev/null || true
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/sources.list"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
# No daemons may start inside the chroot during package installation.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
echo "stage 2: apt-get install ${packages[*]}" >&2
# Measured with a warm mirror on 2 cores: ~45-70 s for the Jupyter stack, ~90 s more for R Shiny.
typical=60; [ $shiny = 1 ] && typical=150
nbswarm_progress "$name, stage 2/3: apt-get install in the rootfs" "$typical" nbswarm_logged "$work/apt.log" \
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
  sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends ${packages[*]}" \
  || { tail -30 "$work/apt.log" >&2; exit 1; }
t2=$(date +%s)

# User, start contract, cleanup. Keep __pycache__: the image runs as non-root and cannot write it.
chroot "$root" /usr/sbin/useradd --uid 1000 --gid 100 --create-home --home-dir /home/jovyan --shell /bin/bash jovyan
# As in Docker Stacks: ~/work exists and belongs to the user, so a fresh named volume mounted there
# is initialised from it (owned by 1000:100) instead of being root-owned and read-only to jovyan.
install -d -o 1000 -g 100 "$root/home/jovyan/work"
install -m 0755 "$here/start.sh" "$root/usr/local/bin/start.sh"
# Dashboards behind JupyterHub's OAuth (the jhsingle-native-proxy contract; policy proxyCommand).
install -m 0755 "$here/nbswarm-dashboard-proxy" "$root/usr/local/bin/nbswarm-dashboard-proxy"
mkdir -p "$root/usr/local/bin/start-notebook.d" "$root/usr/local/bin/before-notebook.d"
rm -f "$root/usr/sbin/policy-rc.d"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/apt "$root"/tmp/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
for m in dev/pts dev sys proc; do umount -l "$root/$m"; done
: > "$root/etc/resolv.conf"

extra=""; if [ $shiny = 1 ]; then extra=" + r-cran-shiny"; fi
msg="nbswarm notebook image (debootstrap $suite + Debian jupyter$extra)"
import_rootfs() {
  tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV HOME=/home/jovyan' --change 'ENV SHELL=/bin/bash' --change 'ENV LANG=C.UTF-8' \
  --change 'ENV NB_USER=jovyan' --change 'ENV NB_UID=1000' --change 'ENV NB_GID=100' \
  --change 'USER 1000' --change 'WORKDIR /home/jovyan' --change 'EXPOSE 8888' \
  --change 'ENTRYPOINT ["tini","-g","--"]' \
  --change 'CMD ["start.sh","jupyterhub-singleuser"]' \
  --change "LABEL nbswarm.recipe=$recipe" \
  --message "$msg" - "$name" >/dev/null
}
nbswarm_progress "$name, stage 3/3: docker import" 8 import_rootfs
t3=$(date +%s)
size=$(docker image inspect --format '{{.Size}}' "$name")
echo "built $name: $(docker image inspect --format '{{.Id}}' "$name") size=$((size / 1000000))MB" \
  "time=$((t3 - t0))s (base $((t1 - t0))s, apt $((t2 - t1))s, import $((t3 - t2))s)" >&2
