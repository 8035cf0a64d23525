#!/usr/bin/env bash
# Make sure a Docker daemon answers. Starts dockerd (as root, in the background) only when none
# answers. Swarm is initialised on a daemon this script started, or when NBSWARM_SWARM_INIT=1;
# an existing daemon is otherwise left as it is (nbswarm then uses plain containers if it is not
# a Swarm manager).
set -euo pipefail
log=${NBSWARM_DOCKERD_LOG:-/tmp/nbswarm-dockerd.log}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! command -v dockerd >/dev/null 2>&1; then bash "$here/install-packages.sh" start; fi
started=0
if ! docker info >/dev/null 2>&1; then
  started=1
  echo "docker-up: starting dockerd (log: $log)" >&2
  # The env var keeps Swarm from pulling an image it already has (no Docker Hub here).
  DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nohup dockerd --ip=127.0.0.1 >"$log" 2>&1 &
  echo $! > /tmp/nbswarm-dockerd.pid
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "docker-up: dockerd did not answer; see $log" >&2; tail -20 "$log" >&2; exit 1; }
fi
state=$(docker info --format '{{.Swarm.LocalNodeState}}')
if [ "$state" != "active" ] && { [ "$started" = 1 ] || [ "${NBSWARM_SWARM_INIT:-0}" = 1 ]; }; then
  echo "docker-up: docker swarm init" >&2
  docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
fi
echo "docker-up: dockerd $(docker version --format '{{.Server.Version}}'), swarm $(docker info --format '{{.Swarm.LocalNodeState}}')" >&2
