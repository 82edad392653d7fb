#!/usr/bin/env bash
# Bundles the npm package sip.js (version pinned in package-lock.json) into one browser
# script, host/console/vendor/sip.js, that exposes `window.SIP`. The bundle is committed, so
# the host serves the softphone with no build step at run time and no CDN; CI rebuilds it
# and fails if the committed file differs (`--check`).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/sip.js ] || npm ci --no-audit --no-fund >/dev/null
out=../../host/console/vendor/sip.js
version=$(node -p 'require("./node_modules/sip.js/package.json").version')
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
  printf '/* SIP.js %s (MIT, https://github.com/onsip/SIP.js), bundled by tests/browser/bundle-sipjs.sh */\n' "$version"
  echo 'import * as SIP from "sip.js"; window.SIP = SIP;' |
    npx esbuild --bundle --format=iife --minify --target=es2020 --log-level=warning
} >"$tmp"
if [ "${1:-}" = "--check" ]; then
  cmp -s "$tmp" "$out" || { echo "$out is stale: run tests/browser/bundle-sipjs.sh" >&2; exit 1; }
  echo "$out matches sip.js $version"
else
  cp "$tmp" "$out"
  echo "wrote $out ($(wc -c <"$out") bytes, sip.js $version)"
fi
