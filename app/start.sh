#!/bin/sh
# The runner's start: regenerated ISR pages (a volume, so they survive a restart) belong to one
# build; a new build starts from its own prerendered pages. Then bun becomes PID 1.
set -eu
cache=/app/.next/server/route-cache
if [ -w "$cache" ] && [ "$(cat "$cache/.build-id" 2>/dev/null || true)" != "$(cat /app/.next/BUILD_ID)" ]; then
  find "$cache" -mindepth 1 -delete
  cp /app/.next/BUILD_ID "$cache/.build-id"
fi
exec bun server.js
