#!/usr/bin/env bash
# Build local/busybox:test: a busybox-static rootfs imported into Docker (no registry, seconds).
# It serves HTTP with `busybox httpd`, which is all the fast tests need.
set -euo pipefail
name=${1:-local/busybox:test}
if docker image inspect "$name" >/dev/null 2>&1 && [ "${FORCE:-0}" != 1 ]; then echo "$name already built" >&2; exit 0; fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# busybox-static: a dynamically linked busybox would not run in the empty rootfs.
bash "$here/../../scripts/install-packages.sh" start
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,home/jovyan,www,proc,sys,dev}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\njovyan:x:1000:100:jovyan:/home/jovyan:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nusers:x:100:\nnogroup:x:65534:\n' > "$root/etc/group"
echo '<html><body>nbswarm test image</body></html>' > "$root/www/index.html"
chmod 1777 "$root/tmp"; chown 1000:100 "$root/home/jovyan"
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/bin' --change 'ENV HOME=/home/jovyan' --change 'WORKDIR /home/jovyan' \
  --change 'USER 1000' \
  --change 'CMD ["httpd","-f","-p","8888","-h","/www"]' \
  --message 'nbswarm test image (busybox-static)' - "$name" >/dev/null
echo "built $name: $(docker image inspect --format '{{.Id}}' "$name")" >&2
