#!/bin/sh
# A Docker-in-Docker swarm node: dockerd on its own socket and on plain TCP :2375 of the proof's
# private bridge network, which only this host reaches (nothing publishes the port). The
# registry's CA is added by the xtask under /etc/docker/certs.d/, the standard per-registry place.
set -e
exec dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375 --tls=false "$@"
