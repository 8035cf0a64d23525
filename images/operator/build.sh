#!/usr/bin/env bash
# Build the nbswarm image (API server + operator) without any registry: the cached Debian minbase
# rootfs (images/lib/debian-base.sh, shared with the notebook image) + this host's Node binary
# + the compiled project and its production node_modules, then `docker import`.
#
# Usage: images/operator/build.sh [NAME]      NAME defaults to local/nbswarm:latest
#   FORCE=1     rebuild an existing image (otherwise it is rebuilt only when the sources it was
#               built from changed: label nbswarm.io/source-hash)
#   DIST=DIR    use an existing tsc output (DIR/src/cli.js, e.g. DIST=dist after `npm run build`)
#               instead of compiling a private copy into the staging dir
#   NODE=PATH   Node binary to ship (default `command -v node`; must be >= 20.19, the engines range)
# Needs: root (the rootfs keeps root-owned files), docker, npm with a warm cache (after `npm ci`).
#
# Runs as root on purpose: the operator's whole job is the Docker API, and access to
# /var/run/docker.sock is root-equivalent anyway; the socket's group differs per host, so a fixed
# docker-group gid baked in here would be wrong on most of them. Run it with `--user 0:$(stat -c %g
# /var/run/docker.sock)` plus a writable data dir if you prefer a non-zero uid.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
name=${1:-local/nbswarm:latest}
case "$name" in -h|--help) sed -n '2,18p' "$0"; exit 0 ;; esac
[ -d "$repo/src" ] || { echo "images/operator/build.sh compiles nbswarm's sources: run it in a git checkout (the npm package ships only the bundle)" >&2; exit 1; }
# What the image is made of, so a checkout with newer code never silently reuses an old image.
source_hash=$(cd "$repo" && find src crds package.json package-lock.json tsconfig.json scripts/bundle.mjs images/operator images/lib \
  -type f ! -name '*.md' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$name" >/dev/null 2>&1; then
  have=$(docker image inspect --format '{{index .Config.Labels "nbswarm.io/source-hash"}}' "$name" 2>/dev/null || true)
  if [ "$have" = "$source_hash" ]; then echo "$name already built (sources $source_hash)" >&2; exit 0; fi
  echo "$name was built from other sources ($have, now $source_hash): rebuilding" >&2
fi
[ "$(id -u)" = 0 ] || { echo "needs root (the rootfs holds root-owned files)" >&2; exit 1; }

t0=$(date +%s)
node=$(readlink -f "${NODE:-$(command -v node)}")
nodever=$("$node" -p 'process.versions.node')
"$node" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || { echo "node $nodever is older than the engines range >=20.19; set NODE=" >&2; exit 1; }

. "$here/../lib/debian-base.sh"
work=$(mktemp -d /var/tmp/nbswarm-operator.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
app=$root/opt/nbswarm

# 1. Base rootfs, trimmed: the image only runs node, so apt's package cache and docs go.
base=$(nbswarm_base_tarball "$work")
mkdir -p "$root"
tar -C "$root" -xf "$base"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
t1=$(date +%s)

# 2. Node: the host binary, because Debian's nodejs is older than engines >=20.19. Debug info is
# half its size and nothing in a container reads it.
install -m 0755 "$node" "$root/usr/local/bin/node"
strip --strip-debug "$root/usr/local/bin/node" 2>/dev/null || true
# Every shared library node links against must come from the rootfs, not the host.
missing=$(ldd "$node" | awk '$2=="=>"{print $1} $1 ~ /^\//{print $1}' | while read -r lib; do
  case "$lib" in linux-vdso*) continue ;; esac
  base_name=$(basename "$lib")
  [ -n "$(find "$root/lib" "$root/lib64" "$root/usr/lib" -name "$base_name" -print -quit 2>/dev/null)" ] || echo "$base_name"
done)
[ -z "$missing" ] || { echo "the rootfs lacks libraries node needs: $missing" >&2; exit 1; }

# 3. The project: the bundled CLI, package files, CRDs, production node_modules (native modules).
mkdir -p "$app"
if [ -n "${DIST:-}" ]; then
  dist=$(cd "$DIST" && pwd)
else
  # A private compile keeps this recipe independent of whether `npm run build` ran (CI builds
  # images first) and never writes into the checkout's dist/.
  # Only src/: the image needs no tests or benchmarks, and their type errors must not block it.
  dist=$work/dist
  cat >"$work/tsconfig.json" <<JSON
{"extends": "$repo/tsconfig.json", "include": ["$repo/src/**/*.ts"],
 "compilerOptions": {"rootDir": "$repo", "outDir": "$dist", "sourceMap": false,
   "types": ["node"], "typeRoots": ["$repo/node_modules/@types"]}}
JSON
  nbswarm_progress "$name: compile (tsc)" 20 nbswarm_logged "$work/tsc.log" \
    bash -c 'cd "$1" && npx --no-install tsc -p "$2"' tsc "$repo" "$work/tsconfig.json" \
    || { tail -30 "$work/tsc.log" >&2; echo "tsc failed" >&2; exit 1; }
fi
[ -f "$dist/src/cli.js" ] || { echo "$dist/src/cli.js missing" >&2; exit 1; }
# The one file the image runs: the CLI bundled as `npm run build` bundles it (scripts/bundle.mjs).
mkdir -p "$app/dist"
(cd "$repo" && NBSWARM_BUNDLE_SOURCEMAP=0 node scripts/bundle.mjs "$dist" "$app/dist/nbswarm.mjs") >"$work/bundle.log" 2>&1 \
  || { tail -30 "$work/bundle.log" >&2; echo "bundle failed" >&2; exit 1; }
cp "$repo/package.json" "$repo/package-lock.json" "$app/"
cp -a "$repo/crds" "$app/crds"
# A staging copy, never the checkout: `npm ci` there would replace node_modules under the other
# tools. --ignore-scripts: better-sqlite3's install script would fetch or compile; the checkout
# already holds a native module built for this very node binary, so it is copied instead.
nbswarm_progress "$name: production node_modules (npm ci)" 15 nbswarm_logged "$work/npm.log" \
  bash -c 'cd "$1" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error' npm "$app" \
  || { tail -30 "$work/npm.log" >&2; exit 1; }
native=$repo/node_modules/better-sqlite3/build/Release/better_sqlite3.node
[ -f "$native" ] || { echo "$native missing: run npm ci in the checkout first" >&2; exit 1; }
mkdir -p "$app/node_modules/better-sqlite3/build/Release"
cp "$native" "$app/node_modules/better-sqlite3/build/Release/"
# Drop what only building or documenting needs.
rm -rf "$app/node_modules/better-sqlite3/deps" "$app/node_modules/better-sqlite3/src" "$app/node_modules/.package-lock.json"
find "$app/node_modules" \( -name '*.md' -o -name '*.ts' -o -name '*.map' \) -type f ! -path '*/bin/*' -delete
mkdir -p "$root/var/lib/nbswarm" "$root/etc/nbswarm"
t2=$(date +%s)

version=$("$node" -p "require('$repo/package.json').version")
import_rootfs() {
  tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_ENV=production' --change 'ENV LANG=C.UTF-8' \
  --change 'USER 0' --change 'WORKDIR /var/lib/nbswarm' --change 'EXPOSE 6443' \
  --change "LABEL org.opencontainers.image.title=nbswarm org.opencontainers.image.version=$version nbswarm.io/source-hash=$source_hash" \
  --change 'ENTRYPOINT ["node","/opt/nbswarm/dist/nbswarm.mjs"]' \
  --change 'CMD ["up","--address","0.0.0.0","--data-dir","/var/lib/nbswarm"]' \
  --message "nbswarm $version (debootstrap $(nbswarm_suite) minbase + node $nodever)" - "$name" >/dev/null
}
nbswarm_progress "$name: docker import" 6 import_rootfs
t3=$(date +%s)

# Smoke test without network or socket: the entry point loads, and the native SQLite module
# matches the shipped node (a mismatch only shows when the API server opens its database).
docker run --rm --network none "$name" version >&2
docker run --rm --network none --entrypoint node -w /opt/nbswarm "$name" \
  -e "const D=require('better-sqlite3'); new D(':memory:').prepare('select 1').get()" \
  || { echo "better-sqlite3 does not load in $name" >&2; exit 1; }
size=$(docker image inspect --format '{{.Size}}' "$name")
echo "built $name: $(docker image inspect --format '{{.Id}}' "$name") size=$((size / 1000000))MB" \
  "time=$((t3 - t0))s (base $((t1 - t0))s, app $((t2 - t1))s, import $((t3 - t2))s)" >&2
