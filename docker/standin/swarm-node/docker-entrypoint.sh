#!/bin/sh
# A Docker-in-Docker swarm node: dockerd on a unix socket in /run/axion, a directory the xtask
# bind-mounts from a 0700 directory of its own. No TCP listener: a privileged node's engine is
# root on the host, so only the user who ran the proof may reach it. AXION_SOCKET_GID makes that
# user's group the socket's group. Swarm's own ports (2377, 7946, 4789) use swarm's mutual TLS.
set -e
# cgroup v2 (most hosts now; this project's machines run v1): move this shell out of the root
# cgroup so dockerd may enable the controllers for its containers, as docker:dind does.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || :
fi
exec dockerd --host=unix:///run/axion/docker.sock ${AXION_SOCKET_GID:+--group=$AXION_SOCKET_GID} "$@"
