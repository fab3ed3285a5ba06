#!/bin/sh
# A Docker-in-Docker swarm node: dockerd on a unix socket in /run/axion, a directory the xtask
# bind-mounts from a 0700 directory of its own. No TCP listener: a privileged node's engine is
# root on the host, so only the user who ran the proof may reach it. AXION_SOCKET_GID makes that
# user's group the socket's group. Swarm's own ports (2377, 7946, 4789) use swarm's mutual TLS.
set -e
exec dockerd --host=unix:///run/axion/docker.sock ${AXION_SOCKET_GID:+--group=$AXION_SOCKET_GID} "$@"
