#!/bin/sh
# The runner's entrypoint (docker/Dockerfile, stage runner).
#
#   axion-start            starts the server: bun becomes PID 1
#   axion-start CMD ...    runs CMD in the same environment (a migration, a one-off script):
#                          docker compose -f docker-compose.prod.yml run --rm --no-deps app axion-start bun ...
#
# The environment contract of every stack: the app reads DATABASE_URL and REDIS_URL (hosts db and
# redis). In prod and swarm they are not in the container's configuration (no password in
# `docker inspect`, the stack file or the image): they are built here, at start, from DB_HOST,
# DB_PORT, DB_NAME, DB_USER and REDIS_HOST, REDIS_PORT, REDIS_USER (an ACL user; none: the
# default user) and the passwords in the secret files DB_PASSWORD_FILE and REDIS_PASSWORD_FILE,
# percent-encoded. A URL already set wins. Likewise CACHE_REDIS_URL, the Next.js cache shared by
# every replica (cache-handler.mjs), from CACHE_HOST, CACHE_PORT and CACHE_PASSWORD_FILE.
set -eu

# RFC 3986: every byte but the unreserved ones as %XX, so `@ : / # % ?` in a password are safe.
encode() {
  printf %s "$1" | od -An -v -tx1 | tr -s ' \n' '\n\n' | while read -r h; do
    case $h in
      '') ;;
      3[0-9] | 4[1-9a-f] | 5[0-9a] | 6[1-9a-f] | 7[0-9a] | 2d | 2e | 5f | 7e)
        # shellcheck disable=SC2059 # an octal escape, built on purpose
        printf "\\$(printf %03o "0x$h")" ;;
      *) printf %%%s "$h" ;;
    esac
  done
}

# A secret file's value: trailing newlines (and a CR before them) are not part of it.
secret() {
  value=$(cat "$1")
  printf %s "${value%"$(printf '\r')"}"
}

if [ -z "${DATABASE_URL:-}" ] && [ -n "${DB_PASSWORD_FILE:-}" ]; then
  DATABASE_URL="postgres://$(encode "${DB_USER:?}"):$(encode "$(secret "$DB_PASSWORD_FILE")")@${DB_HOST:-db}:${DB_PORT:-5432}/$(encode "${DB_NAME:?}")"
  export DATABASE_URL
fi
if [ -z "${REDIS_URL:-}" ] && [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
  REDIS_URL="redis://$(encode "${REDIS_USER:-}"):$(encode "$(secret "$REDIS_PASSWORD_FILE")")@${REDIS_HOST:-redis}:${REDIS_PORT:-6379}"
  export REDIS_URL
fi

if [ -z "${CACHE_REDIS_URL:-}" ] && [ -n "${CACHE_PASSWORD_FILE:-}" ]; then
  CACHE_REDIS_URL="redis://:$(encode "$(secret "$CACHE_PASSWORD_FILE")")@${CACHE_HOST:-cache}:${CACHE_PORT:-6379}"
  export CACHE_REDIS_URL
fi

if [ "$#" -gt 0 ]; then
  exec "$@"
fi

# serve.mjs: server.js with a drain on SIGTERM (readiness off, then in-flight requests finish).
exec bun serve.mjs
