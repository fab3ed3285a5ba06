#!/bin/sh
# The official haproxy image's contract: "-arg" => haproxy -arg; haproxy runs in the foreground
# in master-worker mode so SIGTERM/SIGUSR1 reach it.
set -e
if [ "${1#-}" != "$1" ]; then
  set -- haproxy "$@"
fi
if [ "$1" = 'haproxy' ]; then
  shift
  set -- haproxy -W -db "$@"
fi
exec "$@"
