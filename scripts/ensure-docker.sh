#!/usr/bin/env bash
# Make sure a Docker Engine answers. Does nothing when one does; on Debian as
# root installs docker.io and starts dockerd; elsewhere says what to do.
set -euo pipefail

engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
  exit 0
fi
if [ -n "${DOCKER_HOST:-}" ]; then
  echo "error: DOCKER_HOST=${DOCKER_HOST} does not answer; hint: start that engine or unset DOCKER_HOST" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no Docker Engine answers; hint: install and start Docker (https://docs.docker.com/engine/install/) or set DOCKER_HOST" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing docker.io from Debian ..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
log=/var/log/factory-dockerd.log
echo "starting dockerd (log: $log) ..." >&2
# setsid: its own session, so the engine outlives the shell (and process group) that
# started it; a job runner that kills its group on exit would take dockerd with it.
setsid nohup dockerd >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if engine_answers; then exit 0; fi
  sleep 1
done
echo "error: dockerd did not answer within 60 s; hint: read $log" >&2
exit 1
